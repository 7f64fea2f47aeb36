"""The timing model: calibration, breakdowns, and where GPU and wafer figures come from."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from pathlib import Path

import pytest

from tedchat.wafer.hardware import HARDWARE, GpuProfile, WaferProfile
from tedchat.wafer.placement import plan
from tedchat.wafer.shapes import PRESETS
from tedchat.wafer.timing import Breakdown, TimingModel
from tedchat.wafer.validation import ROWS

CS3 = HARDWARE["cs3"]
H100 = HARDWARE["h100"]
L8B = PRESETS["llama-3.1-8b"]
L70B = PRESETS["llama-3.1-70b"]
ROOT = Path(__file__).resolve().parents[2]

#: Public rows of docs/hardware.md: (model, CS-3 systems, output tokens/s).
CALIBRATION = [(L8B, 1, 1800.0), (L70B, 4, 450.0)]


def _model(shape, hw, systems=None, **kw) -> TimingModel:
    return TimingModel(plan(shape, hw, systems, context=kw.pop("context", 8192), **kw))


@pytest.mark.parametrize(("shape", "systems", "published"), CALIBRATION)
def test_cs3_decode_within_15_percent_of_published(shape, systems, published) -> None:
    model = _model(shape, CS3, systems)
    assert model.hardware is CS3  # the one shared profile object, for every model
    tok_s = model.predict(prompt_tokens=1000).decode_tokens_per_s
    assert tok_s == pytest.approx(published, rel=0.15)


def test_calibration_is_per_hardware_not_per_model() -> None:
    # Nothing but the placement (shape + hardware profile) goes into the model.
    assert list(inspect.signature(TimingModel.__init__).parameters) == ["self", "placement"]
    a, b = _model(L8B, CS3, 1), _model(L70B, CS3, 4)
    assert a.hardware is b.hardware is HARDWARE["cs3"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CS3.hop_latency_s = 1e-9  # type: ignore[misc]
    with pytest.raises(TypeError):
        HARDWARE["cs3"] = CS3  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(HARDWARE))
def test_every_constant_has_exactly_one_provenance_with_its_detail(name: str) -> None:
    profile = HARDWARE[name]
    numeric = [
        f.name
        for f in dataclasses.fields(profile)
        if isinstance(getattr(profile, f.name), numbers.Real)
    ]
    assert numeric and set(numeric) == set(profile.sources)
    sources_doc = (ROOT / "docs" / "hardware.md").read_text(encoding="utf-8")
    in_sample = {row.id for row in ROWS if row.in_sample}
    for key, prov in profile.sources.items():
        assert prov.kind in {"spec", "fitted", "assumed"}, key
        assert len(prov.note) > 5, key
        if prov.kind == "spec":
            # A published figure: its source is named in the repo's hardware sources document.
            assert prov.source and prov.source in sources_doc, (key, prov.source)
            assert prov.basis in {"primary", "secondary", "derived"}, key
            assert not prov.fitted_on and prov.plausible is None, key
        elif prov.kind == "fitted":
            # Fitted on named rows, every one an in-sample row of the validation table.
            assert prov.fitted_on and set(prov.fitted_on) <= in_sample, key
            assert prov.source is None and prov.basis is None, key
            assert len(prov.note) > 20 and prov.plausible is not None, key
        else:
            assert prov.source is None and prov.basis is None and not prov.fitted_on, key
            assert len(prov.note) > 20, key  # the reasoning
        if prov.plausible is not None:
            low, high = prov.plausible
            assert low <= getattr(profile, key) <= high, key


def test_gpu_constants_are_assumed_and_the_wafer_hop_latency_is_fitted() -> None:
    for profile in HARDWARE.values():
        if isinstance(profile, GpuProfile):
            for key in ("hbm_efficiency", "compute_efficiency", "kernel_overhead_s"):
                assert profile.sources[key].kind == "assumed"
            assert not any(p.kind == "fitted" for p in profile.sources.values())
    assert CS3.sources["hop_latency_s"].fitted_on == (
        "cs3-llama-3.1-8b-aug2024",
        "cs3-llama-3.1-70b-aug2024",
    )
    assert CS3.sources["clock_hz"].basis == "secondary"
    # No CS-2 rows exist: what was fitted on CS-3 is assumed there.
    assert HARDWARE["cs2"].sources["hop_latency_s"].kind == "assumed"


def test_wafer_decode_is_dominated_by_latency_terms() -> None:
    decode = _model(L70B, CS3, 4).decode_step(1000)
    latency = sum(
        decode.get(k) for k in ("fabric_hops", "reduction_overhead", "layer_handoff", "link")
    )
    assert latency > 0.6 * decode.total
    # Reading the whole model from SRAM in parallel would take microseconds (docs/hardware.md).
    assert L70B.weight_bytes(16) / 4 / CS3.sram_bandwidth < 5e-6
    assert decode.total > 1e-3


def test_decode_step_is_the_sum_of_stages_and_links() -> None:
    model = _model(L70B, CS3, 4)
    parts = [model.stage_step_time(s, "decode", 1, 500) for s in range(4)]
    parts += [model.link_time(s, 1) for s in range(3)] + [model.return_link_time()]
    whole = model.decode_step(500)
    assert whole.total == pytest.approx(sum(p.total for p in parts), rel=1e-12)
    for key, value in whole.items():
        assert value == pytest.approx(sum(p.get(key) for p in parts), rel=1e-12)
    assert whole.get("link") > 0  # 3 hand-offs between systems plus the token going back
    assert _model(L8B, CS3, 1).decode_step(500).get("link") == 0


@pytest.mark.parametrize("hw_name", ["cs3", "h100"])
def test_breakdowns_sum_to_their_totals(hw_name: str) -> None:
    pred = _model(L70B, HARDWARE[hw_name]).predict(prompt_tokens=777)
    for b in (pred.ttft, pred.decode):
        assert b.total == pytest.approx(sum(v for _, v in b.items()), rel=1e-12)
        assert all(v >= 0 for _, v in b.items())
    assert pred.decode_tokens_per_s == pytest.approx(1 / pred.decode.total)


def test_breakdown_adds_componentwise() -> None:
    a = Breakdown({"link": 1.0, "compute": 2.0})
    b = Breakdown({"link": 0.5, "hbm": 4.0})
    c = a + b
    assert c.as_dict() == {"hbm": 4.0, "compute": 2.0, "link": 1.5}
    assert c.total == 7.5 and Breakdown.sum([a, b]).total == 7.5
    assert a.scaled(2).get("compute") == 4.0


def test_hop_latency_scales_only_the_fabric_term() -> None:
    slow = dataclasses.replace(CS3, hop_latency_s=2 * CS3.hop_latency_s)
    base = _model(L70B, CS3, 4).decode_step(100)
    doubled = _model(L70B, slow, 4).decode_step(100)
    assert doubled.get("fabric_hops") == pytest.approx(2 * base.get("fabric_hops"))
    assert doubled.get("sram_read") == pytest.approx(base.get("sram_read"))
    # Hops grow with the region: a 70B block region is wider and taller than an 8B one.
    per_layer_70 = base.get("fabric_hops") / 80
    per_layer_8 = _model(L8B, CS3, 1).decode_step(100).get("fabric_hops") / 32
    assert per_layer_70 > 1.5 * per_layer_8


def test_gpu_prediction_comes_from_its_own_hbm_bandwidth() -> None:
    fast_hbm = dataclasses.replace(H100, hbm_bandwidth=2 * H100.hbm_bandwidth)
    gpu = _model(L8B, H100).predict(1000)
    gpu_fast = _model(L8B, fast_hbm).predict(1000)
    assert gpu_fast.decode.get("hbm") == pytest.approx(gpu.decode.get("hbm") / 2)
    assert gpu_fast.decode_tokens_per_s > 1.5 * gpu.decode_tokens_per_s
    # GPU figures are not scaled from the wafer's: they differ by more than the HBM ratio, and
    # a GPU placement never consults a wafer profile (only the GPU's own fields feed it).
    wafer = _model(L8B, CS3).predict(1000)
    assert wafer.decode_tokens_per_s > 5 * gpu.decode_tokens_per_s
    assert set(gpu.decode.parts) == {"hbm", "compute", "kernel_overhead", "allreduce"}
    # Batch-1 decode streams every weight from HBM at the assumed efficiency.
    weights = L8B.weight_bytes(16)
    assert gpu.decode.get("hbm") >= weights / (H100.hbm_bandwidth * H100.hbm_efficiency)
    assert gpu.decode.get("hbm") < 1.1 * weights / (H100.hbm_bandwidth * H100.hbm_efficiency)


def test_gpu_tensor_parallel_pays_allreduces() -> None:
    four, eight = _model(L70B, H100, 4).decode_step(500), _model(L70B, H100, 8).decode_step(500)
    assert four.get("allreduce") > 0
    assert eight.get("hbm") == pytest.approx(four.get("hbm") / 2, rel=0.01)
    assert _model(L8B, H100, 1).decode_step(500).get("allreduce") == 0
    assert isinstance(H100, GpuProfile) and isinstance(CS3, WaferProfile)


def test_prefill_streams_tokens_and_grows_with_the_prompt() -> None:
    model = _model(L70B, CS3, 4)
    short, long = model.prefill(100).total, model.prefill(1000).total
    assert long > short
    per_token = (long - short) / 900
    assert per_token < model.decode_step(1000).total / 10  # streaming, not token by token


def test_step_api_refuses_nonsense() -> None:
    model = _model(L70B, CS3, 4)
    with pytest.raises(ValueError):
        model.stage_step_time(0, "decode", 2, 10)
    with pytest.raises(ValueError):
        model.stage_step_time(0, "train", 1, 10)  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        model.stage_step_time(4, "decode", 1, 10)
    with pytest.raises(ValueError):
        model.link_time(3)
    with pytest.raises(ValueError, match="does not fit"):
        TimingModel(plan(L70B, CS3, 3))

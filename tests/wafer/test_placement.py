"""Placement of model shapes on wafers and GPUs, and the shapes it is fed (presets and GGUF)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tedchat.errors import GGUFShapeError, TedchatError
from tedchat.models.registry import resolve_model
from tedchat.wafer.hardware import HARDWARE
from tedchat.wafer.placement import Placement, plan
from tedchat.wafer.shapes import PRESETS, ModelShape, shape_from_gguf

CS3 = HARDWARE["cs3"]
H100 = HARDWARE["h100"]
L8B = PRESETS["llama-3.1-8b"]
L70B = PRESETS["llama-3.1-70b"]


# --- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("smollm2", 134.5e6),
        ("llama-3.1-8b", 8.03e9),
        ("llama-3.1-70b", 70.55e9),
        ("llama-3.1-405b", 405.85e9),
    ],
)
def test_preset_parameter_counts_match_published_sizes(name: str, published: float) -> None:
    assert PRESETS[name].model_params == pytest.approx(published, rel=0.005)


def test_bytes_follow_precision_and_kv_follows_context() -> None:
    assert L70B.weight_bytes(16) == 2 * L70B.weight_bytes(8)
    assert L70B.weight_bytes("bf16") == L70B.weight_bytes(16)
    # 80 layers x (K + V) x 8 kv heads x 128 x 2 bytes = 327,680 bytes per token.
    assert L70B.kv_bytes_per_token_per_layer * L70B.layers == 327_680
    assert L70B.kv_bytes(8192, 2) == 2 * L70B.kv_bytes(8192, 1) == 2 * 327_680 * 8192
    with pytest.raises(ValueError, match="precision"):
        L70B.weight_bytes(4)


def test_tedllm_differs_from_llama_only_in_vocab() -> None:
    ted = PRESETS["tedllm"]
    assert (ted.vocab, ted.context, ted.layers, ted.hidden) == (141056, 8192, 32, 4096)
    assert ted.layer_params == L8B.layer_params
    assert ted.embedding_params - L8B.embedding_params == (141056 - 128256) * 4096


def _write_gguf(path: Path, arch: str = "llama", with_output: bool = False) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(3)
    writer.add_context_length(512)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(160)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_token_list([f"t{i}" for i in range(37)])
    writer.add_tensor("token_embd.weight", np.zeros((37, 64), dtype=np.float32))
    if with_output:
        writer.add_tensor("output.weight", np.zeros((37, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_shape_from_gguf_reads_metadata(tmp_path: Path) -> None:
    tied = shape_from_gguf(_write_gguf(tmp_path / "tied.gguf"))
    assert (tied.layers, tied.hidden, tied.heads, tied.kv_heads, tied.ffn, tied.vocab) == (
        3,
        64,
        4,
        2,
        160,
        37,
    )
    assert tied.tied and tied.head_dim == 16 and tied.context == 512
    untied = shape_from_gguf(_write_gguf(tmp_path / "untied.gguf", with_output=True))
    assert not untied.tied


def test_shape_from_gguf_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(GGUFShapeError, match="unsupported architecture 'gpt2'") as err:
        shape_from_gguf(_write_gguf(tmp_path / "gpt2.gguf", arch="gpt2"))
    assert isinstance(err.value, ValueError) and isinstance(err.value, TedchatError)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="not a GGUF file"):
        shape_from_gguf(junk)
    with pytest.raises(ValueError, match="not found"):
        shape_from_gguf(tmp_path / "missing.gguf")


def test_bundled_smollm2_gguf_matches_the_preset() -> None:
    got = shape_from_gguf(resolve_model("smollm2"))
    want = PRESETS["smollm2"]
    fields = ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "tied", "head_dim")
    assert [getattr(got, f) for f in fields] == [getattr(want, f) for f in fields]


# --- wafer placement -----------------------------------------------------------------------------


def _check_geometry(p: Placement) -> None:
    """Regions lie inside the grid, never overlap, and are just big enough for their bytes."""
    hw = p.hardware
    for system in p.systems:
        for r in system.regions:
            assert r.row0 >= 0 and r.row0 + r.rows <= hw.grid_rows
            assert r.col0 >= 0 and r.col0 + r.cols <= hw.grid_cols
            assert r.cores * hw.usable_bytes_per_core >= r.bytes
            assert (r.rows - 1) * r.cols * hw.usable_bytes_per_core < r.bytes
        for a, b in itertools.combinations(system.regions, 2):
            apart_rows = a.row0 + a.rows <= b.row0 or b.row0 + b.rows <= a.row0
            apart_cols = a.col0 + a.cols <= b.col0 or b.col0 + b.cols <= a.col0
            assert apart_rows or apart_cols, f"{a.label} overlaps {b.label}"
        assert system.used_bytes <= system.capacity_bytes


def test_llama_70b_16bit_does_not_fit_on_3_cs3() -> None:
    p = plan(L70B, CS3, 3, context=8192, sequences=1, precision=16)
    assert not p.fits
    assert p.min_systems == 4
    assert "needs 4" in p.reason
    assert p.regions == ()
    assert any(not s.fits for s in p.systems)


def test_llama_70b_16bit_fits_on_4_cs3_with_80_layers_split_contiguously() -> None:
    p = plan(L70B, CS3, 4, context=8192, sequences=1, precision=16)
    assert p.fits and p.n_systems == 4 and p.min_systems == 4
    assert plan(L70B, CS3, None, context=8192).n_systems == 4
    layers = [r.layer for r in p.regions if r.kind == "layer"]
    assert layers == list(range(80))  # every block once, in pipeline order
    for before, after in itertools.pairwise(p.systems):
        assert before.layer_count > 0
        assert after.first_layer == before.last_layer + 1
    assert p.systems[0].has_embed and p.systems[-1].has_head
    assert [r.kind for r in p.regions].count("embed") == 1
    # Balanced by bytes: no system holds more than its share plus one part.
    biggest_part = max(r.bytes for r in p.regions)
    total = sum(s.used_bytes for s in p.systems)
    assert max(s.used_bytes for s in p.systems) <= total / 4 + biggest_part
    _check_geometry(p)


def test_llama_8b_fits_on_one_cs3() -> None:
    p = plan(L8B, CS3, context=8192)
    assert p.fits and p.n_systems == 1 and p.min_systems == 1
    assert len(p.regions) == 32 + 2
    _check_geometry(p)


def test_kv_reservation_is_context_times_sequences() -> None:
    one = plan(L70B, CS3, 4, context=2048, sequences=1)
    four = plan(L70B, CS3, 4, context=2048, sequences=4)
    layer = next(r for r in four.regions if r.kind == "layer")
    assert layer.kv_bytes == L70B.kv_bytes_per_token_per_layer * 2048 * 4
    assert four.kv_bytes == 4 * one.kv_bytes
    # Four sequences at the full 8192 context no longer fit on 4 systems.
    crowded = plan(L70B, CS3, 4, context=8192, sequences=4)
    assert not crowded.fits and crowded.min_systems == 5


def test_usable_fraction_decides_what_fits() -> None:
    import dataclasses

    roomy = dataclasses.replace(CS3, usable_sram_fraction=0.95)
    tight = dataclasses.replace(CS3, usable_sram_fraction=0.5)
    assert plan(L70B, roomy).n_systems == 4
    assert plan(L70B, tight).n_systems > 4


def test_eight_bit_halves_the_systems_needed() -> None:
    p = plan(L70B, CS3, precision=8)
    assert p.fits and p.n_systems == 2
    layer = next(r for r in p.regions if r.kind == "layer")
    assert layer.weight_bytes == L70B.layer_params


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        plan(L8B, CS3, 0)
    with pytest.raises(ValueError):
        plan(L8B, CS3, context=0)
    with pytest.raises(ValueError):
        plan(L8B, CS3, 100)  # more systems than parts to place


def test_a_model_with_a_layer_larger_than_a_wafer_never_fits() -> None:
    giant = ModelShape("giant", 2, 65536, 64, 8, 262144, 1000, False)
    p = plan(giant, CS3)
    assert not p.fits and p.min_systems is None


# --- GPU placement --------------------------------------------------------------------------------


def test_gpu_tensor_parallel_holds_a_share_of_every_layer() -> None:
    p = plan(L70B, H100, context=8192)
    assert p.mode == "tensor_parallel" and p.n_stages == 1
    assert p.fits and p.n_systems == 4
    for s in p.systems:
        assert (s.first_layer, s.last_layer) == (0, 79)
        assert s.weight_bytes == pytest.approx(L70B.weight_bytes(16) / 4, abs=1)
    two = plan(L70B, H100, 2, context=8192)
    assert not two.fits and two.min_systems == 4
    assert plan(L8B, H100).n_systems == 1


# --- the `wafer plan` report ------------------------------------------------------------------


def test_run_plan_refuses_70b_on_3_and_says_how_many_it_needs() -> None:
    from types import SimpleNamespace

    from tedchat.wafer.plan_report import run_plan

    code, text = run_plan(SimpleNamespace(model="llama-3.1-70b", systems=3))
    assert code == 1
    assert "DOES NOT FIT" in text and "needs 4" in text
    code, text = run_plan(SimpleNamespace(model="llama-3.1-70b", systems=4))
    assert code == 0 and "+------ system 3" in text and "emulated" in text


def test_plan_report_json_has_wafer_and_gpu_columns() -> None:
    import json
    from types import SimpleNamespace

    from tedchat.wafer.plan_report import run_plan

    code, text = run_plan(SimpleNamespace(model="llama-3.1-8b", json=True, prompt_tokens=500))
    report = json.loads(text)
    assert code == 0 and report["emulated"] and report["fits"]
    wafer, gpu = report["columns"]
    assert (wafer["hardware"], wafer["systems"]) == ("cs3", 1)
    assert (gpu["hardware"], gpu["systems"]) == ("h100", 1)
    for column in (wafer, gpu):
        pred = column["prediction"]
        assert pred["ttft_s"] == pytest.approx(sum(pred["ttft_breakdown"].values()))
        assert pred["decode_tokens_per_s"] * pred["decode_s_per_token"] == pytest.approx(1.0)
    assert len(wafer["per_system"][0]["regions"]) == 34
    assert wafer["prediction"]["decode_tokens_per_s"] > gpu["prediction"]["decode_tokens_per_s"]


def test_plan_report_rejects_unknown_input() -> None:
    from tedchat.errors import UsageError
    from tedchat.wafer.plan_report import plan_report

    with pytest.raises(UsageError, match="unknown model"):
        plan_report("no-such-model")
    with pytest.raises(UsageError, match="unknown hardware"):
        plan_report("smollm2", hardware="tpu")
    with pytest.raises(UsageError, match="precision"):
        plan_report("smollm2", precision=3)

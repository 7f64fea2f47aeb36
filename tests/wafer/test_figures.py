"""Honest wafer figures: the speculative projection, `wafer plan --speculative`, the validation
table (`wafer validate`, docs/validation.md) and "stand-in" in the metrics lines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tedchat.errors import UsageError
from tedchat.wafer.hardware import HARDWARE
from tedchat.wafer.placement import plan, plan_draft
from tedchat.wafer.plan_report import plan_report, run_plan
from tedchat.wafer.shapes import PRESETS
from tedchat.wafer.timing import (
    ACCEPTANCE_SWEEP,
    TimingModel,
    expected_tokens_per_step,
    project_speculative,
)
from tedchat.wafer.validation import (
    ROWS,
    median_abs_error,
    render_markdown,
    report,
    validation_rows,
)
from tests.conftest import one_error_line, run_cli

ROOT = Path(__file__).resolve().parents[2]
CS3, H100 = HARDWARE["cs3"], HARDWARE["h100"]
L8B, L70B = PRESETS["llama-3.1-8b"], PRESETS["llama-3.1-70b"]

# --- the formula ----------------------------------------------------------------------------


@given(st.floats(min_value=0.0, max_value=0.999), st.integers(min_value=1, max_value=16))
def test_tokens_per_step_is_the_expected_accepted_prefix_plus_one(a: float, k: int) -> None:
    # Token i (0-based) of the step is produced iff the i drafts before it were all accepted.
    expected = sum(a**i for i in range(k + 1))
    assert expected_tokens_per_step(a, k) == pytest.approx(expected, rel=1e-9)
    assert 1.0 <= expected_tokens_per_step(a, k) <= k + 1


def test_tokens_per_step_known_values_and_refusals() -> None:
    assert expected_tokens_per_step(0.0, 4) == 1.0
    assert expected_tokens_per_step(0.5, 1) == 1.5
    assert expected_tokens_per_step(0.7, 4) == pytest.approx((1 - 0.7**5) / 0.3)
    for a in (1.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="acceptance"):
            expected_tokens_per_step(a, 4)
    with pytest.raises(ValueError, match="draft tokens"):
        expected_tokens_per_step(0.5, 0)


@pytest.mark.parametrize(("hw", "systems"), [(CS3, 4), (H100, 4)])
def test_a_one_token_verify_is_a_decode_step(hw, systems) -> None:
    model = TimingModel(plan(L70B, hw, systems))
    assert model.verify_step(1128, 1).as_dict() == model.decode_step(1128).as_dict()
    # Verifying 5 tokens costs more than one but far less than five decode steps.
    five = model.verify_step(1128, 5).total
    assert model.decode_step(1128).total < five < 2 * model.decode_step(1128).total


def test_projection_is_built_on_the_step_costs() -> None:
    target = TimingModel(plan(L70B, CS3, 5))
    beside = plan_draft(target.placement, L8B)
    assert beside.placement is not None
    draft = TimingModel(beside.placement)
    p = project_speculative(target, 0.7, 4, 1128, draft)
    assert p.draft.total == pytest.approx(4 * draft.decode_step(1128).total)
    assert p.verify.as_dict() == target.verify_step(1128, 5).as_dict()
    assert p.tokens_per_s == pytest.approx(p.tokens_per_step / (p.draft.total + p.verify.total))
    assert p.plain_tokens_per_s == pytest.approx(1 / target.decode_step(1128).total)
    rates = [p.at(a).tokens_per_s for a in ACCEPTANCE_SWEEP]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    lookup = project_speculative(target, 0.7, 4, 1128)
    assert lookup.draft.total == 0  # prompt-lookup drafts cost nothing to draft
    assert lookup.tokens_per_s > p.tokens_per_s
    with pytest.raises(ValueError):
        project_speculative(target, 1.0, 4, 1128)


def test_the_8b_draft_does_not_fit_beside_70b_on_four_cs3_and_does_on_five() -> None:
    four = plan_draft(plan(L70B, CS3, 4), L8B)
    assert not four.fits and four.min_systems == 5
    assert four.draft_bytes > four.free_bytes  # its SRAM counts
    assert "does not fit beside llama-3.1-70b on 4 x cs3" in four.reason
    five = plan_draft(plan(L70B, CS3, 5), L8B)
    assert five.fits and five.placement is not None
    target = plan(L70B, CS3, 5)
    # Every draft stage sits in the room its host system has left.
    for stage, host in zip(five.placement.systems, five.hosts, strict=True):
        system = target.systems[host]
        assert stage.used_bytes <= system.capacity_bytes - system.used_bytes
    gpus = plan_draft(plan(L70B, H100, 4), L8B)
    assert gpus.fits and gpus.hosts == (0, 1, 2, 3)


# --- wafer plan --speculative ----------------------------------------------------------------


def test_plan_report_json_has_the_speculative_breakdown_for_both_columns() -> None:
    code, text = run_plan(
        SimpleNamespace(
            model="llama-3.1-70b",
            json=True,
            speculative=True,
            acceptance=0.7,
            draft_model="llama-3.1-8b",
            draft_tokens=4,
        )
    )
    data = json.loads(text)
    assert code == 0 and data["fits"]
    wafer, gpu = data["columns"]
    # No --systems: the fewest CS-3 that hold the 70B and its draft.
    assert (wafer["hardware"], wafer["systems"]) == ("cs3", 5)
    for column in (wafer, gpu):
        spec = column["speculative"]
        assert spec["fits"] and spec["mode"] == "draft" and spec["draft_model"] == "llama-3.1-8b"
        assert spec["tokens_per_step"] == pytest.approx((1 - 0.7**5) / 0.3)
        assert spec["step_s"] == pytest.approx(spec["draft_s_per_step"] + spec["verify_s_per_step"])
        assert spec["tokens_per_s"] == pytest.approx(spec["tokens_per_step"] / spec["step_s"])
        assert spec["draft_s_per_step"] == pytest.approx(sum(spec["draft_breakdown"].values()))
        assert [s["acceptance"] for s in spec["sweep"]] == list(ACCEPTANCE_SWEEP)
    # The same figure as the validation table's 2,100 tok/s row (one timing model).
    [row] = [r for r in validation_rows() if r["id"] == "cs3-llama-3.1-70b-oct2024"]
    assert row["predicted"] == pytest.approx(wafer["speculative"]["tokens_per_s"])
    assert row["systems"] == 5


def test_plan_text_shows_the_breakdown_and_prompt_lookup_costs_nothing_to_draft() -> None:
    code, text = run_plan(
        SimpleNamespace(model="llama-3.1-8b", hardware="h100", speculative=True, acceptance=0.8)
    )
    assert code == 0
    assert "speculative decoding (projected): prompt-lookup drafts, k = 4" in text
    for label in ("draft per step", "verify per step", "tokens per step", "decode tok/s"):
        assert label in text
    assert "at acceptance 0.9" in text
    report_ = plan_report("llama-3.1-8b", hardware="h100", acceptance=0.8)
    spec = report_["columns"][0]["speculative"]
    assert spec["mode"] == "prompt-lookup" and spec["draft_s_per_step"] == 0


def test_plan_refuses_a_draft_that_does_not_fit(tedchat_home: Path) -> None:
    args = ("wafer", "plan", "--model", "llama-3.1-70b", "--systems", "4", "--speculative")
    result = run_cli(tedchat_home, *args, "--acceptance", "0.7", "--draft-model", "llama-3.1-8b")
    assert result.returncode == 1
    assert "DRAFT DOES NOT FIT" in result.stdout
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("does not fit: the llama-3.1-8b draft (17.1 GB")
    assert "9.0 GB free; both fit on 5 (--systems 5)" in line
    # Still projected (the fit turns on an assumed SRAM fraction), and flagged as such.
    plain, rate = [ln for ln in result.stdout.splitlines() if ln.startswith("decode tok/s")]
    assert plain.split()[2] == "435" and rate.split()[2:4] == ["615", "*"], rate
    assert "* projected as if the draft fitted" in result.stdout


def test_a_draft_that_does_not_fit_is_projected_flagged_in_json(tedchat_home: Path) -> None:
    args = ("wafer", "plan", "llama-3.1-70b", "--systems", "4", "--speculative", "--json")
    result = run_cli(tedchat_home, *args, "--acceptance", "0.7", "--draft-model", "llama-3.1-8b")
    assert result.returncode == 1
    spec = json.loads(result.stdout)["columns"][0]["speculative"]
    assert spec["fits"] is False and "does not fit beside" in spec["reason"]
    assert round(spec["tokens_per_s"]) == 615 and spec["tokens_per_step"] == pytest.approx(
        (1 - 0.7**5) / (1 - 0.7)
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--acceptance", "1"), "acceptance must be in [0, 1), not 1"),
        (("--acceptance", "-0.2"), "acceptance must be in [0, 1), not -0.2"),
        (("--acceptance", "0.5", "--draft-tokens", "0"), "draft tokens must be at least 1"),
        ((), "--speculative needs --acceptance A"),
    ],
)
def test_plan_refuses_bad_speculative_input_in_one_line(
    tedchat_home: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_cli(
        tedchat_home, "wafer", "plan", "--model", "llama-3.1-8b", "--speculative", *extra
    )
    assert result.returncode == 2
    assert message in one_error_line(result.stderr)


def test_speculative_options_need_speculative() -> None:
    with pytest.raises(UsageError, match="need --speculative"):
        run_plan(SimpleNamespace(model="llama-3.1-8b", acceptance=0.5))
    with pytest.raises(UsageError, match="add --speculative"):
        plan_report("llama-3.1-8b", draft_model="llama-3.1-8b")


# --- the validation table --------------------------------------------------------------------


def test_validation_rows_fitted_and_out_of_sample() -> None:
    rows = validation_rows()
    keys = {
        "model",
        "hardware",
        "systems",
        "in_sample",
        "predicted",
        "published",
        "error_pct",
        "source",
        "assumption",
    }
    assert all(keys <= set(r) for r in rows)
    in_sample = [r for r in rows if r["in_sample"]]
    out = [r for r in rows if not r["in_sample"]]
    assert len(out) >= 3
    assert {r["id"] for r in in_sample} == {
        "cs3-llama-3.1-8b-aug2024",
        "cs3-llama-3.1-70b-aug2024",
    }
    for r in in_sample:  # the rows the hop latency was fitted on stay within 15%
        assert abs(r["error_pct"]) <= 15
    for r in rows:
        assert r["error_pct"] == pytest.approx(
            100 * (r["predicted"] - r["published"]) / r["published"]
        )
        if not r["in_sample"]:
            assert r["assumption"], r["id"]  # every out-of-sample configuration is unpublished
    [oct_row] = [r for r in out if r["id"] == "cs3-llama-3.1-70b-oct2024"]
    assert "llama-3.1-8b draft, acceptance 0.7, 4 drafted tokens" in oct_row["assumption"]
    assert oct_row["published"] == 2100.0
    errors = sorted(abs(r["error_pct"]) for r in out)
    assert median_abs_error(rows) == pytest.approx(
        (errors[len(errors) // 2] + errors[(len(errors) - 1) // 2]) / 2
    )


def test_docs_validation_md_is_the_generated_table() -> None:
    committed = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    assert committed == render_markdown(report()), (
        "docs/validation.md is stale: tedchat wafer validate --markdown > docs/validation.md"
    )


def test_rows_ids_are_unique_and_match_the_published_list() -> None:
    assert len({r.id for r in ROWS}) == len(ROWS)
    doc = (ROOT / "docs" / "hardware.md").read_text(encoding="utf-8")
    for row in ROWS:
        assert row.date in doc


def test_validate_cli_json_and_text(tedchat_home: Path) -> None:
    result = run_cli(tedchat_home, "wafer", "validate", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["rows"] == json.loads(json.dumps(validation_rows()))
    # One constant was fitted, on the two in-sample rows; everything else is spec or assumed.
    assert [(c["hardware"], c["constant"]) for c in data["fitted_constants"]] == [
        ("cs3", "hop_latency_s")
    ]
    in_sample = [r["id"] for r in data["rows"] if r["in_sample"]]
    assert data["fitted_constants"][0]["fitted_on"] == in_sample
    assert data["out_of_sample_median_abs_error_pct"] == pytest.approx(
        median_abs_error(validation_rows())
    )
    text = run_cli(tedchat_home, "wafer", "validate")
    assert text.returncode == 0 and "out-of-sample median absolute error" in text.stdout
    markdown = run_cli(tedchat_home, "wafer", "validate", "--markdown")
    assert markdown.stdout == (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")


# --- "stand-in" in the metrics lines ----------------------------------------------------------


def test_ask_metrics_line_says_stand_in_only_for_a_stand_in(tedchat_home: Path) -> None:
    def metrics_line(engine: str) -> str:
        result = run_cli(
            tedchat_home, "ask", "--engine", engine, "--max-tokens", "4", "Name a colour."
        )
        assert result.returncode == 0, result.stderr
        [line] = [ln for ln in result.stderr.splitlines() if "| emulated" in ln]
        return line

    # wafer-70b: SmolLM2 writes the text, timed as Llama-3.1-70B.
    assert "| emulated 4x cs3 as llama-3.1-70b (stand-in text):" in metrics_line("wafer-70b")
    # wafer: the timed model is the one writing the text.
    own = metrics_line("wafer")
    assert "| emulated 1x cs3:" in own and "stand-in" not in own

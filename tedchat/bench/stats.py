"""Summaries of a bench's recorded runs: medians, spreads, ratios, errors.

Everything here reads the record's ``runs`` and ``batches`` (plain dicts, as in the JSON file)
and never re-measures: TTFT and output tokens/s are the per-run figures
:class:`tedchat.metrics.StreamMeter` produced. The one figure made here is the *aggregate*
output rate of a concurrent batch (``--concurrency N``), which is a property of the batch,
not of any one answer (see :func:`aggregate_tokens_per_s`).

Only *measured* runs that ended normally (``stop`` or ``length``) enter the figures; warm-up
runs and failed runs are counted, not averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Below this many samples a 90th percentile is one of the two largest values: noise, not a tail.
P90_MIN_RUNS = 10
OK_FINISH = ("stop", "length")


@dataclass(frozen=True)
class Spread:
    """Median, range and (with enough samples) 90th percentile of some figures."""

    n: int
    median: float
    min: float
    max: float
    p90: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "p90": self.p90,
        }


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of sorted values, interpolating between ranks.

    (The same definition as NumPy's default, so figures can be checked against it.)
    """
    if not ordered:
        raise ValueError("percentile of no values")
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spread(values: Iterable[float | None]) -> Spread | None:
    """The spread of the values that are present; None when there are none."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return Spread(
        n=len(ordered),
        median=percentile(ordered, 50),
        min=ordered[0],
        max=ordered[-1],
        p90=percentile(ordered, 90) if len(ordered) >= P90_MIN_RUNS else None,
    )


def aggregate_tokens_per_s(output_tokens: int, wall_s: float) -> float | None:
    """A concurrent batch's throughput: all its answers' output tokens over its wall time.

    The wall time runs from handing the first request to the engine to the end of the last
    answer, so it includes waiting for the first token: the rate a server delivers to N users
    at once (vLLM's and Artificial Analysis' "output throughput"), not any one user's speed.
    """
    if wall_s <= 0 or output_tokens <= 0:
        return None
    return output_tokens / wall_s


def is_ok(run: Mapping[str, Any]) -> bool:
    """A run whose figures count: it ended normally and without an error."""
    return run.get("error") is None and run.get("finish_reason") in OK_FINISH


def emulated_label(emulated: Mapping[str, Any]) -> str:
    """How emulated figures are labelled everywhere: '4x CS-3 as llama-3.1-70b (emulated)'."""
    label = f"{emulated.get('systems', 1)}x {emulated.get('hardware', '?')}"
    if emulated.get("timing_target"):
        label += f" as {emulated['timing_target']}"
    return label + (" (replay)" if emulated.get("replay") else " (emulated)")


def _group(
    runs: Sequence[Mapping[str, Any]], batches: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    measured = [r for r in runs if r.get("phase") == "measured"]
    ok = [r for r in measured if is_ok(r)]
    errors: dict[str, int] = {}
    for r in runs:
        if r.get("error") is not None:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    out: dict[str, Any] = {
        "runs": len(measured),
        "ok": len(ok),
        "errors": sum(1 for r in measured if r.get("error") is not None),
        "warmup_errors": sum(
            1 for r in runs if r.get("phase") == "warmup" and r.get("error") is not None
        ),
        "error_messages": [{"message": m, "count": n} for m, n in errors.items()],
        "ttft_s": _spread_dict(r.get("ttft_s") for r in ok),
        "output_tokens_per_s": _spread_dict(r.get("output_tokens_per_s") for r in ok),
        "output_tokens": _spread_dict(r.get("output_tokens") for r in ok),
        "approximate_tokens": any(r.get("output_tokens_source") == "chunks" for r in ok),
        "emulated": None,
        "aggregate_output_tokens_per_s": None,
    }
    emulated = [r["emulated"] for r in ok if r.get("emulated")]
    if emulated:
        out["emulated"] = {
            "label": emulated_label(emulated[-1]),
            "ttft_s": _spread_dict(e.get("ttft_s") for e in emulated),
            "output_tokens_per_s": _spread_dict(e.get("output_tokens_per_s") for e in emulated),
        }
    concurrent = [b for b in batches if b.get("phase") == "measured" and b.get("requests", 1) > 1]
    if concurrent:
        out["aggregate_output_tokens_per_s"] = _spread_dict(
            b.get("aggregate_output_tokens_per_s") for b in concurrent
        )
    return out


def _spread_dict(values: Iterable[float | None]) -> dict[str, Any] | None:
    s = spread(values)
    return None if s is None else s.as_dict()


def _ratio(value: Mapping[str, Any] | None, base: Mapping[str, Any] | None) -> float | None:
    if not value or not base or not base["median"]:
        return None
    return value["median"] / base["median"]


def _add_ratios(row: dict[str, Any], base: Mapping[str, Any] | None) -> None:
    """Ratios of medians against the baseline engine: tok/s (higher is faster) and TTFT."""
    row["ratio_output_tokens_per_s"] = _ratio(
        row["output_tokens_per_s"], base and base["output_tokens_per_s"]
    )
    row["ratio_ttft_s"] = _ratio(row["ttft_s"], base and base["ttft_s"])


def summarize(
    runs: Sequence[Mapping[str, Any]],
    batches: Sequence[Mapping[str, Any]],
    engines: Sequence[str],
    prompts: Sequence[str],
) -> dict[str, Any]:
    """Per engine and per engine x prompt figures, with ratios against the first engine."""
    baseline = engines[0] if engines else None
    per_engine: list[dict[str, Any]] = []
    for name in engines:
        row = {"engine": name, **_group(_of(runs, name), _of(batches, name))}
        per_engine.append(row)
    base_row = per_engine[0] if per_engine else None
    for row in per_engine:
        _add_ratios(row, base_row)
    per_prompt: list[dict[str, Any]] = []
    for prompt in prompts:
        rows = []
        for name in engines:
            row = {
                "engine": name,
                "prompt_id": prompt,
                **_group(_of(runs, name, prompt), _of(batches, name, prompt)),
            }
            rows.append(row)
        for row in rows:
            _add_ratios(row, rows[0] if rows else None)
        per_prompt.extend(rows)
    return {"baseline": baseline, "engines": per_engine, "prompts": per_prompt}


def _of(
    items: Sequence[Mapping[str, Any]], engine: str, prompt: str | None = None
) -> list[Mapping[str, Any]]:
    return [
        i
        for i in items
        if i.get("engine") == engine and (prompt is None or i.get("prompt_id") == prompt)
    ]

"""Bench records carry ``cost_usd`` for engines with prices, and only for them (the record
validates against its JSON Schema either way)."""

from __future__ import annotations

import json
from pathlib import Path

from tedchat.bench.schema import validate
from tests.conftest import run_cli

PRICED = """
[engines.priced]
type = "scripted"
price_input_per_mtok = 2.0
price_output_per_mtok = 8.0
"""


def test_cost_only_where_prices_are_set(bench_home: Path) -> None:
    config = bench_home / "config" / "config.toml"
    config.write_text(config.read_text() + PRICED)
    out = bench_home / "bench.json"
    args = ["bench", "--engines", "priced,plain", "--runs", "1", "--warmup", "0"]
    result = run_cli(bench_home, *args, "--prompts", "builtin:reference", "--out", str(out))
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert validate(data) == [], validate(data)
    by_engine = {r["engine"]: r for r in data["runs"]}
    cost = by_engine["priced"]["cost_usd"]
    run = by_engine["priced"]
    expected_in = (run["prompt_tokens"] or 0) * 2.0 / 1e6
    expected_out = run["output_tokens"] * 8.0 / 1e6
    assert cost["output"] > 0
    assert abs(cost["input"] - expected_in) < 1e-8 and abs(cost["output"] - expected_out) < 1e-8
    assert abs(cost["total"] - (cost["input"] + cost["output"])) < 1e-8
    assert "cost_usd" not in by_engine["plain"]
    assert "$" not in result.stdout

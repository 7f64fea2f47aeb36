"""``tedchat wafer plan`` and ``tedchat wafer verify`` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import one_error_line, run_cli


def test_plan_70b_needs_four_cs3(tedchat_home: Path) -> None:
    three = run_cli(tedchat_home, "wafer", "plan", "--model", "llama-3.1-70b", "--systems", "3")
    assert three.returncode == 1
    assert "does not fit" in three.stderr
    four = run_cli(tedchat_home, "wafer", "plan", "--model", "llama-3.1-70b", "--json")
    assert four.returncode == 0, four.stderr
    report = json.loads(four.stdout)
    assert report["fits"] and report["columns"][0]["systems"] == 4
    eight = run_cli(tedchat_home, "wafer", "plan", "--model", "llama-3.1-8b")
    assert eight.returncode == 0 and "x 1 (pipeline): fits" in eight.stdout
    bad = run_cli(tedchat_home, "wafer", "plan", "--model", "gpt-9")
    assert bad.returncode == 2 and "unknown model 'gpt-9'" in one_error_line(bad.stderr)


def test_verify_reports_agreement_with_llama_cpp(tedchat_home: Path) -> None:
    prompts = tedchat_home / "prompts.txt"
    prompts.write_text("The quick brown fox jumps over the lazy dog.\n東京は日本の首都です。\n")
    result = run_cli(tedchat_home, "wafer", "verify", "--prompts", str(prompts), "--json")
    assert result.returncode == 0, result.stderr
    reports = {r["reference"]: r for r in json.loads(result.stdout)}
    assert set(reports) == {"file", "float32"}
    for r in reports.values():
        assert r["positions"] >= 20 and r["top1_agreement"] >= 0.98 and r["passed"]
    empty = tedchat_home / "empty.txt"
    empty.write_text("\n\n")
    none = run_cli(tedchat_home, "wafer", "verify", "--prompts", str(empty))
    assert none.returncode == 2 and "has no prompts" in one_error_line(none.stderr)

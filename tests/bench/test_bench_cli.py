"""``tedchat bench`` through the real CLI: the issue's acceptance points.

Real llama.cpp on the bundled model (one thread: the machine is shared) beside the scripted
plugin engine; small max-tokens keep the whole file well under a minute.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tedchat.bench.charts import FULL
from tedchat.bench.schema import validate
from tests.conftest import cli_env, default_sigint, one_error_line, run_cli

ONE_THREAD = {"TEDCHAT_THREADS": "1"}


def load_record(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert validate(data) == [], validate(data)
    return data


def check_full_bench(home: Path, engines: str, *extra: str) -> dict[str, Any]:
    """Acceptance 1: the table, the charts and a JSON file that validates."""
    out, html, csv = home / "bench.json", home / "bench.html", home / "runs.csv"
    result = run_cli(
        home,
        "bench",
        "--engines",
        engines,
        "--runs",
        "3",
        *extra,
        "--out",
        str(out),
        "--html",
        str(html),
        "--csv",
        str(csv),
        **ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    names = engines.split(",")
    stdout = result.stdout
    assert "Per engine" in stdout and "Per prompt" in stdout
    table = stdout.split("Per engine")[1].split("Per prompt")[0]
    for name in names:
        assert any(line.startswith(name + " ") for line in table.splitlines()), table
    assert "Output tokens/s (median)" in stdout and "Time to first token (median)" in stdout
    assert FULL in stdout
    assert f"record: {out}" in result.stderr
    data = load_record(out)
    assert data["incomplete"] is False and data["finished_at"]
    assert [e["name"] for e in data["engines"]] == names
    assert data["summary"]["baseline"] == names[0]
    assert all(row["ok"] == row["runs"] > 0 for row in data["summary"]["engines"])
    page = html.read_text(encoding="utf-8")
    assert page.count("<svg") >= 2 and "src=" not in page and "href=" not in page
    assert len(csv.read_text().splitlines()) == 1 + len(data["runs"])
    return data


def test_bench_local_and_a_plugin_engine(bench_home: Path) -> None:
    data = check_full_bench(
        bench_home,
        "local,steady",
        "--max-tokens",
        "16",
        "--prompts",
        "builtin:reference,short-ja",
        "--temperature",
        "0",
    )
    # every prompt on every engine, interleaved: 1 warm-up + 3 rounds x 2 prompts, per engine
    assert len(data["runs"]) == 2 * (1 + 3 * 2)
    assert [r["engine"] for r in data["runs"]] == ["local", "steady"] * 7
    import llama_cpp

    machine, versions = data["machine"], data["versions"]
    assert machine["cores"] >= 1 and machine["memory_bytes"] > 0 and machine["os"]
    assert versions["llama_cpp"] == llama_cpp.__version__
    assert versions["tedchat"] and versions["python"] and versions["textual"]
    local = data["engines"][0]
    assert local["type"] == "llamacpp" and local["settings"]["model"] == "smollm2"
    assert local["cache_cleared"] is True  # the llamacpp engine offers reset_cache()
    assert local["details"]["threads"] == 1
    assert data["engines"][1]["settings"]["api_key"] == "***"
    local_runs = [r for r in data["runs"] if r["engine"] == "local"]
    assert all(r["output_tokens_source"] == "engine" and r["timings"] for r in local_runs)
    assert all(0 < r["output_tokens"] <= 17 for r in local_runs)
    # bench writes no history
    assert not list(bench_home.rglob("history.db*"))


def test_bench_local_and_wafer(tedchat_home: Path) -> None:
    data = check_full_bench(
        tedchat_home, "local,wafer", "--max-tokens", "64", "--prompts", "builtin:reference"
    )
    wafer = next(r for r in data["summary"]["engines"] if r["engine"] == "wafer")
    assert wafer["emulated"] is not None  # emulated figures beside the measured ones


def texts_and_ids(home: Path, *args: str) -> list[tuple[str, Any]]:
    out = home / "repeat.json"
    result = run_cli(
        home,
        "bench",
        "--engines",
        "local",
        "--prompts",
        "builtin:reference",
        "--runs",
        "3",
        "--warmup",
        "0",
        "--max-tokens",
        "24",
        *args,
        "--out",
        str(out),
        **ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    runs = load_record(out)["runs"]
    assert len(runs) == 3 and all(r["text"] for r in runs)
    return [(r["text"], r["token_ids"]) for r in runs]


def test_local_answers_repeat_exactly_greedy_and_with_a_seed(tedchat_home: Path) -> None:
    greedy = texts_and_ids(tedchat_home, "--temperature", "0")
    assert len(set(greedy)) == 1, greedy
    seeded = texts_and_ids(tedchat_home, "--temperature", "0.8", "--seed", "7")
    assert len(set(seeded)) == 1, seeded
    # The seed is what makes them repeat: another seed samples another answer.
    other = texts_and_ids(tedchat_home, "--temperature", "0.8", "--seed", "8")
    assert len(set(other)) == 1 and other[0] != seeded[0]


def test_token_ids_repeat_where_the_engine_exposes_them(bench_home: Path) -> None:
    for args in (("--temperature", "0"), ("--temperature", "0.8", "--seed", "3")):
        out = bench_home / "ids.json"
        result = run_cli(
            bench_home,
            "bench",
            "--engines",
            "steady",
            "--prompts",
            "builtin:short-en",
            "--warmup",
            "0",
            "--out",
            str(out),
            *args,
        )
        assert result.returncode == 0, result.stderr
        ids = [tuple(r["token_ids"]) for r in load_record(out)["runs"]]
        assert len(ids) == 3 and len(ids[0]) == 12 and len(set(ids)) == 1


def test_failing_engine_is_reported_and_the_others_come_out(bench_home: Path) -> None:
    out = bench_home / "fail.json"
    result = run_cli(
        bench_home,
        "bench",
        "--engines",
        "steady,flaky,broken",
        "--prompts",
        "builtin:short-en",
        "--runs",
        "4",
        "--out",
        str(out),
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "did not load" in result.stderr  # said while it runs, and in the report
    assert "error: broken did not load: model file not found" in result.stdout
    assert "error: flaky: 3 of 4 runs failed: scripted failure on call 2" in result.stdout
    assert "unexpected RuntimeError: scripted crash on call 3" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: runs failed on flaky, broken")
    data = load_record(out)
    rows = {r["engine"]: r for r in data["summary"]["engines"]}
    assert rows["steady"]["ok"] == 4 and rows["steady"]["output_tokens_per_s"]["n"] == 4
    assert rows["flaky"]["errors"] == 3 and rows["broken"]["runs"] == 0
    steady_line = next(line for line in result.stdout.splitlines() if line.startswith("steady "))
    assert "4/4" in steady_line


def test_ctrl_c_writes_the_finished_runs_marked_incomplete(bench_home: Path) -> None:
    out = bench_home / "partial.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tedchat",
            "bench",
            "--engines",
            "local,slow",
            "--prompts",
            "builtin",
            "--runs",
            "20",
            "--max-tokens",
            "16",
            "--out",
            str(out),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(bench_home, **ONE_THREAD),
        cwd=str(bench_home),
        preexec_fn=default_sigint,  # the test interrupts it with SIGINT
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # plain progress lines: stderr is not a terminal
            seen.append(line)
            if line.startswith("[4/"):
                break
        assert seen and seen[-1].startswith("[4/"), seen
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stopped_after < 20
    assert "INCOMPLETE: cancelled (Ctrl-C) after" in stdout  # the report of what finished
    data = load_record(out)
    assert data["incomplete"] is True and "Ctrl-C" in data["incomplete_reason"]
    total = 2 * (1 + 20 * 6)
    assert 4 <= len(data["runs"]) < total
    assert all(r["finish_reason"] in ("stop", "length") for r in data["runs"])
    assert {r["engine"] for r in data["runs"]} == {"local", "slow"}


def test_usage_errors_are_one_line(bench_home: Path) -> None:
    unknown = run_cli(bench_home, "bench", "--engines", "local,nope")
    assert unknown.returncode == 2 and "unknown engine 'nope'" in one_error_line(unknown.stderr)
    twice = run_cli(bench_home, "bench", "--engines", "steady,steady")
    assert twice.returncode == 2 and "named twice" in one_error_line(twice.stderr)
    nowhere = run_cli(
        bench_home, "bench", "--engines", "steady", "--html", str(bench_home / "no/such/r.html")
    )
    assert nowhere.returncode == 2 and "does not exist" in one_error_line(nowhere.stderr)
    prompts = run_cli(bench_home, "bench", "--engines", "steady", "--prompts", "builtin:zz")
    assert prompts.returncode == 2 and "unknown built-in prompt" in one_error_line(prompts.stderr)


def test_schema_and_report_of_a_saved_record(bench_home: Path) -> None:
    schema = run_cli(bench_home, "bench", "--schema")
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "tedchat bench record"
    out = bench_home / "saved.json"
    made = run_cli(
        bench_home,
        "bench",
        "--engines",
        "steady,emu",
        "--prompts",
        "builtin:short-en",
        "--runs",
        "1",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    again = run_cli(bench_home, "bench", "--report", str(out), "--html", str(bench_home / "r.html"))
    assert again.returncode == 0, again.stderr
    assert again.stdout == made.stdout  # the report is a function of the record alone
    assert "emu · 4x CS-3 as llama-3.1-70b (emulated)" in again.stdout
    broken = bench_home / "broken.json"
    broken.write_text(json.dumps({"schema": "tedchat-bench"}))
    bad = run_cli(bench_home, "bench", "--report", str(broken))
    assert bad.returncode == 2 and "not a valid bench record" in one_error_line(bad.stderr)

"""``tedchat ask --preset``: what the (scripted) server receives, command line > preset >
engine config, and one clear line for an unknown preset or a bad table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import one_error_line, run_cli
from tests.http.fault_server import FaultServer, Request

PRESETS = """
[presets.review]
system_prompt = "You review code."
engine = "f"
temperature = 0.1
top_p = 0.5
max_tokens = 40
seed = 3
tools = ["builtin"]

[presets.plain]
system_prompt = "Be brief."
tools = []
"""


def write(home: Path, server: FaultServer, tag: str, extra: str = PRESETS) -> Path:
    """Engine f plays "ok" as key ok~TAG, engine other (the default) as ok~TAG-other."""
    path = home / "config.toml"
    path.write_text(
        'default_engine = "other"\n'
        f'[engines.f]\ntype = "http"\nbase_url = "{server.url("ok", tag)}"\nmax_retries = 0\n'
        f'[engines.other]\ntype = "http"\nbase_url = "{server.url("ok", tag + "-other")}"\n'
        "max_retries = 0\n" + extra
    )
    return path


def posts(server: FaultServer, key: str) -> list[Request]:
    return [r for r in server.requests.get(key, []) if r.method == "POST"]


def test_ask_preset_sets_what_the_server_receives(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    config = write(tedchat_home, fault_server, "ask_preset_sets_what")
    args = ["--config", str(config), "ask", "--no-history", "--preset", "review"]
    result = run_cli(tedchat_home, *args, "--seed", "9", "look at this", timeout=60)
    assert result.returncode == 0, result.stderr
    [request] = posts(fault_server, "ok~ask_preset_sets_what")  # the preset's engine
    body = request.body
    assert body["messages"][0] == {"role": "system", "content": "You review code."}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.1, 0.5, 40)
    assert body["seed"] == 9  # the command line wins
    assert {t["function"]["name"] for t in body["tools"]} >= {"read_file", "list_directory"}


def test_ask_flags_win_over_the_preset(tedchat_home: Path, fault_server: FaultServer) -> None:
    config = write(tedchat_home, fault_server, "ask_flags_win_over_t")
    args = ["--config", str(config), "ask", "--no-history", "--preset", "review"]
    flags = ["--engine", "other", "--system", "Mine.", "--tools", "none", "--max-tokens", "9"]
    result = run_cli(tedchat_home, *args, *flags, "hi", timeout=60)
    assert result.returncode == 0, result.stderr
    assert not posts(fault_server, "ok~ask_flags_win_over_t")
    [request] = posts(fault_server, "ok~ask_flags_win_over_t-other")
    body = request.body
    assert body["messages"][0] == {"role": "system", "content": "Mine."}
    assert body["max_tokens"] == 9 and body["temperature"] == 0.1
    assert "tools" not in body


def test_ask_preset_without_an_engine_uses_the_default(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    config = write(tedchat_home, fault_server, "ask_preset_without_a")
    args = ["--config", str(config), "ask", "--no-history", "--preset", "plain", "hi"]
    result = run_cli(tedchat_home, *args, timeout=60)
    assert result.returncode == 0, result.stderr
    [request] = posts(fault_server, "ok~ask_preset_without_a-other")
    assert request.body["messages"][0]["content"] == "Be brief."
    assert "temperature" not in request.body and "tools" not in request.body


def test_unknown_preset_exits_2_naming_the_valid_ones(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    config = write(tedchat_home, fault_server, "unknown_preset_exits")
    result = run_cli(tedchat_home, "--config", str(config), "ask", "--preset", "nope", "hi")
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "error: unknown preset 'nope'; configured presets: review, plain"
    )
    assert not posts(fault_server, "ok~unknown_preset_exits")


def test_a_bad_preset_table_is_one_line(tedchat_home: Path, fault_server: FaultServer) -> None:
    for extra, expected in (
        ("[presets.x]\ntemprature = 1\n", "unknown key 'temprature' in [presets.x]"),
        ('[presets.x]\ntemperature = "hot"\n', "presets.x.temperature in "),
        ('[presets.x]\ntools = "builtin"\n', "must be a list of strings"),
        ('[presets.x]\ntools = ["bogus"]\n', "unknown tool source 'bogus'"),
    ):
        config = write(tedchat_home, fault_server, "a_bad_preset_table_i", extra)
        result = run_cli(tedchat_home, "--config", str(config), "ask", "--preset", "x", "hi")
        assert result.returncode == 2, result.stderr
        assert expected in one_error_line(result.stderr)
    assert not posts(fault_server, "ok~a_bad_preset_table_i")


def test_ask_json_cost_only_where_prices_are_set(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    prices = "price_input_per_mtok = 3.0\nprice_output_per_mtok = 15.0\n"
    path = tedchat_home / "config.toml"
    url = fault_server.url("ok", "priced")
    path.write_text(
        f'[engines.p]\ntype = "http"\nbase_url = "{url}"\nmax_retries = 0\n{prices}'
        f'[engines.f]\ntype = "http"\nbase_url = "{url}"\nmax_retries = 0\n'
    )
    base = ["--config", str(path), "ask", "--no-history"]
    result = run_cli(tedchat_home, *base, "--engine", "p", "--json", "hi", timeout=60)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["prompt_tokens"] and record["output_tokens"]
    inp, out = record["prompt_tokens"] * 3.0 / 1e6, record["output_tokens"] * 15.0 / 1e6
    assert record["cost_usd"] == {
        "input": pytest.approx(inp, abs=1e-8),
        "output": pytest.approx(out, abs=1e-8),
        "total": pytest.approx(inp + out, abs=1e-8),
    }
    line = run_cli(tedchat_home, *base, "--engine", "p", "hi", timeout=60).stderr
    assert line.strip().endswith("$" + f"{record['cost_usd']['total']:.6f}")
    plain = run_cli(tedchat_home, *base, "--engine", "f", "--json", "hi", timeout=60)
    assert "cost_usd" not in json.loads(plain.stdout)
    assert "$" not in run_cli(tedchat_home, *base, "--engine", "f", "hi", timeout=60).stderr

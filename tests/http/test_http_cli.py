"""``tedchat ask`` (and friends) as a person runs them, against the scripted fault server.

Every fault must end in exactly one ``error:`` line and exit code 1, with the text received
before it kept on stdout; and the API key must never appear in anything tedchat prints.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import run_cli
from tests.http.fault_server import FaultServer

KEY = "sk-live-0123456789abcdefSECRET"
ENV = {"TEDCHAT_TEST_KEY": KEY}


def write_config(home: Path, base_url: str, **extra: object) -> Path:
    settings = {"max_retries": 0, "read_timeout": 2.0, "api_key_env": "TEDCHAT_TEST_KEY"}
    settings.update(extra)
    lines = ["[engines.f]", 'type = "http"', f'base_url = "{base_url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ask(
    home: Path,
    base_url: str,
    *flags: str,
    env: dict[str, str] | None = None,
    **settings: object,
) -> CompletedProcess[str]:
    config = write_config(home, base_url, **settings)
    args = ["--config", str(config), "ask", "--engine", "f", *flags]
    variables = {**ENV, **(env or {})}
    return run_cli(home, *args, "What is the capital of France?", timeout=60, **variables)


def the_error(result: CompletedProcess[str]) -> str:
    """Exit 1 and one ``error:`` line; anything else on stderr is the metrics line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    others = [line for line in lines if not line.startswith(("error: ", "hint: "))]
    assert all(line.startswith("[f · ") for line in others), result.stderr
    return errors[0]


def test_ask_streams_the_answer_with_metrics(tedchat_home: Path, fault_server: FaultServer) -> None:
    result = ask(tedchat_home, fault_server.url("ok"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The capital of France is Paris.\n"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("[f · fault-model] TTFT ") and " tok/s · 7 tokens" in line


def test_ask_marks_a_chunk_count_approximate(tedchat_home: Path, fault_server: FaultServer) -> None:
    result = ask(tedchat_home, fault_server.url("nousage"))
    assert result.returncode == 0, result.stderr
    assert "· ~2 tokens" in result.stderr


def test_connection_refused(tedchat_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ask(tedchat_home, f"http://127.0.0.1:{port}/v1")
    assert (
        the_error(result)
        == f"error: cannot connect to http://127.0.0.1:{port}/v1: connection refused"
    )
    assert result.stdout.strip() == ""


def test_401_names_the_key_variable_and_never_the_key(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    result = ask(tedchat_home, fault_server.url("auth"))
    line = the_error(result)
    assert line.startswith("error: 401 from http://127.0.0.1:")
    assert line.endswith(": Incorrect API key provided: ***; check TEDCHAT_TEST_KEY")
    assert KEY not in result.stdout + result.stderr


def test_429_then_success(tedchat_home: Path, fault_server: FaultServer) -> None:
    result = ask(tedchat_home, fault_server.url("ratelimit", tag="cli"), max_retries=2)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The capital of France is Paris.\n"
    assert len([r for r in fault_server.requests["ratelimit~cli"] if r.method == "POST"]) == 2


def test_500_shows_the_servers_message(tedchat_home: Path, fault_server: FaultServer) -> None:
    line = the_error(ask(tedchat_home, fault_server.url("error500")))
    assert line.startswith("error: 500 from http://127.0.0.1:")
    assert line.endswith("/chat/completions: model crashed: out of memory")


def test_no_first_byte_before_the_read_timeout(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    line = the_error(ask(tedchat_home, fault_server.url("stall"), read_timeout=0.5))
    assert line == f"error: no answer from {fault_server.url('stall')} within 0.5 s (read_timeout)"


@pytest.mark.parametrize(
    ("scenario", "kept", "message"),
    [
        ("drop", "The capital of", "broke mid-answer: the server closed the connection"),
        ("garbage", "The capital", "unparseable stream data from "),
        ("midstream_error", "The capital", ": upstream model overloaded"),
    ],
)
def test_a_broken_stream_keeps_its_text(
    tedchat_home: Path, fault_server: FaultServer, scenario: str, kept: str, message: str
) -> None:
    result = ask(tedchat_home, fault_server.url(scenario))
    assert message in the_error(result)
    assert result.stdout == kept + "\n"
    assert " · error" in result.stderr  # the metrics line names the finish reason

    record = json.loads(ask(tedchat_home, fault_server.url(scenario), "--json").stdout)
    assert record["text"] == kept
    assert record["finish_reason"] == "error"
    assert message in record["error"]


def test_a_server_that_stalls_after_the_first_word(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    """One word, then silence on a connection held open: read_timeout ends the answer, the word
    is kept on stdout, in --json and in the history, and the connection is closed."""
    url = fault_server.url("stallmid", tag="cli")
    result = ask(tedchat_home, url, read_timeout=0.5)
    assert the_error(result) == (
        f"error: connection to {url} broke mid-answer: no data for 0.5 s (read_timeout)"
    )
    assert result.stdout == "The\n"
    assert " · error" in result.stderr

    record = json.loads(ask(tedchat_home, url, "--json", read_timeout=0.5).stdout)
    assert record["text"] == "The"
    assert record["finish_reason"] == "error"
    assert record["error"].endswith("broke mid-answer: no data for 0.5 s (read_timeout)")

    shown = run_cli(tedchat_home, "history", "show", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    reply = json.loads(shown.stdout)["messages"][0]["replies"][0]
    assert (reply["content"], reply["finish_reason"]) == ("The", "error")

    deadline = time.monotonic() + 10  # the server notices the hang-up (it waits up to 30 s)
    while "stallmid~cli" not in fault_server.hangups and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "stallmid~cli" in fault_server.hangups


def test_reasoning_is_not_printed_as_the_answer(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    result = ask(tedchat_home, fault_server.url("think"), "--json")
    record = json.loads(result.stdout)
    assert record["text"] == "Paris is <b>the</b> capital.<"
    assert record["reasoning_tokens"] == 2
    assert record["ttft_s"] - record["time_to_first_reasoning_s"] >= 0.3


def test_models_list_asks_the_server(tedchat_home: Path, fault_server: FaultServer) -> None:
    config = write_config(tedchat_home, fault_server.url("ok"))
    result = run_cli(tedchat_home, "--config", str(config), "models", "list", "--engine", "f")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fault-model"]
    as_json = run_cli(
        tedchat_home, "--config", str(config), "models", "list", "--engine", "f", "--json"
    )
    assert [m["id"] for m in json.loads(as_json.stdout)] == ["fault-model"]


def test_the_key_appears_in_no_output(tedchat_home: Path, fault_server: FaultServer) -> None:
    """Keys from the environment, from the file and in headers, through every command."""
    config = tedchat_home / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[engines.env]",
                'type = "http"',
                f'base_url = "{fault_server.url("auth")}"',
                'api_key_env = "TEDCHAT_TEST_KEY"',
                "max_retries = 0",
                "[engines.file]",
                'type = "http"',
                f'base_url = "{fault_server.url("auth")}"',
                f'api_key = "{KEY}"',
                "max_retries = 0",
                "[engines.header]",
                'type = "http"',
                f'base_url = "{fault_server.url("ok")}"',
                f'headers = {{ Authorization = "Bearer {KEY}", X-Org = "acme" }}',
            ]
        )
        + "\n"
    )
    runs = {
        "engines": ["engines"],
        "engines --json": ["engines", "--json"],
        "config show": ["config", "show"],
        "ask env": ["ask", "--engine", "env", "hi"],
        "ask file": ["ask", "--engine", "file", "hi"],
        "ask --json file": ["ask", "--engine", "file", "--json", "hi"],
        "ask header": ["ask", "--engine", "header", "hi"],
        "models list": ["models", "list", "--engine", "file"],
    }
    for name, args in runs.items():
        result = run_cli(tedchat_home, "--config", str(config), *args, timeout=60, **ENV)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, (name, output)
        assert KEY not in output, name
        assert KEY[:12] not in output, name
    # and they did run: the outputs above are real ones
    shown = run_cli(tedchat_home, "--config", str(config), "config", "show", **ENV).stdout
    assert "[engines.file]" in shown and "acme" in shown
    rows = json.loads(
        run_cli(tedchat_home, "--config", str(config), "engines", "--json", **ENV).stdout
    )
    status = {r["name"]: (r["status"], r["detail"]) for r in rows}
    assert status["env"][0] == "unavailable" and "check TEDCHAT_TEST_KEY" in status["env"][1]
    assert status["header"][0] == "ready"


def test_describe_of_a_configured_engine_hides_the_key(
    tedchat_home: Path, monkeypatch: pytest.MonkeyPatch, fault_server: FaultServer
) -> None:
    from tedchat.engines import load_context

    config = write_config(tedchat_home, fault_server.url("ok"), api_key=KEY)
    context = load_context(config)
    engine = context.engines.get("f")
    assert KEY not in repr(engine.describe())
    assert KEY not in repr(context.engines.describe("f"))
    assert engine.api_key() == KEY  # it is there, only hidden


def test_llama_server_prompt_cache_and_draft_figures_in_ask(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    """llama-server's timings (its own field names, see the fault server's scenario): prompt
    tokens/s, cached prompt tokens and draft acceptance in ask --json and the metrics line."""
    result = ask(tedchat_home, fault_server.url("llamaserverdraft"), "--json")
    assert result.returncode == 0, result.stderr
    timings = json.loads(result.stdout)["timings"]
    assert timings["prompt_eval_tokens_per_s"] == 400.0
    assert timings["cached_prompt_tokens"] == 20.0
    assert (timings["draft_tokens"], timings["draft_accepted_tokens"]) == (10.0, 7.0)
    assert timings["draft_acceptance"] == 0.7
    line = ask(tedchat_home, fault_server.url("llamaserverdraft")).stderr.strip()
    assert "prompt 400 tok/s · 20 cached · draft 7/10 accepted (70%)" in line


def test_without_those_fields_nothing_is_invented(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    result = ask(tedchat_home, fault_server.url("llamaserver"), "--json")
    timings = json.loads(result.stdout)["timings"]
    assert "draft_tokens" not in timings and "draft_acceptance" not in timings
    assert timings["cached_prompt_tokens"] == 0.0  # cache_n: 0 is a figure, shown as none
    assert "cached" not in ask(tedchat_home, fault_server.url("llamaserver")).stderr

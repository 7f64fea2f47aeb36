"""``tedchat ask`` with tools, run as a separate process like a person would: the scripted
engine plugin makes the calls (``tool_script``), the real toolbox runs real built-in tools and
real MCP servers (started as ``sys.executable`` children), the history is real SQLite."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from tests.conftest import one_error_line, run_cli
from tests.tools.mcp_helpers import FAULTY, marker, pids_with, wait_gone

PLUGINS = Path(__file__).resolve().parent.parent / "tui" / "plugins"


def write_config(home: Path, script: list[dict[str, Any]], extra: str = "", **engine: Any) -> None:
    settings = {
        "type": "scripted",
        "model": "script-tools",
        "text": "Done.",
        "ttft_s": 0.0,
        "tokens_per_s": 0.0,
        "count": "usage",
        "tool_script": json.dumps(script),
        **engine,
    }
    table = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'default_engine = "tooly"\n\n[plugins]\ndirs = [{json.dumps(str(PLUGINS))}]\n\n'
        f"[tools]\nworkspace = {json.dumps(str(home))}\n\n"
        f"[engines.tooly]\n{table}\n\n{extra}",
        encoding="utf-8",
    )
    config.chmod(0o600)


def replies(home: Path) -> list[tuple[str, str, str | None]]:
    db = next(home.rglob("history.db"), None)
    if db is None:
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT content, finish_reason, tool_calls FROM messages"
            " WHERE parent_id IS NOT NULL ORDER BY id"
        ).fetchall()
    return [(c, f, t) for c, f, t in rows]


READ_NOTES = [
    {"text": "Reading. ", "calls": [{"name": "read_file", "arguments": {"path": "notes.txt"}}]}
]


def test_a_builtin_tool_call_in_json_and_in_the_history(tedchat_home: Path) -> None:
    (tedchat_home / "notes.txt").write_text("the launch code is 1234\n", encoding="utf-8")
    write_config(tedchat_home, READ_NOTES, echo_tools=True)
    done = run_cli(tedchat_home, "ask", "--yes", "--json", "what do my notes say?")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    [call] = out["tool_calls"]
    assert call["name"] == "read_file" and call["source"] == "builtin"
    assert call["arguments"] == {"path": "notes.txt"}
    assert "the launch code is 1234" in call["result"] and call["error"] is None
    assert call["elapsed_s"] >= 0
    assert out["steps"] == 2 and out["finish_reason"] == "stop"
    # The model was sent the result (the engine echoes the tool messages it received).
    assert out["text"].startswith("Reading. Done.")
    assert "[tool call_0_0:" in out["text"] and "1234" in out["text"]
    [(content, finish, calls)] = replies(tedchat_home)
    assert content == out["text"] and finish == "stop"
    stored = json.loads(calls)
    assert [(c["name"], c["arguments"], c["status"]) for c in stored] == [
        ("read_file", {"path": "notes.txt"}, "done")
    ]


def test_continue_sends_the_earlier_tool_calls_to_the_model(tedchat_home: Path) -> None:
    (tedchat_home / "notes.txt").write_text("remember: blue\n", encoding="utf-8")
    write_config(tedchat_home, READ_NOTES)
    first = run_cli(tedchat_home, "ask", "--yes", "read my notes")
    assert first.returncode == 0, first.stderr
    assert "tool read_file [builtin]" in first.stderr
    # The second turn's engine makes no call; it echoes the tool messages it was sent.
    write_config(tedchat_home, [], tools=True, echo_tools=True)
    second = run_cli(tedchat_home, "ask", "--continue", "--json", "what colour?")
    assert second.returncode == 0, second.stderr
    text = json.loads(second.stdout)["text"]
    assert "[tool call_0_0:" in text and "remember: blue" in text


def test_the_shell_never_runs_unasked_without_a_terminal(tedchat_home: Path) -> None:
    script = [{"calls": [{"name": "shell", "arguments": {"command": "touch pwned"}}]}]
    write_config(tedchat_home, script, echo_tools=True)
    done = run_cli(tedchat_home, "ask", "--yes", "--json", "make a file")
    assert done.returncode == 0, done.stderr
    [call] = json.loads(done.stdout)["tool_calls"]
    assert call["result"] is None and "refused" in call["error"]
    assert not (tedchat_home / "pwned").exists()
    assert "refused" in json.loads(done.stdout)["text"]  # the model was told


def test_max_steps_ends_the_turn_as_length(tedchat_home: Path) -> None:
    write_config(tedchat_home, READ_NOTES * 5)
    (tedchat_home / "notes.txt").write_text("x", encoding="utf-8")
    done = run_cli(tedchat_home, "ask", "--yes", "--max-steps", "2", "--json", "loop")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["finish_reason"] == "length" and out["steps"] == 2
    assert len(out["tool_calls"]) == 1
    assert "note: stopped after 2 model steps (max_steps)" in done.stderr


def test_mcp_that_is_not_configured_is_one_line_and_nothing_is_sent(tedchat_home: Path) -> None:
    write_config(tedchat_home, READ_NOTES)
    done = run_cli(tedchat_home, "ask", "--mcp", "nothere", "hello")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        "error: --mcp nothere: no MCP server [mcp.nothere] in the config; configured: none"
    )
    assert replies(tedchat_home) == []


def test_mcp_command_not_found_is_exit_2_and_a_failed_handshake_exit_1(
    tedchat_home: Path,
) -> None:
    tag = marker()
    servers = (
        '[mcp.missing]\ncommand = "/nonexistent/mcp-server"\n\n'
        f"[mcp.broken]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = [{json.dumps(FAULTY)}, "exit", {json.dumps(tag)}]\n'
    )
    write_config(tedchat_home, READ_NOTES, extra=servers)
    missing = run_cli(tedchat_home, "ask", "--tools", "builtin", "--mcp", "missing", "hi")
    assert missing.returncode == 2, missing.stderr
    assert "missing" in one_error_line(missing.stderr)
    broken = run_cli(tedchat_home, "ask", "--tools", "builtin", "--mcp", "broken", "hi")
    assert broken.returncode == 1, broken.stderr
    line = one_error_line(broken.stderr)
    assert "broken" in line and "database file is missing" in line
    assert replies(tedchat_home) == []  # nothing was sent to the model
    assert wait_gone(tag) == [] and pids_with(tag) == []


def test_an_engine_without_tools_refuses_tool_options(tedchat_home: Path) -> None:
    write_config(tedchat_home, [])
    done = run_cli(tedchat_home, "ask", "--tool-choice", "required", "hi")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        "error: engine 'tooly' (type scripted) does not support tools"
    )
    plain = run_cli(tedchat_home, "ask", "--json", "hi")  # without tool options: as before
    assert plain.returncode == 0 and "tool_calls" not in json.loads(plain.stdout)


def test_an_unknown_tool_source_is_one_line(tedchat_home: Path) -> None:
    write_config(tedchat_home, READ_NOTES)
    done = run_cli(tedchat_home, "ask", "--tools", "builtin,nonsense", "hi")
    assert done.returncode == 2
    assert "unknown tool source 'nonsense'" in one_error_line(done.stderr)


def test_ask_yes_mcp_time_against_an_openai_compatible_server(tedchat_home: Path) -> None:
    """The issue's acceptance: the server asks for convert_time 12:00 Asia/Tokyo ->
    Asia/Kolkata; tedchat runs it on the real mcp-server-time (a child it spawns) and the
    answer carries the converted time; the child is gone when tedchat exits."""
    import subprocess
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.conftest import cli_env
    from tests.http.fault_server import FaultServer

    tag = marker()
    with FaultServer() as server:
        config = tedchat_home / "config" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            'default_engine = "agent"\n\n[tools]\nsources = []\n\n'
            f'[engines.agent]\ntype = "http"\nbase_url = "{server.url("time_agent")}"\n\n'
            f"[mcp.time]\ncommand = {json.dumps(sys.executable)}\n"
            'args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]\n'
            f'env = {{ TEDCHAT_TEST_MARKER = "{tag}" }}\n',
            encoding="utf-8",
        )
        config.chmod(0o600)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tedchat", "ask", "--yes", "--mcp", "time", "--json", "time?"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(tedchat_home),
            cwd=str(tedchat_home),
        )
        parents: dict[int, int] = {}  # the marked processes seen, with their parent's pid
        while proc.poll() is None:
            for pid in pids_with(tag):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        parents[pid] = int(f.read().rpartition(")")[2].split()[1])
                except OSError:
                    pass
            time.sleep(0.02)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        expected = f"{datetime.now(ZoneInfo('Asia/Tokyo')).date().isoformat()}T08:30:00+05:30"
        answer = json.loads(out)
        assert expected in answer["text"]
        [call] = answer["tool_calls"]
        assert call["name"] == "convert_time" and call["source"] == "mcp:time"
        assert call["arguments"] == {
            "source_timezone": "Asia/Tokyo",
            "time": "12:00",
            "target_timezone": "Asia/Kolkata",
        }
        assert expected in call["result"] and call["error"] is None
        # The second request carried the call and its result back to the server.
        second = server.requests["time_agent"][-1].body["messages"]
        assert [m["role"] for m in second] == ["user", "assistant", "tool"]
        assert second[1]["tool_calls"][0]["function"]["name"] == "convert_time"
        assert second[2]["tool_call_id"] == "call_time" and expected in second[2]["content"]
        # The MCP server was tedchat's child, seen while it ran, and is gone now.
        assert proc.pid in parents.values(), parents
        assert wait_gone(tag) == []


def test_plain_ask_with_tools_does_not_import_mcp(tedchat_home: Path) -> None:
    from tests.tools.test_tools_cli import imported_after

    (tedchat_home / "notes.txt").write_text("x", encoding="utf-8")
    write_config(tedchat_home, READ_NOTES)
    # Built-in tools offered and called; no MCP server configured: the SDK stays unloaded.
    assert "mcp" not in imported_after(tedchat_home, ["ask", "--yes", "read my notes"])


def test_ctrl_c_during_a_tool_keeps_the_text_and_the_finished_calls(tedchat_home: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.conftest import cli_env, default_sigint

    tag = marker()
    script = [
        {
            "text": "First the notes. ",
            "calls": [{"name": "read_file", "arguments": {"path": "n.txt"}}],
        },
        {
            "text": "Now wait. ",
            "calls": [{"name": "shell", "arguments": {"command": f"sleep 60 # {tag}"}}],
        },
    ]
    (tedchat_home / "n.txt").write_text("noted", encoding="utf-8")
    write_config(tedchat_home, script, extra='[tools.approval]\nshell = "auto"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "tedchat", "ask", "--yes", "wait for me"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(tedchat_home),
        cwd=str(tedchat_home),
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 60
    while not pids_with(tag) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert pids_with(tag), "the shell tool never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out.startswith("First the notes. Now wait. ")
    [(content, finish, calls)] = replies(tedchat_home)
    assert (content, finish) == ("First the notes. Now wait. ", "cancelled")
    stored = [(c["name"], c["status"], c["result"]) for c in json.loads(calls)]
    assert stored[0] == ("read_file", "done", "noted")
    assert stored[1][:2] == ("shell", "cancelled")
    assert wait_gone(tag) == []  # the sleep was killed with its process group

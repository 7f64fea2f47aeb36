"""History through the real CLI: ask records, survives SIGKILL, corrupt files, export/import."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import time
from pathlib import Path

from tests.conftest import (
    LONG_ESSAY,
    ONE_THREAD,
    one_error_line,
    run_cli,
    start_long_answer,
)


def history_file(home: Path) -> Path:
    return home / "data" / "history.db"


def wait_for_saved_reply(path: Path, chars: int, timeout: float = 60.0) -> None:
    """Poll the history file (read-only) until an assistant reply holds ``chars`` characters."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            try:
                row = conn.execute(
                    "SELECT max(length(content)) FROM messages WHERE role = 'assistant'"
                ).fetchone()
            except sqlite3.OperationalError:  # not created yet
                row = None
            finally:
                conn.close()
            if row and row[0] is not None and row[0] >= chars:
                return
        time.sleep(0.05)
    raise AssertionError(f"no reply of {chars} characters saved in {path} after {timeout} s")


def test_sigkill_mid_answer_leaves_prompt_and_partial_reply_interrupted(
    tedchat_home: Path,
) -> None:
    proc = start_long_answer(tedchat_home, 3000)
    try:
        assert proc.stdout is not None
        received = proc.stdout.read(200)  # well into the answer
        # Until the store's flush (every 250 ms) has written at least 100 characters of it.
        wait_for_saved_reply(history_file(tedchat_home), 100)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    shown = run_cli(tedchat_home, "history", "show", "1", "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    user = doc["messages"][0]
    assert user["content"] == LONG_ESSAY
    reply = user["replies"][0]
    assert reply["finish_reason"] == "interrupted"
    assert len(reply["content"]) >= 100
    assert received.decode(errors="ignore")[:50] in reply["content"]


def test_ask_records_and_continue_uses_the_conversation(tedchat_home: Path) -> None:
    first = run_cli(
        tedchat_home,
        "ask",
        "--temperature",
        "0",
        "--max-tokens",
        "20",
        "What is the capital of France?",
        **ONE_THREAD,
    )
    assert first.returncode == 0, first.stderr
    second = run_cli(
        tedchat_home,
        "ask",
        "--continue",
        "--temperature",
        "0",
        "--max-tokens",
        "20",
        "--json",
        "And of Japan?",
        **ONE_THREAD,
    )
    record = json.loads(second.stdout)
    assert record["prompt_tokens"] > 40  # the first exchange was sent along
    listed = json.loads(run_cli(tedchat_home, "history", "list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["message_count"] == 4
    nothing = run_cli(tedchat_home, "ask", "--no-history", "--max-tokens", "5", "hi", **ONE_THREAD)
    assert nothing.returncode == 0
    assert len(json.loads(run_cli(tedchat_home, "history", "list", "--json").stdout)) == 1
    found = json.loads(run_cli(tedchat_home, "history", "search", "Paris", "--json").stdout)
    assert found and found[0]["conversation_id"] == 1


def test_export_import_round_trip(tedchat_home: Path, tmp_path: Path) -> None:
    run_cli(tedchat_home, "ask", "--max-tokens", "10", "東京について一言。", **ONE_THREAD)
    out = tmp_path / "c.json"
    assert (
        run_cli(
            tedchat_home, "history", "export", "1", "--format", "json", "-o", str(out)
        ).returncode
        == 0
    )
    imported = run_cli(tedchat_home, "history", "import", str(out))
    assert imported.returncode == 0 and imported.stdout.strip() == "2"
    md = run_cli(tedchat_home, "history", "export", "2", "--format", "md").stdout
    assert "東京について一言。" in md
    hits = json.loads(run_cli(tedchat_home, "history", "search", "東京", "--json").stdout)
    assert {h["conversation_id"] for h in hits} == {1, 2}


def test_corrupt_history_one_line_untouched_and_new_history(tedchat_home: Path) -> None:
    db = history_file(tedchat_home)
    db.parent.mkdir(parents=True)
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    result = run_cli(tedchat_home, "history", "list")
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert str(db) in line and "--new-history" in line
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    fresh = run_cli(tedchat_home, "ask", "--new-history", "--max-tokens", "5", "hi", **ONE_THREAD)
    assert fresh.returncode == 0, fresh.stderr
    again = run_cli(tedchat_home, "history", "list", "--json")  # the fresh file is remembered
    assert again.returncode == 0 and len(json.loads(again.stdout)) == 1
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert len(list(db.parent.glob("history*.db"))) == 2


def test_ask_says_it_waits_for_a_locked_history_then_saves(tedchat_home: Path) -> None:
    import select
    import subprocess
    import sys

    from tests.conftest import cli_env
    from tests.history.test_faults import LockHolder

    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[history]\nlock_timeout_s = 60\n", encoding="utf-8")
    first = run_cli(tedchat_home, "ask", "--max-tokens", "4", "Hi.", **ONE_THREAD)
    assert first.returncode == 0, first.stderr
    asked = "What is the capital of France?"
    with LockHolder(history_file(tedchat_home)):
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tedchat", "ask"),
                *("--temperature", "0", "--max-tokens", "12", asked),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(tedchat_home, **ONE_THREAD),
            cwd=str(tedchat_home),
        )
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 120
            line = b""
            while b"waiting" not in line and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stderr], [], [], 1.0)
                if ready:
                    line = proc.stderr.readline()
                    if not line:
                        break
            assert line.decode().strip() == (
                "note: waiting for the history file (busy, or locked by another process: "
                "up to 60 s, [history] lock_timeout_s)…"
            )
            assert proc.poll() is None  # still waiting, not given up
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.strip()
    shown = run_cli(tedchat_home, "history", "show", "2", "--json")
    assert shown.returncode == 0, shown.stderr
    [user] = json.loads(shown.stdout)["messages"]
    assert user["content"] == asked
    assert user["replies"][0]["content"].strip() == out.decode().strip()

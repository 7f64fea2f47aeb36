"""What the history tests share: a history path per test, reading rows behind the store's
back, and running a second process that uses the store."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_script(code: str, *args: str) -> subprocess.Popen[str]:
    """Start ``code`` in a separate Python process (the way a second tedchat would run)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """The next stdout line of ``proc``; fails the test (with its stderr) if it exits first."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        pytest.fail(f"child exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
    return line.strip()


def reply_row(path: Path, reply_id: int) -> tuple[str | None, str]:
    """(finish_reason, content) of a reply, read over a plain connection."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT finish_reason, content FROM messages WHERE id = ?", (reply_id,)
        ).fetchone()
    finally:
        conn.close()
    return row[0], row[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.db"

"""The history under load: eight processes each stream 200 replies into one SQLite file at
once, through the public Store/ReplyWriter API. Every row must arrive whole.

The wall time is printed (``pytest -s`` shows it) for the record; it is not asserted, since
the machine running the tests is shared.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tedchat.history.store import Store
from tests.history.load_writer import CHUNKS, reply_chunks

REPO = Path(__file__).resolve().parents[2]
WRITERS = 8
REPLIES = 200


@pytest.mark.slow  # ~2 minutes here: 12,800 fsync'd commits (one writer alone: ~130 a second)
def test_eight_processes_streaming_200_replies_each_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    Store.open(path).close()  # created once, so the writers only contend for rows
    start_at = time.time() + 2.0  # every writer past its imports before the first write
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.history.load_writer",
                str(path),
                str(w),
                str(REPLIES),
                str(start_at),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            reports.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    wall = time.time() - start_at
    assert [r["gave_up"] for r in reports] == [0] * WRITERS

    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        replies = conn.execute(
            "SELECT m.content, m.finish_reason, m.output_tokens, m.writer_pid, m.engine, u.content"
            " FROM messages m JOIN messages u ON u.id = m.parent_id WHERE m.role = 'assistant'"
        ).fetchall()
        users = conn.execute("SELECT count(*) FROM messages WHERE role = 'user'").fetchone()[0]
        indexed = conn.execute("SELECT count(*) FROM message_fts").fetchone()[0]
    finally:
        conn.close()
    assert users == WRITERS * REPLIES
    assert len(replies) == WRITERS * REPLIES
    seen = set()
    for content, finish, tokens, writer_pid, engine, question in replies:
        w = int(engine.removeprefix("engine-"))
        r = int(question.rsplit("q", 1)[1])
        assert content == "".join(reply_chunks(w, r)), (w, r)
        assert (finish, tokens, writer_pid) == ("stop", CHUNKS, None)
        seen.add((w, r))
    assert len(seen) == WRITERS * REPLIES  # each reply exactly once, none doubled
    assert indexed == 2 * WRITERS * REPLIES  # every question and every finished reply
    with Store.open(path) as store:
        hits = store.search("w7r199c4")  # a word only that one reply holds
        assert [(h.role, h.snippet.count("w7r199c4")) for h in hits] == [("assistant", 1)]
    rows = 2 * WRITERS * REPLIES
    slowest = max(r["wall_s"] for r in reports)
    print(
        f"\nhistory load: {WRITERS} processes x {REPLIES} replies ({CHUNKS} chunks each, a "
        f"commit per chunk): {rows} rows, {WRITERS * REPLIES * (CHUNKS + 3)} write "
        f"transactions in {wall:.1f} s wall (slowest writer {slowest:.1f} s); lost: nothing"
    )

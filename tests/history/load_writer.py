"""One writer process of the history load test: streams replies into a shared history through
the public Store/ReplyWriter API, exactly as ``ask`` and the chat screen do.

Run as ``python -m tests.history.load_writer PATH WRITER REPLIES START_AT``; prints one JSON line
(its own wall time and how many writes gave up) to stdout.
"""

from __future__ import annotations

import json
import sys
import time

from tedchat.errors import HistoryError
from tedchat.history.records import ReplyMetrics
from tedchat.history.store import Store

#: Chunks each reply streams in; every chunk is its own committed write (flush_interval 0).
CHUNKS = 5


def reply_chunks(writer: int, reply: int) -> list[str]:
    """The text reply ``reply`` of writer ``writer`` streams, chunk by chunk (unique words, so
    a lost or duplicated chunk shows, and search can find each reply)."""
    return [f"w{writer}r{reply}c{c} " + "lorem ipsum dolor " * (c + 1) for c in range(CHUNKS)]


def main(path: str, writer: int, replies: int, start_at: float) -> None:
    # All writers start at the same moment, so they really contend for the write lock.
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    gave_up = 0
    with Store.open(path, lock_timeout_s=60.0) as store:
        conversation = store.new_conversation(f"writer {writer}")
        for r in range(replies):
            try:
                user = store.add_user_message(conversation, f"question w{writer}q{r}")
                reply = store.begin_reply(
                    conversation, user, f"engine-{writer}", "load-model", flush_interval=0.0
                )
                for chunk in reply_chunks(writer, r):
                    reply.append(chunk)  # flush_interval 0: a transaction per chunk
                reply.finish("stop", ReplyMetrics(ttft_s=0.01, output_tokens=CHUNKS))
            except HistoryError:
                gave_up += 1
    print(json.dumps({"writer": writer, "wall_s": time.perf_counter() - t0, "gave_up": gave_up}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))

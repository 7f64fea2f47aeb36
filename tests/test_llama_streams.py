"""llama.cpp quiet loads on several threads at once leave the standard streams where they were.

llama-cpp-python's ``verbose=False`` load points fds 1 and 2 at /dev/null and restores them
from duplicates; two threads at once could leave fd 2 on /dev/null for good, and the TUI, which
draws on fd 2, froze (issue 15). Every load in tedchat holds ``LLAMA_PROCESS_LOCK``.
"""

from __future__ import annotations

import os
import threading

from tedchat.models.registry import resolve_model
from tedchat.wafer.tokenizer import Tokenizer


def identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_tokenizers_built_on_many_threads_at_once_keep_fd_1_and_2() -> None:
    path = resolve_model("smollm2")  # the bundled model
    before = identity(1), identity(2)
    barrier = threading.Barrier(6)
    built: list[Tokenizer] = []
    errors: list[BaseException] = []

    def build() -> None:
        barrier.wait()
        try:
            built.append(Tokenizer(path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _round in range(3):
        threads = [threading.Thread(target=build) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        barrier.reset()
        assert (identity(1), identity(2)) == before
    assert not errors and len(built) == 18
    for tok in built:
        tok.close()

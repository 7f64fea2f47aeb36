"""This machine's own speed making a model's text, measured once per model file per process.

Compare's race start (:mod:`tedchat.race`) prepares a paced pane first when its emulated
hardware streams faster than this machine can make the text; this is the figure it compares
with. It is measured when a wafer engine loads: a one-token prefill, then :data:`STEPS`
single-token decode steps through the loaded pipeline, timed on the wall clock (with the
engine's BLAS threads). It is kept per GGUF path for the life of the process, so engines on
the same model file measure once. Measured on a busy machine (another engine loading beside
it) the figure comes out low: the race then prepares a pane it might have paced live, which
costs a wait, never a wrong timeline.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

#: Decode steps timed (after one warm-up step).
STEPS = 4

_speeds: dict[str, float] = {}
_lock = threading.Lock()


def host_tokens_per_s(path: Path) -> float | None:
    """The measured speed for the model at ``path`` (None: not measured in this process)."""
    with _lock:
        return _speeds.get(str(path))


def measure(path: Path, pipeline: Any, token: int, *, steps: int = STEPS) -> float:
    """Time ``steps`` decode steps of ``pipeline`` (a :class:`~tedchat.wafer.stages.Pipeline`)
    and keep the speed for ``path``; a figure already kept is returned as it is."""
    known = host_tokens_per_s(path)
    if known is not None:
        return known
    key = ("host-speed", threading.get_ident())
    pipeline.open(key)
    try:
        pipeline.run(key, [token])  # warm-up: the first step pays for caches and allocation
        t0 = time.perf_counter()
        for _ in range(steps):
            pipeline.run(key, [token])
        elapsed = time.perf_counter() - t0
    finally:
        pipeline.close(key)
    speed = steps / elapsed if elapsed > 0 else float("inf")
    with _lock:
        return _speeds.setdefault(str(path), speed)

"""KV caches take memory as they are written and give it all back when a sequence closes.

A sequence reserves its whole context up front (8192 positions by default: 377 MB on the
bundled SmolLM2), so this must hold however often sequences come and go. With ``np.zeros`` it
did not: after the first caches were freed, glibc served later ones from its heap, cleared in
full and kept after close (``benchmarks/wafer_kv_open.py``: the second round of four sequences
grew the process by 396 MB and kept 365 MB of it). Measured in a child process, so the
allocator's history is this test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tedchat.wafer.numerics import fresh_zeros
from tests.wafer.test_verify import bundled_model

ROUNDS = """
    import json, sys
    from tedchat.wafer.numerics import Model
    from tedchat.wafer.shared_weights import shared_weights
    from tedchat.wafer.stages import Pipeline

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    model = Model(shared_weights(sys.argv[1]), 8192)
    pipeline = Pipeline(model, Pipeline.split(len(model.layers), 2), 8192)
    rounds = []
    for r in range(3):
        before = rss_mb()
        for s in range(4):
            pipeline.open((r, s))
            pipeline.run((r, s), list(range(1, 37)))
        for _ in range(8):
            pipeline.run_batch([(r, s) for s in range(4)], [5, 6, 7, 8])
        reserved = sum(c.nbytes for st in pipeline.stages for c in st.caches.values()) / 1e6
        open_mb = rss_mb() - before
        for s in range(4):
            pipeline.close((r, s))
        rounds.append({"open_mb": open_mb, "after_mb": rss_mb() - before, "reserved_mb": reserved})
    print(json.dumps(rounds))
"""


def test_fresh_zeros_is_a_writable_zeroed_float32_array() -> None:
    a = fresh_zeros((1024, 3, 64))
    assert a.dtype == np.float32 and a.shape == (1024, 3, 64)
    assert a.flags.writeable and a.flags.c_contiguous
    assert not a.any()
    a[7] = 1.5
    assert a.sum() == 1.5 * 3 * 64
    assert fresh_zeros((0, 3, 64)).shape == (0, 3, 64)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_caches_commit_what_is_written_and_return_it_on_close() -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ROUNDS), str(bundled_model())],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rounds = json.loads(out.stdout)
    # 4 sequences x 2 stages' worth of layers: 30 layers x (k, v) x 8192 x 3 x 64 x 4 bytes.
    assert [round(r["reserved_mb"]) for r in rounds] == [1510] * 3
    # The first round also builds what the process keeps (kernel, buffers); from then on a
    # round of four sequences, 44 positions deep, commits about 9 MB and returns all of it.
    for r in rounds[1:]:
        assert r["open_mb"] < 32, rounds
        assert r["after_mb"] < 4, rounds

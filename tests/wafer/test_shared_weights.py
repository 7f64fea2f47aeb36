"""Wafer engines on one GGUF share one loaded copy of its weights, freed with the last user."""

from __future__ import annotations

import asyncio
import gc
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from tedchat.engine import GenerationParams, Message, Runtime, TextDelta
from tedchat.wafer.engine import WaferEngine
from tedchat.wafer.plugin import SETTINGS
from tedchat.wafer.shared_weights import shared_weights
from tests.wafer.test_verify import bundled_model


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    """A private copy of the bundled GGUF: no other test's engine holds its weights."""
    path = tmp_path / "model.gguf"
    shutil.copyfile(bundled_model(), path)
    return path


def engine(path: Path, **settings: object) -> WaferEngine:
    return WaferEngine("w", {**SETTINGS, "model": str(path), **settings}, Runtime(threads=1))


async def text(e: WaferEngine, prompt: str = "Name a colour.") -> str:
    params = GenerationParams(max_tokens=8, temperature=0)
    events = [ev async for ev in e.stream([Message("user", prompt)], params)]
    return "".join(ev.text for ev in events if isinstance(ev, TextDelta))


async def test_engines_on_one_gguf_share_weights_and_outlive_each_other(gguf: Path) -> None:
    a, b = engine(gguf, context=256), engine(gguf, context=512)
    await asyncio.gather(a.load(), b.load())  # loading at once: one load, both wait for it
    ma, mb = a.pipeline.model, b.pipeline.model
    assert ma is not mb and ma.context == 256 and mb.context == 512
    assert ma.weights is mb.weights
    for la, lb in zip(ma.layers, mb.layers, strict=True):
        for name in ("attn_norm", "wqkv", "wo", "ffn_norm", "w_gate_up", "w_down"):
            assert getattr(la, name) is getattr(lb, name)
    assert ma.output is mb.output
    assert not ma.layers[0].wqkv.data.flags.writeable  # nobody can change another engine's weights
    # Per-engine state stays per engine: each has its own pipeline, caches and timing.
    assert a.pipeline is not b.pipeline and a.timing is not b.timing

    before = await text(b)
    assert before and before == await text(a)
    held = weakref.ref(ma.weights)
    del ma, mb
    await a.close()
    assert await text(b) == before  # closing one leaves the other working
    assert held() is not None
    await b.close()
    gc.collect()
    assert held() is None  # the last user gone, the weights are freed

    c = engine(gguf, context=256)  # and a later engine loads them afresh
    await c.load()
    assert await text(c) == before
    await c.close()


def test_a_rewritten_file_is_loaded_afresh(gguf: Path, tmp_path: Path) -> None:
    first = shared_weights(gguf)
    assert shared_weights(gguf) is first
    other = tmp_path / "other.gguf"
    shutil.copyfile(gguf, other)
    second = shared_weights(other)
    assert second is not first  # another file, another copy
    np.testing.assert_array_equal(second.output.data, first.output.data)
    gguf.touch()  # rewritten in place (a new modification time)
    assert shared_weights(gguf) is not first

"""One loaded copy of a GGUF's float32 weights per process, shared by every engine using it.

Dequantising a GGUF to float32 takes seconds and four times the file's size in memory; two
wafer engines (or a target and its draft when they are the same file) on one GGUF would
otherwise hold two copies. :func:`shared_weights` hands every caller the same
:class:`~tedchat.wafer.gguf_weights.LlamaWeights` while anyone holds it: the registry keeps
only a weak reference, so the weights are freed when the last engine using them lets go
(closes). Each engine still builds its own :class:`~tedchat.wafer.numerics.Model` (RoPE
tables at its context), KV caches and timing over the shared arrays; the arrays are made
read-only so no user can change another's weights.

A file is identified by its resolved path, size and modification time: a GGUF rewritten in
place is loaded afresh.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tedchat.wafer.gguf_weights import LlamaWeights, load_weights
from tedchat.wafer.kernels import Panels

_Key = tuple[str, int, int]

_lock = threading.Lock()
_loaded: weakref.WeakValueDictionary[_Key, LlamaWeights] = weakref.WeakValueDictionary()
_loading: dict[_Key, threading.Lock] = {}


def _key(path: Path) -> _Key:
    resolved = Path(path).resolve()
    st = resolved.stat()
    return str(resolved), st.st_size, st.st_mtime_ns


def shared_weights(
    path: Path,
    *,
    mem_available: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LlamaWeights:
    """The float32 weights of the GGUF at ``path``: already loaded ones if any caller still
    holds them, else loaded now (``progress`` as :func:`load_weights` reports it). Callers
    loading the same file at once wait for one load."""
    key = _key(path)
    with _lock:
        weights = _loaded.get(key)
        if weights is not None:
            return weights
        file_lock = _loading.setdefault(key, threading.Lock())
    with file_lock:
        with _lock:
            weights = _loaded.get(key)
        if weights is None:
            try:
                weights = load_weights(path, mem_available=mem_available, progress=progress)
                _read_only(weights)
                with _lock:
                    _loaded[key] = weights
            finally:
                with _lock:
                    _loading.pop(key, None)
    return weights


def loaded_count() -> int:
    """How many GGUFs' weights are held in this process right now."""
    with _lock:
        return len(_loaded)


def _read_only(weights: LlamaWeights) -> None:
    arrays: list[Any] = [weights.output_norm, weights.output, weights.token_embd]
    arrays.append(weights.rope_freq_factors)
    for layer in weights.layers:
        arrays += [getattr(layer, name) for name in _LAYER_ARRAYS]
    for a in arrays:
        if isinstance(a, Panels):
            a.data.flags.writeable = False
        elif a is not None:
            a.flags.writeable = False


_LAYER_ARRAYS = ("attn_norm", "wqkv", "bqkv", "wo", "bo", "ffn_norm", "w_gate_up", "w_down")

"""Will a GGUF fit in this machine's memory? Asked before llama.cpp loads it.

A model that does not fit does not fail cleanly: the kernel swaps, the desktop freezes, or the
process is killed mid-load. So the need is estimated from the header alone
(:mod:`tedchat.models.gguf_header`, no weights read) and compared with what the kernel says is
available (``MemAvailable`` in ``/proc/meminfo``: free memory plus what the page cache can give
back):

    need = weights (every tensor's declared bytes, all parts of a split model)
         + KV cache for the engine's context (16-bit K and V, every layer)
         + logits of every position, when speculative decoding needs them (``logits_all``:
           llama-cpp-python keeps an ``n_ctx`` x vocabulary float32 array, llama.cpp an
           ``n_batch`` x vocabulary output buffer)
         + a draft model's weights and KV cache, when one is configured
         + a margin for llama.cpp's compute buffers (10 %, at least 128 MiB)

A model over that line is refused with one line naming size, context and free memory; the
engine setting ``force = true`` loads it anyway. Where ``/proc/meminfo`` cannot be read (not
Linux) nothing is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tedchat.errors import ModelTooLargeError
from tedchat.models.gguf_header import GGUFInfo

MARGIN = 0.10
MIN_MARGIN = 128 << 20
KV_BYTES = 2  # llama.cpp's default cache type is F16
LOGIT_BYTES = 4  # float32
N_BATCH = 512  # llama-cpp-python's default n_batch


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where that cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _per_layer(value: Any, layers: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value][:layers] or [0]
    return [int(value)] * layers


def kv_cache_bytes(info: GGUFInfo, n_ctx: int) -> int:
    """The KV cache of ``n_ctx`` tokens, from the header's attention shape (0 if unknown)."""
    layers = info.get("{arch}.block_count")
    heads = info.get("{arch}.attention.head_count")
    embd = info.get("{arch}.embedding_length")
    if not isinstance(layers, int) or heads is None or not isinstance(embd, int):
        return 0
    head_counts = _per_layer(heads, layers)
    kv_heads = _per_layer(info.get("{arch}.attention.head_count_kv", heads), layers)
    first = max(head_counts) or 1
    k_len = int(info.get("{arch}.attention.key_length", embd // first))
    v_len = int(info.get("{arch}.attention.value_length", k_len))
    return n_ctx * sum(kv_heads) * (k_len + v_len) * KV_BYTES


def logits_bytes(info: GGUFInfo, n_ctx: int, n_batch: int = N_BATCH) -> int:
    """The logits of every position (``logits_all=True``), on both sides of llama-cpp-python."""
    return (n_ctx + n_batch) * (info.vocab_size or 0) * LOGIT_BYTES


@dataclass(frozen=True)
class MemoryNeed:
    weights: int
    kv_cache: int
    margin: int
    n_ctx: int
    logits: int = 0  # logits_all (speculative decoding)
    draft: int = 0  # a draft model's weights and KV cache

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.logits + self.draft + self.margin


def memory_need(
    parts: Sequence[GGUFInfo],
    n_ctx: int,
    *,
    logits_all: bool = False,
    draft: Sequence[GGUFInfo] = (),
) -> MemoryNeed:
    """What loading the model (its header infos, one per part) with ``n_ctx`` takes;
    ``logits_all`` and a ``draft`` model (its parts) for speculative decoding."""
    weights = sum(p.tensor_bytes for p in parts)
    kv = kv_cache_bytes(parts[0], n_ctx)
    logits = logits_bytes(parts[0], n_ctx) if logits_all else 0
    extra = sum(p.tensor_bytes for p in draft) + (kv_cache_bytes(draft[0], n_ctx) if draft else 0)
    margin = max(int((weights + kv + logits + extra) * MARGIN), MIN_MARGIN)
    return MemoryNeed(weights, kv, margin, n_ctx, logits, extra)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _speculation(need: MemoryNeed) -> str:
    out = f" + {_gb(need.logits)} logits for speculative decoding" if need.logits else ""
    return out + (f" + {_gb(need.draft)} draft model" if need.draft else "")


def check_fits(
    parts: Sequence[GGUFInfo],
    n_ctx: int,
    *,
    setting: str,
    mem_available: int | None = None,
    logits_all: bool = False,
    draft: Sequence[GGUFInfo] = (),
) -> MemoryNeed:
    """Refuse (:class:`ModelTooLargeError`) a model that needs more than the available memory.

    ``setting`` names the table where ``force = true`` goes (for the hint); ``mem_available``
    (bytes) replaces /proc/meminfo's MemAvailable (tests).
    """
    need = memory_need(parts, n_ctx, logits_all=logits_all, draft=draft)
    available = mem_available if mem_available is not None else mem_available_bytes()
    if available is not None and need.total > available:
        raise ModelTooLargeError(
            f"{parts[0].path.name} needs about {_gb(need.total)} of memory "
            f"({_gb(need.weights)} weights + {_gb(need.kv_cache)} KV cache for a "
            f"{n_ctx}-token context{_speculation(need)}) but {_gb(available)} is available "
            "(MemAvailable): not loaded",
            hint=f"use a smaller model or quantisation, lower n_ctx, or set force = true in "
            f"[{setting}] to load it anyway",
        )
    return need

"""A Llama forward pass in NumPy float32: the numerics of the wafer engine.

The pieces are separate objects so the pipeline can place them on emulated systems:

* :class:`Layer` - one transformer block holding its own float32 weights;
  ``Layer.forward(x, kv, positions)`` runs it for a run of consecutive positions of one
  sequence and ``Layer.forward_batch`` for one new token of each of several sequences.
* :class:`KVCache` - one sequence's keys and values for a set of layers (all of them, or one
  stage's range), preallocated float32 ``[context, n_kv_heads, head_dim]`` per layer.
* :class:`Model` - embedding, the layers and the output head, with ``prefill``/``decode``
  conveniences that run every layer.

Everything stays float32: a float64 intermediate (a cos/sin table, a Python-float scalar
promoted by old NumPy rules) silently makes NumPy many times slower. Decode is bandwidth-bound
by design: each layer is four matrix products (fused q/k/v, output projection, fused gate/up,
down) over ``(in, out)`` matrices stored as column panels (:mod:`tedchat.wafer.kernels`), so a
decode step streams every weight once, for one sequence or several.

This module is the plain float32 pass the engine runs. Verification also reproduces llama.cpp's
own rounding on the same weights; that lives in :mod:`tedchat.wafer.llamacpp_rounding`, whose
subclasses replace the few steps where it computes differently (:meth:`Layer._product`,
:meth:`Layer._attend`, the norm and SiLU functions, the RoPE tables, the output head).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from tedchat.errors import ContextFullError
from tedchat.wafer.gguf_weights import LayerWeights, LlamaConfig, LlamaWeights, load_weights
from tedchat.wafer.kernels import Panels, rows_times

F32 = np.float32

# Prompt tokens per prefill step: bounds the attention score matrix (heads x chunk x context)
# while keeping the projections large GEMMs.
PREFILL_CHUNK = 256

#: Calls of at most this many rows (a decode step, a speculative verify of k+1 tokens, one
#: token of each of B sequences) compute every row exactly as a lone row: see :func:`product`.
ROW_INVARIANT_ROWS = 16


def product(x: np.ndarray, w: Panels) -> np.ndarray:
    """``x @ w`` (``x`` ``[T, in]`` float32, ``w`` an ``(in, out)`` matrix as panels).

    Calls of at most :data:`ROW_INVARIANT_ROWS` rows run the row-invariant kernel
    (:func:`tedchat.wafer.kernels.rows_times`): a row's result is a function of that row and
    ``w`` alone, whether it came alone (decode), as one of the k+1 rows of a speculative
    verify, or as one of B sequences' rows of a batched decode, and the weights are streamed
    once for all the rows. Larger T (prompt chunks) run as GEMMs: prompt rows need no such
    promise, and for many rows BLAS is faster (a 40-token chunk of the bundled model: 89 ms as
    GEMMs against 95 ms in the kernel at 2 threads, 129 against 181 ms at 1).
    """
    if x.shape[0] > ROW_INVARIANT_ROWS:
        return w.matmul(x)
    return rows_times(x, w)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: np.float32) -> np.ndarray:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis, in float32."""
    ms = np.einsum("ij,ij->i", x, x)[:, None]
    ms *= F32(1.0 / x.shape[-1])
    ms += eps
    np.sqrt(ms, out=ms)
    out = x / ms
    out *= weight
    return out


def silu_mul(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """SwiGLU: ``silu(gate) * up``; sigmoid via tanh, which cannot overflow."""
    s = np.multiply(gate, F32(0.5))
    np.tanh(s, out=s)
    s *= F32(0.5)
    s += F32(0.5)
    s *= gate
    s *= up
    return s


def causal_mask(t: int, start: int, end: int) -> np.ndarray:
    """Additive float32 mask ``[t, end]``: query i (at ``start + i``) sees keys ``0..start+i``."""
    future = np.arange(end)[None, :] > (start + np.arange(t))[:, None]
    return np.where(future, F32(-np.inf), F32(0.0))


class Rope:
    """Rotary position embedding as llama.cpp applies it to GGUF-stored q and k.

    Llama's GGUF conversion permutes the q/k rows so that llama.cpp's "normal" RoPE - rotating
    adjacent pairs ``(x[2i], x[2i+1])`` of each head by ``pos * theta_base^(-2i/n_rot)`` - equals
    the original model's rotation. Tables are float32 ``[context, n_rot/2]``.
    """

    def __init__(
        self, config: LlamaConfig, context: int, freq_factors: np.ndarray | None = None
    ) -> None:
        self.n_rot = config.n_rot
        self.context = context
        self.cos, self.sin = self._tables(config, context, freq_factors)

    def _tables(
        self, config: LlamaConfig, context: int, freq_factors: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """float32 cos and sin ``[context, n_rot/2]`` of every position's angles."""
        half = self.n_rot // 2
        # Angles in float64 for accuracy at long positions, then stored as float32.
        inv_freq = config.rope_theta ** (-np.arange(half, dtype=np.float64) * 2.0 / self.n_rot)
        if freq_factors is not None:
            inv_freq = inv_freq / freq_factors.astype(np.float64)
        pos = np.arange(context, dtype=np.float64) / config.rope_scaling_factor
        angles = np.outer(pos, inv_freq)
        return np.cos(angles).astype(F32), np.sin(angles).astype(F32)

    def apply(self, x: np.ndarray, positions: np.ndarray) -> None:
        """Rotate ``x`` (``[T, heads, head_dim]``, row t at ``positions[t]``) in place."""
        c = self.cos[positions][:, None, :]
        s = self.sin[positions][:, None, :]
        x0 = x[..., 0 : self.n_rot : 2]
        x1 = x[..., 1 : self.n_rot : 2]
        r0 = x0 * c
        r0 -= x1 * s
        r1 = x0 * s
        r1 += x1 * c
        x0[...] = r0
        x1[...] = r1


def fresh_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros on its own anonymous memory map: pages cost nothing until
    written, and go back to the OS when the array is dropped.

    ``np.zeros`` promises neither. Once glibc has freed one large block it raises its mmap
    threshold past that size, and later blocks of that size come from the heap, cleared in
    full by ``calloc`` and kept by the process after they are freed. Measured on the default
    8192-token context (377 MB of KV per sequence, touched a few hundred positions deep): the
    second round of 4 sequences took 629 ms to open them (20 ms in the first) and kept 365 MB
    after they closed (``benchmarks/wafer_kv_open.py``). The map is private: nothing is shared
    with a forked child, and it is not on huge pages (on them the KV pages did not help batched
    decoding: ``benchmarks/README.md``, ``wafer_batch.py``)."""
    size = int(np.prod(shape, dtype=np.int64)) * F32().itemsize
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    # Anonymous: zero-filled, committed on first write. (Windows has no flags: a fresh mapping.)
    buffer = mmap.mmap(-1, max(size, 1), flags=flags) if flags else mmap.mmap(-1, max(size, 1))
    return np.frombuffer(buffer, dtype=F32, count=size // F32().itemsize).reshape(shape)


class KVCache:
    """Keys and values of one sequence for a set of layers.

    Each layer has float32 ``k`` and ``v`` arrays ``[context, n_kv_heads, head_dim]``, reserved
    up front on fresh anonymous pages (:func:`fresh_zeros`: the OS commits a page when it is
    first written, and takes them all back when the cache is dropped), and a fill length.
    ``Layer.forward`` writes its positions and sets its length; :attr:`length` is the number of
    positions every layer of this cache holds.
    """

    def __init__(
        self, config: LlamaConfig, context: int, layers: Iterable[int] | None = None
    ) -> None:
        if context <= 0:
            raise ValueError("context must be positive")
        self.context = context
        idx = list(range(config.n_layers) if layers is None else layers)
        shape = (context, config.n_kv_heads, config.head_dim)
        self.k: dict[int, np.ndarray] = {i: fresh_zeros(shape) for i in idx}
        self.v: dict[int, np.ndarray] = {i: fresh_zeros(shape) for i in idx}
        self.lengths: dict[int, int] = dict.fromkeys(idx, 0)

    @property
    def layers(self) -> list[int]:
        return list(self.lengths)

    @property
    def length(self) -> int:
        """Positions held by every layer of this cache."""
        return min(self.lengths.values(), default=0)

    @property
    def nbytes(self) -> int:
        """Reserved bytes (what placement must budget), not the pages touched so far."""
        return sum(a.nbytes for a in self.k.values()) + sum(a.nbytes for a in self.v.values())

    def reset(self) -> None:
        """Forget every position (the buffers are reused)."""
        for i in self.lengths:
            self.lengths[i] = 0

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` positions (e.g. to reuse a shared prompt prefix)."""
        if n < 0:
            raise ValueError("cannot truncate to a negative length")
        for i, length in self.lengths.items():
            self.lengths[i] = min(length, n)


def _as_start(positions: int | Sequence[int] | np.ndarray, n: int) -> int:
    """The first position of a consecutive run of ``n`` positions."""
    if isinstance(positions, (int, np.integer)):
        return int(positions)
    pos = np.asarray(positions)
    if pos.shape != (n,):
        raise ValueError(f"expected {n} positions, got shape {pos.shape}")
    start = int(pos[0])
    if n > 1 and not np.array_equal(pos, np.arange(start, start + n)):
        raise ValueError("positions must be consecutive")
    return start


class Layer:
    """One Llama transformer block with its weights (pre-norm attention + SwiGLU FFN)."""

    def __init__(self, weights: LayerWeights, config: LlamaConfig, rope: Rope) -> None:
        self.index = weights.index
        self.config = config
        self.rope = rope
        self.attn_norm = weights.attn_norm
        self.wqkv = weights.wqkv
        self.bqkv = weights.bqkv
        self.wo = weights.wo
        self.bo = weights.bo
        self.ffn_norm = weights.ffn_norm
        self.w_gate_up = weights.w_gate_up
        self.w_down = weights.w_down
        self._eps = F32(config.rms_eps)
        self._scale = F32(1.0 / np.sqrt(config.head_dim))
        # The norm and SwiGLU functions (llama.cpp's rounding swaps in its own).
        self._norm = rms_norm
        self._silu = silu_mul

    @property
    def nbytes(self) -> int:
        """Float32 weight bytes this layer holds (and a decoded token streams)."""
        matrices = (self.wqkv, self.wo, self.w_gate_up, self.w_down)
        vectors = (a for a in (self.attn_norm, self.ffn_norm, self.bqkv, self.bo) if a is not None)
        return sum(m.nbytes for m in matrices) + sum(v.nbytes for v in vectors)

    def forward(
        self, x: np.ndarray, kv: KVCache, positions: int | Sequence[int] | np.ndarray
    ) -> np.ndarray:
        """Run the block on ``x`` (``[T, hidden]`` float32) at consecutive ``positions``.

        ``positions`` is the first position or all T of them; T=1 is decode, T>1 a prompt chunk
        (causal attention). Writes k/v for those positions into ``kv`` (dropping any later ones)
        and attends over everything before them. Returns a new ``[T, hidden]`` array.
        """
        start = _as_start(positions, x.shape[0])
        return self._run(x, [(kv, start, 0, x.shape[0])])

    def forward_batch(
        self,
        x: np.ndarray,
        caches: Sequence[KVCache],
        positions: Sequence[int],
    ) -> np.ndarray:
        """Run one new token of each of B sequences: row b of ``x`` at ``positions[b]``.

        The projections run as GEMMs over all B rows, so the weights are streamed once for the
        whole batch; attention runs per sequence against its own cache.
        """
        if not (len(caches) == len(positions) == x.shape[0]):
            raise ValueError("one cache and one position per row of x")
        return self._run(
            x,
            [
                (kv, int(p), b, b + 1)
                for b, (kv, p) in enumerate(zip(caches, positions, strict=True))
            ],
        )

    def _run(self, x: np.ndarray, segments: list[tuple[KVCache, int, int, int]]) -> np.ndarray:
        cfg = self.config
        nh, nkv, hd = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        qd, kvd = cfg.q_dim, cfg.kv_dim
        n = x.shape[0]
        if x.dtype != F32:
            raise TypeError(f"activations must be float32, got {x.dtype}")
        for kv, start, r0, r1 in segments:
            self._check_room(kv, start, r1 - r0)
        if len(segments) == 1:
            start = segments[0][1]
            positions = np.arange(start, start + n)
        else:
            positions = np.array([s[1] + i for s in segments for i in range(s[3] - s[2])])

        norm = self._norm
        xn = norm(x, self.attn_norm, self._eps)
        qkv = self._product(xn, "wqkv")
        if self.bqkv is not None:
            qkv += self.bqkv
        # q and k heads side by side: one RoPE call rotates both.
        self.rope.apply(qkv[:, : qd + kvd].reshape(n, nh + nkv, hd), positions)
        q = qkv[:, :qd]
        k = qkv[:, qd : qd + kvd].reshape(n, nkv, hd)
        v = qkv[:, qd + kvd :].reshape(n, nkv, hd)

        if len(segments) == 1:
            kv, start, _, _ = segments[0]
            attn = self._attend(q, k, v, kv, start)
        else:
            attn = np.empty((n, qd), dtype=F32)
            for kv, start, r0, r1 in segments:
                attn[r0:r1] = self._attend(q[r0:r1], k[r0:r1], v[r0:r1], kv, start)

        h = self._product(attn, "wo")
        if self.bo is not None:
            h += self.bo
        h += x
        hn = norm(h, self.ffn_norm, self._eps)
        gu = self._product(hn, "w_gate_up")
        act = self._silu(gu[:, : cfg.ffn], gu[:, cfg.ffn :])
        h += self._product(act, "w_down")
        return h

    def _product(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x`` times the weight matrix called ``name`` (``wqkv``, ``wo``, ``w_gate_up``,
        ``w_down``); row-invariant for small calls (:func:`product`)."""
        return product(x, getattr(self, name))

    def _check_room(self, kv: KVCache, start: int, n: int) -> None:
        have = kv.lengths.get(self.index)
        if have is None:
            raise ValueError(f"this KV cache holds no entries for layer {self.index}")
        if start > have or start < 0:
            raise ValueError(
                f"layer {self.index}: position {start} leaves a gap after {have} cached positions"
            )
        if start + n > kv.context or start + n > self.rope.context:
            limit = min(kv.context, self.rope.context)
            raise ContextFullError(
                f"context full: {start + n} positions exceed the context of {limit} tokens"
            )

    def _attend(
        self, q: np.ndarray, k: np.ndarray, v: np.ndarray, kv: KVCache, start: int
    ) -> np.ndarray:
        """Grouped-query attention of T queries at ``start..`` over cached positions ``0..end``.

        Stores k and v in ``kv`` and scales ``q`` in place. Calls of at most
        :data:`ROW_INVARIANT_ROWS` rows attend one query row at a time over exactly its own keys
        (:meth:`_attend_row`): a masked multi-row softmax would sum over the masked zeros too,
        and NumPy's pairwise sums and the score products group their terms by the length and
        row count, so a verify row would not equal the same row decoded alone. Bigger calls
        (prompt chunks) attend as one masked product.
        """
        cfg = self.config
        nkv, hd = cfg.n_kv_heads, cfg.head_dim
        g = cfg.n_heads // nkv
        t = q.shape[0]
        end = start + t
        q *= self._scale
        kc, vc = kv.k[self.index], kv.v[self.index]
        kc[start:end] = k
        vc[start:end] = v
        kv.lengths[self.index] = end
        if t <= ROW_INVARIANT_ROWS:
            out = np.empty((t, cfg.q_dim), dtype=F32)
            for i in range(t):
                out[i] = self._attend_row(q[i], kc, vc, start + i)
            return out

        # [T, kv_head, group, d] -> [kv_head, group*T, d]: each kv head serves its group's
        # queries in one matrix product.
        qg = q.reshape(t, nkv, g, hd).transpose(1, 2, 0, 3).reshape(nkv, g * t, hd)
        scores = qg @ kc[:end].transpose(1, 2, 0)  # [kv_head, group*T, end]
        if t > 1:
            s4 = scores.reshape(nkv, g, t, end)
            s4 += causal_mask(t, start, end)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out = scores @ vc[:end].transpose(1, 0, 2)  # [kv_head, group*T, d]
        return out.reshape(nkv, g, t, hd).transpose(2, 0, 1, 3).reshape(t, cfg.q_dim)

    def _attend_row(
        self, q: np.ndarray, kc: np.ndarray, vc: np.ndarray, position: int
    ) -> np.ndarray:
        """One (scaled) query row ``[q_dim]`` at ``position`` over cached keys ``0..position``:
        the same operations on the same shapes whichever call the row came in."""
        cfg = self.config
        nkv = cfg.n_kv_heads
        end = position + 1
        qg = np.ascontiguousarray(q).reshape(nkv, cfg.n_heads // nkv, cfg.head_dim)
        scores = qg @ kc[:end].transpose(1, 2, 0)  # [kv_head, group, end]
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out = scores @ vc[:end].transpose(1, 0, 2)  # [kv_head, group, d]
        return out.reshape(cfg.q_dim)


class Model:
    """A Llama model in float32: embedding, layers, final norm and output head.

    ``context`` (default: the model's training context) sizes the RoPE tables and the default
    KV cache. The layers are independent :class:`Layer` objects in :attr:`layers`; a pipeline
    may run any range of them against its own :class:`KVCache`.
    """

    def __init__(self, weights: LlamaWeights, context: int | None = None) -> None:
        cfg = weights.config
        self.config = cfg
        self.path = weights.path
        self.metadata = weights.metadata
        self.weights = weights
        """The loaded weights; models made from the same weights share them."""
        self.context = int(context or cfg.context_length)
        if self.context <= 0:
            raise ValueError("context must be positive")
        self.rope = self._new_rope()
        self.layers = [self._new_layer(w) for w in weights.layers]
        self.output_norm = weights.output_norm
        self.output = weights.output  # (hidden, vocab)
        self._eps = F32(cfg.rms_eps)

    def _new_rope(self) -> Rope:
        return Rope(self.config, self.context, self.weights.rope_freq_factors)

    def _new_layer(self, weights: LayerWeights) -> Layer:
        return Layer(weights, self.config, self.rope)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        context: int | None = None,
        mem_available: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Model:
        """Load a Llama GGUF (see :func:`tedchat.wafer.gguf_weights.load_weights`)."""
        weights = load_weights(path, mem_available=mem_available, progress=progress)
        return cls(weights, context)

    # ------------------------------------------------------------------ sizes for placement

    @property
    def head_nbytes(self) -> int:
        """Float32 bytes of the final norm and output matrix."""
        return self.output.nbytes + self.output_norm.nbytes

    @property
    def bytes_per_token(self) -> int:
        """Float32 weight bytes one decoded token reads: every layer plus the output head."""
        return sum(layer.nbytes for layer in self.layers) + self.head_nbytes

    # ------------------------------------------------------------------ pieces

    def new_cache(self, context: int | None = None, layers: Iterable[int] | None = None) -> KVCache:
        """A fresh KV cache for one sequence (all layers unless ``layers`` is given)."""
        return KVCache(self.config, context or self.context, layers)

    def embed(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Embeddings ``[T, hidden]`` float32 of ``token_ids``."""
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab):
            raise ValueError(f"token id out of range for a vocabulary of {self.config.vocab}")
        return self.weights.embedding_rows(ids)

    def final_norm_and_logits(self, h: np.ndarray) -> np.ndarray:
        """Logits ``[T, vocab]`` float32 from last-layer hidden states ``[T, hidden]``
        (row-invariant for small calls, :func:`product`)."""
        return product(rms_norm(h, self.output_norm, self._eps), self.output)

    # ------------------------------------------------------------------ whole-model passes

    def forward(
        self,
        token_ids: Sequence[int] | np.ndarray,
        cache: KVCache,
        *,
        all_logits: bool = False,
        chunk: int = PREFILL_CHUNK,
    ) -> np.ndarray:
        """Append ``token_ids`` to the sequence in ``cache`` and run every layer.

        The prompt runs in chunks of ``chunk`` positions, each as GEMMs with causal attention.
        Returns logits ``[T, vocab]`` when ``all_logits`` else the last position's ``[vocab]``.
        """
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            raise ValueError("no tokens to run")
        start = cache.length
        if start + ids.size > min(cache.context, self.context):
            raise ContextFullError(
                f"context full: {start + ids.size} positions exceed the context of "
                f"{min(cache.context, self.context)} tokens"
            )
        outs = []
        for c0 in range(0, ids.size, chunk):
            piece = ids[c0 : c0 + chunk]
            h = self.embed(piece)
            for layer in self.layers:
                h = layer.forward(h, cache, start + c0)
            if all_logits:
                outs.append(self.final_norm_and_logits(h))
        if all_logits:
            return np.concatenate(outs, axis=0)
        return self.final_norm_and_logits(h[-1:])[0]

    def prefill(self, token_ids: Sequence[int] | np.ndarray, cache: KVCache) -> np.ndarray:
        """Run a prompt (appended to ``cache``); return the last position's logits ``[vocab]``."""
        return self.forward(token_ids, cache)

    def decode(self, token_id: int, cache: KVCache) -> np.ndarray:
        """Run one token appended to ``cache``; return its logits ``[vocab]``."""
        start = cache.length
        h = self.embed([token_id])
        for layer in self.layers:
            h = layer.forward(h, cache, start)
        return self.final_norm_and_logits(h)[0]

    def decode_batch(self, token_ids: Sequence[int], caches: Sequence[KVCache]) -> np.ndarray:
        """One token for each of B sequences at once; returns logits ``[B, vocab]``."""
        positions = [c.length for c in caches]
        h = self.embed(token_ids)
        for layer in self.layers:
            h = layer.forward_batch(h, caches, positions)
        return self.final_norm_and_logits(h)

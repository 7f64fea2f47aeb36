"""llama.cpp's CPU rounding, reproduced on the wafer numerics (used by ``tedchat wafer verify``).

The engine runs the plain float32 pass of :mod:`tedchat.wafer.numerics`. llama.cpp does not
compute with the weights alone: on a quantized file it rounds the activations to 8 bits before
every product, keeps K and V in float16, and has its own RMSNorm, RoPE, ``expf`` and summation
orders. So that verification can compare like with like on the quantized GGUF itself, this
module reproduces those roundings (NumPy reproductions of ggml's CPU backend, x86 AVX2 kernels,
checked bit for bit against llama.cpp's intermediate tensors) as subclasses of the plain
pieces: :class:`RoundedModel` builds :class:`RoundedLayer` blocks and a :class:`GgmlRope`,
and :func:`with_rounding` switches a loaded model's numerics without copying its weights.

    model = RoundedModel.load(path)                  # all of llama.cpp's roundings
    plain = with_rounding(model, None)               # the same weights, plain float32
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tedchat.wafer.gguf_weights import (
    BLOCK_QUANT_TYPES,
    LayerWeights,
    LlamaConfig,
    LlamaWeights,
    MatrixSource,
    QuantBlocks,
    load_quant_blocks,
    load_weights,
    vec_dot_type,
)
from tedchat.wafer.kernels import Panels
from tedchat.wafer.numerics import (
    F32,
    KVCache,
    Layer,
    Model,
    Rope,
    causal_mask,
    rms_norm,
)


@dataclass(frozen=True)
class LlamaCppRounding:
    """Which of llama.cpp's CPU-backend roundings the forward pass reproduces.

    ``RoundedModel`` turns all of them on by default; verification uses that to compare
    against llama.cpp on the quantized GGUF itself. Each flag is one source of
    difference, so they can be measured one at a time. The reason all are needed: llama.cpp
    rounds activations to 8 bits before every quantized product, so an ulp of difference
    anywhere upstream can move a value across a rounding boundary, and 30 layers amplify such
    flips into logit differences as large as the quantization noise itself.

    What is reproduced is llama.cpp's CPU backend on x86 with AVX2 kernels, weights in plain
    CPU buffers (``use_extra_bufts`` off: no repacked layouts), flash attention off, as
    :func:`tedchat.wafer.verify.reference_llama` runs it; checked on the llama.cpp of
    llama-cpp-python 0.3.36. Other CPUs (ARM, AVX-512 builds) sum in other orders.
    """

    activations: bool = True
    """Round the input of every matrix product to the weight type's ``vec_dot_type`` (Q8_0,
    Q8_1, Q8_K, f16 or bf16; see :func:`round_activations`), then multiply exactly."""
    kv_f16: bool = True
    """llama.cpp's default float16 KV cache (flash attention off): K and V stored as float16,
    q rounded to float16 for q.k, the softmax probabilities rounded to float16 for p.v. Turn
    off when the reference runs with ``type_k = type_v = F32``."""
    rms_norm: bool = True
    """ggml's RMSNorm rounding (:func:`rms_norm_ggml`)."""
    rope: bool = True
    """ggml's RoPE: angles as a running float32 product, the C library's ``cosf``/``sinf``,
    and the rotation with a fused multiply-add (:class:`GgmlRope`)."""
    silu: bool = True
    """SiLU with ggml's vectorised ``expf`` (:func:`silu_mul_ggml`)."""
    attention: bool = True
    """Softmax with ggml's ``expf`` and its block sums, and q.k and p.v summed in the order of
    llama.cpp's CPU matrix products (:func:`_ggml_dot`)."""
    sum_order: bool = True
    """With ``activations``: sum weight products in ggml's order (:func:`_block_product`) for
    Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 and F16/F32 weights, instead of BLAS's. The costly one: about
    15x the plain forward pass. K-quants, I-quants and BF16 keep BLAS's order."""


def rms_norm_ggml(x: np.ndarray, weight: np.ndarray, eps: np.float32) -> np.ndarray:
    """:func:`~tedchat.wafer.numerics.rms_norm` rounded as ggml's CPU kernel rounds it: the
    float32 squares summed in float64, the mean rounded to float32, ``scale = 1 / sqrtf(mean +
    eps)`` in float32, then ``x * scale`` and ``* weight``. Bit-exact matters here: activations
    are quantized right after, and an ulp decides ties (which layer 0, fed quantized
    embeddings, hits often)."""
    sq = np.square(x)
    mean = (sq.sum(axis=-1, dtype=np.float64, keepdims=True) / x.shape[-1]).astype(F32)
    mean += eps
    scale = F32(1.0) / np.sqrt(mean)
    out = x * scale
    out *= weight
    return out


def _fma(
    a: np.ndarray | np.float32, b: np.ndarray | np.float32, c: np.ndarray | np.float32
) -> np.ndarray:
    """float32 ``a * b + c`` rounded once, as a fused multiply-add does.

    The float32 product is exact in float64 and the sum is rounded twice (to float64, then to
    float32), which differs from one rounding only when the float64 sum lands within 2^-29 ulp
    of a float32 rounding midpoint.
    """
    out = np.multiply(a, b, dtype=np.float64)
    out += c
    return out.astype(F32)


def _hexf(s: str) -> np.float32:
    return F32(float.fromhex(s))


# ggml's vectorised expf: n = round(x / ln 2) by the 1.5 * 2^23 shift trick, b = x - n ln 2 in
# two parts, e^b by a degree-5 polynomial, then scaled by 2^n built in the exponent bits.
_EXP_SHIFT = _hexf("0x1.8p23")
_EXP_INV_LN2 = _hexf("0x1.715476p+0")
_EXP_LN2_HI = _hexf("0x1.62e4p-1")
_EXP_LN2_LO = _hexf("0x1.7f7d1cp-20")
_EXP_C = tuple(
    _hexf(s)
    for s in ("0x1.0e4020p-7", "0x1.573e2ep-5", "0x1.555e66p-3", "0x1.fffdb6p-2", "0x1.ffffecp-1")
)


def ggml_expf(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` in float32, bit for bit as ggml's AVX2 kernels compute it for softmax and
    SiLU (within ~1.5 ulp of the exact value, and not always the nearest float)."""
    x = np.asarray(x, dtype=F32)
    with np.errstate(invalid="ignore", over="ignore"):
        z = _fma(x, _EXP_INV_LN2, _EXP_SHIFT)
        n = z - _EXP_SHIFT
        b = _fma(-n, _EXP_LN2_LO, _fma(-n, _EXP_LN2_HI, x))
        e = z.view(np.uint32) << np.uint32(23)
        k = (e + np.uint32(0x3F800000)).view(F32)  # 2^n, for |n| <= 126
        u = b * b
        c0, c1, c2, c3, c4 = _EXP_C
        j = _fma(_fma(_fma(c0, b, c1), u, _fma(c2, b, c3)), u, c4 * b)
        out = _fma(k, j, k)
        big = np.abs(n) > F32(126)
        if big.any():
            # 2^n would leave the exponent range: apply it as two factors s1 * s2.
            d = np.where(n <= 0, np.uint32(0x82000000), np.uint32(0))
            s1 = (d + np.uint32(0x7F000000)).view(F32)
            s2 = (e - d).view(F32)
            huge = np.abs(n) > F32(192)
            slow = np.where(huge, s1 * s1, _fma(s2, j, s2) * s1)
            out = np.where(big, slow, out)
    return out


def silu_mul_ggml(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """:func:`~tedchat.wafer.numerics.silu_mul` as ggml computes it: ``gate / (1 +
    expf(-gate)) * up`` with :func:`ggml_expf`, in float32."""
    s = ggml_expf(-gate)
    s += F32(1.0)
    np.divide(gate, s, out=s)
    s *= up
    return s


def _hsum8(x: np.ndarray) -> np.ndarray:
    """Sum the last axis (8 lanes) in the order of ggml's AVX horizontal sum."""
    a = x[..., 4:] + x[..., :4]
    b = a[..., :2] + a[..., 2:]
    return b[..., 0] + b[..., 1]


def _dot_lanes(a: np.ndarray, b: np.ndarray, exact_products: bool) -> np.ndarray:
    """``a @ b.swapaxes(-1, -2)`` for ``a`` ``[B, M, K]``, ``b`` ``[B, N, K]`` (float32) summed
    as llama.cpp's tiled CPU matrix product sums: 8 lanes, lane l accumulating elements
    ``l, l+8, l+16, ...`` with fused multiply-adds, then a horizontal sum.

    ``exact_products`` says every float32 product is exact (float16 inputs), so plain float32
    adds are the fused ones. K is padded with zeros to a multiple of 8 (adding exact zeros
    changes nothing); rows of ``a`` run in blocks to bound the temporary lanes.
    """
    nb, m, k = a.shape
    n = b.shape[1]
    pad = -k % 8
    if pad:
        a = np.concatenate([a, np.zeros((nb, m, pad), dtype=F32)], axis=-1)
        b = np.concatenate([b, np.zeros((nb, n, pad), dtype=F32)], axis=-1)
    steps = (k + pad) // 8
    a4 = a.reshape(nb, m, 1, steps, 8)
    b4 = b.reshape(nb, 1, n, steps, 8)
    out = np.empty((nb, m, n), dtype=F32)
    rows = max(1, (1 << 21) // max(1, nb * n * 8))
    for r0 in range(0, m, rows):
        ar = a4[:, r0 : r0 + rows]
        acc = np.zeros((nb, ar.shape[1], n, 8), dtype=F32)
        for s in range(steps):
            if exact_products:
                acc += ar[..., s, :] * b4[..., s, :]
            else:
                acc = _fma(ar[..., s, :], b4[..., s, :], acc)
        out[:, r0 : r0 + rows] = _hsum8(acc)
    return out


def _dot_vec(a: np.ndarray, b: np.ndarray, exact_products: bool) -> np.ndarray:
    """:func:`_dot_lanes` summed as ggml's float16/float32 dot product sums, which llama.cpp
    uses when the product has a single column (one token): 4 accumulators of 8 lanes over
    steps of 32 elements (fused multiply-adds), reduced pairwise (0+2, 1+3, then together),
    the lanes by two horizontal adds; then the last ``K % 32`` products one by one, in float64
    for float16 inputs (``exact_products``), in float32 for float32 ones."""
    nb, m, k = a.shape
    n = b.shape[1]
    main = k - k % 32
    steps = main // 32
    a4 = a[..., :main].reshape(nb, m, 1, steps, 4, 8)
    b4 = b[..., :main].reshape(nb, 1, n, steps, 4, 8)
    acc = np.zeros((nb, m, n, 4, 8), dtype=F32)
    for s in range(steps):
        if exact_products:
            acc += a4[..., s, :, :] * b4[..., s, :, :]
        else:
            acc = _fma(a4[..., s, :, :], b4[..., s, :, :], acc)
    x = (acc[..., 0, :] + acc[..., 2, :]) + (acc[..., 1, :] + acc[..., 3, :])
    t = x[..., :4] + x[..., 4:]
    out = (t[..., 0] + t[..., 1]) + (t[..., 2] + t[..., 3])
    if main < k:
        tail = a[:, :, None, main:] * b[:, None, :, main:]  # float32 products
        if exact_products:
            out = (out + tail.sum(axis=-1, dtype=np.float64)).astype(F32)
        else:
            for i in range(k - main):
                out += tail[..., i]
    return out


def _ggml_dot(a: np.ndarray, b: np.ndarray, exact_products: bool, columns: int) -> np.ndarray:
    """``a @ b.swapaxes(-1, -2)`` summed as llama.cpp's CPU matrix product for a product of
    ``columns`` activation columns (tokens): the tiled order from 2 on, the dot-product order
    for one."""
    if columns == 1:
        return _dot_vec(a, b, exact_products)
    return _dot_lanes(a, b, exact_products)


def _softmax_ggml(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis as ggml's CPU kernel rounds it (scores already scaled and
    masked): :func:`ggml_expf` of ``score - max``, summed in blocks of 8 (horizontal sum in
    float32, blocks in float64), then multiplied by the float32 reciprocal of the sum."""
    scores -= scores.max(axis=-1, keepdims=True)
    e = ggml_expf(scores)
    n = e.shape[-1]
    pad = -n % 8
    blocks = np.concatenate([e, np.zeros((*e.shape[:-1], pad), dtype=F32)], axis=-1) if pad else e
    blocks = blocks.reshape(*e.shape[:-1], (n + pad) // 8, 8)
    total = _hsum8(blocks).sum(axis=-1, dtype=np.float64, keepdims=True)
    e *= (1.0 / total).astype(F32)
    return e


def _libm_cos_sin(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``cosf``/``sinf`` of float32 ``angles`` from the C library (the one llama.cpp's
    RoPE calls; glibc's are not always the nearest float), else correctly rounded ones."""
    import ctypes
    import ctypes.util

    flat = np.ascontiguousarray(angles, dtype=F32).reshape(-1)
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        cosf, sinf = libm.cosf, libm.sinf
    except (OSError, AttributeError):
        wide = flat.astype(np.float64)
        return (
            np.cos(wide).astype(F32).reshape(angles.shape),
            np.sin(wide).astype(F32).reshape(angles.shape),
        )
    for f in (cosf, sinf):
        f.restype = ctypes.c_float
        f.argtypes = [ctypes.c_float]
    # Each distinct angle once: low-frequency columns repeat a lot at small positions.
    uniq, inverse = np.unique(flat, return_inverse=True)
    c = np.fromiter((cosf(float(a)) for a in uniq), dtype=F32, count=uniq.size)
    s = np.fromiter((sinf(float(a)) for a in uniq), dtype=F32, count=uniq.size)
    return c[inverse].reshape(angles.shape), s[inverse].reshape(angles.shape)


def _round_f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).astype(F32)


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest even), as ggml converts float32 to bf16."""
    u = np.ascontiguousarray(x, dtype=F32).view(np.uint32)
    r = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) & np.uint32(0xFFFF0000)
    nan = np.isnan(x)
    if nan.any():
        r[nan] = u[nan] & np.uint32(0xFFFF0000) | np.uint32(0x00400000)
    return r.view(F32)


def _q8_blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 / Q8_1 blocks of ``x`` ``[T, n]`` as ggml's x86 kernels make them: blocks of 32
    along n, ``q = round_half_even(x * (127 / amax))`` and ``d = amax / 127``. Returns ``q``
    ``[T, n / 32, 32]`` (integers in float32) and ``d`` ``[T, n / 32]`` before its rounding
    to float16 for storage."""
    t, n = x.shape
    xb = x.reshape(t, n // 32, 32)
    amax = np.abs(xb).max(axis=-1)
    inv = np.zeros_like(amax)
    np.divide(F32(127.0), amax, out=inv, where=amax > 0)
    q = xb * inv[..., None]
    np.rint(q, out=q)
    return q, amax / F32(127.0)


def _quantize_q8(x: np.ndarray, sums: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Q8_0 / Q8_1 rounding of ``x`` ``[T, n]`` (see :func:`_q8_blocks`), dequantized:
    ``fp16(d) * q``; and when ``sums`` (Q8_1) the per-block error ``fp16(d * sum(q)) -
    fp16(d) * sum(q)`` ``[T, n / 32]`` of Q8_1's stored block sum, which the Q4_1/Q5_1 dot
    products multiply by each weight block's offset."""
    q, d = _q8_blocks(x)
    d16 = _round_f16(d)
    xq = (q * d16[..., None]).reshape(x.shape)
    if not sums:
        return xq, None
    qsum = q.sum(axis=-1)  # an exact integer in float32: |sum| <= 32 * 127
    return xq, _round_f16(d * qsum) - d16 * qsum


def _quantize_q8_k(x: np.ndarray) -> np.ndarray:
    """Q8_K rounding of ``x`` ``[T, n]``: blocks of 256, float32 scale ``max / -127`` where
    ``max`` is the block's (first) largest-magnitude value; ``q = min(127, round(x / d))``."""
    t, n = x.shape
    xb = x.reshape(t, n // 256, 256)
    at = np.abs(xb).argmax(axis=-1)
    peak = np.take_along_axis(xb, at[..., None], axis=-1)[..., 0]
    iscale = np.zeros_like(peak)
    np.divide(F32(-127.0), peak, out=iscale, where=peak != 0)
    q = xb * iscale[..., None]
    np.rint(q, out=q)
    np.minimum(q, F32(127.0), out=q)
    d = np.zeros_like(iscale)
    np.divide(F32(1.0), iscale, out=d, where=iscale != 0)
    return (q * d[..., None]).reshape(t, n)


def round_activations(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` ``[T, n]`` as llama.cpp's CPU backend rounds it for a product with weights whose
    ``vec_dot_type`` is ``kind`` (see :func:`tedchat.wafer.gguf_weights.vec_dot_type`).

    Returns the rounded float32 values and, for ``"q8_1"``, the per-block sum errors (see
    :func:`_quantize_q8`); integer block dot products are exact, so multiplying the rounded
    values by the dequantized weights in float32 reproduces llama.cpp up to summation order.
    """
    if kind == "q8_0":
        return _quantize_q8(x, sums=False)
    if kind == "q8_1":
        return _quantize_q8(x, sums=True)
    if kind == "q8_K":
        return _quantize_q8_k(x), None
    if kind == "f16":
        return _round_f16(x), None
    if kind == "bf16":
        return _round_bf16(x), None
    return x, None


def _hsum8_first(acc: np.ndarray) -> np.ndarray:
    """:func:`_hsum8` over the first axis (8 lanes)."""
    a = acc[4:] + acc[:4]
    b = a[:2] + a[2:]
    return b[0] + b[1]


# Temporaries of the exact block product: 8 lanes x rows x columns elements per step (small
# enough for the L2 cache; measured fastest).
_LANE_ELEMENTS = 1 << 16


def _block_product(
    x: np.ndarray, ints: np.ndarray, blocks: QuantBlocks, a: int, b: int, kind: str
) -> np.ndarray:
    """``x @ W[:, a:b]`` for 32-weight block columns, summed bit for bit as ggml's AVX2 dot
    products (and llama.cpp's tiled ones) sum them.

    Per block, the integer dot product of the Q8 activations with the weight integers is
    exact; ggml splits it into 8 lanes of 4 consecutive elements, accumulates each lane over
    the blocks with ``fma(d_w * d_x, lane, acc)`` in float32 and adds the lanes by a horizontal
    sum; for Q4_1/Q5_1 it then adds ``sum over blocks of m_w * s_x`` (Q8_1's float16 block
    sums), also by fused multiply-adds. ``ints`` is ``blocks.ints[..., a:b]`` as float32
    ``[in / 32, 8, 4, b - a]``.
    """
    t = x.shape[0]
    q, d = _q8_blocks(x)
    nb = q.shape[1]
    dx = _round_f16(d).astype(np.float64)
    sx = _round_f16(d * q.sum(axis=-1)) if kind == "q8_1" else None
    lanes_x = q.reshape(t, nb, 8, 4).transpose(1, 2, 0, 3)  # [block, lane, T, 4]
    out = np.empty((t, b - a), dtype=F32)
    if sx is not None and blocks.mins is not None:
        # Q4_1/Q5_1: the offsets' sum, a float32 chain over the blocks of its own.
        mins = blocks.mins[:, a:b]
        summs = np.zeros((t, b - a), dtype=F32)
        for k in range(nb):
            summs = _fma(sx[:, k, None], mins[k], summs)
    else:
        summs = None
    rows = min(t, 256)
    cols = max(8, _LANE_ELEMENTS // (8 * rows))
    for c0 in range(a, b, cols):
        c1 = min(b, c0 + cols)
        n = c1 - c0
        w = ints[..., c0 - a : c1 - a]
        scales = blocks.scales[:, c0:c1].astype(np.float64)
        for r0 in range(0, t, rows):
            r1 = min(t, r0 + rows)
            acc = np.zeros((8, r1 - r0, n), dtype=F32)
            dd = np.empty((r1 - r0, n), dtype=np.float64)
            wide = np.empty(acc.shape, dtype=np.float64)
            for k in range(nb):
                np.matmul(lanes_x[k, :, r0:r1], w[k], out=wide)  # exact integers
                np.multiply(dx[r0:r1, k, None], scales[k], out=dd)  # exact: fp16 x fp16
                wide *= dd  # exact in float64
                # Added in float64, rounded once to float32: a fused multiply-add.
                np.add(wide, acc, out=acc, dtype=np.float64, casting="same_kind")
            out[r0:r1, c0 - a : c1 - a] = _hsum8_first(acc)
    if summs is not None:
        out += summs
    return out


class _LlamaCppMatmul:
    """``x @ w`` as llama.cpp's CPU backend computes it for the GGUF tensors behind ``w``:
    ``x`` rounded per column group to the weight type's ``vec_dot_type`` (fused matrices may
    join tensors of different types), and with ``sum_order`` the products summed in ggml's
    order where it is known: 32-weight block types (Q4_0 ... Q8_0) and F16/F32 weights."""

    def __init__(self, w: Panels, source: MatrixSource | None, sum_order: bool) -> None:
        self.w = w
        self.blocks = source.blocks if source is not None else None
        if source is not None and source.has_blocks and self.blocks is None:
            raise ValueError("block integers not loaded (see load_quant_blocks)")
        groups: list[list] = []
        for s in source.slices if source is not None else ():
            kind = vec_dot_type(s.qtype)
            how = "plain"
            if sum_order and s.qtype in BLOCK_QUANT_TYPES:
                how = "blocks"
            elif sum_order and kind in ("f16", "f32"):
                how = "lanes"
            if groups and groups[-1][1] == s.start and groups[-1][2:] == [kind, how]:
                groups[-1][1] = s.stop
            else:
                groups.append([s.start, s.stop, kind, how])
        if not groups:
            groups = [[0, w.shape[1], "f32", "lanes" if sum_order else "plain"]]
        self.groups = [tuple(g) for g in groups]
        # The block integers as float32 (BLAS computes their lane sums exactly).
        self.ints = {
            (a, b): self.blocks.ints[:, :, a:b].astype(F32).reshape(-1, 8, 4, b - a)
            for a, b, _, how in self.groups
            if how == "blocks" and self.blocks is not None
        }
        # tinyBLAS reads F16/F32 weights row by row: (out, in) rows for the lane order.
        self.rows = {
            (a, b): np.ascontiguousarray(w.dense(a, b).T)[None]
            for a, b, _, how in self.groups
            if how == "lanes"
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(self.groups) == 1:
            return self._product(x, *self.groups[0])
        out = np.empty((x.shape[0], self.w.shape[1]), dtype=F32)
        for group in self.groups:
            out[:, group[0] : group[1]] = self._product(x, *group)
        return out

    def _product(self, x: np.ndarray, a: int, b: int, kind: str, how: str) -> np.ndarray:
        if how == "blocks" and self.blocks is not None:
            return _block_product(x, self.ints[(a, b)], self.blocks, a, b, kind)
        xr, sum_err = round_activations(x, kind)
        if how == "lanes":
            exact = kind == "f16"
            return _ggml_dot(xr[None], self.rows[(a, b)], exact, xr.shape[0])[0]
        y = self.w.matmul(xr, a, b)
        if sum_err is not None and self.blocks is not None and self.blocks.mins is not None:
            y += sum_err @ self.blocks.mins[:, a:b]
        return y


# --------------------------------------------------------------------------- the rounded model


class GgmlRope(Rope):
    """:class:`~tedchat.wafer.numerics.Rope` as ggml computes it: its float32 angles, the C
    library's ``cosf``/``sinf``, and the rotation with fused multiply-adds."""

    def _tables(
        self, config: LlamaConfig, context: int, freq_factors: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return _libm_cos_sin(self._ggml_angles(config, context, freq_factors))

    def _ggml_angles(
        self, config: LlamaConfig, context: int, freq_factors: np.ndarray | None
    ) -> np.ndarray:
        """Angles as ggml's CPU RoPE computes them, float32 throughout: ``theta = pos``,
        multiplied by ``powf(base, -2/n_rot)`` once per pair, divided by the frequency factor,
        times the frequency scale. The running product drifts by a few float32 ulps per pair
        (up to ~1e-3 rad at position 500)."""
        half = self.n_rot // 2
        exponent = F32(-2.0) / F32(self.n_rot)
        step = F32(np.float64(F32(config.rope_theta)) ** np.float64(exponent))
        theta = np.arange(context, dtype=F32)
        angles = np.empty((context, half), dtype=F32)
        for i in range(half):
            angles[:, i] = theta
            theta = theta * step
        if freq_factors is not None:
            angles /= freq_factors.astype(F32)
        freq_scale = F32(1.0) / F32(config.rope_scaling_factor)
        if freq_scale != 1:
            angles *= freq_scale
        return angles

    def apply(self, x: np.ndarray, positions: np.ndarray) -> None:
        """Rotate ``x`` (``[T, heads, head_dim]``, row t at ``positions[t]``) in place."""
        c = self.cos[positions][:, None, :]
        s = self.sin[positions][:, None, :]
        x0 = x[..., 0 : self.n_rot : 2]
        x1 = x[..., 1 : self.n_rot : 2]
        # ggml's x0*cos - x1*sin compiles to fma(x0, cos, -(x1*sin)), likewise the other.
        r0 = _fma(x0, c, -(x1 * s))
        x1[...] = _fma(x0, s, x1 * c)
        x0[...] = r0


class RoundedLayer(Layer):
    """A :class:`~tedchat.wafer.numerics.Layer` that rounds as llama.cpp's CPU backend does,
    as far as ``rounding`` says."""

    def __init__(
        self,
        weights: LayerWeights,
        config: LlamaConfig,
        rope: Rope,
        rounding: LlamaCppRounding,
    ) -> None:
        super().__init__(weights, config, rope)
        self.rounding = rounding
        # ggml scales the scores (1.0f / sqrtf(head_dim)) rather than q.
        self._scale = F32(1.0) / np.sqrt(F32(config.head_dim))
        self._kv_f16 = rounding.kv_f16
        self._ggml_attention = rounding.attention
        if rounding.rms_norm:
            self._norm = rms_norm_ggml
        if rounding.silu:
            self._silu = silu_mul_ggml
        self._mm: dict[str, _LlamaCppMatmul] | None = None
        if rounding.activations:
            self._mm = {
                name: _LlamaCppMatmul(
                    getattr(self, name), weights.sources.get(name), rounding.sum_order
                )
                for name in ("wqkv", "wo", "w_gate_up", "w_down")
            }

    def _product(self, x: np.ndarray, name: str) -> np.ndarray:
        if self._mm is None:
            return super()._product(x, name)
        return self._mm[name](x)

    def _attend(
        self, q: np.ndarray, k: np.ndarray, v: np.ndarray, kv: KVCache, start: int
    ) -> np.ndarray:
        cfg = self.config
        nkv, hd = cfg.n_kv_heads, cfg.head_dim
        g = cfg.n_heads // nkv
        t = q.shape[0]
        end = start + t
        kc, vc = kv.k[self.index], kv.v[self.index]
        f16 = self._kv_f16
        kc[start:end] = k.astype(np.float16) if f16 else k
        vc[start:end] = v.astype(np.float16) if f16 else v
        kv.lengths[self.index] = end

        qg = q.reshape(t, nkv, g, hd).transpose(1, 2, 0, 3).reshape(nkv, g * t, hd)
        if f16:
            qg = _round_f16(qg)
        ggml = self._ggml_attention
        if ggml:
            # A float32 cache takes the dot-product path whatever T: llama.cpp's tiled product
            # wants contiguous activations, and q is a permuted view it converts only to f16.
            scores = _ggml_dot(qg, kc[:end].transpose(1, 0, 2), f16, t if f16 else 1)
        else:
            scores = qg @ kc[:end].transpose(1, 2, 0)  # [kv_head, group*T, end]
        scores *= self._scale
        if t > 1:
            s4 = scores.reshape(nkv, g, t, end)
            s4 += causal_mask(t, start, end)
        if ggml:
            scores = _softmax_ggml(scores)
        else:
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
        if f16:
            scores = _round_f16(scores)
        if ggml:
            # llama.cpp runs p.v over its whole cache, a multiple of 32 positions: zeros past
            # ``end`` only matter to where the one-token dot product puts its tail.
            vt = vc[:end].transpose(1, 2, 0)
            pad = -end % 32
            if pad:
                scores = np.concatenate([scores, np.zeros((*scores.shape[:2], pad), F32)], -1)
                vt = np.concatenate([vt, np.zeros((*vt.shape[:2], pad), F32)], -1)
            out = _ggml_dot(scores, vt, f16, t)
        else:
            out = scores @ vc[:end].transpose(1, 0, 2)  # [kv_head, group*T, d]
        return out.reshape(nkv, g, t, hd).transpose(2, 0, 1, 3).reshape(t, cfg.q_dim)


class RoundedModel(Model):
    """A :class:`~tedchat.wafer.numerics.Model` that reproduces llama.cpp's CPU rounding.

    ``rounding`` (default: all of it) says which roundings; with ``activations`` the integer
    form of 32-weight block matrices is loaded into ``weights`` if it is not there yet.
    """

    def __init__(
        self,
        weights: LlamaWeights,
        context: int | None = None,
        rounding: LlamaCppRounding | None = None,
    ) -> None:
        self.rounding = rounding or LlamaCppRounding()
        """llama.cpp's roundings this model reproduces."""
        if self.rounding.activations:
            load_quant_blocks(weights)
        super().__init__(weights, context)
        self._head: _LlamaCppMatmul | None = None
        if self.rounding.activations:
            self._head = _LlamaCppMatmul(
                self.output, weights.output_source, self.rounding.sum_order
            )

    def _new_rope(self) -> Rope:
        cls = GgmlRope if self.rounding.rope else Rope
        return cls(self.config, self.context, self.weights.rope_freq_factors)

    def _new_layer(self, weights: LayerWeights) -> Layer:
        return RoundedLayer(weights, self.config, self.rope, self.rounding)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        context: int | None = None,
        mem_available: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        rounding: LlamaCppRounding | None = None,
    ) -> RoundedModel:
        """Load a Llama GGUF (see :func:`tedchat.wafer.gguf_weights.load_weights`) to compute
        with llama.cpp's ``rounding`` (default: all of it)."""
        rounding = rounding or LlamaCppRounding()
        weights = load_weights(
            path,
            mem_available=mem_available,
            progress=progress,
            quant_blocks=rounding.activations,
        )
        return cls(weights, context, rounding)

    def final_norm_and_logits(self, h: np.ndarray) -> np.ndarray:
        norm = rms_norm_ggml if self.rounding.rms_norm else rms_norm
        hn = norm(h, self.output_norm, self._eps)
        return self.output.matmul(hn) if self._head is None else self._head(hn)


def with_rounding(model: Model, rounding: LlamaCppRounding | None) -> Model:
    """``model``'s weights (shared, not copied) and context under llama.cpp's ``rounding``, or
    under the plain float32 numerics for None; ``model`` itself if it already computes so."""
    current = model.rounding if isinstance(model, RoundedModel) else None
    if rounding == current:
        return model
    if rounding is None:
        return Model(model.weights, model.context)
    return RoundedModel(model.weights, model.context, rounding)

"""Llama weights from a GGUF file, dequantized once to float32 for the NumPy numerics.

The `gguf` package reads the file; `gguf.quants.dequantize` turns every tensor type it knows
(F32, F16, BF16, Q4_0 ... Q8_0, the K-quants, the I-quants) into float32. Weights are stored in
the layout the forward pass wants, so that a token reads each matrix exactly once, front to back:

* every matrix is float32, an ``(in, out)`` matrix applied as ``x @ W`` and stored as
  64-column panels (:class:`tedchat.wafer.kernels.Panels`), each ``(in, 64)`` contiguous:
  the row-invariant kernel streams a panel once for every row of a decode step, and a prompt
  chunk runs a GEMM per panel;
* q, k and v are fused into one ``(hidden, q_dim + 2 * kv_dim)`` matrix, gate and up into one
  ``(hidden, 2 * ffn)`` matrix, so a layer costs four matrix products per token;
* q and k keep the row order GGUF stores them in (permuted for llama.cpp's "normal" RoPE, which
  rotates adjacent pairs), so :mod:`tedchat.wafer.numerics` applies RoPE exactly as llama.cpp does.

Tied embeddings are held once, as the ``(hidden, vocab)`` output matrix; embedding lookup gathers
its columns.

Each matrix also records which GGUF tensors and types its columns came from
(:class:`MatrixSource`), and on request the integer form of its 32-weight blocks
(:class:`QuantBlocks`): what :mod:`tedchat.wafer.llamacpp_rounding` needs to reproduce
llama.cpp's own rounding of a quantized file. The plain numerics need neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tedchat.errors import ModelFormatError, WaferModelError
from tedchat.models.memory import mem_available_bytes
from tedchat.wafer.kernels import Panels

# Bytes of float32 output dequantized per step: bounds the transient memory of loading and
# paces progress reports.
_CHUNK_BYTES = 8 << 20

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)`` of float32 weights while loading."""

# ggml type ids (`gguf.GGMLQuantizationType`) of the 32-weight block types whose integer form
# :class:`QuantBlocks` holds, with each block's size in bytes: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
_BLOCK_BYTES = {2: 18, 3: 20, 6: 22, 7: 24, 8: 34}
_OFFSET_BLOCK_TYPES = frozenset({3, 7})  # Q4_1, Q5_1: blocks store an offset m beside d
BLOCK_QUANT_TYPES = frozenset(_BLOCK_BYTES)
"""ggml type ids whose weights :class:`QuantBlocks` can hold in integer form."""

# What llama.cpp's CPU backend rounds the activations to before a product with weights of each
# type: ggml's ``vec_dot_type`` type trait. Q8_0/Q8_1: blocks of 32, fp16 scale (Q8_1 also an
# fp16 block sum); Q8_K: blocks of 256, float32 scale; f16/bf16: elementwise.
_VEC_DOT_TYPES = {
    0: "f32",  # F32
    1: "f16",  # F16
    30: "bf16",  # BF16
    2: "q8_0",  # Q4_0
    6: "q8_0",  # Q5_0
    8: "q8_0",  # Q8_0
    20: "q8_0",  # IQ4_NL
    39: "q8_0",  # MXFP4
    3: "q8_1",  # Q4_1
    7: "q8_1",  # Q5_1
    **dict.fromkeys(range(10, 15), "q8_K"),  # Q2_K ... Q6_K
    **dict.fromkeys((16, 17, 18, 19, 21, 22, 23, 29), "q8_K"),  # the I-quants on 256 blocks
    34: "q8_K",  # TQ1_0
    35: "q8_K",  # TQ2_0
}


def vec_dot_type(qtype: int) -> str:
    """How llama.cpp's CPU backend rounds activations multiplied by weights of ``qtype``.

    One of ``"f32"`` (not at all), ``"f16"``, ``"bf16"``, ``"q8_0"``, ``"q8_1"``, ``"q8_K"``;
    ``"f32"`` for types not listed here.
    """
    return _VEC_DOT_TYPES.get(int(qtype), "f32")


@dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a Llama-architecture model, read from GGUF metadata."""

    name: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    ffn: int
    vocab: int
    context_length: int
    head_dim: int
    rope_theta: float
    rms_eps: float
    n_rot: int
    """Leading dimensions of each head that RoPE rotates (== head_dim for Llama)."""
    rope_scaling: str = "none"
    """``"none"`` or ``"linear"`` (positions divided by ``rope_scaling_factor``)."""
    rope_scaling_factor: float = 1.0
    rope_freq_factors: bool = False
    """True when the file carries ``rope_freqs.weight`` (Llama-3.1-style frequency scaling)."""
    tied_output: bool = True
    """True when the output head reuses the token embedding (no ``output.weight`` tensor)."""
    attn_bias: bool = False
    """True when q/k/v/o projections carry biases."""

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def qkv_dim(self) -> int:
        """Width of the fused q/k/v projection output."""
        return self.q_dim + 2 * self.kv_dim

    @property
    def layer_params(self) -> int:
        """Parameters of one transformer block (projections, FFN, norms, biases)."""
        n = self.hidden * self.qkv_dim + self.q_dim * self.hidden + 3 * self.hidden * self.ffn
        n += 2 * self.hidden
        if self.attn_bias:
            n += self.qkv_dim + self.hidden
        return n

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        """Output norm plus the output matrix (shared with the embedding when tied)."""
        return self.hidden + self.vocab * self.hidden

    @property
    def float32_bytes(self) -> int:
        """Bytes of all weights once dequantized to float32 (tied matrices counted once)."""
        n = self.n_layers * self.layer_params + self.head_params
        if not self.tied_output:
            n += self.embedding_params
        if self.rope_freq_factors:
            n += self.n_rot // 2
        return 4 * n

    @property
    def bytes_per_token(self) -> int:
        """Float32 weight bytes one decoded token streams: every layer matrix and the head."""
        return 4 * (self.n_layers * self.layer_params + self.head_params)

    def kv_bytes_per_position(self, n_layers: int | None = None) -> int:
        """Float32 KV-cache bytes one position takes over ``n_layers`` (default: all) layers."""
        layers = self.n_layers if n_layers is None else n_layers
        return 4 * 2 * self.kv_dim * layers


@dataclass(frozen=True)
class WeightSlice:
    """Columns ``start:stop`` of a fused matrix came from GGUF tensor ``name`` of ``qtype``."""

    name: str
    qtype: int
    """A `gguf.GGMLQuantizationType` value."""
    start: int
    stop: int


@dataclass
class QuantBlocks:
    """The integer form of a matrix's 32-weight blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 columns):
    weight ``[32 b + j, o] = scales[b, o] * ints[b, j, o] + mins[b, o]``, exactly as the file
    stores it. Columns of other types hold zeros."""

    ints: np.ndarray
    """``(in // 32, 32, out)`` int8."""
    scales: np.ndarray
    """``(in // 32, out)`` float32 (float16 in the file)."""
    mins: np.ndarray | None = None
    """``(in // 32, out)`` float32 for Q4_1/Q5_1 columns (zero elsewhere); None without any."""


@dataclass
class MatrixSource:
    """Where the columns of one ``(in, out)`` matrix came from, for numerics that mimic the
    quantized file (see :mod:`tedchat.wafer.llamacpp_rounding`).
    """

    slices: tuple[WeightSlice, ...]
    blocks: QuantBlocks | None = None
    """Read only on request (``load_weights(quant_blocks=True)`` or :func:`load_quant_blocks`):
    as large as the int8 weights, on top of the float32 ones."""

    @property
    def has_blocks(self) -> bool:
        """True when some columns are of a type :class:`QuantBlocks` holds."""
        return any(s.qtype in _BLOCK_BYTES for s in self.slices)


@dataclass
class LayerWeights:
    """One transformer block's float32 weights, in the layout the forward pass streams."""

    index: int
    attn_norm: np.ndarray  # (hidden,)
    wqkv: Panels  # (hidden, q_dim + 2 * kv_dim): [q | k | v] columns
    wo: Panels  # (q_dim, hidden)
    ffn_norm: np.ndarray  # (hidden,)
    w_gate_up: Panels  # (hidden, 2 * ffn): [gate | up] columns
    w_down: Panels  # (ffn, hidden)
    bqkv: np.ndarray | None = None  # (q_dim + 2 * kv_dim,)
    bo: np.ndarray | None = None  # (hidden,)
    sources: dict[str, MatrixSource] = field(default_factory=dict)
    """GGUF tensors and types behind ``wqkv``, ``wo``, ``w_gate_up`` and ``w_down``."""

    @property
    def nbytes(self) -> int:
        matrices = (self.wqkv, self.wo, self.w_gate_up, self.w_down)
        vectors = (a for a in (self.attn_norm, self.ffn_norm, self.bqkv, self.bo) if a is not None)
        return sum(m.nbytes for m in matrices) + sum(v.nbytes for v in vectors)


@dataclass
class LlamaWeights:
    """All float32 weights of a Llama model."""

    config: LlamaConfig
    path: Path
    layers: list[LayerWeights]
    output_norm: np.ndarray  # (hidden,)
    output: Panels  # (hidden, vocab)
    token_embd: np.ndarray | None = None  # (vocab, hidden); None when tied (gather `output`)
    rope_freq_factors: np.ndarray | None = None  # (n_rot // 2,)
    metadata: dict[str, Any] = field(default_factory=dict)
    """Scalar and string metadata of the file (large arrays such as the vocabulary omitted)."""
    output_source: MatrixSource | None = None
    """GGUF tensor and type behind ``output`` (``token_embd.weight`` when tied)."""

    def embedding_rows(self, token_ids: np.ndarray) -> np.ndarray:
        """Embedding vectors of ``token_ids`` as a C-contiguous ``(len, hidden)`` float32 array."""
        if self.token_embd is not None:
            return self.token_embd[token_ids]
        return self.output.columns(token_ids)

    @property
    def nbytes(self) -> int:
        n = sum(layer.nbytes for layer in self.layers) + self.output_norm.nbytes
        n += self.output.nbytes
        for a in (self.token_embd, self.rope_freq_factors):
            if a is not None:
                n += a.nbytes
        return n


# --------------------------------------------------------------------------- reading the file


def open_gguf(path: Path) -> Any:
    """A `gguf.GGUFReader` on ``path`` with every tensor inside the file, or WaferModelError."""
    import gguf

    if not path.exists():
        raise WaferModelError(f"model file not found: {path}")
    if not path.is_file():
        raise WaferModelError(f"not a file: {path}")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise WaferModelError(f"cannot read {path}: {e.strerror or e}") from e
    if size < 4 or magic != b"GGUF":
        raise WaferModelError(f"not a GGUF file (bad magic): {path}")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:
        # The reader walks the header with memmap views; a file cut short surfaces as whatever
        # indexing or reshaping error the short view produces.
        raise WaferModelError(f"truncated or corrupt GGUF {path}: {_one_line(e)}") from e
    if reader.byte_order != "I":
        raise WaferModelError(f"GGUF {path} has the other byte order; convert it to this machine's")
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise WaferModelError(
                f"truncated or corrupt GGUF {path}: tensor {t.name} ends at byte "
                f"{t.data_offset + t.n_bytes:,} but the file has {size:,} bytes"
            )
    return reader


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class _Meta:
    """Typed access to GGUF metadata with errors that name the file and key.

    ``lookup(key)`` gives a key's value or None; it may raise on an unreadable value.
    """

    def __init__(self, lookup: Callable[[str], Any], path: Path) -> None:
        self.lookup = lookup
        self.path = path

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self.lookup(key)
        except Exception as e:
            raise WaferModelError(
                f"truncated or corrupt GGUF {self.path}: metadata {key!r} unreadable"
            ) from e
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise WaferModelError(
                f"GGUF {self.path} lacks required metadata {key!r}: not a complete Llama model"
            )
        return value

    def int(self, key: str, default: int | None = None) -> int:
        value = self.require(key) if default is None else self.get(key, default)
        if isinstance(value, list):
            # Some converters write per-layer arrays; a uniform one is the same as a scalar.
            if not value or any(v != value[0] for v in value):
                raise WaferModelError(
                    f"GGUF {self.path}: per-layer {key!r} values differ; "
                    "the wafer engine runs uniform Llama blocks"
                )
            value = value[0]
        try:
            return int(value)
        except (TypeError, ValueError) as e:
            raise WaferModelError(f"GGUF {self.path}: metadata {key!r} is not a number") from e

    def float(self, key: str, default: float | None = None) -> float:
        value = self.require(key) if default is None else self.get(key, default)
        try:
            return float(value)
        except (TypeError, ValueError) as e:
            raise WaferModelError(f"GGUF {self.path}: metadata {key!r} is not a number") from e


def _scalar_metadata(reader: Any) -> dict[str, Any]:
    import gguf

    out: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or not fld.types:
            continue
        if fld.types[0] == gguf.GGUFValueType.ARRAY:
            continue  # the vocabulary and merges: tens of thousands of entries
        try:
            out[key] = fld.contents()
        except Exception:
            continue
    return out


def _reader_lookup(reader: Any) -> Callable[[str], Any]:
    def lookup(key: str) -> Any:
        fld = reader.fields.get(key)
        return None if fld is None else fld.contents()

    return lookup


def _config_from_reader(reader: Any, path: Path) -> LlamaConfig:
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    return _config_from(_reader_lookup(reader), shapes, path)


def _config_from(
    lookup: Callable[[str], Any], tensors: dict[str, tuple[int, ...]], path: Path
) -> LlamaConfig:
    """The config from metadata (``lookup``) and tensor shapes (GGUF order, by name)."""
    meta = _Meta(lookup, path)
    arch = meta.get("general.architecture")
    if arch is None:
        raise WaferModelError(f"GGUF {path} names no architecture (general.architecture)")
    if arch != "llama":
        raise WaferModelError(
            f"unsupported architecture {arch!r} in {path}: the wafer engine runs "
            "Llama-architecture models"
        )
    if meta.int("llama.expert_count", 0) > 0:
        raise WaferModelError(
            f"{path} is a mixture-of-experts Llama: the wafer engine runs dense Llama models"
        )

    hidden = meta.int("llama.embedding_length")
    n_heads = meta.int("llama.attention.head_count")
    n_kv_heads = meta.int("llama.attention.head_count_kv", n_heads)
    if n_heads <= 0 or n_kv_heads <= 0 or n_heads % n_kv_heads:
        raise WaferModelError(
            f"GGUF {path}: {n_heads} attention heads cannot share {n_kv_heads} KV heads"
        )
    head_dim = meta.int("llama.attention.key_length", hidden // n_heads)
    if meta.int("llama.attention.value_length", head_dim) != head_dim:
        raise WaferModelError(f"GGUF {path}: key and value head sizes differ")
    n_rot = meta.int("llama.rope.dimension_count", head_dim)
    if n_rot % 2 or n_rot > head_dim:
        raise WaferModelError(f"GGUF {path}: RoPE dimension count {n_rot} is invalid")

    embd = tensors.get("token_embd.weight")
    if embd is None:
        raise WaferModelError(f"GGUF {path} has no token_embd.weight tensor")
    vocab = int(embd[1]) if len(embd) == 2 else meta.int("llama.vocab_size")

    scaling = str(meta.get("llama.rope.scaling.type", "none"))
    factor = meta.float("llama.rope.scaling.factor", 1.0)
    if scaling not in ("none", "linear"):
        raise WaferModelError(
            f"GGUF {path} uses {scaling!r} RoPE scaling: the wafer engine supports none and linear"
        )
    if scaling == "linear" and factor <= 0:
        raise WaferModelError(f"GGUF {path}: RoPE scaling factor {factor} is invalid")
    if scaling == "none":
        factor = 1.0

    name = meta.get("general.name") or path.stem
    return LlamaConfig(
        name=str(name),
        n_layers=meta.int("llama.block_count"),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        ffn=meta.int("llama.feed_forward_length"),
        vocab=vocab,
        context_length=meta.int("llama.context_length"),
        head_dim=head_dim,
        rope_theta=meta.float("llama.rope.freq_base", 10000.0),
        rms_eps=meta.float("llama.attention.layer_norm_rms_epsilon"),
        n_rot=n_rot,
        rope_scaling=scaling,
        rope_scaling_factor=factor,
        rope_freq_factors="rope_freqs.weight" in tensors,
        tied_output="output.weight" not in tensors,
        attn_bias="blk.0.attn_q.bias" in tensors,
    )


def read_config(path: Path) -> LlamaConfig:
    """The model's :class:`LlamaConfig`, from the header only (nothing is dequantized).

    Read by tedchat's header reader (:mod:`tedchat.models.gguf_header`), which steps over the
    vocabulary instead of parsing it: `tedchat engines` and `wafer plan` need only the shape.
    Raises :class:`WaferModelError` for a missing, truncated, corrupt or non-Llama file.
    """
    from tedchat.models.gguf_header import read_gguf_header

    path = Path(path)
    if not path.exists():
        raise WaferModelError(f"model file not found: {path}")
    if not path.is_file():
        raise WaferModelError(f"not a file: {path}")
    try:
        info = read_gguf_header(path)
    except ModelFormatError as e:
        message = e.message
        if message.startswith("not a GGUF model file"):
            message = f"not a GGUF file (bad magic): {path}"
        elif "general.architecture" in message:
            message = f"GGUF {path} names no architecture (general.architecture)"
        raise WaferModelError(message) from e
    shapes = {t.name: t.shape for t in info.tensors}
    return _config_from(info.metadata.get, shapes, path)


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n < 10e9 else f"{n / 1e9:.0f} GB"


def check_memory(config: LlamaConfig, path: Path, *, mem_available: int | None = None) -> None:
    """Refuse a model whose float32 weights do not fit in available memory.

    ``mem_available`` (bytes) overrides /proc/meminfo; tests inject it.
    """
    need = config.float32_bytes + _CHUNK_BYTES * 4
    avail = mem_available_bytes() if mem_available is None else mem_available
    if avail is None or need <= avail:
        return
    raise WaferModelError(
        f"{config.name} ({path.name}) needs {_gb(config.float32_bytes)} of float32 weights but "
        f"only {_gb(avail)} of memory is available: run a small stand-in model (such as the "
        "bundled SmolLM2-135M) with `timing_target` set to this model to emulate its timing"
    )


# --------------------------------------------------------------------------- dequantizing


class _Loader:
    """Dequantizes tensors of one reader into preallocated float32 arrays."""

    def __init__(
        self,
        reader: Any,
        path: Path,
        total: int,
        progress: ProgressCallback | None,
        quant_blocks: bool = False,
    ) -> None:
        self.path = path
        self.tensors = {t.name: t for t in reader.tensors}
        self.total = total
        self.done = 0
        self.progress = progress
        self.quant_blocks = quant_blocks

    def tensor(self, name: str, shape: tuple[int, ...]) -> Any:
        """The reader tensor ``name``, checked to have GGUF shape ``shape`` (ne0 first)."""
        t = self.tensors.get(name)
        if t is None:
            raise WaferModelError(f"GGUF {self.path} has no tensor {name!r}")
        got = tuple(int(d) for d in t.shape)
        if got != shape:
            raise WaferModelError(
                f"GGUF {self.path}: tensor {name} has shape {list(got)}, expected {list(shape)}"
            )
        return t

    def _dequantize(self, t: Any, rows: slice) -> np.ndarray:
        from gguf.quants import dequantize

        try:
            block = dequantize(t.data[rows], t.tensor_type)
        except NotImplementedError as e:
            raise WaferModelError(
                f"GGUF {self.path}: tensor {t.name} has type {t.tensor_type.name}, which the "
                "gguf package cannot dequantize"
            ) from e
        except (ValueError, IndexError) as e:
            raise WaferModelError(
                f"truncated or corrupt GGUF {self.path}: tensor {t.name}: {_one_line(e)}"
            ) from e
        return block

    def _report(self, nbytes: int) -> None:
        self.done += nbytes
        if self.progress is not None:
            self.progress(self.done, self.total)

    def vector(self, name: str, n: int) -> np.ndarray:
        t = self.tensor(name, (n,))
        out = np.array(self._dequantize(t, slice(None)).reshape(n), dtype=np.float32, copy=True)
        self._report(out.nbytes)
        return out

    def matrix_into(self, name: str, n_in: int, n_out: int, out: Panels, start: int = 0) -> None:
        """Write tensor ``name`` (GGUF shape [n_in, n_out]) into columns ``start ..
        start + n_out`` of the ``(n_in, ...)`` matrix ``out``.

        GGUF rows are output features; they become columns of ``out``.
        """
        t = self.tensor(name, (n_in, n_out))
        step = max(1, _CHUNK_BYTES // (4 * n_in))
        for r0 in range(0, n_out, step):
            r1 = min(n_out, r0 + step)
            block = self._dequantize(t, slice(r0, r1)).reshape(r1 - r0, n_in)
            out.set_columns(start + r0, block.T)
            self._report(block.nbytes)

    def fused_into(self, parts: list[tuple[str, int]], n_in: int, out: Panels) -> MatrixSource:
        """Write tensors ``(name, n_out)`` side by side into the columns of ``out``."""
        slices = []
        start = 0
        for name, n_out in parts:
            self.matrix_into(name, n_in, n_out, out, start)
            qtype = int(self.tensors[name].tensor_type)
            slices.append(WeightSlice(name, qtype, start, start + n_out))
            start += n_out
        source = MatrixSource(tuple(slices))
        if self.quant_blocks:
            source.blocks = _quant_blocks(self.tensors, source, n_in, self.path)
        return source

    def rows_into(self, name: str, n_in: int, n_out: int, out: np.ndarray) -> None:
        """Write tensor ``name`` (GGUF shape [n_in, n_out]) into ``out`` shaped (n_out, n_in)."""
        t = self.tensor(name, (n_in, n_out))
        step = max(1, _CHUNK_BYTES // (4 * n_in))
        for r0 in range(0, n_out, step):
            r1 = min(n_out, r0 + step)
            block = self._dequantize(t, slice(r0, r1)).reshape(r1 - r0, n_in)
            out[r0:r1] = block
            self._report(block.nbytes)


def _load_layer(ld: _Loader, cfg: LlamaConfig, i: int) -> LayerWeights:
    h, q, kv, ffn = cfg.hidden, cfg.q_dim, cfg.kv_dim, cfg.ffn
    p = f"blk.{i}."
    sources = {}
    wqkv = Panels.empty(h, cfg.qkv_dim)
    qkv_parts = [(p + "attn_q.weight", q), (p + "attn_k.weight", kv), (p + "attn_v.weight", kv)]
    sources["wqkv"] = ld.fused_into(qkv_parts, h, wqkv)
    wo = Panels.empty(q, h)
    sources["wo"] = ld.fused_into([(p + "attn_output.weight", h)], q, wo)
    w_gate_up = Panels.empty(h, 2 * ffn)
    gate_up = [(p + "ffn_gate.weight", ffn), (p + "ffn_up.weight", ffn)]
    sources["w_gate_up"] = ld.fused_into(gate_up, h, w_gate_up)
    w_down = Panels.empty(ffn, h)
    sources["w_down"] = ld.fused_into([(p + "ffn_down.weight", h)], ffn, w_down)
    bqkv = bo = None
    if cfg.attn_bias:
        bqkv = np.concatenate(
            [
                ld.vector(p + "attn_q.bias", q),
                ld.vector(p + "attn_k.bias", kv),
                ld.vector(p + "attn_v.bias", kv),
            ]
        )
        bo = (
            ld.vector(p + "attn_output.bias", h)
            if p + "attn_output.bias" in ld.tensors
            else np.zeros(h, dtype=np.float32)
        )
    return LayerWeights(
        index=i,
        attn_norm=ld.vector(p + "attn_norm.weight", h),
        wqkv=wqkv,
        wo=wo,
        ffn_norm=ld.vector(p + "ffn_norm.weight", h),
        w_gate_up=w_gate_up,
        w_down=w_down,
        bqkv=bqkv,
        bo=bo,
        sources=sources,
    )


def load_weights(
    path: Path,
    *,
    mem_available: int | None = None,
    progress: ProgressCallback | None = None,
    quant_blocks: bool = False,
) -> LlamaWeights:
    """Read a Llama GGUF and dequantize every weight once to float32.

    Checks the architecture and metadata first, then refuses (before allocating anything) a
    model whose float32 weights exceed available memory; ``mem_available`` (bytes) replaces
    /proc/meminfo's MemAvailable. ``progress(done_bytes, total_bytes)`` is called as tensors
    are dequantized. ``quant_blocks`` also keeps the integer form of Q4_0/Q4_1/Q5_0/Q5_1/Q8_0
    matrices (:attr:`MatrixSource.blocks`, about a quarter of their float32 size), which
    numerics that mimic llama.cpp's rounding need. Raises :class:`WaferModelError` with one
    clear line on any problem.
    """
    path = Path(path)
    reader = open_gguf(path)
    cfg = _config_from_reader(reader, path)
    check_memory(cfg, path, mem_available=mem_available)
    ld = _Loader(reader, path, cfg.float32_bytes, progress, quant_blocks=quant_blocks)

    layers = [_load_layer(ld, cfg, i) for i in range(cfg.n_layers)]
    output_norm = ld.vector("output_norm.weight", cfg.hidden)
    output = Panels.empty(cfg.hidden, cfg.vocab)
    token_embd = None
    head = "token_embd.weight" if cfg.tied_output else "output.weight"
    output_source = ld.fused_into([(head, cfg.vocab)], cfg.hidden, output)
    if not cfg.tied_output:
        token_embd = np.empty((cfg.vocab, cfg.hidden), dtype=np.float32)
        ld.rows_into("token_embd.weight", cfg.hidden, cfg.vocab, token_embd)
    freq_factors = None
    if cfg.rope_freq_factors:
        freq_factors = ld.vector("rope_freqs.weight", cfg.n_rot // 2)
    weights = LlamaWeights(
        config=cfg,
        path=path,
        layers=layers,
        output_norm=output_norm,
        output=output,
        token_embd=token_embd,
        rope_freq_factors=freq_factors,
        metadata=_scalar_metadata(reader),
        output_source=output_source,
    )
    _check_finite(weights)
    # Dropping the reader unmaps the file, so its pages stop counting toward our memory.
    del ld, reader
    return weights


def _decode_blocks(raw: np.ndarray, qtype: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Raw blocks ``(rows, n_blocks, bytes)`` of ``qtype`` as ``(ints, d, m)``: int8
    ``(rows, n_blocks, 32)``, float32 scales and offsets ``(rows, n_blocks)`` (m None for types
    without one), so that ``weight = d * int + m``."""

    def half(lo: int) -> np.ndarray:
        return np.ascontiguousarray(raw[..., lo : lo + 2]).view(np.float16)[..., 0]

    def nibbles(qs: np.ndarray) -> np.ndarray:
        return np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int16)

    def fifth_bits(qh_at: int) -> np.ndarray:
        qh = np.ascontiguousarray(raw[..., qh_at : qh_at + 4]).view("<u4")
        return ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int16) << 4

    d = half(0).astype(np.float32)
    m = None
    if qtype == 2:  # Q4_0
        ints = nibbles(raw[..., 2:]) - 8
    elif qtype == 3:  # Q4_1
        m = half(2).astype(np.float32)
        ints = nibbles(raw[..., 4:])
    elif qtype == 6:  # Q5_0
        ints = (nibbles(raw[..., 6:]) | fifth_bits(2)) - 16
    elif qtype == 7:  # Q5_1
        m = half(2).astype(np.float32)
        ints = nibbles(raw[..., 8:]) | fifth_bits(4)
    else:  # Q8_0
        ints = np.ascontiguousarray(raw[..., 2:]).view(np.int8)
    return ints.astype(np.int8), d, m


def _quant_blocks(
    tensors: dict[str, Any], source: MatrixSource, n_in: int, path: Path
) -> QuantBlocks | None:
    """The :class:`QuantBlocks` of ``source``'s block-typed columns, else None."""
    if not source.has_blocks:
        return None
    n_blocks, n_out = n_in // 32, source.slices[-1].stop
    ints = np.zeros((n_blocks, 32, n_out), dtype=np.int8)
    scales = np.zeros((n_blocks, n_out), dtype=np.float32)
    offsets = any(s.qtype in _OFFSET_BLOCK_TYPES for s in source.slices)
    mins = np.zeros((n_blocks, n_out), dtype=np.float32) if offsets else None
    for s in source.slices:
        size = _BLOCK_BYTES.get(s.qtype)
        if size is None:
            continue
        raw = np.asarray(tensors[s.name].data)
        rows = s.stop - s.start
        if n_in % 32 or raw.size != rows * n_blocks * size:
            raise WaferModelError(f"truncated or corrupt GGUF {path}: tensor {s.name}")
        q, d, m = _decode_blocks(raw.reshape(rows, n_blocks, size), s.qtype)
        ints[:, :, s.start : s.stop] = q.transpose(1, 2, 0)
        scales[:, s.start : s.stop] = d.T
        if m is not None and mins is not None:
            mins[:, s.start : s.stop] = m.T
    return QuantBlocks(ints, scales, mins)


def load_quant_blocks(weights: LlamaWeights) -> None:
    """Fill in :attr:`MatrixSource.blocks` of ``weights`` from its file, where missing."""
    pending = [src for layer in weights.layers for src in layer.sources.values()]
    if weights.output_source is not None:
        pending.append(weights.output_source)
    pending = [s for s in pending if s.has_blocks and s.blocks is None]
    if not pending:
        return
    tensors = {t.name: t for t in open_gguf(weights.path).tensors}
    for src in pending:
        t = tensors.get(src.slices[0].name)
        if t is None:
            raise WaferModelError(f"GGUF {weights.path} has no tensor {src.slices[0].name!r}")
        src.blocks = _quant_blocks(tensors, src, int(t.shape[0]), weights.path)


def _check_finite(w: LlamaWeights) -> None:
    """Corrupt quantization scales show up as inf/NaN: catch them here, not as NaN logits."""
    named = [("output", w.output.data), ("output_norm", w.output_norm)]
    for layer in w.layers:
        matrices = (layer.wqkv, layer.wo, layer.w_gate_up, layer.w_down)
        named += [(f"layer {layer.index}", a.data) for a in matrices]
        named.append((f"layer {layer.index}", layer.attn_norm))
    for what, arr in named:
        if not math.isfinite(float(arr.sum())):
            raise WaferModelError(f"corrupt GGUF {w.path}: {what} weights are not finite")

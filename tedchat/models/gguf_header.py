"""Reading a GGUF file's header: its metadata and tensor infos, never its weights.

One reader for every part of tedchat that looks inside a GGUF without running it: the
``llamacpp`` engine's check before llama.cpp opens a file (:mod:`tedchat_llamacpp.gguf_header`
adds the architecture check), ``tedchat models info`` and ``list``, the memory check, and the
wafer engine's model shape.

What it reads, and what it does not:

- The file is read with ``os.pread`` at the offsets the header names, through a small window:
  nothing is memory-mapped and nothing past the tensor infos is touched.
- Arrays are stepped over, not read: fixed-size ones (``tokenizer.ggml.token_type``,
  ``scores``) with one seek, string arrays (the vocabulary and the merges, 100,000 strings for
  SmolLM2) by reading each string's 8-byte length and seeking past its text. So the bundled
  model's 1.8 MB header costs about 0.8 MB of reads (:attr:`GGUFInfo.bytes_read` counts them).
  Small numeric arrays (per-layer values some converters write) are kept.
- No import of the ``gguf`` package (it imports NumPy: 0.15 s); its type tables are copied
  below, and a test holds them equal to ``gguf.constants``.

Every problem becomes one :class:`~tedchat.errors.ModelFormatError` line: not GGUF, a version
llama.cpp does not read, counts that cannot fit in the file, a file cut inside its header or
inside its tensor data.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tedchat.errors import ModelFormatError

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Numeric arrays up to this many elements are kept (per-layer head counts); longer ones skipped.
SMALL_ARRAY = 1024
# Reads go through a window of this size (header fields are small and mostly adjacent).
WINDOW = 4096

# ggml tensor types: id -> (name, elements per block, bytes per block). From ggml's type traits,
# as the gguf package states them (gguf.constants.GGML_QUANT_SIZES; tests/models check it).
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
# general.file_type -> the quantisation name llama.cpp's quantize tool uses
# (gguf.constants.LlamaFileType without its MOSTLY_/ALL_ prefix).
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}

# GGUF value types -> struct format of a scalar (8: string and 9: array are read apart).
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it (its data is not read)."""

    name: str
    shape: tuple[int, ...]  # GGUF order: the fastest-varying dimension first
    ggml_type: int
    offset: int  # from the start of the tensor data

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0]


@dataclass
class GGUFInfo:
    """What the header says about a GGUF file."""

    path: Path
    version: int
    architecture: str
    n_tensors: int
    file_size: int
    data_end: int  # where the last tensor's data ends; <= file_size for a whole file
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)  # skipped arrays: their lengths
    tensors: tuple[TensorInfo, ...] = ()
    data_start: int = 0
    bytes_read: int = 0  # bytes this reader read from the file

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get("tokenizer.chat_template"))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value else None

    @property
    def template_supports_tools(self) -> bool:
        """Whether the chat template renders tool definitions (it mentions ``tools``)."""
        return "tools" in (self.chat_template or "")

    def get(self, key: str, default: Any = None) -> Any:
        """A metadata value; ``{arch}`` in ``key`` is the architecture."""
        return self.metadata.get(key.format(arch=self.architecture), default)

    @property
    def context_length(self) -> int | None:
        value = self.get("{arch}.context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def quantization(self) -> str | None:
        """The file's quantisation: ``general.file_type`` (e.g. Q4_K_M), else the tensor type
        holding the most weights."""
        ftype = self.metadata.get("general.file_type")
        if isinstance(ftype, int) and ftype in FILE_TYPES:
            return FILE_TYPES[ftype]
        counts: Counter[str] = Counter()
        for t in self.tensors:
            counts[t.type_name] += t.n_elements
        return counts.most_common(1)[0][0] if counts else None

    @property
    def vocab_size(self) -> int | None:
        return self.array_lengths.get("tokenizer.ggml.tokens")

    @property
    def layers(self) -> int | None:
        value = self.get("{arch}.block_count")
        return int(value) if isinstance(value, int) else None


def _truncated(path: Path, size: int) -> ModelFormatError:
    return ModelFormatError(
        f"truncated GGUF file: {path} ends inside its header ({size:,} bytes; "
        "an interrupted download or conversion?)"
    )


class _Reader:
    """Bounds-checked little-endian reads at a position of an open file, counting bytes read."""

    def __init__(self, fd: int, size: int, path: Path) -> None:
        self.fd = fd
        self.size = size
        self.path = path
        self.pos = 0
        self.bytes_read = 0
        self._buf = b""
        self._buf_start = 0

    def _pread(self, n: int, at: int) -> bytes:
        data = os.pread(self.fd, n, at)
        self.bytes_read += len(data)
        return data

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _truncated(self.path, self.size)
        self.pos = start + n
        lo = start - self._buf_start
        if lo >= 0 and lo + n <= len(self._buf):
            return self._buf[lo : lo + n]
        if n > WINDOW:
            data = self._pread(n, start)
        else:
            self._buf = self._pread(WINDOW, start)
            self._buf_start = start
            data = self._buf[:n]
        if len(data) < n:  # the file shrank under us
            raise _truncated(self.path, self.size)
        return data

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _truncated(self.path, self.size)
        self.pos += n

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> bytes:
        return self.take(self.scalar("<Q"))

    def skip_strings(self, count: int) -> None:
        """Step over ``count`` strings reading only their lengths (8 bytes each)."""
        if count * 8 > self.size - self.pos:
            raise _truncated(self.path, self.size)
        pos, size, fd = self.pos, self.size, self.fd
        buf, buf_start = self._buf, self._buf_start
        length = _U64.unpack_from
        read = 0
        for _ in range(count):
            if pos + 8 > size:
                raise _truncated(self.path, self.size)
            lo = pos - buf_start
            if lo >= 0 and lo + 8 <= len(buf):
                n = length(buf, lo)[0]
            else:
                raw = os.pread(fd, 8, pos)
                read += len(raw)
                if len(raw) < 8:
                    raise _truncated(self.path, self.size)
                n = length(raw)[0]
            pos += 8 + n
        self.bytes_read += read
        if pos > size:
            raise _truncated(self.path, self.size)
        self.pos = pos

    def value(self, vtype: int, key: str, lengths: dict[str, int]) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string().decode("utf-8", errors="replace")
        if vtype == _ARRAY:
            etype = self.scalar("<I")
            count = self.scalar("<Q")
            lengths[key] = count
            if etype in _SCALARS:
                fmt = _SCALARS[etype]
                width = struct.calcsize(fmt)
                if count <= SMALL_ARRAY:
                    raw = self.take(count * width)
                    return list(struct.unpack(f"<{count}{fmt[1]}", raw))
                self.skip(count * width)
                return None
            if etype == _STRING:
                self.skip_strings(count)
                return None
            if count > self.size - self.pos:  # each element takes at least one byte
                raise _truncated(self.path, self.size)
            for _ in range(count):
                self.value(etype, "", {})
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: Path, *, require_architecture: bool = True) -> GGUFInfo:
    """Parse and check ``path``'s GGUF header; :class:`ModelFormatError` says what is wrong.

    Any architecture is accepted here; whether an engine runs it is the engine's check. The
    second and later parts of a split model carry no ``general.architecture``: read them with
    ``require_architecture=False`` (their :attr:`GGUFInfo.architecture` is then ``""``).
    """
    path = Path(path)
    try:
        with path.open("rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            head = os.pread(f.fileno(), 24, 0)
            if len(head) < 4 or head[:4] != GGUF_MAGIC:
                raise ModelFormatError(f"not a GGUF model file: {path}")
            if len(head) < 24:
                raise _truncated(path, size)
            reader = _Reader(f.fileno(), size, path)
            reader.bytes_read = len(head)
            return _parse(path, reader, require_architecture)
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror or exc}") from exc


def _parse(path: Path, r: _Reader, require_architecture: bool = True) -> GGUFInfo:
    size = r.size
    r.take(4)
    version = r.scalar("<I")
    if version not in GGUF_VERSIONS:
        raise ModelFormatError(
            f"unsupported GGUF version {version} in {path} (llama.cpp reads versions 2 and 3)"
        )
    n_tensors = r.scalar("<Q")
    n_kv = r.scalar("<Q")
    # A tensor-info entry takes at least 32 bytes, a key/value at least 13: counts that could
    # not fit are a corrupt (or foreign) header, not something to loop over.
    if n_tensors * 32 > size or n_kv * 13 > size:
        raise ModelFormatError(
            f"corrupt GGUF header in {path}: {n_tensors:,} tensors and {n_kv:,} keys cannot "
            f"fit in {size:,} bytes"
        )
    metadata: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    try:
        for _ in range(n_kv):
            key = r.string().decode("utf-8", errors="replace")
            vtype = r.scalar("<I")
            value = r.value(vtype, key, lengths)
            if value is not None:
                metadata[key] = value
    except (ValueError, struct.error) as exc:
        raise ModelFormatError(f"corrupt GGUF header in {path}: {exc}") from None
    arch = metadata.get("general.architecture", "")
    if not isinstance(arch, str) or (require_architecture and not arch):
        raise ModelFormatError(f"GGUF file has no general.architecture: {path}")
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int:  # an unsigned integer in every valid file (bool is no int)
        raise ModelFormatError(
            f"corrupt GGUF header in {path}: general.alignment is {alignment!r}, not a number"
        )
    tensors = _tensor_infos(path, r, n_tensors)
    alignment = alignment if alignment > 0 else DEFAULT_ALIGNMENT
    data_start = (r.pos + alignment - 1) // alignment * alignment
    data_end = data_start + max((t.offset + t.n_bytes for t in tensors), default=0)
    if data_end > size:
        raise ModelFormatError(
            f"truncated GGUF file: {path} is {size:,} bytes but its tensors need "
            f"{data_end:,} (an interrupted download or conversion?)"
        )
    return GGUFInfo(
        path,
        version,
        arch,
        n_tensors,
        size,
        data_end,
        metadata,
        lengths,
        tuple(tensors),
        data_start,
        r.bytes_read,
    )


def _tensor_infos(path: Path, r: _Reader, n_tensors: int) -> list[TensorInfo]:
    out = []
    for _ in range(n_tensors):
        name = r.string().decode("utf-8", errors="replace")
        n_dims = r.scalar("<I")
        if n_dims > 8:
            raise ModelFormatError(
                f"corrupt GGUF header in {path}: tensor {name!r} has {n_dims} dims"
            )
        dims = tuple(r.scalar("<Q") for _ in range(n_dims))
        ggml_type = r.scalar("<I")
        offset = r.scalar("<Q")
        if ggml_type not in GGML_TYPES:
            raise ModelFormatError(
                f"unknown tensor type {ggml_type} for {name!r} in {path} "
                "(a GGUF newer than this llama.cpp?)"
            )
        out.append(TensorInfo(name, dims, ggml_type, offset))
    return out

"""Check a GGUF file before llama.cpp opens it.

llama.cpp trusts its input: a truncated download, a file that is not GGUF, or a model of an
architecture this build does not know can end in an abort or a crash instead of an error. So
the header is read here first (a small parser over ``mmap``: only the header pages are touched),
and anything wrong becomes one :class:`~tedchat.errors.ModelFormatError` line:

- the magic and the version (2 or 3: what llama.cpp reads);
- tensor and key counts that could fit in the file at all;
- every key/value and tensor-info entry inside the file (a file cut in its header);
- ``general.architecture`` present and one of :data:`SUPPORTED_ARCHITECTURES`;
- the tensor data: the file must be as long as the last tensor's end (a file cut in its data,
  the common case of an interrupted copy or conversion).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tedchat.errors import ModelFormatError

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Architectures (general.architecture) of decoder models this project's llama.cpp build runs
# (llama-cpp-python 0.3.36). Keep it to ones known to work; extend it when a new one is tried.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "llama",
    "llama4",
    "mistral3",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "gemma",
    "gemma2",
    "gemma3",
    "phi2",
    "phi3",
    "starcoder2",
    "falcon",
    "gpt2",
    "gptneox",
    "mpt",
    "bloom",
    "stablelm",
    "olmo",
    "olmo2",
    "granite",
    "granitemoe",
    "deepseek",
    "deepseek2",
    "command-r",
    "cohere2",
    "internlm2",
    "minicpm",
    "exaone",
    "chatglm",
    "glm4",
    "smollm3",
    "gpt-oss",
)

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
# Keys whose values are kept (the rest, e.g. 141,056 token strings, are skipped over).
_KEEP = ("general.", "tokenizer.chat_template", "tokenizer.ggml.model", "tokenizer.ggml.pre")


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

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get("tokenizer.chat_template"))

    def get(self, key: str, default: Any = None) -> Any:
        """A kept metadata value; ``{arch}`` in ``key`` is the architecture."""
        return self.metadata.get(key.format(arch=self.architecture), default)


def _truncated(path: Path, size: int) -> ModelFormatError:
    return ModelFormatError(
        f"truncated GGUF file: {path} ends inside its header ({size:,} bytes; "
        "an interrupted download or conversion?)"
    )


class _Reader:
    """Bounds-checked little-endian reads over a memory map of ``path``."""

    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.path = path
        self.pos = 0
        self.size = len(buf)

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _truncated(self.path, self.size)
        self.pos = start + n
        return start

    def scalar(self, fmt: str) -> Any:
        start = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.buf, start)[0]

    def string(self) -> bytes:
        n = self.scalar("<Q")
        start = self.take(n)
        return bytes(self.buf[start : start + n])

    def skip_strings(self, count: int) -> None:
        """Step over ``count`` strings (vocabularies: a tight loop, no copies)."""
        buf, pos, size = self.buf, self.pos, self.size
        length = _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise _truncated(self.path, self.size)
            pos += 8 + length(buf, pos)[0]
        if pos > size:
            raise _truncated(self.path, self.size)
        self.pos = pos

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            raw = self.string()
            return raw.decode("utf-8", errors="replace") if keep else None
        if vtype == _ARRAY:
            etype = self.scalar("<I")
            count = self.scalar("<Q")
            if etype in _SCALARS:
                # Fixed-size elements are skipped in one step (and bounds-checked by take).
                self.take(count * struct.calcsize(_SCALARS[etype]))
                return None
            if etype == _STRING:
                self.skip_strings(count)
                return None
            if count > self.size - self.pos:  # each element takes at least one byte
                raise _truncated(self.path, self.size)
            for _ in range(count):
                self.value(etype, False)
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")


def read_gguf_header(path: Path) -> GGUFInfo:
    """Parse and check ``path``'s GGUF header; :class:`ModelFormatError` says what is wrong."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(24)
            if len(head) < 4 or head[:4] != GGUF_MAGIC:
                raise ModelFormatError(f"not a GGUF model file: {path}")
            if len(head) < 24:
                raise _truncated(path, size)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror or exc}") from exc


def _parse(path: Path, buf: mmap.mmap, size: int) -> GGUFInfo:
    r = _Reader(buf, path)
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
    try:
        for _ in range(n_kv):
            key = r.string().decode("utf-8", errors="replace")
            vtype = r.scalar("<I")
            keep = key.startswith(_KEEP) or key.endswith(".context_length")
            value = r.value(vtype, keep)
            if keep and value is not None:
                metadata[key] = value
    except ValueError as exc:
        raise ModelFormatError(f"corrupt GGUF header in {path}: {exc}") from None
    arch = metadata.get("general.architecture")
    if not arch:
        raise ModelFormatError(f"GGUF file has no general.architecture: {path}")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelFormatError(
            f"unsupported model architecture {arch!r} in {path}; llama.cpp here runs: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if type(alignment) is not int:  # an unsigned integer in every valid file (bool is no int)
        raise ModelFormatError(
            f"corrupt GGUF header in {path}: general.alignment is {alignment!r}, not a number"
        )
    data_end = _tensor_data_end(path, r, n_tensors, alignment)
    if data_end > size:
        raise ModelFormatError(
            f"truncated GGUF file: {path} is {size:,} bytes but its tensors need "
            f"{data_end:,} (an interrupted download or conversion?)"
        )
    return GGUFInfo(path, version, arch, n_tensors, size, data_end, metadata)


def _tensor_data_end(path: Path, r: _Reader, n_tensors: int, alignment: int) -> int:
    """Read the tensor infos; return the offset where the last tensor's data ends."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    end = 0
    for _ in range(n_tensors):
        name = r.string().decode("utf-8", errors="replace")
        n_dims = r.scalar("<I")
        if n_dims > 8:
            raise ModelFormatError(
                f"corrupt GGUF header in {path}: tensor {name!r} has {n_dims} dims"
            )
        dims = [r.scalar("<Q") for _ in range(n_dims)]
        ggml_type = r.scalar("<I")
        offset = r.scalar("<Q")
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            raise ModelFormatError(
                f"unknown tensor type {ggml_type} for {name!r} in {path} "
                "(a GGUF newer than this llama.cpp?)"
            ) from None
        n = 1
        for d in dims:
            n *= d
        end = max(end, offset + n // block * type_size)
    alignment = alignment if alignment > 0 else DEFAULT_ALIGNMENT
    data_start = (r.pos + alignment - 1) // alignment * alignment
    return data_start + end

"""Property tests of the GGUF header check (``tedchat_llamacpp.gguf_header``), with Hypothesis.

llama.cpp trusts its input, so this reader stands in front of it: whatever the bytes (random,
a real header cut anywhere or with bytes changed, a header built field by field from random
values), it returns a :class:`GGUFInfo` or raises :class:`ModelFormatError`, nothing else;
and a file cut before its last tensor's data ends is never accepted.

Examples per test are stated where each test is (``max_examples``).
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.errors import ModelFormatError
from tedchat_llamacpp.gguf_header import GGUFInfo, read_gguf_header


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file for the module's examples (Hypothesis runs many per test)."""
    return tmp_path_factory.mktemp("gguf-props") / "model.gguf"


def check(path: Path, data: bytes) -> GGUFInfo | None:
    """Write ``data`` to a file and read its header: the info, or None for ModelFormatError."""
    path.write_bytes(data)
    try:
        info = read_gguf_header(path)
    except ModelFormatError as exc:
        assert exc.message and "\n" not in exc.message
        return None
    assert info.data_end <= info.file_size == len(data)
    return info


def small_gguf() -> bytes:
    """A real (tiny) GGUF written by the ``gguf`` package: two tensors, a chat template."""
    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "small.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_block_count(1)
        writer.add_context_length(64)
        writer.add_chat_template("{{ messages }}")
        writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
        writer.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


SMALL = small_gguf()


@pytest.fixture(scope="module")
def small_info(model_file: Path) -> GGUFInfo:
    """The base of the cut and mutated examples, accepted whole (or they prove nothing)."""
    info = check(model_file, SMALL)
    assert info is not None
    return info


def test_the_small_file_is_a_valid_gguf(small_info: GGUFInfo) -> None:
    assert small_info.architecture == "llama" and small_info.n_tensors == 2
    assert small_info.has_chat_template


@settings(max_examples=300)
@given(data=st.binary(max_size=256) | st.binary(max_size=200).map(lambda b: b"GGUF" + b))
def test_random_bytes_are_refused_with_one_error(model_file: Path, data: bytes) -> None:
    check(model_file, data)  # no other exception; an accepted file would be checked in check()


@settings(max_examples=300)
@given(cut=st.integers(0, len(SMALL) - 1))
def test_a_file_cut_before_its_data_ends_is_refused(
    model_file: Path, small_info: GGUFInfo, cut: int
) -> None:
    info = check(model_file, SMALL[:cut])
    if cut < small_info.data_end:
        assert info is None


@settings(max_examples=500)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.none() | st.integers(0, len(SMALL)),
)
def test_changed_bytes_are_read_or_refused_with_one_error(
    model_file: Path, changes: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SMALL)
    for at, value in changes:
        data[at] = value
    check(model_file, bytes(data[:cut]))


# --- headers built field by field ---------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "general.architecture",
        "general.alignment",
        "general.name",
        "llama.context_length",
        "tokenizer.chat_template",
        "tokenizer.ggml.tokens",
        "other.key",
    ]
)
ARCHES = st.sampled_from(["llama", "qwen2", "gemma3", "nonesuch", ""])


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


@st.composite
def values(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A value type and its encoding, of any GGUF type (and some that are not)."""
    vtype = draw(st.integers(0, 14))
    formats = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
               10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
    head = struct.pack("<I", vtype)
    if vtype in formats:
        size = struct.calcsize(formats[vtype])
        return head + draw(st.binary(min_size=size, max_size=size))
    if vtype == 8:
        return head + _string(draw(ARCHES | st.text(max_size=6) | st.binary(max_size=6)))
    if vtype == 9 and depth < 2:
        count = draw(st.integers(0, 3))
        items = [draw(values(depth + 1)) for _ in range(count)]
        etype = items[0][:4] if items else struct.pack("<I", draw(st.integers(0, 14)))
        body = b"".join(item[4:] for item in items)  # elements are written without their type
        claimed = draw(st.sampled_from([count] * 4 + [count + 1, 2**63]))
        return head + etype + struct.pack("<Q", claimed) + body
    return head + draw(st.binary(max_size=8))  # an unknown type and whatever follows


#: general.alignment values: right (a uint32), of other number types, and not numbers at all.
ALIGNMENTS = st.sampled_from(
    [struct.pack("<II", 4, n) for n in (0, 1, 8, 32, 2**32 - 1)]
    + [
        struct.pack("<I", 8) + _string("32"),
        struct.pack("<If", 6, 32.0),
        struct.pack("<Id", 12, float("nan")),
        struct.pack("<Id", 12, float("inf")),
        struct.pack("<I?", 7, True),
        struct.pack("<Iq", 11, -32),
        struct.pack("<IIQ", 9, 4, 0),  # an empty array
    ]
)


@st.composite
def headers(draw: st.DrawFn, well_formed: bool = False) -> bytes:
    """A GGUF header built field by field. ``well_formed``: version, counts, architecture
    and the other values right, so every example reaches the alignment and tensor checks."""
    version = 3 if well_formed else draw(st.sampled_from([3] * 6 + [2, 1, 4]))
    kvs = (
        []
        if well_formed
        else [(draw(KEYS), draw(values())) for _ in range(draw(st.integers(0, 3)))]
    )
    if well_formed or draw(st.booleans()):  # general.alignment: a uint32, or any value
        kvs.insert(0, ("general.alignment", draw(ALIGNMENTS | values())))
    if well_formed or draw(st.integers(0, 4)):  # mostly an architecture: later checks run
        arch = "llama" if well_formed else draw(st.sampled_from(["llama"] * 3) | ARCHES)
        kvs.insert(0, ("general.architecture", struct.pack("<I", 8) + _string(arch)))
    tensors = []
    for i in range(draw(st.integers(0, 3))):
        dims = draw(st.lists(st.integers(0, 2**20) | st.just(2**62), max_size=5))
        n_dims = draw(st.sampled_from([len(dims)] * 4 + [9]))
        ggml_type = draw(st.sampled_from([0, 1, 2, 8, 12, 99]))
        offset = draw(st.integers(0, 2**16) | st.just(2**63))
        tensors.append(
            _string(f"t{i}")
            + struct.pack("<I", n_dims)
            + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ggml_type, offset)
        )
    n_tensors = len(tensors) if well_formed else draw(st.sampled_from([len(tensors)] * 5 + [2**40]))
    n_kv = (
        len(kvs) if well_formed else draw(st.sampled_from([len(kvs)] * 5 + [len(kvs) + 1, 2**40]))
    )
    body = b"".join(_string(k) + v for k, v in kvs) + b"".join(tensors)
    tail = b"\0" * draw(st.integers(0, 4096))
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body + tail


@settings(max_examples=400)
@given(data=headers())
def test_headers_of_any_values_are_read_or_refused_with_one_error(
    model_file: Path, data: bytes
) -> None:
    check(model_file, data)


@settings(max_examples=200)
@given(data=headers(well_formed=True))
def test_any_alignment_and_tensor_table_is_read_or_refused_with_one_error(
    model_file: Path, data: bytes
) -> None:
    check(model_file, data)

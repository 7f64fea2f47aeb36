"""Small GGUF files written by the ``gguf`` package for the model tests: quantisations of one
repo, split parts, and a header that declares far more tensor data than any memory holds.

The tensors are tiny F32 arrays; the quantisation a file claims is its ``general.file_type``
(what ``models info`` reports) and its name (what ``models pull`` chooses by).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOOLS_TEMPLATE = (
    "{% if tools %}{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
)
PLAIN_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
FILE_TYPES = {"Q4_K_M": 15, "Q4_K_S": 14, "Q8_0": 7, "IQ4_XS": 30, "F16": 1}


def write_small_gguf(
    path: Path,
    quant: str = "Q4_K_M",
    *,
    template: str | None = TOOLS_TEMPLATE,
    context: int = 2048,
    seed: int = 0,
    n_tensors: int = 3,
    big: int = 0,
) -> Path:
    """A tiny llama-architecture GGUF with a vocabulary, a chat template and ``n_tensors``
    (plus, with ``big``, one zero tensor of that many floats)."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"tiny {quant}")
    writer.add_block_count(2)
    writer.add_context_length(context)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_file_type(FILE_TYPES.get(quant, 0))
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([f"tok{i}" for i in range(300)])
    writer.add_token_types([1] * 300)
    if template is not None:
        writer.add_chat_template(template)
    rng = np.random.default_rng(seed)
    for i in range(n_tensors):
        writer.add_tensor(f"t{i}.weight", rng.standard_normal((8, 64)).astype(np.float32))
    if big:
        writer.add_tensor("big.weight", np.zeros((big // 1024, 1024), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_split_part(path: Path, index: int, count: int, seed: int) -> Path:
    """Part ``index`` (1-based) of a split model: the first carries the metadata, every part
    its own tensors and the ``split.*`` keys (as llama.cpp's gguf-split writes them)."""
    import gguf

    if index == 1:
        write_small_gguf(path, seed=seed)
        return path
    writer = gguf.GGUFWriter(str(path), "llama")
    # gguf-split's later parts have no general.architecture; GGUFWriter always adds one, so
    # this part keeps it (the reader must accept both).
    writer.add_uint16("split.no", index - 1)
    writer.add_uint16("split.count", count)
    rng = np.random.default_rng(seed)
    writer.add_tensor(f"p{index}.weight", rng.standard_normal((16, 64)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_huge_sparse_gguf(path: Path, declared_bytes: int) -> Path:
    """A GGUF whose one tensor declares ``declared_bytes`` of F32 data; the file is that long
    but sparse (nothing is written past the header), so the header check accepts it."""
    import gguf

    n = declared_bytes // 4
    cols = 4096
    rows = n // cols
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_context_length(4096)
    writer.add_embedding_length(cols)
    writer.add_head_count(32)
    writer.add_head_count_kv(8)
    writer.add_tensor_info("token_embd.weight", (rows, cols), np.dtype(np.float32), rows * cols * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    with open(path, "r+b") as f:
        f.seek(0, 2)
        header = f.tell()
        data_start = (header + 31) // 32 * 32
        f.truncate(data_start + rows * cols * 4)
    return path

"""Tiny synthetic Llama GGUFs and llama.cpp's logits on them, for the wafer numerics tests.

Random weights, a few layers, grouped-query attention: small enough to run in milliseconds,
and llama.cpp runs the same files (with no vocabulary) as the reference.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import gguf
import numpy as np
from gguf.quants import quantize

Q = gguf.GGMLQuantizationType


def write_tiny_llama(
    path: Path,
    *,
    arch: str = "llama",
    n_layers: int = 2,
    hidden: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    ffn: int = 96,
    vocab: int = 128,
    context: int = 64,
    qtype: gguf.GGMLQuantizationType = Q.F32,
    tied: bool = True,
    seed: int = 0,
) -> Path:
    """A random Llama GGUF in the layout convert_hf_to_gguf writes (no vocabulary)."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(n_layers)
    w.add_context_length(context)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("none")
    hd = hidden // n_heads

    def matrix(name: str, rows: int, cols: int, scale: float = 0.2) -> None:
        a = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if qtype == Q.F32:
            w.add_tensor(name, a)
        elif qtype == Q.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)

    def norm(name: str) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))

    matrix("token_embd.weight", vocab, hidden, scale=1.0)
    for i in range(n_layers):
        p = f"blk.{i}."
        norm(p + "attn_norm.weight")
        matrix(p + "attn_q.weight", n_heads * hd, hidden)
        matrix(p + "attn_k.weight", n_kv_heads * hd, hidden)
        matrix(p + "attn_v.weight", n_kv_heads * hd, hidden)
        matrix(p + "attn_output.weight", hidden, n_heads * hd)
        norm(p + "ffn_norm.weight")
        matrix(p + "ffn_gate.weight", ffn, hidden)
        matrix(p + "ffn_up.weight", ffn, hidden)
        matrix(p + "ffn_down.weight", hidden, ffn)
    norm("output_norm.weight")
    if not tied:
        matrix("output.weight", vocab, hidden)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def llama_cpp_logits(
    path: Path, tokens: list[int], *, float32_kv: bool = True, batch: int | None = None
) -> np.ndarray:
    """llama.cpp's logits at every position (float32 KV cache unless told), the reference.

    ``batch``: run the first ``batch`` tokens as one batch, then the rest one at a time.
    """
    from tedchat.wafer.verify import reference_llama

    llm = reference_llama(path, n_ctx=64, float32_kv=float32_kv)
    try:
        llm.eval(tokens[: batch or len(tokens)])
        for t in tokens[batch or len(tokens) :]:
            llm.eval([t])
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()


TOKENS = [5, 17, 3, 99, 127, 0, 64, 12, 12, 12, 40, 41, 42, 7]


def quantize_with_llama_cpp(tmp_path: Path, ftype: str) -> Path:
    """A tiny model (hidden 256, for 256-weight K-quant blocks) quantized by llama.cpp."""
    import llama_cpp

    from tedchat.wafer.tokenizer import quiet_llama_logs

    src = write_tiny_llama(tmp_path / "f32.gguf", hidden=256, ffn=512, vocab=256, seed=2)
    dst = tmp_path / f"{ftype}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    with quiet_llama_logs():
        rc = llama_cpp.llama_model_quantize(
            str(src).encode(), str(dst).encode(), ctypes.byref(params)
        )
    assert rc == 0
    return dst

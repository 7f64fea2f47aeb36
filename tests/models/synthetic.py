"""Synthetic Llama-3-style checkpoints in TEDLLM's published format, made on the spot.

TEDLLM itself (32.5 GB) cannot be downloaded here, so the pull -> convert -> run path is tested
on a checkpoint with the same *format*: F32 safetensors in two shards with an index, a
``config.json`` of a ``LlamaForCausalLM``, and a ``tokenizer.json`` built like Llama-3's
(byte-level BPE with the Llama-3 split regex, ``ignore_merges``, special tokens after the BPE
vocabulary, non-special added tokens — Japanese ones, as TEDLLM's vocabulary extension adds —
and a vocab size padded beyond the tokenizer's last id). Weights are random but seeded.

:func:`write_safetensors_streaming` writes a shard tensor by tensor, a block of rows at a time,
so ``benchmarks/convert_memory.py`` can make a checkpoint larger than a quarter of RAM.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LLAMA3_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|reserved_special_token_2|>",
    "<|eot_id|>",
)
# Non-special added tokens, as a vocabulary extension for Japanese adds them.
ADDED_TOKENS = ("東京エレクトロン", "デバイス", "半導体", "こんにちは")

CORPUS_EN = (
    "The quick brown fox jumps over the lazy dog. Tokyo Electron Device designs and sells "
    "semiconductor devices and computer systems. A wafer-scale engine keeps every weight in "
    "on-chip memory, so generation is limited by compute rather than by memory bandwidth. "
    "Grace Hopper wrote the first compiler; Alan Turing described a universal machine; "
    "Edsger Dijkstra found the shortest paths in a graph. It's what we'll do, isn't it? "
    "Numbers like 2024, 3.14159 and 1,000,000 appear in text too."
)
CORPUS_JA = (
    "東京エレクトロンデバイスは半導体と電子デバイスの商社です。大規模言語モデルは日本語の文章を"
    "生成します。ウェハースケールエンジンはすべての重みをチップ上のメモリに置きます。"
    "今日はいい天気ですね。こんにちは、世界。機械学習と深層学習の研究が進んでいます。"
)
CORPUS_CODE = (
    "def forward(x, weights):\n    for layer in weights:\n        x = layer(x) + x\n    return x\n"
    'int main(void) { printf("hello, world\\n"); return 0; }\n'
    "for (let i = 0; i < n; i++) { total += values[i]; }\n"
)

TEXT_EN = "The wafer-scale engine keeps every weight on the chip, so it's fast: 1234 tokens/s!"
TEXT_JA = (
    "東京エレクトロンデバイスの半導体デバイスです。こんにちは、世界！日本語の文章を生成します。"
)
TEXT_CODE = "def add(a, b):\n    return a + b  # 42\n\nprint(add(1, 2))\n"


@dataclass(frozen=True)
class TinyConfig:
    """Hyper-parameters of the tiny checkpoint.

    Q4_K needs rows that are multiples of 256. The first shard (about 25 MB) is larger than
    ``huggingface_hub``'s 10 MiB download chunk, so a connection cut past the first chunk is
    resumed with a Range request rather than restarted.
    """

    hidden_size: int = 512
    intermediate_size: int = 1536
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 4
    vocab_size: int = 768
    context_length: int = 2048
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5
    bpe_vocab: int = 700

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads


def build_tokenizer(bpe_vocab: int = 700) -> Any:
    """A small Llama-3-style tokenizer trained on a little English, Japanese and code."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [CORPUS_EN, CORPUS_JA, CORPUS_CODE] * 20
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    tok.add_tokens(list(ADDED_TOKENS))
    bos = tok.token_to_id(SPECIAL_TOKENS[0])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIAL_TOKENS[0]} $A",
        pair=f"{SPECIAL_TOKENS[0]} $A {SPECIAL_TOKENS[0]} $B",
        special_tokens=[(SPECIAL_TOKENS[0], bos)],
    )
    return tok


def random_weights(cfg: TinyConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random F32 weights in Hugging Face's Llama naming and layout.

    Matrices are scaled by 1/sqrt(fan-in) so activations stay of order one through the layers,
    and the output head by 3/sqrt(hidden) so the logits are spread enough that teacher-forced
    top-1 comparisons are not decided by ties.
    """
    rng = np.random.default_rng(seed)
    h, hd, inter = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size

    def mat(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
        return (
            rng.standard_normal((rows, cols), dtype=np.float32) * (scale / np.sqrt(cols))
        ).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(h, dtype=np.float32)).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((cfg.vocab_size, h), dtype=np.float32)
    }
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = mat(cfg.n_heads * hd, h)
        w[p + "self_attn.k_proj.weight"] = mat(cfg.n_kv_heads * hd, h)
        w[p + "self_attn.v_proj.weight"] = mat(cfg.n_kv_heads * hd, h)
        w[p + "self_attn.o_proj.weight"] = mat(h, cfg.n_heads * hd)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = mat(inter, h)
        w[p + "mlp.up_proj.weight"] = mat(inter, h)
        w[p + "mlp.down_proj.weight"] = mat(h, inter)
    w["model.norm.weight"] = norm()
    w["lm_head.weight"] = mat(cfg.vocab_size, h, 3.0)
    return w


def config_json(cfg: TinyConfig, bos: int, eos: int) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_scaling": None,
        "vocab_size": cfg.vocab_size,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }


def write_tiny_checkpoint(folder: Path, cfg: TinyConfig | None = None, seed: int = 0) -> Path:
    """Write the tiny checkpoint (two shards + index, config, tokenizer) into ``folder``."""
    from safetensors.numpy import save_file

    cfg = cfg or TinyConfig()
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(cfg.bpe_vocab)
    assert tok.get_vocab_size() <= cfg.vocab_size
    tok.save(str(folder / "tokenizer.json"))
    bos, eos = tok.token_to_id(SPECIAL_TOKENS[0]), tok.token_to_id(SPECIAL_TOKENS[1])
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": SPECIAL_TOKENS[0],
                "eos_token": SPECIAL_TOKENS[1],
                "model_max_length": cfg.context_length,
                "tokenizer_class": "PreTrainedTokenizerFast",
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    (folder / "config.json").write_text(
        json.dumps(config_json(cfg, bos, eos), indent=2), encoding="utf-8"
    )
    weights = random_weights(cfg, seed)
    names = list(weights)
    half = len(names) // 2
    shards = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    weight_map = {}
    for shard, members in shards.items():
        save_file({n: weights[n] for n in members}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in members})
    total = sum(a.nbytes for a in weights.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2),
        encoding="utf-8",
    )
    (folder / "LICENSE").write_text("A test license for a synthetic checkpoint.\n")
    return folder


# --- big checkpoints, written without holding them --------------------------------------------

RowBlocks = Callable[[], Iterator[np.ndarray]]


def write_safetensors_streaming(
    path: Path, tensors: list[tuple[str, tuple[int, ...], RowBlocks]]
) -> int:
    """Write a safetensors file tensor by tensor; each tensor's rows come in blocks (F32).

    The format is an 8-byte header length, a JSON header with every tensor's dtype, shape and
    byte range, then the data in that order — so the header is written first from the shapes
    alone and the data streamed after it.
    """
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in tensors:
        size = int(np.prod(shape)) * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape, blocks in tensors:
            written = 0
            for block in blocks():
                block = np.ascontiguousarray(block, dtype=np.float32)
                f.write(memoryview(block).cast("B"))
                written += block.nbytes
            assert written == int(np.prod(shape)) * 4, name
    return offset

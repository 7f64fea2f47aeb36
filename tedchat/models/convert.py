"""Hugging Face Llama checkpoints (safetensors) -> GGUF for llama.cpp, then quantisation.

``tedchat models convert`` runs :func:`convert_checkpoint`. The conversion is written for a
machine that has less memory than the model:

- Tensors are read with ``safetensors.safe_open`` a block of rows at a time, and the file is
  reopened for every block. safetensors memory-maps the file, and every page read stays in the
  process's resident set for as long as the map is open (measured: reading a 512 MB tensor in
  slices through one handle grew RSS by 512 MB; reopening per slice kept it flat).
- The GGUF is written with ``gguf.GGUFWriter`` in its streaming order: header, key/values and
  tensor infos first (sizes are known from the safetensors headers), then each tensor's data
  block by block. Nothing holds more than one block.
- The 16-bit GGUF is then quantised by llama.cpp itself (``llama_model_quantize``), which
  streams tensor by tensor too.

Layout conventions handled here (why each step exists):

- Tensor names map from Hugging Face's (``model.layers.N.self_attn.q_proj.weight``) to
  llama.cpp's (``blk.N.attn_q.weight``), see :data:`BLOCK_TENSORS`.
- Q and K projections are permuted: Hugging Face's Llama applies RoPE in the *rotate-half*
  layout (dimension i pairs with i + d/2 within a head), llama.cpp's ``llama`` architecture in
  the *interleaved* layout (2i pairs with 2i + 1). Row ``j*d/2 + i`` of a head moves to row
  ``2i + j``.
- The tokenizer is Llama-3's byte-level BPE: ``tokenizer.ggml.model = "gpt2"``,
  ``tokenizer.ggml.pre = "llama-bpe"`` (llama.cpp's name for the Llama-3 split regex), tokens
  and merges from ``tokenizer.json``, added tokens kept as raw text (special ones CONTROL,
  others USER_DEFINED, which llama.cpp matches before pre-tokenising as Hugging Face does),
  ids the tokenizer does not use as UNUSED ``[PAD<id>]`` entries up to the model's vocab size.
- Output files appear only when complete: everything is written to ``<out>.partial`` and
  renamed at the end; a failure or Ctrl-C removes the partial files.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tedchat.errors import ModelFormatError, ModelNotFoundError, TedchatError

QUANTS: tuple[str, ...] = ("F16", "Q8_0", "Q4_K_M")
# llama.cpp file types (llama_ftype) by quantisation name.
QUANT_FTYPES: dict[str, str] = {
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
}
# Bytes per parameter of each output, for disk-space checks (Q4_K_M mixes 4.5- and 6.5-bit
# blocks: about 4.9 bits a weight on Llama-3-8B).
QUANT_BYTES_PER_PARAM: dict[str, float] = {"F16": 2.0, "Q8_0": 34 / 32, "Q4_K_M": 0.62}
DTYPE_BYTES: dict[str, int] = {"F32": 4, "F16": 2, "BF16": 2}

# The Llama-3 pre-tokenizer's split regex, exactly as tokenizer.json spells it.
LLAMA3_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
HF_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")

GLOBAL_TENSORS: dict[str, str] = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
BLOCK_TENSORS: dict[str, str] = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
IGNORED_TENSOR_SUFFIXES = ("rotary_emb.inv_freq",)

# GGUF token types (gguf.TokenType), named here so this module imports nothing heavy.
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5

BLOCK_BYTES = 64 << 20  # rows read per block: about this many bytes of source data
QUANT_BUFFER_BYTES = 256 << 20  # llama.cpp quantiser's rows in memory at once

Log = Callable[[str], None]
"""Where progress lines go (stderr unless a caller collects them)."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- what the checkpoint is ----------------------------------------------------------------


@dataclass(frozen=True)
class LlamaHParams:
    """The hyper-parameters of a Llama checkpoint (config.json)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    context_length: int
    tie_embeddings: bool
    bos_token_id: int | None
    eos_token_id: int | None
    rope_scaling_linear: float | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any], where: Path) -> LlamaHParams:
        archs = config.get("architectures") or []
        if config.get("model_type") not in ("llama", "mistral") and not set(archs) & set(
            HF_ARCHITECTURES
        ):
            raise ModelFormatError(
                f"{where}: not a Llama checkpoint (model_type {config.get('model_type')!r}, "
                f"architectures {archs}); tedchat converts {', '.join(HF_ARCHITECTURES)}"
            )
        if config.get("attention_bias") or config.get("mlp_bias"):
            raise ModelFormatError(f"{where}: Llama with bias tensors is not supported")
        try:
            hidden = int(config["hidden_size"])
            n_heads = int(config["num_attention_heads"])
            scaling = config.get("rope_scaling") or None
            linear = None
            if scaling is not None:
                kind = scaling.get("rope_type") or scaling.get("type")
                if kind != "linear":
                    raise ModelFormatError(
                        f"{where}: rope_scaling type {kind!r} is not supported (only linear)"
                    )
                linear = float(scaling["factor"])
            return cls(
                vocab_size=int(config["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                n_layers=int(config["num_hidden_layers"]),
                n_heads=n_heads,
                n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
                head_dim=int(config.get("head_dim") or hidden // n_heads),
                rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)),
                rope_theta=float(config.get("rope_theta", 10000.0)),
                context_length=int(config.get("max_position_embeddings", 2048)),
                tie_embeddings=bool(config.get("tie_word_embeddings", False)),
                bos_token_id=_first_id(config.get("bos_token_id")),
                eos_token_id=_first_id(config.get("eos_token_id")),
                rope_scaling_linear=linear,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{where}: incomplete Llama config.json ({exc})") from None

    def expected_shape(self, hf_name: str) -> tuple[int, ...]:
        """The shape (rows, cols) a Hugging Face Llama tensor must have."""
        h, hd = self.hidden_size, self.head_dim
        shapes = {
            "model.embed_tokens.weight": (self.vocab_size, h),
            "lm_head.weight": (self.vocab_size, h),
            "model.norm.weight": (h,),
            "input_layernorm.weight": (h,),
            "post_attention_layernorm.weight": (h,),
            "self_attn.q_proj.weight": (self.n_heads * hd, h),
            "self_attn.k_proj.weight": (self.n_kv_heads * hd, h),
            "self_attn.v_proj.weight": (self.n_kv_heads * hd, h),
            "self_attn.o_proj.weight": (h, self.n_heads * hd),
            "mlp.gate_proj.weight": (self.intermediate_size, h),
            "mlp.up_proj.weight": (self.intermediate_size, h),
            "mlp.down_proj.weight": (h, self.intermediate_size),
        }
        key = hf_name if hf_name in shapes else hf_name.split(".", 3)[-1]
        return shapes[key]


def _first_id(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if value is not None else None


@dataclass(frozen=True)
class TensorPlan:
    """One GGUF tensor: where its rows come from and how they are written."""

    gguf_name: str
    hf_name: str
    shard: Path
    shape: tuple[int, ...]
    src_dtype: str
    out_dtype: str  # "F16" for matrices, "F32" for norm vectors (llama.cpp keeps those exact)
    permute_heads: int | None = None  # RoPE layout change for Q/K: the number of heads

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def out_nbytes(self) -> int:
        return self.n_elements * DTYPE_BYTES[self.out_dtype]


@dataclass
class Vocab:
    """The tokenizer as GGUF stores it."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    bos_token_id: int | None
    eos_token_id: int | None
    add_bos: bool
    chat_template: str | list[dict[str, str]] | None
    pre: str = "llama-bpe"


@dataclass
class Checkpoint:
    """A Llama checkpoint folder, read enough to plan its conversion (no tensor data yet)."""

    path: Path
    hparams: LlamaHParams
    tensors: list[TensorPlan]
    vocab: Vocab
    warnings: list[str] = field(default_factory=list)

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def f16_bytes(self) -> int:
        return sum(t.out_nbytes for t in self.tensors)

    @property
    def largest_tensor_bytes(self) -> int:
        """The largest source tensor, in bytes (the memory benchmark's yardstick)."""
        return max(t.n_elements * DTYPE_BYTES[t.src_dtype] for t in self.tensors)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint folder's config, tokenizer and safetensors headers; check them."""
    if not path.is_dir():
        raise ModelNotFoundError(f"checkpoint folder not found: {path}")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelFormatError(f"{path} has no config.json: not a Hugging Face checkpoint")
    hp = LlamaHParams.from_config(_read_json(config_path), path)
    tensors = _plan_tensors(path, hp)
    vocab = read_vocab(path, hp)
    return Checkpoint(path, hp, tensors, vocab)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from None


def _weight_map(path: Path) -> dict[str, Path]:
    """Tensor name -> the shard holding it (sharded with an index, or one model.safetensors)."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map") or {}
        out = {name: path / shard for name, shard in weight_map.items()}
        missing = sorted({p.name for p in out.values() if not p.is_file()})
        if missing:
            raise ModelFormatError(f"{path}: shards missing: {', '.join(missing)}")
        return out
    single = path / "model.safetensors"
    if not single.is_file():
        raise ModelFormatError(
            f"{path} has no model.safetensors(.index.json): tedchat converts safetensors only"
        )
    from safetensors import safe_open

    with safe_open(single, framework="numpy") as f:
        return {name: single for name in f.keys()}  # noqa: SIM118 - safe_open is no dict


def _plan_tensors(path: Path, hp: LlamaHParams) -> list[TensorPlan]:
    from safetensors import safe_open

    weight_map = _weight_map(path)
    wanted: list[tuple[str, str]] = [("model.embed_tokens.weight", "token_embd.weight")]
    for i in range(hp.n_layers):
        for hf, gg in BLOCK_TENSORS.items():
            wanted.append((f"model.layers.{i}.{hf}", f"blk.{i}.{gg}"))
    wanted.append(("model.norm.weight", "output_norm.weight"))
    if "lm_head.weight" in weight_map or not hp.tie_embeddings:
        wanted.append(("lm_head.weight", "output.weight"))
    known = {hf for hf, _ in wanted}
    extra = [n for n in weight_map if n not in known and not n.endswith(IGNORED_TENSOR_SUFFIXES)]
    if extra:
        raise ModelFormatError(
            f"{path}: unexpected tensor {extra[0]} ({len(extra)} in all): not a plain Llama "
            "checkpoint"
        )
    plans = []
    for hf, gg in wanted:
        shard = weight_map.get(hf)
        if shard is None:
            raise ModelFormatError(f"{path}: tensor {hf} is missing")
        with safe_open(shard, framework="numpy") as f:
            sl = f.get_slice(hf)
            shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
        if dtype not in DTYPE_BYTES or dtype == "BF16":
            raise ModelFormatError(
                f"{shard.name}: tensor {hf} is {dtype}; tedchat converts F32 and F16 checkpoints"
            )
        expected = hp.expected_shape(hf)
        if shape != expected:
            raise ModelFormatError(
                f"{shard.name}: tensor {hf} has shape {list(shape)}, config.json implies "
                f"{list(expected)}"
            )
        heads = None
        if hf.endswith("self_attn.q_proj.weight"):
            heads = hp.n_heads
        elif hf.endswith("self_attn.k_proj.weight"):
            heads = hp.n_kv_heads
        out_dtype = "F32" if len(shape) == 1 else "F16"
        plans.append(TensorPlan(gg, hf, shard, shape, dtype, out_dtype, heads))
    return plans


def _pre_tokenizer(tok: dict[str, Any], where: Path) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (only Llama-3's is supported)."""
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    splits = [p for p in parts if p.get("type") == "Split"]
    levels = [p for p in parts if p.get("type") == "ByteLevel"]
    regex = (splits[0].get("pattern") or {}).get("Regex") if splits else None
    if regex == LLAMA3_SPLIT_REGEX and levels and not levels[0].get("use_regex", True):
        return "llama-bpe"
    raise ModelFormatError(
        f"{where}: the tokenizer's pre-tokenizer is not Llama-3's (byte-level BPE split by the "
        "Llama-3 regex); tedchat converts Llama-3-style tokenizers only"
    )


def _looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or (
        text.startswith("<") and text.endswith(">") and " " not in text and len(text) > 2
    )


def read_vocab(path: Path, hp: LlamaHParams) -> Vocab:
    """The tokenizer of ``path`` (tokenizer.json + tokenizer_config.json) as GGUF stores it."""
    tok_path = path / "tokenizer.json"
    if not tok_path.is_file():
        raise ModelFormatError(f"{path} has no tokenizer.json")
    tok = _read_json(tok_path)
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ModelFormatError(
            f"{tok_path}: tokenizer model {model.get('type')!r}; tedchat converts BPE only"
        )
    if tok.get("normalizer"):
        raise ModelFormatError(f"{tok_path}: a tokenizer with a normalizer is not Llama-3's")
    pre = _pre_tokenizer(tok, tok_path)
    by_id: dict[int, str] = {int(i): t for t, i in model.get("vocab", {}).items()}
    added = {int(t["id"]): t for t in tok.get("added_tokens", [])}
    top = max([*by_id, *added], default=-1)
    if top >= hp.vocab_size:
        raise ModelFormatError(
            f"{tok_path}: token id {top} is beyond the model's vocab_size {hp.vocab_size}"
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(hp.vocab_size):
        if i in added:
            text = added[i]["content"]
            special = bool(added[i].get("special")) or _looks_special(text)
            tokens.append(text)
            types.append(CONTROL if special else USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    tok_config_path = path / "tokenizer_config.json"
    tok_config = _read_json(tok_config_path) if tok_config_path.is_file() else {}
    text_to_id = {t["content"]: int(t["id"]) for t in added.values()}

    def special_id(config_id: int | None, key: str) -> int | None:
        if config_id is not None:
            return config_id
        value = tok_config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        return text_to_id.get(value) if isinstance(value, str) else None

    add_bos = tok_config.get("add_bos_token")
    if add_bos is None:  # Llama-3 says it through the post-processor that prepends BOS
        add_bos = "begin_of_text" in json.dumps(tok.get("post_processor") or {})
    return Vocab(
        tokens=tokens,
        types=types,
        merges=merges,
        bos_token_id=special_id(hp.bos_token_id, "bos_token"),
        eos_token_id=special_id(hp.eos_token_id, "eos_token"),
        add_bos=bool(add_bos),
        chat_template=tok_config.get("chat_template") or None,
        pre=pre,
    )


# --- writing ---------------------------------------------------------------------------------


def _row_blocks(plan: TensorPlan) -> Iterator[Any]:
    """The tensor's data in GGUF layout, a block of rows at a time (see the module docstring)."""
    import numpy as np
    from safetensors import safe_open

    out = np.float16 if plan.out_dtype == "F16" else np.float32
    rows = plan.shape[0]
    row_bytes = (plan.n_elements // rows) * DTYPE_BYTES[plan.src_dtype]
    step = max(1, BLOCK_BYTES // row_bytes)
    head_dim = rows // plan.permute_heads if plan.permute_heads else 1
    step = max(head_dim, step // head_dim * head_dim)  # Q/K blocks hold whole heads
    for start in range(0, rows, step):
        # A fresh handle per block: the pages of a closed map leave the resident set.
        with safe_open(plan.shard, framework="numpy") as f:
            block = f.get_slice(plan.hf_name)[start : min(start + step, rows)]
        if plan.permute_heads:
            block = permute_rope_rows(block, head_dim)
        yield np.ascontiguousarray(block, dtype=out)


def permute_rope_rows(block: Any, head_dim: int) -> Any:
    """Q/K rows of whole heads from the rotate-half layout to the interleaved-pairs layout."""
    cols = block.shape[1]
    return block.reshape(-1, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(block.shape[0], cols)


def write_gguf(
    ckpt: Checkpoint,
    dest: Path,
    *,
    name: str,
    license: str | None = None,
    source_url: str | None = None,
    progress: bool = True,
) -> None:
    """Write ``ckpt`` as a 16-bit GGUF (matrices F16, norms F32) to ``dest``, streaming."""
    import gguf
    import numpy as np
    from tqdm import tqdm

    hp, vocab = ckpt.hparams, ckpt.vocab
    w = gguf.GGUFWriter(None, "llama")
    w.add_type("model")
    w.add_name(name)
    if license:
        w.add_license(license)
    if source_url:
        w.add_source_url(source_url)
    w.add_context_length(hp.context_length)
    w.add_embedding_length(hp.hidden_size)
    w.add_block_count(hp.n_layers)
    w.add_feed_forward_length(hp.intermediate_size)
    w.add_head_count(hp.n_heads)
    w.add_head_count_kv(hp.n_kv_heads)
    w.add_rope_dimension_count(hp.head_dim)
    if hp.head_dim != hp.hidden_size // hp.n_heads:
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
    w.add_layer_norm_rms_eps(hp.rms_norm_eps)
    w.add_rope_freq_base(hp.rope_theta)
    if hp.rope_scaling_linear:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp.rope_scaling_linear)
    w.add_vocab_size(hp.vocab_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_types(vocab.types)
    w.add_token_merges(vocab.merges)
    if vocab.bos_token_id is not None:
        w.add_bos_token_id(vocab.bos_token_id)
    if vocab.eos_token_id is not None:
        w.add_eos_token_id(vocab.eos_token_id)
    w.add_add_bos_token(vocab.add_bos)
    w.add_add_eos_token(False)
    if vocab.chat_template:
        w.add_chat_template(vocab.chat_template)
    for t in ckpt.tensors:
        dtype = np.dtype(np.float16 if t.out_dtype == "F16" else np.float32)
        w.add_tensor_info(t.gguf_name, t.shape, dtype, t.out_nbytes)

    bar = tqdm(
        total=ckpt.f16_bytes,
        unit="B",
        unit_scale=True,
        desc="converting",
        disable=not progress,
        file=sys.stderr,
    )
    try:
        w.write_header_to_file(path=dest)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        # GGUFWriter's write_tensor_data wants whole tensors; the blocks are written to its
        # file with its own alignment padding instead, which is the same layout.
        assert w.fout is not None
        fout = w.fout[0]
        for t in ckpt.tensors:
            bar.set_postfix_str(t.gguf_name, refresh=False)
            w.write_padding(fout, fout.tell())
            written = 0
            for block in _row_blocks(t):
                fout.write(memoryview(block).cast("B"))
                written += block.nbytes
                bar.update(block.nbytes)
            if written != t.out_nbytes:  # a shard changed under us
                raise ModelFormatError(f"{t.hf_name}: read {written} bytes, expected more")
            w.write_padding(fout, t.out_nbytes)
        fout.flush()
        os.fsync(fout.fileno())
    finally:
        w.close()
        bar.close()


# --- quantising ------------------------------------------------------------------------------


def quantize_gguf(
    src: Path, dest: Path, quant: str, *, threads: int, estimate: int, progress: bool = True
) -> None:
    """Quantise a 16-bit GGUF with llama.cpp's quantiser; progress from the output's size."""
    import llama_cpp
    from tqdm import tqdm

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_FTYPES[quant])
    params.nthread = threads
    # llama.cpp turns a whole tensor into F32 rows before quantising, 8 GiB at a time by
    # default: 2.3 GB for TEDLLM's embeddings. In 256 MiB pieces the quantiser's own memory
    # stayed at 0.4 GB instead of 2.8 GB (benchmarks/convert_memory.py), same output.
    if hasattr(params, "max_buf_size"):
        params.max_buf_size = QUANT_BUFFER_BYTES
    errors: list[str] = []

    # llama.cpp logs every tensor at INFO level; keep only its errors for our message.
    @llama_cpp.llama_log_callback
    def on_log(level: int, text: bytes, _data: ctypes.c_void_p) -> None:
        if level == 3:  # GGML_LOG_LEVEL_ERROR
            errors.append(text.decode("utf-8", errors="replace").strip())

    result: list[int] = []

    def work() -> None:
        result.append(
            llama_cpp.llama_model_quantize(
                str(src).encode(), str(dest).encode(), ctypes.byref(params)
            )
        )

    bar = tqdm(
        total=estimate,
        unit="B",
        unit_scale=True,
        desc=f"quantising {quant}",
        disable=not progress,
        file=sys.stderr,
    )
    llama_cpp.llama_log_set(on_log, ctypes.c_void_p(0))
    try:
        thread = threading.Thread(target=work, name="tedchat-quantize", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.25)
            size = dest.stat().st_size if dest.exists() else 0
            bar.total = max(bar.total or 0, size)
            bar.n = size
            bar.refresh()
    finally:
        from llama_cpp._logger import llama_log_callback  # llama-cpp-python's own logger

        llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))
        bar.close()
    if not result or result[0] != 0:
        detail = errors[-1] if errors else f"return code {result[0] if result else '?'}"
        raise ModelFormatError(f"llama.cpp could not quantise {src.name} to {quant}: {detail}")


# --- the whole conversion ------------------------------------------------------------------


@dataclass(frozen=True)
class ConvertResult:
    """What :func:`convert_checkpoint` made."""

    path: Path
    quant: str
    size_bytes: int
    seconds: float


def expectation_warnings(ckpt: Checkpoint, entry: Any) -> list[str]:
    """Where the checkpoint differs from what a registry entry says about the model."""
    if entry is None:
        return []
    found = {
        "context length": ckpt.hparams.context_length,
        "vocab size": ckpt.hparams.vocab_size,
        "bos id": ckpt.vocab.bos_token_id,
        "eos id": ckpt.vocab.eos_token_id,
    }
    promised = {
        "context length": entry.context_length,
        "vocab size": entry.vocab_size,
        "bos id": entry.bos_token_id,
        "eos id": entry.eos_token_id,
    }
    return [
        f"{ckpt.path.name}: {what} is {found[what]}, the registry says {value} for {entry.name}"
        for what, value in promised.items()
        if value is not None and found[what] != value
    ]


def conversion_bytes(n_params: int, quant: str) -> int:
    """Disk a conversion needs at its peak: the 16-bit GGUF, plus the quantised one."""
    f16 = int(n_params * QUANT_BYTES_PER_PARAM["F16"])
    return f16 if quant == "F16" else f16 + int(n_params * QUANT_BYTES_PER_PARAM[quant])


def check_free_space(folder: Path, needed: int, what: str, detail: str = "") -> None:
    """Refuse to start what would fill the disk, saying how much it needs (and for what)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        detail = f" ({detail})" if detail else ""
        raise TedchatError(
            f"not enough disk space in {folder}: {what} needs {gb(needed)}{detail}, "
            f"{gb(free)} free",
            hint="free some space, or keep tedchat's data on a bigger disk "
            "(TEDCHAT_HOME or XDG_DATA_HOME)",
        )


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def partial_path(path: Path) -> Path:
    """Where a file is written until it is complete."""
    return path.with_name(path.name + ".partial")


def convert_checkpoint(
    src: Path,
    out: Path,
    quant: str = "Q4_K_M",
    *,
    threads: int = 1,
    name: str | None = None,
    license: str | None = None,
    source_url: str | None = None,
    progress: bool = True,
    expect: Any = None,
    log: Log = _stderr,
) -> ConvertResult:
    """Convert the checkpoint folder ``src`` to the GGUF ``out`` in quantisation ``quant``.

    ``expect`` (a registry entry) states what the model card promises; a checkpoint that
    disagrees is converted all the same, with a warning (a wrong repo or revision?).
    """
    if quant not in QUANTS:
        raise TedchatError(f"unknown quantisation {quant!r}; choose one of {', '.join(QUANTS)}")
    started = time.perf_counter()
    ckpt = read_checkpoint(src)
    for warning in expectation_warnings(ckpt, expect):
        log(f"warning: {warning}")
    out.parent.mkdir(parents=True, exist_ok=True)
    final_partial = partial_path(out)
    f16_partial = (
        final_partial
        if quant == "F16"
        else partial_path(out.with_name(out.name.removesuffix(".gguf") + ".F16-intermediate.gguf"))
    )
    for stale in {final_partial, f16_partial}:
        stale.unlink(missing_ok=True)
    check_free_space(out.parent, conversion_bytes(ckpt.n_params, quant), f"converting to {quant}")
    log(f"converting {src} ({params(ckpt.n_params)} parameters) to {quant}: {out}")
    try:
        write_gguf(
            ckpt,
            f16_partial,
            name=name or src.name,
            license=license,
            source_url=source_url,
            progress=progress,
        )
        if quant != "F16":
            quantize_gguf(
                f16_partial,
                final_partial,
                quant,
                threads=threads,
                estimate=int(ckpt.n_params * QUANT_BYTES_PER_PARAM[quant]),
                progress=progress,
            )
            f16_partial.unlink()
        os.replace(final_partial, out)
    finally:
        for leftover in {final_partial, f16_partial}:
            leftover.unlink(missing_ok=True)
    return ConvertResult(out, quant, out.stat().st_size, time.perf_counter() - started)

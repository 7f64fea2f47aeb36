"""Peak memory of ``tedchat models convert`` on a checkpoint larger than a quarter of RAM.

TEDLLM is 32.5 GB of F32 safetensors; this machine has 24 GiB. The converter streams: it reads
blocks of rows through short-lived ``safe_open`` handles and writes the GGUF block by block, so
its peak RSS should stay near its fixed costs (Python, NumPy, the tokenizer tables) and far from
the model's size. The target (TEDLLM issue, acceptance 2): peak RSS below 1.5 x the largest
tensor + 512 MB.

The benchmark writes a synthetic checkpoint in TEDLLM's shapes (hidden 4096, FFN 14336, 32/8
heads, vocabulary 141,056, F32) with ``--layers`` layers (3: 7.2 GB, two shards) tensor by
tensor, so generating it needs no memory either; converts it in a child process while sampling
the child's VmRSS/VmHWM; reports; and deletes everything unless ``--keep``.

    .venv/bin/python benchmarks/convert_memory.py [--layers 3] [--quant F16] [--dir /tmp/x]

Not run in CI (minutes, ~11 GB of disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.models.synthetic import (  # noqa: E402
    LLAMA3_SPLIT_REGEX,
    SPECIAL_TOKENS,
    write_safetensors_streaming,
)

HIDDEN, FFN, HEADS, KV_HEADS, VOCAB = 4096, 14336, 32, 8, 141_056
BLOCK_ROWS_BYTES = 64 << 20


def byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table, the alphabet of byte-level BPE."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def synthetic_tokenizer(n_bpe: int) -> dict:
    """A Llama-3-shaped tokenizer.json with ``n_bpe`` BPE tokens and 256 special tokens.

    Merges pair existing tokens into new ones, so it is a valid BPE; the converter only needs
    its shape (it is not trained on anything).
    """
    tokens = byte_alphabet()
    seen = set(tokens)
    merges: list[list[str]] = []
    while len(tokens) < n_bpe:
        base = tokens[:600]
        for a in base:
            for b in base[:300]:
                merged = a + b
                if merged not in seen and len(tokens) < n_bpe:
                    seen.add(merged)
                    tokens.append(merged)
                    merges.append([a, b])
    specials = list(SPECIAL_TOKENS) + [
        f"<|reserved_special_token_{i}|>" for i in range(3, 256 - len(SPECIAL_TOKENS) + 3)
    ]
    added = [
        {
            "id": n_bpe + i,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, text in enumerate(specials[:256])
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": LLAMA3_SPLIT_REGEX},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": True,
                    "use_regex": False,
                },
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel"},
        "model": {
            "type": "BPE",
            "ignore_merges": True,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": merges,
        },
    }


def random_rows(rows: int, cols: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    step = max(1, BLOCK_ROWS_BYTES // (cols * 4))
    for start in range(0, rows, step):
        n = min(step, rows - start)
        yield (rng.random((n, cols), dtype=np.float32) - np.float32(0.5)) * np.float32(0.05)


def write_checkpoint(folder: Path, layers: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    hd = HIDDEN // HEADS
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HEADS * hd, HIDDEN)),
            (p + "self_attn.k_proj.weight", (KV_HEADS * hd, HIDDEN)),
            (p + "self_attn.v_proj.weight", (KV_HEADS * hd, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * hd)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "mlp.gate_proj.weight", (FFN, HIDDEN)),
            (p + "mlp.up_proj.weight", (FFN, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, FFN)),
        ]
    shapes += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]

    def blocks(shape: tuple[int, ...], seed: int):
        if len(shape) == 1:
            return lambda: iter([np.ones(shape, dtype=np.float32)])
        return lambda: random_rows(shape[0], shape[1], seed)

    half = len(shapes) // 2
    shards = {
        "model-00001-of-00002.safetensors": shapes[:half],
        "model-00002-of-00002.safetensors": shapes[half:],
    }
    weight_map, total = {}, 0
    for shard, members in shards.items():
        total += write_safetensors_streaming(
            folder / shard, [(n, s, blocks(s, i)) for i, (n, s) in enumerate(members)]
        )
        weight_map.update({n: shard for n, _ in members})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "vocab_size": VOCAB,
        "bos_token_id": 128000 + 12800,
        "eos_token_id": 128001 + 12800,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps(synthetic_tokenizer(VOCAB - 256)))
    largest = max(int(np.prod(s)) * 4 for _, s in shapes)
    return {"checkpoint_bytes": total, "largest_tensor_bytes": largest}


CHILD = """
import sys
from pathlib import Path
from tedchat.models.convert import convert_checkpoint
r = convert_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], threads=int(sys.argv[4]),
                       progress=False)
print(r.size_bytes, r.seconds)
"""


def measure(folder: Path, out: Path, quant: str, threads: int) -> dict:
    """Run the conversion in a child; sample its RSS; take its peak from the kernel."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), str(out), quant, str(threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    status = Path(f"/proc/{proc.pid}/status")
    hwm = anon = file = 0
    started = time.perf_counter()
    while proc.poll() is None:
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            hwm = max(hwm, int(fields["VmHWM"].split()[0]) * 1024)
            # Anonymous memory is what the process really holds; file-backed pages (a
            # memory-mapped input) count in RSS too but the kernel can drop them at will.
            anon = max(anon, int(fields["RssAnon"].split()[0]) * 1024)
            file = max(file, int(fields["RssFile"].split()[0]) * 1024)
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    stdout = proc.stdout.read() if proc.stdout else ""
    # ru_maxrss of the children reaped so far: this one is the only child.
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if proc.returncode != 0:
        raise SystemExit(f"conversion failed ({proc.returncode})")
    return {
        "quant": quant,
        "seconds": round(elapsed, 1),
        "output_bytes": out.stat().st_size,
        "peak_rss_bytes_sampled": hwm,
        "peak_rss_bytes_rusage": maxrss,
        "peak_rss_anon_bytes_sampled": anon,
        "peak_rss_file_bytes_sampled": file,
        "child_stdout": stdout.strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=3, help="3 layers: 7.2 GB of F32")
    parser.add_argument("--quant", default="F16", choices=("F16", "Q8_0", "Q4_K_M"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="tedchat-convert-memory-"))
    try:
        t0 = time.perf_counter()
        sizes = write_checkpoint(work / "ckpt", args.layers)
        generated = time.perf_counter() - t0
        result = measure(work / "ckpt", work / f"out.{args.quant}.gguf", args.quant, args.threads)
        budget = 1.5 * sizes["largest_tensor_bytes"] + 512 * 2**20
        peak = max(result["peak_rss_bytes_sampled"], result["peak_rss_bytes_rusage"])
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        report = {
            **sizes,
            "ram_bytes": ram,
            "checkpoint_over_quarter_ram": sizes["checkpoint_bytes"] > ram / 4,
            "generate_seconds": round(generated, 1),
            **result,
            "budget_bytes": int(budget),
            "peak_over_budget": round(peak / budget, 3),
            "within_budget": peak < budget,
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

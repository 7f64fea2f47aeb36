"""How long CLI commands that should feel instant take, beside a bare Python start.

Bounds:

- `tedchat --help` < 0.5 s (foundation issue), best of N;
- `tedchat models info smollm2` < 0.3 s and `tedchat engines` (the default engines, no config
  file) < 1.0 s (models issue), medians of N. Both read GGUF headers; the reader steps over
  the vocabulary instead of parsing it (tedchat/models/gguf_header.py).

The baseline (`python -c pass`) shows how much of that is the interpreter itself on this
machine. Commands run interleaved, so drift on a shared machine hits them alike. Each runs in a
fresh TEDCHAT_HOME (no config file: the default engines).

    .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOUNDS = {
    "tedchat --help": ("best", 0.5),
    "tedchat models info smollm2": ("median", 0.3),
    "tedchat engines": ("median", 1.0),
}


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    exe = shutil.which("tedchat", path=str(Path(sys.executable).parent)) or "tedchat"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "tedchat --help": [exe, "--help"],
        "tedchat ask --help": [exe, "ask", "--help"],
        "tedchat models info smollm2": [exe, "models", "info", "smollm2"],
        "tedchat engines": [exe, "engines"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEDCHAT_")}
        env["TEDCHAT_HOME"] = home
        for cmd in commands.values():  # warm the page cache once
            timed(cmd, env)
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(timed(cmd, env))
    base = min(times["python -c pass"])
    print(f"{'command':<30}{'best (s)':>10}{'median (s)':>12}{'x python':>10}")
    for name, ts in times.items():
        print(f"{name:<30}{min(ts):>10.3f}{statistics.median(ts):>12.3f}{min(ts) / base:>10.1f}")
    ok = True
    for name, (stat, bound) in BOUNDS.items():
        value = min(times[name]) if stat == "best" else statistics.median(times[name])
        passed = value < bound
        ok = ok and passed
        print(f"bound: {name} {stat} < {bound} s: {value:.3f} s {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

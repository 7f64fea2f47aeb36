"""How long `tedchat --help` takes, beside a bare Python start in the same run.

Bound (foundation issue): `tedchat --help` returns in under 0.5 s. The baseline (`python -c
pass`) shows how much of that is the interpreter itself on this machine.

    .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOUND_S = 0.5


def best_of(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("tedchat", path=str(Path(sys.executable).parent)) or "tedchat"
    rows = []
    for _ in range(2):  # interleave so drift hits both alike
        rows.append(("python -c pass", best_of([sys.executable, "-c", "pass"], args.runs)))
        rows.append(("tedchat --help", best_of([exe, "--help"], args.runs)))
        rows.append(("tedchat ask --help", best_of([exe, "ask", "--help"], args.runs)))
    best: dict[str, float] = {}
    for name, t in rows:
        best[name] = min(t, best.get(name, t))
    base = best["python -c pass"]
    print(f"{'command':<22}{'best (s)':>10}{'x python':>10}")
    for name, t in best.items():
        print(f"{name:<22}{t:>10.3f}{t / base:>10.1f}")
    ok = best["tedchat --help"] < BOUND_S
    print(f"bound: tedchat --help < {BOUND_S} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

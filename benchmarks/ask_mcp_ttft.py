"""What MCP servers add to the first token of ``tedchat ask``, end to end.

``tedchat ask`` runs as a person would run it (a new process each time), and the time from
launching it to the first byte of the answer on stdout is taken, with and without
``--mcp time`` (the real ``mcp-server-time``, started as a child of tedchat, its tools offered
to the model), interleaved run by run. The servers start while the engine loads, so the added
time is the server start beyond the engine's own load. Engines:

- ``scripted`` (the test plugin: no load, the first token at once): the whole server start is
  added;
- ``local`` (``--with-local``: the bundled SmolLM2 on llama.cpp, one thread), whose load
  overlaps the server start.

    .venv/bin/python benchmarks/ask_mcp_ttft.py [--runs 7] [--with-local]

Prints the medians and interquartile ranges, and the added time (median difference).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "tui" / "plugins"


def config(home: Path) -> None:
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"[plugins]\ndirs = [{json.dumps(str(PLUGINS))}]\n\n"
        '[tools]\nsources = []\napproval = "auto"\n\n'
        "[engines.scripted]\n"
        'type = "scripted"\ntext = "It is noon."\nttft_s = 0.0\ntokens_per_s = 0.0\n'
        "tools = true\n\n"
        f"[mcp.time]\ncommand = {json.dumps(sys.executable)}\n"
        'args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]\n',
        encoding="utf-8",
    )
    path.chmod(0o600)


def first_byte(home: Path, engine: str, mcp: bool) -> float:
    args = [sys.executable, "-m", "tedchat", "ask", "--engine", engine, "--no-history"]
    args += ["--max-tokens", "8", "--temperature", "0"]
    if mcp:
        args += ["--mcp", "time"]
    env = {**os.environ, "TEDCHAT_HOME": str(home), "TEDCHAT_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*args, "What time is it?"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(home),
    )
    assert proc.stdout is not None
    byte = proc.stdout.read(1)
    t = time.perf_counter() - t0
    _, err = proc.communicate(timeout=300)
    if proc.returncode != 0 or not byte:
        raise SystemExit(f"ask failed ({proc.returncode}): {err.decode(errors='replace')}")
    return t


def iqr(values: list[float]) -> float:
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--with-local", action="store_true", help="also the bundled model")
    args = parser.parse_args()
    engines = ["scripted", *(["local"] if args.with_local else [])]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config(home)
        for engine in engines:
            first_byte(home, engine, False)  # warm the file cache
            without, with_mcp = [], []
            for _ in range(args.runs):
                without.append(first_byte(home, engine, False))
                with_mcp.append(first_byte(home, engine, True))
            added = statistics.median(w - o for w, o in zip(with_mcp, without, strict=True))
            print(
                f"{engine:9s} first byte without MCP {statistics.median(without):.3f} s"
                f" (IQR {iqr(without):.3f}), with --mcp time {statistics.median(with_mcp):.3f} s"
                f" (IQR {iqr(with_mcp):.3f}): added {added:.3f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

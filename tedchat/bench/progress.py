"""Progress of a running bench on stderr: a redrawn bar on a terminal, plain lines otherwise.

Plain lines (one per finished batch) are what a log or a CI job wants, and what tests read;
the bar keeps a terminal to one line. stdout stays for the report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tedchat.bench.charts import block_bar
from tedchat.bench.runner import Listener, Step


def run_summary(runs: list[dict[str, Any]]) -> str:
    """One batch's figures in a few words, for the progress line."""
    if len(runs) == 1:
        r = runs[0]
        if r["error"] is not None:
            return f"failed: {r['error']}"
        parts = []
        parts.append(f"TTFT {r['ttft_s'] * 1000:.0f} ms" if r["ttft_s"] is not None else "TTFT -")
        rate = r["output_tokens_per_s"]
        parts.append(f"{rate:.1f} tok/s" if rate is not None else "- tok/s")
        approx = "~" if r["output_tokens_source"] == "chunks" else ""
        parts.append(f"{approx}{r['output_tokens']} tokens")
        return " · ".join(parts)
    failed = sum(1 for r in runs if r["error"] is not None)
    tokens = sum(r["output_tokens"] for r in runs if r["error"] is None)
    text = f"{len(runs)} requests · {tokens} tokens"
    return text + (f" · {failed} failed" if failed else "")


class Progress(Listener):
    """Reports the runner's progress to ``stream`` (stderr)."""

    def __init__(
        self,
        runs: int,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.runs = runs
        self.clock = clock
        self.t0 = clock()
        self._drawn = False

    def _line(self, text: str) -> None:
        """A line of its own (above the bar, on a terminal)."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _bar(self, done: int, total: int, label: str) -> None:
        elapsed = self.clock() - self.t0
        eta = ""
        if 0 < done < total:
            eta = f" · ~{elapsed / done * (total - done):.0f} s left"
        bar = block_bar(done, total, 24) if total else ""
        text = f"bench │{bar:<24}│ {done}/{total} · {label}{eta}"
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._drawn = True

    def _where(self, step: Step) -> str:
        phase = "warm-up" if step.phase == "warmup" else f"run {step.round}/{self.runs}"
        return f"{step.engine} · {step.prompt.id} · {phase}"

    def engine_loading(self, name: str, stage: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[2K{name}: {stage}")
            self.stream.flush()
            self._drawn = True
        elif stage != "loading":
            self._line(f"{name}: {stage}")

    def engine_loaded(self, name: str, seconds: float, error: str | None) -> None:
        if error is None:
            self._line(f"{name}: loaded in {seconds:.2f} s")
        else:
            self._line(f"{name}: did not load ({error}); benchmarking the others")

    def step_started(self, index: int, total: int, step: Step) -> None:
        if self.tty:
            self._bar(index - 1, total, self._where(step))

    def step_done(self, index: int, total: int, step: Step, runs: list[dict[str, Any]]) -> None:
        text = f"{self._where(step)}: {run_summary(runs)}"
        if self.tty:
            for r in runs:  # failures stay on screen; the bar only shows the latest batch
                if r["error"] is not None:
                    self._line(f"{self._where(step)}: failed: {r['error']}")
            self._bar(index, total, text)
        else:
            self._line(f"[{index}/{total}] {text}")

    def close(self) -> None:
        """End the bar's line so what follows starts clean."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._drawn = False

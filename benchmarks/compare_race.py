"""The race start in a real terminal: ``tedchat compare wafer-70b gpu-70b``, one prompt typed,
default options; when each pane's last line shows on screen, from the race start.

tmux (160x50) runs the installed command; the screen is read every ~20 ms. The race start on
screen is the first read where both panes say ``streaming…`` (they switch in the same event-loop
step); a pane has finished when its ``streaming…`` caption gives way to its final figures (the
last token drawn). Each pane's emulated finish time is its emulated TTFT plus ``(tokens - 1) /
emulated tok/s``, read from the summary table. Both panes prepare first on a machine slower
than the emulated hardware (the measured host tok/s is below the GPU's 61 tok/s here), so both
play on their emulated clocks from the race start.

    .venv/bin/python benchmarks/compare_race.py [--runs 3] [--max-tokens 300]

prints each run and the medians: screen finish times, emulated times, their ratio.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_terminal import PROMPT_PLACEHOLDER, TmuxSession, clean_env, tedchat_exe, temp_home

ENGINES = ("wafer-70b", "gpu-70b")
PROMPT = "Write a long story about a dragon who learns to read."
WIDTH, HEIGHT = 160, 50
SPLIT = WIDTH // 2  # the left pane's columns, then the right one's

ROW = re.compile(
    r"^\s*(?P<engine>\S+) · smollm2\s.*?\s(?P<tokens>\d+)\s+★?\s*[\d.]+ s\s+\w+\s+"
    r"(?:replay|emulated) [^:]+: TTFT (?P<ttft_ms>[\d.]+) ms · (?P<tps>[\d.]+) tok/s",
    re.MULTILINE,
)


@dataclass
class Run:
    """One race: seconds from the race start to each pane's last line on screen, and the
    emulated finish times."""

    screen_s: dict[str, float]
    emulated_s: dict[str, float]
    prepare_wait_s: float  # from Enter to the race start (loading done before Enter)

    def ratio(self, engine: str) -> float:
        return self.screen_s[engine] / self.emulated_s[engine]


def halves(screen: str) -> tuple[str, str]:
    lines = screen.splitlines()
    return "\n".join(line[:SPLIT] for line in lines), "\n".join(line[SPLIT:] for line in lines)


def race_once(max_tokens: int, timeout: float = 300.0) -> Run:
    """One fresh tedchat, one prompt, the screen read until the summary shows."""
    home = temp_home("tedchat-race-")
    argv = [tedchat_exe(), "compare", *ENGINES, "--max-tokens", str(max_tokens)]
    argv += ["--temperature", "0"]
    with TmuxSession(WIDTH, HEIGHT) as tmux:
        tmux.start(argv, clean_env(home))
        if tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 60) is None:
            raise RuntimeError("tedchat did not start:\n" + tmux.capture())
        # The engines load after the first frame: wait for both, so the race is the prompt's.
        tmux.wait_for(lambda s: "loading" in s, 10)
        ready = tmux.wait_for(lambda s: "loading" not in s, 180)
        if ready is None:
            raise RuntimeError("the engines did not load:\n" + tmux.capture())
        time.sleep(1.0)
        tmux.send_keys(PROMPT, literal=True)
        sent = tmux.send_keys("Enter")
        start = tmux.wait_for(
            lambda s: all("streaming…" in h for h in halves(s)), timeout, poll=0.01
        )
        if start is None:
            raise RuntimeError("no race start:\n" + tmux.capture())
        finished: dict[str, float] = {}

        def note(screen: str) -> None:
            now = time.monotonic()
            for engine, half in zip(ENGINES, halves(screen), strict=True):
                if engine not in finished and "streaming…" not in half:
                    finished[engine] = now

        done = tmux.wait_for(
            lambda s: len(finished) == len(ENGINES) and "Side by side" in s,
            timeout,
            poll=0.01,
            on_poll=note,
        )
        if done is None:
            raise RuntimeError("the race did not finish:\n" + tmux.capture())
        emulated = {}
        for m in ROW.finditer(done.screen):
            n, ttft, tps = int(m["tokens"]), float(m["ttft_ms"]) / 1000, float(m["tps"])
            emulated[m["engine"]] = ttft + (n - 1) / tps
        if set(emulated) != set(ENGINES):
            raise RuntimeError("the summary's emulated figures were not found:\n" + done.screen)
        return Run({e: finished[e] - start.t for e in ENGINES}, emulated, start.t - sent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=300)
    args = parser.parse_args()
    runs = []
    for i in range(args.runs):
        run = race_once(args.max_tokens)
        runs.append(run)
        print(
            f"run {i + 1}: prepare+wait {run.prepare_wait_s:.1f} s; "
            + "; ".join(
                f"{e} screen {run.screen_s[e]:.3f} s vs emulated {run.emulated_s[e]:.3f} s "
                f"({run.ratio(e):.2f})"
                for e in ENGINES
            ),
            flush=True,
        )
    print(f"medians over {len(runs)} runs ({args.max_tokens} tokens):")
    for e in ENGINES:
        screen = statistics.median(r.screen_s[e] for r in runs)
        emulated = statistics.median(r.emulated_s[e] for r in runs)
        ratio = statistics.median(r.ratio(e) for r in runs)
        print(f"  {e}: screen {screen:.3f} s, emulated {emulated:.3f} s, ratio {ratio:.2f}")
    first = statistics.median(r.screen_s[ENGINES[0]] < r.screen_s[ENGINES[1]] for r in runs)
    print(f"  wafer pane finished first: {bool(first)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

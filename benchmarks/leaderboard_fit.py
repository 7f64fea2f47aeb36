"""How long ``tedchat arena leaderboard`` takes to fit N votes, and whether it recovers known
strengths: votes between 6 engines whose true strengths are 1.5**i (70.4 rating points apart),
each pair drawn at random, the winner drawn from the Bradley-Terry odds (seeded).

Run: ``.venv/bin/python benchmarks/leaderboard_fit.py [N ...]`` (default 1000 10000); prints,
per N, the median of 5 fits in seconds and the fitted gaps between neighbouring engines.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time

from tedchat.history.records import ReplyMetrics
from tedchat.history.votes import Vote, VotePane, pairs_for
from tedchat.leaderboard import leaderboard

ENGINES = [f"e{i}" for i in range(6)]
STRENGTH = {e: 1.5**i for i, e in enumerate(ENGINES)}


def votes(n: int, seed: int = 0) -> list[Vote]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.sample(ENGINES, 2)
        winner = "A" if rng.random() < STRENGTH[a] / (STRENGTH[a] + STRENGTH[b]) else "B"
        panes = (
            VotePane("A", a, "m", metrics=ReplyMetrics(0.1, 50.0)),
            VotePane("B", b, "m", metrics=ReplyMetrics(0.2, 40.0)),
        )
        out.append(Vote("q", "win", winner, panes, pairs=pairs_for("win", winner, "AB")))
    return out


def main(sizes: list[int]) -> None:
    true_gap = 400 * math.log10(1.5)
    print(f"true gap between neighbours: {true_gap:.1f} points")
    for n in sizes:
        data = votes(n)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            board = leaderboard(data)
            times.append(time.perf_counter() - t0)
        rating = {s.engine: s.rating or 0.0 for s in board.standings}
        gaps = [rating[ENGINES[i + 1]] - rating[ENGINES[i]] for i in range(len(ENGINES) - 1)]
        widths = [(s.ci_high or 0) - (s.ci_low or 0) for s in board.standings]
        print(
            f"{n:>6} votes: fit median {statistics.median(times):.3f} s;"
            f" gaps {', '.join(f'{g:.0f}' for g in gaps)};"
            f" mean 95% interval width {statistics.mean(widths):.0f} points"
        )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])

"""The arena leaderboard: engines ranked by a Bradley-Terry fit of the stored votes, each with a
confidence interval, beside the median TTFT and output tokens/s of its voted replies.

The model
---------
Engine *i* has a strength ``p_i``; the chance that *i*'s reply is preferred to *j*'s is
``p_i / (p_i + p_j)``. An engine is an (engine name, model) pair: the same engine name running
another model is rated apart. The fit uses the pairwise results the votes stand for
(:mod:`tedchat.history.votes`): a win is one point for the winner over each other pane.

- **Ties** count as half a win for each side (the simple choice: no extra tie parameter as in
  Davidson's model; the fitted strengths are what a tie-free vote would give on average).
- **All bad** votes are stored and exported but do not enter the fit: "both bad" says nothing
  about which was better. Neither do votes in which two panes ran the same text model (the same
  resolved model file): those answers differ by pacing only.
- **A prior** keeps every strength finite (an engine that never won would otherwise fit to
  zero): each engine also has a virtual tie, weighing a fifth of a vote
  (:data:`PRIOR_GAMES`), with a reference engine of strength 1. Light, so that a handful of
  votes is not pulled to the middle and its interval stays honestly wide.

The fit is the maximum of the likelihood by Newton's method on the log-strengths (NumPy; the
prior makes the problem strictly concave, so it converges in a few steps), stopped when a step
moves no log-strength by 1e-10. The rating is on an Elo-like scale, ``400 * log10(p_i)``
centred so the engines' mean is 1000 (votes only say how engines compare, not where the scale
sits): 400 points apart mean 10:1 odds.

The interval is rating +- 1.96 standard errors, the errors from the Fisher information at the
fit (the inverse of the negated Hessian of the log-likelihood, prior included, projected onto
the centred ratings). It shrinks like one over the square root of the votes, and it is wide
where the votes say little: an engine that never won (or never lost) gets a wide interval,
where a bootstrap over votes would resample the same clean sweep and come out narrow.
``votes`` counts the fitted votes an engine took part
in; ``wins``/``losses``/``ties`` count its pairwise results in them (a win over three panes is
three wins). The median TTFT and tok/s are over every voted reply of the engine with that figure
(fitted or not: speed does not depend on the verdict).
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tedchat.history.votes import Vote

Z95 = 1.959964  # the normal quantile of a two-sided 95% interval
BASE_RATING, SCALE = 1000.0, 400.0
PRIOR_GAMES = 0.2  # the weight of each engine's virtual tie with the reference
METHOD = (
    "Bradley-Terry (maximum likelihood, Newton; a tie is half a win each; a virtual tie of "
    f"weight {PRIOR_GAMES} per engine with a reference; ratings centred on a mean of 1000; "
    "95% interval: rating +- 1.96 standard errors from the Fisher information; all-bad votes "
    "and votes between panes sharing a text model are stored but not fitted)"
)

Key = tuple[str, str]  # (engine, model)


@dataclass(frozen=True)
class Standing:
    """One engine's row. ``rating`` and the interval are None for an engine with no fitted
    vote (it appears only in all-bad or shared-text-model votes)."""

    engine: str
    model: str
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    votes: int
    wins: int
    losses: int
    ties: int
    median_ttft_s: float | None
    median_output_tokens_per_s: float | None


@dataclass(frozen=True)
class Leaderboard:
    method: str
    standings: list[Standing]
    total_votes: int
    fitted_votes: int
    all_bad_votes: int
    shared_model_votes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "engines": [asdict(s) for s in self.standings],
            "votes": self.total_votes,
            "fitted_votes": self.fitted_votes,
            "excluded": {
                "all_bad": self.all_bad_votes,
                "shared_text_model": self.shared_model_votes,
            },
        }


def _key(vote: Vote, label: str) -> Key:
    pane = vote.pane(label)
    return pane.engine, pane.model or ""


def vote_results(vote: Vote) -> list[tuple[Key, Key, float]]:
    """The fitted results of one vote: (i, j, score of i against j) with 1 a win, 0.5 a tie."""
    if not vote.ranked:
        return []
    out = []
    for pair in vote.pairs:
        if pair.result == "first":
            out.append((_key(vote, pair.first), _key(vote, pair.second), 1.0))
        elif pair.result == "tie":
            out.append((_key(vote, pair.first), _key(vote, pair.second), 0.5))
    return out


def fit_with_errors(
    results: Sequence[tuple[int, int, float]], n: int
) -> tuple[list[float], list[float]]:
    """Ratings (the scale in the module doc) of ``n`` engines from (i, j, score of i) results,
    and each rating's standard error from the Fisher information (same scale)."""
    import numpy as np

    wins = np.full(n, PRIOR_GAMES / 2)  # the prior: a light virtual tie with a reference
    games = np.zeros((n, n))
    for i, j, s in results:
        wins[i] += s
        wins[j] += 1.0 - s
        games[i, j] += 1.0
        games[j, i] += 1.0
    theta = np.zeros(n)  # log-strengths; the reference's is 0

    def hessian_at(theta: Any) -> tuple[Any, Any]:
        prob = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        prob_ref = 1.0 / (1.0 + np.exp(-theta))
        grad = wins - (games * prob).sum(axis=1) - PRIOR_GAMES * prob_ref
        weight = games * prob * (1.0 - prob)
        ref_weight = PRIOR_GAMES * prob_ref * (1.0 - prob_ref)
        return grad, weight - np.diag(weight.sum(axis=1) + ref_weight)

    for _ in range(200):
        grad, hessian = hessian_at(theta)
        step = np.linalg.solve(hessian, grad)
        theta = theta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    _grad, hessian = hessian_at(theta)
    centre = np.eye(n) - np.full((n, n), 1.0 / n)  # only differences are identified
    cov = centre @ np.linalg.inv(-hessian) @ centre.T
    per_unit = SCALE / np.log(10.0)
    ratings = [float(BASE_RATING + per_unit * t) for t in centre @ theta]
    errors = [float(per_unit * np.sqrt(max(v, 0.0))) for v in np.diag(cov)]
    return ratings, errors


def fit(results: Sequence[tuple[int, int, float]], n: int) -> list[float]:
    """The ratings of :func:`fit_with_errors`."""
    return fit_with_errors(results, n)[0]


def leaderboard(votes: Sequence[Vote]) -> Leaderboard:
    """Rank the engines of ``votes`` (see the module doc)."""
    fitted = [v for v in votes if v.ranked]
    keys: list[Key] = []
    for v in votes:
        for pane in v.panes:
            key = (pane.engine, pane.model or "")
            if key not in keys:
                keys.append(key)
    fitted_keys = sorted({k for v in fitted for k in (_key(v, p.label) for p in v.panes)})
    index = {k: i for i, k in enumerate(fitted_keys)}
    per_vote = [[(index[a], index[b], s) for a, b, s in vote_results(v)] for v in fitted]
    n = len(fitted_keys)
    ratings, errors = fit_with_errors([r for rs in per_vote for r in rs], n) if n else ([], [])
    lows = [r - Z95 * e for r, e in zip(ratings, errors, strict=True)]
    highs = [r + Z95 * e for r, e in zip(ratings, errors, strict=True)]
    tally = {k: [0, 0, 0, 0] for k in fitted_keys}  # votes, wins, losses, ties
    for v, rs in zip(fitted, per_vote, strict=True):
        for label in {p.label for p in v.panes}:
            tally[_key(v, label)][0] += 1
        for i, j, score in rs:
            first, second = tally[fitted_keys[i]], tally[fitted_keys[j]]
            if score == 0.5:
                first[3] += 1
                second[3] += 1
            else:
                first[1] += 1
                second[2] += 1
    standings = []
    for key in keys:
        ttfts, rates = [], []
        for v in votes:
            for pane in v.panes:
                if (pane.engine, pane.model or "") == key:
                    if pane.metrics.ttft_s is not None:
                        ttfts.append(pane.metrics.ttft_s)
                    if pane.metrics.output_tokens_per_s is not None:
                        rates.append(pane.metrics.output_tokens_per_s)
        at = index.get(key)
        t = tally.get(key, [0, 0, 0, 0])
        standings.append(
            Standing(
                engine=key[0],
                model=key[1],
                rating=None if at is None else round(ratings[at], 1),
                ci_low=_rounded(None if at is None else lows[at]),
                ci_high=_rounded(None if at is None else highs[at]),
                votes=t[0],
                wins=t[1],
                losses=t[2],
                ties=t[3],
                median_ttft_s=statistics.median(ttfts) if ttfts else None,
                median_output_tokens_per_s=statistics.median(rates) if rates else None,
            )
        )
    standings.sort(key=lambda s: (s.rating is None, -(s.rating or 0.0), s.engine, s.model))
    return Leaderboard(
        METHOD,
        standings,
        total_votes=len(votes),
        fitted_votes=len(fitted),
        all_bad_votes=sum(1 for v in votes if v.outcome == "all_bad"),
        shared_model_votes=sum(1 for v in votes if v.outcome != "all_bad" and v.shared_text_model),
    )


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def render_text(board: Leaderboard) -> str:
    """The leaderboard as a plain-text table (``tedchat arena leaderboard``)."""
    if not board.standings:
        return "no arena votes yet: vote with 'tedchat arena ENGINE ENGINE'\n"
    header = ["#", "engine", "model", "rating", "95% CI", "votes", "W-L-T", "TTFT", "tok/s"]
    rows = []
    for rank, s in enumerate(board.standings, 1):
        rows.append(
            [
                str(rank) if s.rating is not None else "-",
                s.engine,
                s.model,
                f"{s.rating:.0f}" if s.rating is not None else "-",
                f"{s.ci_low:.0f}..{s.ci_high:.0f}"
                if s.ci_low is not None and s.ci_high is not None
                else "-",
                str(s.votes),
                f"{s.wins}-{s.losses}-{s.ties}",
                f"{s.median_ttft_s * 1000:.0f} ms" if s.median_ttft_s is not None else "-",
                f"{s.median_output_tokens_per_s:.1f}"
                if s.median_output_tokens_per_s is not None
                else "-",
            ]
        )
    right = {0, 3, 4, 5, 6, 7, 8}
    widths = [max(_width(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        "  ".join(_pad(cell, widths[c], c in right) for c, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    import textwrap

    lines.append("")
    lines += textwrap.wrap(
        f"{board.total_votes} votes, {board.fitted_votes} fitted"
        f" ({board.all_bad_votes} all bad, {board.shared_model_votes} between panes sharing a"
        " text model: stored, not fitted). W-L-T: pairwise wins, losses and ties. TTFT and"
        " tok/s: medians of the voted replies.",
        100,
    )
    lines += textwrap.wrap(f"method: {board.method}", 100)
    return "\n".join(lines) + "\n"

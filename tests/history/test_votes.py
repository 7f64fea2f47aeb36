"""Arena votes in the history (schema v6) and the leaderboard fitted from them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tedchat.history.records import ReplyMetrics
from tedchat.history.store import Store
from tedchat.history.votes import Pair, Vote, VotePane, pairs_for
from tedchat.leaderboard import fit, leaderboard, render_text


def pane(label: str, engine: str, ttft: float = 0.1, tps: float = 50.0) -> VotePane:
    return VotePane(
        label,
        engine,
        f"{engine}-model",
        reply=f"{engine} の答え",
        finish_reason="stop",
        metrics=ReplyMetrics(ttft, tps, 10, 20),
    )


def test_a_win_is_the_winners_result_over_each_other_pane_and_a_tie_every_pair() -> None:
    assert pairs_for("win", "B", ["A", "B", "C"]) == (
        Pair("B", "A", "first"),
        Pair("B", "C", "first"),
    )
    assert pairs_for("tie", None, ["A", "B", "C"]) == (
        Pair("A", "B", "tie"),
        Pair("A", "C", "tie"),
        Pair("B", "C", "tie"),
    )
    assert {p.result for p in pairs_for("all_bad", None, ["A", "B"])} == {"both_bad"}
    with pytest.raises(ValueError, match="winner"):
        pairs_for("win", "D", ["A", "B"])


def test_votes_round_trip_with_their_panes_pairs_and_japanese_text(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        mid = store.add_user_message(cid, "日本の首都は?")
        vote = Vote(
            "日本の首都は?",
            "win",
            "A",
            (pane("A", "good"), pane("B", "bad")),
            conversation_id=cid,
            message_id=mid,
            preset="簡潔",
            system="日本語で",
            params={"temperature": 0.2},
        )
        vid = store.add_vote(vote)
        (back,) = store.votes()
        assert back.id == vid and back.created is not None
        assert (back.prompt, back.preset, back.system, back.params) == (
            "日本の首都は?",
            "簡潔",
            "日本語で",
            {"temperature": 0.2},
        )
        assert back.panes == vote.panes
        assert back.pairs == (Pair("A", "B", "first"),)
        assert back.as_dict()["pairs"] == [{"first": "good", "second": "bad", "result": "first"}]
        # Deleting the conversation keeps the vote (its copies of the prompt and replies).
        store.delete(cid)
        (kept,) = store.votes()
        assert (kept.conversation_id, kept.message_id) == (None, None)
        assert kept.pane("A").reply == "good の答え"


def scripted_votes(n: int, p_good: float = 0.8, seed: int = 7) -> list[Vote]:
    """``n`` two-pane votes: "good" is picked with probability ``p_good``; the pane order
    alternates; every fifth vote between "good" and a third engine is a tie."""
    rng = random.Random(seed)
    votes = []
    for k in range(n):
        a, b = ("good", "bad") if k % 2 else ("bad", "good")
        if k % 5 == 4:
            votes.append(Vote("q", "tie", None, (pane("A", "good"), pane("B", "mid"))))
            continue
        good_label = "A" if a == "good" else "B"
        bad_label = "B" if good_label == "A" else "A"
        winner = good_label if rng.random() < p_good else bad_label
        panes = (
            pane("A", a, 0.1 if a == "good" else 0.4),
            pane("B", b, 0.1 if b == "good" else 0.4),
        )
        votes.append(Vote("q", "win", winner, panes))
    return [
        Vote(v.prompt, v.outcome, v.winner, v.panes, pairs=pairs_for(v.outcome, v.winner, "AB"))
        for v in votes
    ]


def test_the_leaderboard_ranks_the_better_engine_first_and_narrows_with_more_votes(
    db: Path,
) -> None:
    with Store.open(db) as store:
        for vote in scripted_votes(15):
            store.add_vote(vote)
        few = leaderboard(store.votes())
        for vote in scripted_votes(150, seed=8):
            store.add_vote(vote)
        store.add_vote(Vote("q", "all_bad", None, (pane("A", "good"), pane("B", "bad"))))
        many = leaderboard(store.votes())
    for board in (few, many):
        names = [s.engine for s in board.standings]
        assert names.index("good") < names.index("bad")
        good = board.standings[names.index("good")]
        bad = board.standings[names.index("bad")]
        assert good.rating is not None and bad.rating is not None
        assert good.ci_low is not None and good.ci_high is not None
        assert good.ci_low <= good.rating <= good.ci_high
    width = {
        b: {s.engine: (s.ci_high or 0) - (s.ci_low or 0) for s in board.standings}
        for b, board in (("few", few), ("many", many))
    }
    for engine in ("good", "bad"):
        assert width["many"][engine] < 0.6 * width["few"][engine], width
    good = next(s for s in many.standings if s.engine == "good")
    assert good.votes == sum(
        1
        for v in (*scripted_votes(15), *scripted_votes(150, seed=8))
        if v.ranked and "good" in {p.engine for p in v.panes}
    )
    assert good.median_ttft_s == 0.1 and good.median_output_tokens_per_s == 50.0
    assert many.all_bad_votes == 1 and many.fitted_votes == 165
    # The same votes give the same board.
    with Store.open(db) as store:
        assert leaderboard(store.votes()) == many
    assert "good" in render_text(many) and "method: Bradley-Terry" in render_text(many)


def test_newtons_fit_agrees_with_hunters_mm_iteration() -> None:
    """The fit is the likelihood's maximum: the MM iteration of Hunter (2004), run to
    convergence on the same data (the prior's light tie with a reference of strength 1 included),
    lands on the same strengths."""
    import math

    results = [(0, 1, 1.0)] * 7 + [(1, 0, 1.0)] * 3 + [(1, 2, 1.0)] * 5 + [(0, 2, 0.5)] * 4
    n = 3
    prior = 0.2
    wins = [prior / 2] * n
    games = [[0.0] * n for _ in range(n)]
    for i, j, s in results:
        wins[i] += s
        wins[j] += 1 - s
        games[i][j] += 1
        games[j][i] += 1
    p = [1.0] * n
    for _ in range(20000):
        p = [
            wins[i] / (sum(games[i][j] / (p[i] + p[j]) for j in range(n)) + prior / (p[i] + 1))
            for i in range(n)
        ]
    logs = [400 * math.log10(x) for x in p]
    expected = [1000 + v - sum(logs) / n for v in logs]
    assert fit(results, n) == pytest.approx(expected, abs=1e-6)


def test_no_votes_make_an_empty_leaderboard() -> None:
    board = leaderboard([])
    assert board.as_json()["engines"] == [] and "no arena votes" in render_text(board)


def test_a_clean_sweep_of_a_few_votes_has_a_wide_interval() -> None:
    """Five wins and no loss say little: the Fisher interval stays wide (a bootstrap would
    resample the same sweep and come out narrow)."""
    votes = [
        Vote(
            "q", "win", "A", (pane("A", "good"), pane("B", "bad")), pairs=(Pair("A", "B", "first"),)
        )
        for _ in range(5)
    ]
    (good, bad) = leaderboard(votes).standings
    assert good.engine == "good" and good.rating is not None and bad.rating is not None
    assert good.ci_low is not None and good.ci_high is not None
    assert good.ci_high - good.ci_low > 400


def test_leaderboard_properties_over_random_votes() -> None:
    """Over any votes: the fitted ratings average 1000, every interval holds its rating, and
    which label a pane had (its place on screen) changes nothing."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    engines = ["a", "b", "c", "日本"]
    vote_st = st.tuples(
        st.lists(st.sampled_from(engines), min_size=2, max_size=4, unique=True),
        st.sampled_from(["win", "tie", "all_bad"]),
        st.integers(0, 3),
    )

    def make(spec: tuple[list[str], str, int], flip: bool) -> Vote:
        names, outcome, pick = spec
        order = list(reversed(names)) if flip else names
        labels = {name: "ABCD"[i] for i, name in enumerate(order)}
        panes = tuple(sorted((pane(labels[n], n) for n in names), key=lambda p: p.label))
        winner = labels[names[pick % len(names)]] if outcome == "win" else None
        return Vote(
            "q",
            outcome,
            winner,
            panes,
            pairs=pairs_for(outcome, winner, list("ABCD")[: len(names)]),
        )

    @settings(max_examples=60, deadline=None)
    @given(st.lists(vote_st, min_size=1, max_size=25))
    def check(specs: list[tuple[list[str], str, int]]) -> None:
        board = leaderboard([make(s, False) for s in specs])
        flipped = leaderboard([make(s, True) for s in specs])
        rated = [s for s in board.standings if s.rating is not None]
        if rated:
            assert sum(s.rating or 0 for s in rated) / len(rated) == pytest.approx(1000, abs=0.1)
        for s in rated:
            assert (s.ci_low or 0) <= (s.rating or 0) <= (s.ci_high or 0)
        same = {(s.engine, s.rating, s.wins, s.losses, s.ties) for s in board.standings}
        assert same == {(s.engine, s.rating, s.wins, s.losses, s.ties) for s in flipped.standings}

    check()

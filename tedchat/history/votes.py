"""Arena votes as the history stores them (schema v6): what was asked, what each pane answered,
and which pane the person picked.

A vote has an outcome: ``win`` (one pane picked as the best), ``tie`` (all equally good) or
``all_bad``. It is stored with the pairwise results it stands for (``vote_pairs``): a win is
the winner's result over each other pane (``first`` beat ``second``); a tie is a tie between
every two panes; all bad is ``both_bad`` for every two panes (kept, never fitted: see
:mod:`tedchat.leaderboard`). ``shared_text_model`` marks a vote in which two panes ran the
same text model (the same resolved model file): their answers differ by pacing only, so the
vote says nothing about quality and stays out of the ranking.

The prompt and every reply are copied into the vote, beside the message ids in the tree
(``message_id`` the prompt, ``reply_id`` each reply; set to NULL if the conversation is
deleted), so the leaderboard and ``tedchat arena export`` never depend on the conversation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from tedchat.history.records import ReplyMetrics, compact_json, json_object

OUTCOMES = ("win", "tie", "all_bad")


@dataclass(frozen=True)
class VotePane:
    """One pane as it was voted on."""

    label: str
    engine: str
    model: str | None
    text_model: str | None = None
    reply_id: int | None = None
    reply: str = ""
    finish_reason: str | None = None
    metrics: ReplyMetrics = field(default_factory=ReplyMetrics)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "engine": self.engine,
            "model": self.model,
            "text_model": self.text_model,
            "reply_id": self.reply_id,
            "reply": self.reply,
            "finish_reason": self.finish_reason,
            "metrics": self.metrics.as_dict(),
        }


@dataclass(frozen=True)
class Pair:
    """One pairwise result, by pane label: ``first`` beat ``second``, a tie, or both bad."""

    first: str
    second: str
    result: str  # first | tie | both_bad


@dataclass(frozen=True)
class Vote:
    """One vote with its panes and pairwise results; ``id`` and ``created`` are set by the
    store."""

    prompt: str
    outcome: str
    winner: str | None
    panes: tuple[VotePane, ...]
    conversation_id: int | None = None
    message_id: int | None = None
    blind: bool = True
    shared_text_model: bool = False
    preset: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    pairs: tuple[Pair, ...] = ()
    id: int | None = None
    created: float | None = None

    @property
    def ranked(self) -> bool:
        """Whether the vote enters the quality ranking."""
        return self.outcome != "all_bad" and not self.shared_text_model

    def pane(self, label: str) -> VotePane:
        return next(p for p in self.panes if p.label == label)

    def as_dict(self) -> dict[str, Any]:
        """The vote as ``tedchat arena export`` writes it (one JSON object)."""
        by_label = {p.label: p for p in self.panes}
        return {
            "id": self.id,
            "created": self.created,
            "outcome": self.outcome,
            "winner": self.winner,
            "winner_engine": by_label[self.winner].engine if self.winner in by_label else None,
            "blind": self.blind,
            "shared_text_model": self.shared_text_model,
            "ranked": self.ranked,
            "prompt": self.prompt,
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "preset": self.preset,
            "system": self.system,
            "params": self.params,
            "panes": [p.as_dict() for p in self.panes],
            "pairs": [
                {
                    "first": by_label[p.first].engine,
                    "second": by_label[p.second].engine,
                    "result": p.result,
                }
                for p in self.pairs
            ],
        }


def pairs_for(outcome: str, winner: str | None, labels: Sequence[str]) -> tuple[Pair, ...]:
    """The pairwise results a vote stands for (see the module doc)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown vote outcome {outcome!r}")
    if outcome == "win":
        if winner is None or winner not in labels:
            raise ValueError(f"the winner {winner!r} is not one of the panes {list(labels)}")
        return tuple(Pair(winner, other, "first") for other in labels if other != winner)
    result = "tie" if outcome == "tie" else "both_bad"
    return tuple(Pair(a, b, result) for a, b in combinations(labels, 2))


def insert_vote(conn: sqlite3.Connection, vote: Vote, now: float) -> int:
    """Write ``vote`` (its pairs computed from its outcome) and return its id."""
    pairs = pairs_for(vote.outcome, vote.winner, [p.label for p in vote.panes])
    cur = conn.execute(
        "INSERT INTO votes(created, conversation_id, message_id, prompt, outcome, winner, blind,"
        " shared_text_model, preset, system, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            vote.conversation_id,
            vote.message_id,
            vote.prompt,
            vote.outcome,
            vote.winner,
            int(vote.blind),
            int(vote.shared_text_model),
            vote.preset,
            vote.system,
            compact_json(vote.params),
        ),
    )
    vid = int(cur.lastrowid or 0)
    for p in vote.panes:
        m = p.metrics
        conn.execute(
            "INSERT INTO vote_panes(vote_id, label, engine, model, text_model, reply_id, reply,"
            " finish_reason, ttft_s, output_tokens_per_s, prompt_tokens, output_tokens,"
            " extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                vid,
                p.label,
                p.engine,
                p.model,
                p.text_model,
                p.reply_id,
                p.reply,
                p.finish_reason,
                m.ttft_s,
                m.output_tokens_per_s,
                m.prompt_tokens,
                m.output_tokens,
                compact_json(m.extra) if m.extra else None,
            ),
        )
    conn.executemany(
        "INSERT INTO vote_pairs(vote_id, first, second, result) VALUES (?, ?, ?, ?)",
        [(vid, p.first, p.second, p.result) for p in pairs],
    )
    return vid


def read_votes(conn: sqlite3.Connection) -> list[Vote]:
    """Every vote, oldest first, with its panes (in label order) and pairs."""
    panes: dict[int, list[VotePane]] = {}
    for row in conn.execute(
        "SELECT vote_id, label, engine, model, text_model, reply_id, reply, finish_reason,"
        " ttft_s, output_tokens_per_s, prompt_tokens, output_tokens, extra_json"
        " FROM vote_panes ORDER BY vote_id, label"
    ):
        vid, label, engine, model, text_model, reply_id, reply, finish = row[:8]
        ttft, tps, ptok, otok, extra = row[8:]
        metrics = ReplyMetrics(ttft, tps, ptok, otok, json_object(extra))
        panes.setdefault(vid, []).append(
            VotePane(label, engine, model, text_model, reply_id, reply, finish, metrics)
        )
    pairs: dict[int, list[Pair]] = {}
    for vid, first, second, result in conn.execute(
        "SELECT vote_id, first, second, result FROM vote_pairs ORDER BY vote_id, first, second"
    ):
        pairs.setdefault(vid, []).append(Pair(first, second, result))
    votes = []
    for row in conn.execute(
        "SELECT id, created, conversation_id, message_id, prompt, outcome, winner, blind,"
        " shared_text_model, preset, system, params FROM votes ORDER BY id"
    ):
        vid, created, cid, mid, prompt, outcome, winner, blind, shared, preset, system = row[:11]
        votes.append(
            Vote(
                prompt=prompt,
                outcome=outcome,
                winner=winner,
                panes=tuple(panes.get(vid, ())),
                conversation_id=cid,
                message_id=mid,
                blind=bool(blind),
                shared_text_model=bool(shared),
                preset=preset,
                system=system,
                params=json_object(row[11]),
                pairs=tuple(pairs.get(vid, ())),
                id=vid,
                created=created,
            )
        )
    return votes

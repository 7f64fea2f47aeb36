"""The arena's rules, apart from any screen: blind labels and their shuffled order, which panes
share a text model, and a vote built from a round's stored replies.

A blind round shows 2-4 panes labelled ``A``, ``B``, ... in an order shuffled by a
:class:`random.Random` (seeded by ``--seed``: the same seed, the same rounds; :func:`deal`).
Two engines share a text model when their ``model`` setting resolves to the same model file
(a registry name, an ``hf:`` name or a path, as :func:`tedchat.models.registry.resolve_model`
resolves them; a name that resolves to no file is compared as written). Such panes differ only
in pacing, so they are flagged before the vote and the vote stays out of the quality ranking
(:attr:`tedchat.history.votes.Vote.ranked`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tedchat.errors import TedchatError

if TYPE_CHECKING:
    from tedchat.engines import Engines
    from tedchat.history.records import Conversation, Reply
    from tedchat.history.votes import Vote

LABELS = ("A", "B", "C", "D")


def deal(names: Sequence[str], rng: random.Random) -> list[str]:
    """``names`` in the order of the next blind round (``rng`` seeded by ``--seed``: the same
    seed deals the same rounds)."""
    order = list(names)
    rng.shuffle(order)
    return order


def labels_for(names: Sequence[str]) -> dict[str, str]:
    """Engine name -> its pane label, in pane order."""
    return {name: LABELS[i] for i, name in enumerate(names)}


def text_model_key(engines: Engines, name: str) -> str | None:
    """What identifies ``name``'s text model: the resolved model file, else the ``model``
    setting as written; None when the engine names no model (it never counts as shared)."""
    try:
        settings = engines.resolved_settings(engines.spec(name))
    except TedchatError:
        return None
    model = settings.get("model")
    if not isinstance(model, str) or not model.strip():
        return None
    from tedchat.models.registry import resolve_model

    try:
        return str(resolve_model(model).resolve())
    except (TedchatError, OSError):
        return str(Path(model).expanduser()) if "/" in model else model


def shared_groups(keys: Mapping[str, str | None]) -> list[list[str]]:
    """Labels whose text model is the same, grouped (groups of two or more, label order)."""
    groups: dict[str, list[str]] = {}
    for label in sorted(keys):
        key = keys[label]
        if key is not None:
            groups.setdefault(key, []).append(label)
    return [g for g in groups.values() if len(g) > 1]


def round_replies(conv: Conversation) -> tuple[int | None, str, dict[str, Reply]]:
    """The newest prompt of ``conv`` (its id and text) and its replies by engine name (the
    newest reply of each engine)."""
    if not conv.messages:
        return None, "", {}
    message = conv.messages[-1]
    replies = {r.engine: r for r in message.replies if r.engine is not None}
    return message.id, message.content, replies


def build_vote(
    *,
    outcome: str,
    winner: str | None,
    labels: Mapping[str, str],
    models: Mapping[str, str],
    text_models: Mapping[str, str | None],
    prompt: str,
    conv: Conversation | None,
    blind: bool,
    preset: str | None,
    system: str,
    params: Mapping[str, Any],
) -> Vote:
    """The vote for a round: ``labels`` maps each engine to its pane label, ``winner`` is a
    label; each pane's reply (id, text, finish, figures) is read from ``conv``'s newest prompt."""
    from tedchat.history.records import ReplyMetrics
    from tedchat.history.votes import Vote, VotePane

    message_id, stored_prompt, replies = (None, prompt, {}) if conv is None else round_replies(conv)
    panes = []
    for engine, label in sorted(labels.items(), key=lambda item: item[1]):
        reply = replies.get(engine)
        panes.append(
            VotePane(
                label=label,
                engine=engine,
                model=reply.model if reply is not None and reply.model else models.get(engine),
                text_model=text_models.get(engine),
                reply_id=reply.id if reply is not None else None,
                reply=reply.content if reply is not None else "",
                finish_reason=reply.finish_reason if reply is not None else None,
                metrics=reply.metrics if reply is not None else ReplyMetrics(),
            )
        )
    by_label = {labels[e]: k for e, k in text_models.items() if e in labels}
    return Vote(
        prompt=stored_prompt or prompt,
        outcome=outcome,
        winner=winner if outcome == "win" else None,
        panes=tuple(panes),
        conversation_id=None if conv is None else conv.id,
        message_id=message_id,
        blind=blind,
        shared_text_model=bool(shared_groups(by_label)),
        preset=preset,
        system=system or None,
        params=dict(params),
    )

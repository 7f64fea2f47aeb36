"""The arena: the side-by-side screen in blind mode, with votes (``tedchat arena``,
``compare --blind``).

Every prompt starts a blind round: the engines are dealt to the panes ``A``, ``B``, ... in a
shuffled order (a :class:`random.Random` seeded by ``--seed``: the same seed deals the same
rounds), and nothing that names an engine is drawn until the vote: the panes show their labels
(:mod:`tedchat.tui.widgets.blind_pane`), the header says only "arena", the summary table and the
screen's notices wait. Panes whose engines run the same text model (:mod:`tedchat.arena`) are
flagged from the start.

When every answer is in, focus leaves the prompt so the vote keys work: pick the best pane
(``1``-``4`` or ``a``-``d``), a tie (``t``) or all bad (``x``); the ids are ``arena-vote-a`` ...
``arena-vote-d``, ``arena-tie``, ``arena-all-bad`` for ``[keymap]``. The vote is stored
(:mod:`tedchat.history.votes`, with the replies' ids and figures) and reveals every pane's
engine, model, TTFT and tok/s. Then ``w`` continues in chat with the winner
(:mod:`tedchat.tui.continue_chat`; after a tie or all bad, it asks which pane), and a new
prompt (Tab to the prompt) starts the next blind round.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Static
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from tedchat.arena import LABELS, build_vote, deal, labels_for, shared_groups, text_model_key
from tedchat.errors import HistoryError, TedchatError
from tedchat.tui.screens.compare import CompareScreen
from tedchat.tui.services import Services
from tedchat.tui.widgets.blind_pane import BlindPane
from tedchat.tui.widgets.compare_pane import ComparePane
from tedchat.tui.widgets.compare_summary import CompareSummary

VOTE_HINT = "vote: 1-{n} or a-{last} picks the best pane · t tie · x all bad"
AFTER_VOTE = (
    "w continues in chat with the winner · Tab to the prompt: a new prompt starts the next"
    " blind round"
)


class ArenaScreen(CompareScreen):
    """2 to 4 engines answering blind, then a vote."""

    DEFAULT_CSS = """
    ArenaScreen > #vote-hint { height: auto; padding: 0 1; color: $accent; }
    """

    BINDINGS = [
        Binding("1,a", "vote('A')", "A is best", id="arena-vote-a"),
        Binding("2,b", "vote('B')", "B is best", id="arena-vote-b"),
        Binding("3,c", "vote('C')", "C is best", id="arena-vote-c"),
        Binding("4,d", "vote('D')", "D is best", id="arena-vote-d"),
        Binding("t,equals_sign", "tie", "Tie", id="arena-tie"),
        Binding("x,0", "all_bad", "All bad", id="arena-all-bad"),
        Binding("w", "continue_winner", "Continue with the winner", id="arena-continue"),
    ]

    def __init__(
        self,
        services: Services,
        engine_names: list[str],
        *,
        seed: int | None = None,
        preset: str | None = None,
        **options: Any,
    ) -> None:
        self._rng = random.Random(seed)
        self._all_engines = list(engine_names)
        order = self._deal()
        super().__init__(services, order, **options)
        self.preset = preset
        self.labels = labels_for(order)  # engine -> label, this round
        self.text_models = {
            name: text_model_key(services.context.engines, name) for name in engine_names
        }
        self.phase = "new"  # new | answering | voting | revealed
        self.outcome: tuple[str, str | None] | None = None
        self.last_vote_id: int | None = None
        self._prompt = ""
        self._held_notices: list[str] = []
        self._saving: Worker[None] | None = None

    def _deal(self) -> list[str]:
        return deal(self._all_engines, self._rng)

    def _shared_with(self, name: str) -> list[str]:
        by_label = {self.labels[n]: self.text_models.get(n) for n in self.labels}
        mine = self.labels[name]
        return [g for group in shared_groups(by_label) if mine in group for g in group if g != mine]

    def make_pane(self, name: str, model: str) -> ComparePane:
        return BlindPane(name, model, self.labels[name], self._shared_with(name))

    def heading(self) -> str:
        if self.phase == "revealed":
            by_label = sorted(self.labels, key=self.labels.__getitem__)
            return "arena: " + " · ".join(f"{self.labels[n]} {n}" for n in by_label)
        return "arena: blind · " + " · ".join(LABELS[: len(self.engine_names)])

    def on_mount(self) -> None:
        # Textual runs CompareScreen.on_mount too (after this one): handlers of every class run.
        self.mount(Static(Text(self._shared_line()), id="vote-hint"), after="#notice")

    def _shared_line(self) -> str:
        by_label = {self.labels[n]: self.text_models.get(n) for n in self.labels}
        groups = shared_groups(by_label)
        return " · ".join(
            f"{' and '.join(g)} run the same text model: a vote here is stored, not ranked"
            for g in groups
        )

    def _hint(self, text: str) -> None:
        for hint in self.query("#vote-hint").results(Static):
            hint.update(Text(text))

    def _notice(self, text: str) -> None:
        # Notices name engines or their kind ("emulated", a load failure): after the vote.
        if self.phase != "revealed":
            self._held_notices.append(text)
            return
        super()._notice(text)

    # --- rounds ------------------------------------------------------------------------------

    def send(self, prompt: str) -> None:
        if self.phase == "new":
            self._begin_round(prompt)
            return
        self.run_worker(self._new_round(prompt), group="arena-round", exclusive=True)

    async def _new_round(self, prompt: str) -> None:
        if self._saving is not None:  # the vote reads its round's replies: the next waits
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await self._saving.wait()
        order = self._deal()
        self.phase = "new"
        self.engine_names = order
        self.labels = labels_for(order)
        self.outcome = None
        self.query_one(CompareSummary).hide()
        self.sub_title = self.heading()
        loader = self.services.loader
        for pane, name in zip(self.query(BlindPane), order, strict=True):
            try:
                model = loader.engine(name).model
            except TedchatError:
                model = "?"
            await pane.hide(name, model, self.labels[name], self._shared_with(name))
            pane.status.show_load(loader.state(name))
        self._begin_round(prompt)

    def _begin_round(self, prompt: str) -> None:
        self.phase = "answering"
        self._prompt = prompt
        self._hint(self._shared_line())
        super().send(prompt)

    def _summarise(self, jobs: list[Any], results: list[Any]) -> None:
        super()._summarise(jobs, results)
        self.query_one(CompareSummary).hide()  # the table names the engines: after the vote
        self.phase = "voting"
        n = len(self.engine_names)
        hint = VOTE_HINT.format(n=n, last="abcd"[n - 1])
        shared = self._shared_line()
        self._hint(f"{hint}\n{shared}" if shared else hint)
        self.set_focus(None)  # the vote keys are plain letters and digits
        self.call_after_refresh(self.refresh_bindings)

    # --- voting ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides a key from the footer: vote keys show only while a vote is open.
        if action == "vote":
            label = str(parameters[0]) if parameters else ""
            if label not in LABELS[: len(self.engine_names)]:
                return False
            return self.phase == "voting" and not self.busy
        if action in ("tie", "all_bad"):
            return self.phase == "voting" and not self.busy
        if action == "continue_winner":
            return self.phase == "revealed" and self.outcome is not None
        if action == "continue_in_chat" and self.phase != "revealed":
            return False  # the picker names the engines
        return super().check_action(action, parameters)

    def action_vote(self, label: str) -> None:
        self.cast("win", label)

    def action_tie(self) -> None:
        self.cast("tie", None)

    def action_all_bad(self) -> None:
        self.cast("all_bad", None)

    def cast(self, outcome: str, winner: str | None) -> None:
        """Record the vote, then reveal every pane."""
        if self.phase != "voting":
            return
        self.phase = "revealed"
        self.outcome = (outcome, winner)
        self._reveal(winner)
        self._saving = self.run_worker(
            self._store_vote(outcome, winner), group="arena-vote", exit_on_error=False
        )

    def _reveal(self, winner: str | None) -> None:
        for pane in self.query(BlindPane):
            pane.reveal(winner=pane.label == winner)
        summary = self.query_one(CompareSummary)
        if getattr(summary, "results", None):
            summary.add_class("-shown")
        self.sub_title = self.heading()
        for text in self._held_notices:
            super()._notice(text)
        self._held_notices.clear()
        self.refresh_bindings()  # focus stays off the prompt: w continues with the winner

    async def _store_vote(self, outcome: str, winner: str | None) -> None:
        history = self.services.history
        writer = await history.writer()
        verdict = {"win": f"{winner} is best", "tie": "a tie", "all_bad": "all bad"}[outcome]
        if writer is None or self._conversation_id is None:
            self._hint(f"{verdict}: not saved ({history.unavailable()}) · {AFTER_VOTE}")
            return
        await history.idle()  # the replies' last text and figures are written
        store, cid = writer.store, self._conversation_id
        from tedchat.session import params_to_dict

        def save() -> int:
            vote = build_vote(
                outcome=outcome,
                winner=winner,
                labels=self.labels,
                models={p.engine_name: p.model for p in self.query(BlindPane)},
                text_models=self.text_models,
                prompt=self._prompt,
                conv=store.get_conversation(cid),
                blind=True,
                preset=self.preset,
                system=self.system,
                params=params_to_dict(self.params),
            )
            return store.add_vote(vote)

        try:
            self.last_vote_id = await writer.run(save)
        except HistoryError as exc:
            history.failed(exc)
            self._hint(f"{verdict}: not saved · {AFTER_VOTE}")
            return
        self._hint(f"{verdict}: vote {self.last_vote_id} saved · {AFTER_VOTE}")

    def action_continue_winner(self) -> None:
        if self.outcome is None:
            return
        outcome, winner = self.outcome
        if outcome == "win" and winner is not None:
            engine = next(n for n, label in self.labels.items() if label == winner)
            self.continue_with(engine)
        else:
            self.action_continue_in_chat()

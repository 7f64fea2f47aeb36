"""The wafer floorplan screen: where an engine's layers sit, and what it predicts.

Shown for engines that have a ``floorplan()`` method returning a placement dict (see
:mod:`tedchat.tui.widgets.floorplan`). The dict is computed in a worker thread, since planning
may read a model file. An engine that also has ``activity()`` (the wafer engine: the stage its
host is computing now, or None) is asked ~15 times a second, and that stage is highlighted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tedchat.tui.widgets.floorplan import Floorplan

PlanSource = Callable[[], Mapping[str, Any]]
ActivitySource = Callable[[], Mapping[str, Any] | None]

#: How often the highlighted stage is brought up to date.
ACTIVITY_HZ = 15.0


class FloorplanScreen(Screen[None]):
    """A full screen floorplan of one engine's placement."""

    DEFAULT_CSS = """
    FloorplanScreen > #title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    FloorplanScreen > VerticalScroll { height: 1fr; }
    """
    BINDINGS = [Binding("escape,f10", "close", "Close", id="close-floorplan")]

    def __init__(
        self,
        engine_name: str,
        source: PlanSource | Mapping[str, Any],
        activity: ActivitySource | None = None,
    ) -> None:
        super().__init__()
        self.engine_name = engine_name
        self.source = source
        self.activity = activity

    def compose(self) -> ComposeResult:
        yield Static(
            Text.assemble(
                ("Wafer floorplan · ", "bold"),
                (self.engine_name, "bold"),
                ("   every time shown here is emulated", "italic dim"),
            ),
            id="title",
        )
        with VerticalScroll():
            yield Floorplan()
        yield Footer()

    def on_mount(self) -> None:
        if isinstance(self.source, Mapping):
            self.query_one(Floorplan).plan = dict(self.source)
        else:
            self.run_worker(self._compute, thread=True, exit_on_error=False)
        if self.activity is not None:
            self.set_interval(1 / ACTIVITY_HZ, self._poll_activity, name="floorplan-activity")

    def _poll_activity(self) -> None:
        assert self.activity is not None
        active = self.activity()
        floorplan = self.query_one(Floorplan)
        if active is None:
            if floorplan.active is not None:
                floorplan.set_active(None)
        else:
            floorplan.set_active(active.get("system"), active.get("layer"))

    def _compute(self) -> None:
        assert callable(self.source)
        try:
            plan = dict(self.source())
        except Exception as exc:  # an engine's planning failed: say so on screen
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            self.app.call_from_thread(self._show_error, message)
            return
        self.app.call_from_thread(setattr, self.query_one(Floorplan), "plan", plan)

    def _show_error(self, message: str) -> None:
        self.query_one(VerticalScroll).mount(Static(Text(f"no floorplan: {message}", "red")))

    def set_active(self, system: int | None, layer: Any = None) -> None:
        self.query_one(Floorplan).set_active(system, layer)

    def action_close(self) -> None:
        self.dismiss(None)

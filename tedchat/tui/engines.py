"""Loading engines in the background, once each, with progress a screen can show.

The app starts the load of the engine it will use after its first frame, so the prompt is
usable at once; a prompt sent before the load finishes awaits :meth:`EngineLoader.ready`.
``Engine.load`` may report :class:`~tedchat.engine.LoadProgress` from a worker thread (llama.cpp
loads in one), so reports are handed to the event loop before anyone sees them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tedchat.engine import Engine, LoadProgress
from tedchat.engines import Engines
from tedchat.errors import EngineError, TedchatError


@dataclass(frozen=True)
class LoadState:
    """Where an engine's load stands. ``fraction`` is None when the engine cannot tell."""

    name: str
    stage: str
    fraction: float | None = None
    ready: bool = False
    error: str | None = None

    @property
    def loading(self) -> bool:
        return not self.ready and self.error is None


Listener = Callable[[LoadState], None]


class EngineLoader:
    """Builds and loads the configured engines on demand, each at most once at a time."""

    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.states: dict[str, LoadState] = {}
        self._tasks: dict[str, asyncio.Task[Engine]] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` (on the event loop) whenever a load state changes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def engine(self, name: str) -> Engine:
        """The engine instance (built, maybe not loaded). Raises ConfigError for a bad name."""
        return self.engines.get(name)

    def state(self, name: str) -> LoadState | None:
        return self.states.get(name)

    def is_ready(self, name: str) -> bool:
        state = self.states.get(name)
        return state is not None and state.ready

    def start(self, name: str) -> asyncio.Task[Engine]:
        """Begin loading ``name`` unless it is loading or loaded; a failed load is retried."""
        task = self._tasks.get(name)
        if task is not None and not (task.done() and (task.cancelled() or task.exception())):
            return task
        task = asyncio.get_running_loop().create_task(self._load(name), name=f"load-{name}")
        # A failure is reported through the state; nobody may be awaiting the task yet.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._tasks[name] = task
        return task

    async def ready(self, name: str) -> Engine:
        """The loaded engine; waits for a load in progress. Raises EngineError if it failed.

        Shielded: a cancelled answer stops waiting, but the load goes on for the next one.
        """
        return await asyncio.shield(self.start(name))

    async def _load(self, name: str) -> Engine:
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def report(progress: LoadProgress) -> None:
            state = LoadState(name, progress.stage, progress.fraction)
            if threading.get_ident() == loop_thread:
                self._set(state)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(self._set, state)

        self._set(LoadState(name, "starting"))
        try:
            engine = self.engine(name)
            await engine.load(report)
        except TedchatError as exc:
            self._set(LoadState(name, "failed", error=exc.message))
            if isinstance(exc, EngineError):
                raise
            raise EngineError(exc.message, hint=exc.hint) from exc
        except asyncio.CancelledError:
            self._set(LoadState(name, "cancelled", error="load cancelled"))
            raise
        except Exception as exc:  # an engine bug: say which engine, keep the app running
            message = f"{name} failed to load: {type(exc).__name__}: {exc}"
            self._set(LoadState(name, "failed", error=message))
            raise EngineError(message) from exc
        self._set(LoadState(name, "ready", 1.0, ready=True))
        return engine

    def _set(self, state: LoadState) -> None:
        previous = self.states.get(state.name)
        if previous is not None and previous.ready and not state.ready:
            return  # a late progress report after the load finished
        self.states[state.name] = state
        for listener in list(self._listeners):
            listener(state)

"""A terminal that goes away ends tedchat, with the reply in progress saved as ``interrupted``.

Why this is needed: Textual's Linux driver reads the terminal in a thread that loops on
``select()``. Once the terminal is hung up (tmux kill-session or kill-pane, a dropped SSH, a
closed window) the tty reads as end-of-file forever, so that loop spins (40-90 % CPU was seen),
and writes fail with EIO, which ends Textual's output thread (later writes then wait on its full
queue). A tedchat started directly in the terminal is the session leader and gets SIGHUP,
whose default action killed it before its reply was finished. One started by ``make run`` gets
no signal at all: make is the session leader, takes the SIGHUP and waits for its child, which
spun on until someone killed it.

So :class:`TerminalWatch` looks for both signs:

- ``SIGHUP`` (a hangup, or ``kill -HUP``);
- the terminal no longer answering: a thread asks ``isatty()`` of (private duplicates of) stdin
  and the driver's output every :data:`POLL_S` (one ``ioctl``; on a hung-up tty it fails with
  EIO).

Either way the replies being written are cancelled and end as ``interrupted`` (with all their
text: the recorders hand their last text to the history thread, which is then drained). Then,
if the terminal still works (``kill -HUP`` from elsewhere), the app exits the normal way, which
puts the terminal back as it was; if it is gone there is nothing to put back and nothing to
draw on, so the history is closed and the process ends at once (exit status 129, 128 + SIGHUP,
as a shell reports a hangup). If any of that hangs (a history locked by another process, say),
the process still ends :data:`GRACE_S` after the loss; a reply left open then is found
``interrupted`` by the next start, since its writer is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tedchat.metrics import StreamMetrics
from tedchat.session import ReplyRecorder
from tedchat.tools.base import ToolCallRecord

#: How often the terminal is checked (a hangup without SIGHUP is noticed within this).
POLL_S = 0.1

#: How long saving the replies and exiting may take before the process is ended regardless.
GRACE_S = 1.5

#: Exit status after a hangup: 128 + SIGHUP, what a shell reports for a process a hangup ended.
HANGUP_STATUS = 128 + int(getattr(signal, "SIGHUP", 1))


class WatchedApp(Protocol):
    """What the watch needs of the app (TedchatApp; a Protocol keeps the import one-way)."""

    @property
    def workers(self) -> Any:
        """Textual's WorkerManager: iterable, each worker cancellable and awaitable."""

    async def history_idle(self) -> None: ...

    async def close_resources(self) -> None: ...

    def exit(self, result: Any = None) -> None: ...


def terminal_fds() -> list[int]:
    """The descriptors the UI uses that are terminals now (stdin for keys, stderr for drawing,
    as Textual's Linux driver does)."""
    fds = []
    for stream in (sys.__stdin__, sys.__stderr__):
        try:
            fd = stream.fileno() if stream is not None else -1
        except (OSError, ValueError):
            continue
        if fd >= 0 and os.isatty(fd) and fd not in fds:
            fds.append(fd)
    return fds


def terminal_alive(fds: list[int]) -> bool:
    """Do all of ``fds`` still answer as terminals? (False once a tty is hung up or closed.)"""
    return all(os.isatty(fd) for fd in fds)


class TerminalWatch:
    """Ends the app when its terminal goes away; see the module docstring.

    ``exit_process`` is what ends the process when the terminal is gone (``os._exit``; tests
    pass their own). :meth:`start` installs the SIGHUP handler and the polling thread; the
    headless app of Pilot tests does not start it, and tests call :meth:`lost` directly.
    """

    def __init__(
        self,
        app: WatchedApp,
        *,
        exit_process: Callable[[int], Any] = os._exit,
        grace_s: float = GRACE_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.app = app
        self.exit_process = exit_process
        self.grace_s = grace_s
        self.poll_s = poll_s
        #: Why the terminal was given up (None while it is fine).
        self.reason: str | None = None
        self.fds: list[int] = []
        self._owned: list[int] = []
        self._lost_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # --- starting and stopping ------------------------------------------------------------------

    def start(self, fds: list[int] | None = None, *, sighup: bool = True) -> None:
        """Watch the terminal of the running app (call on the event loop): ``fds`` are the
        descriptors to check (default :func:`terminal_fds`); ``sighup`` handles SIGHUP too."""
        self._loop = asyncio.get_running_loop()
        # Private duplicates: a hangup reaches every descriptor of the tty, but nothing else
        # can swap them for another file. llama-cpp-python points fd 2 at /dev/null while it
        # loads a model, which on fd 2 itself would look like a terminal gone.
        self.fds = [os.dup(fd) for fd in (terminal_fds() if fds is None else fds)]
        self._owned = list(self.fds)
        if sighup and hasattr(signal, "SIGHUP"):  # Windows has none; the polling still works
            # Not the main thread, or a loop without signal support: the polling still works.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(signal.SIGHUP, self.lost, "hangup signal (SIGHUP)")
        self._thread = threading.Thread(target=self._watch, name="tedchat-terminal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the app is ending on its own). After a loss the deadline stays."""
        if self.reason is not None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for fd in self._owned:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._owned = []
        if self._loop is not None and not self._loop.is_closed() and hasattr(signal, "SIGHUP"):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGHUP)

    def _watch(self) -> None:
        # A thread, not a timer on the event loop: the loop may be stuck writing to the dead
        # terminal (Textual's output queue), and then only this can end the process.
        while not self._stop.wait(self.poll_s):
            if self._lost_at is None and self.fds and not terminal_alive(self.fds):
                self._lost_at = time.monotonic()
                loop = self._loop
                if loop is not None and not loop.is_closed():
                    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                        loop.call_soon_threadsafe(self.lost, "the terminal closed")
            if self._lost_at is not None and time.monotonic() - self._lost_at > self.grace_s:
                self.exit_process(HANGUP_STATUS)
                return

    # --- the loss -------------------------------------------------------------------------------

    def lost(self, reason: str) -> None:
        """The terminal went away (or SIGHUP came): save the replies, then end (on the loop)."""
        if self.reason is not None:
            return
        self.reason = reason
        if self._lost_at is None:
            self._lost_at = time.monotonic()  # the watching thread enforces the deadline
        self._task = asyncio.get_running_loop().create_task(self._save_and_exit())

    async def _save_and_exit(self) -> None:
        app = self.app
        # Cancelling a turn finishes its recorder (as interrupted, see recorder()) and hands
        # its last text to the history thread; waiting for that thread then saves it all.
        await _cancel_and_settle(list(app.workers), self.grace_s / 2)
        await app.history_idle()
        if self.fds and not terminal_alive(self.fds):
            await app.close_resources()  # nothing to draw on: no Textual shutdown
            self.exit_process(HANGUP_STATUS)
            return
        app.exit(HANGUP_STATUS)

    # --- replies being written --------------------------------------------------------------

    def recorder(self, recorder: ReplyRecorder) -> HangupAwareRecorder:
        """``recorder``, except that a reply cancelled because the terminal went away is saved
        as ``interrupted`` (the process is ending under it), not ``cancelled`` (the user's Esc)."""
        return HangupAwareRecorder(recorder, self)


async def _cancel_and_settle(workers: list[Any], timeout: float) -> None:
    """Cancel ``workers`` and wait (at most ``timeout``) until each has run its cleanup."""
    for worker in workers:
        worker.cancel()
    waits = [asyncio.ensure_future(worker.wait()) for worker in workers]
    if not waits:
        return
    done, pending = await asyncio.wait(waits, timeout=timeout)
    for task in pending:
        task.cancel()
    for task in done:
        # WorkerCancelled as asked (or WorkerError for one never started): seen, so that
        # asyncio does not log it.
        task.exception()


class HangupAwareRecorder:
    """A reply recorder whose ``cancelled`` becomes ``interrupted`` once the terminal is lost."""

    def __init__(self, inner: ReplyRecorder, watch: TerminalWatch) -> None:
        self.inner = inner
        self._watch = watch

    @property
    def id(self) -> int | None:
        """The reply's row id in the history (None if unknown)."""
        return getattr(self.inner, "id", None)

    def append(self, text: str) -> None:
        self.inner.append(text)

    def tool_call(self, record: ToolCallRecord) -> None:
        self.inner.tool_call(record)

    def finish(self, finish_reason: str, metrics: StreamMetrics) -> None:
        if finish_reason == "cancelled" and self._watch.reason is not None:
            finish_reason = "interrupted"
        self.inner.finish(finish_reason, metrics)

"""The widgets of a conversation: a user's prompt, a model's reply, and a notice.

A :class:`ReplyView` renders its text as Markdown. While an answer streams, text reaches it
through :meth:`ReplyView.write`, which the frame clock calls with everything that arrived since
the last frame; the view appends it through Textual's ``MarkdownStream``, which only re-parses
the open block. Re-rendering the whole document per token is what made long answers crawl.
"""

from __future__ import annotations

import asyncio
import re

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Mount
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from tedchat.metrics import StreamMetrics, format_metrics_line
from tedchat.tui.segments import SegmentSplitter
from tedchat.tui.widgets.frozen import FrozenMarkdown, render_strips

#: How long a finished reply waits to freeze while other answers still stream.
FREEZE_RETRY_S = 0.5
#: Pause between freezing one segment and the next (keys typed meanwhile go first).
FREEZE_STEP_S = 0.02

_FENCE_RE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order (their bodies, without fences)."""
    return [m.group("body").rstrip("\n") for m in _FENCE_RE.finditer(markdown)]


def reply_caption(engine: str, model: str, metrics: StreamMetrics | None) -> str:
    """The line under a reply: who made it and, when it has ended, its figures."""
    head = f"{engine} · {model}"
    if metrics is None:
        return head
    return f"{head} · {format_metrics_line(metrics)}"


class StreamingMarkdown(Markdown):
    """A Markdown widget that starts empty and is only ever appended to (or updated).

    Textual's Markdown runs ``update(initial)`` when it mounts, parsing in a worker thread and
    then replacing the document: a segment mounted mid-answer and streamed into at once lost
    the text appended before that update landed (seen in tmux under load). This one mounts
    without it; it is empty until written.
    """

    async def _on_mount(self, event: Mount) -> None:
        Widget._on_mount(self, event)
        event.prevent_default()  # not Markdown._on_mount: see the class docstring


class UserMessage(Static):
    """A prompt as the user typed it (plain text: what they typed is not Markdown to us)."""

    DEFAULT_CSS = """
    UserMessage {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 1;
        background: $boost;
        border-left: thick $primary;
        color: $text;
    }
    """

    def __init__(self, prompt: str, **kwargs: object) -> None:
        super().__init__(Text(prompt), **kwargs)  # type: ignore[arg-type]
        self.prompt = prompt


class Notice(Static):
    """A line the app says in the conversation (context trimmed, engine failed, ...)."""

    DEFAULT_CSS = """
    Notice {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 1;
        color: $warning;
    }
    Notice.-error { color: $error; }
    Notice.-in-reply { margin: 0; padding: 0; }
    """

    def __init__(self, text: str, *, error: bool = False, **kwargs: object) -> None:
        super().__init__(Text(text), **kwargs)  # type: ignore[arg-type]
        if error:
            self.add_class("-error")


class ReplyView(Vertical):
    """One model reply: Markdown body and a caption with engine, model and figures."""

    #: Finished segments are replaced by their rendered lines (tedchat.tui.widgets.frozen).
    freeze_enabled = True

    # State classes go on the caption, never on the view: a class change on a node restyles
    # its whole subtree, and a long answer is hundreds of Markdown blocks (250 ms at the end of
    # a 4,000-token answer, measured in benchmarks/tui_stream.py).
    DEFAULT_CSS = """
    ReplyView {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 0 0 1;
        border-left: thick $accent 60%;
    }
    ReplyView > Markdown {
        margin: 0;
        padding: 0;
        background: transparent;
    }

    ReplyView > .caption {
        height: auto;
        color: $text-muted;
    }
    ReplyView > .caption.-streaming { color: $accent; }
    ReplyView > .caption.-cancelled { color: $warning; }
    ReplyView > .caption.-error { color: $error; }
    """

    def __init__(self, engine: str, model: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.engine_name = engine
        self.model_name = model
        self._stream: MarkdownStream | None = None
        self._splitter = SegmentSplitter()
        self._stopping: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.text = ""  # everything shown so far (what "copy reply" copies)

    def compose(self) -> ComposeResult:
        yield StreamingMarkdown()
        yield Static(
            Text(reply_caption(self.engine_name, self.model_name, None)), classes="caption"
        )

    def add_notice(self, text: str) -> None:
        """Show something the engine said about this answer (context trimmed, pacing lags)."""
        first = self.query(StreamingMarkdown).first() if self.query(StreamingMarkdown) else None
        notice = Notice(f"note: {text}", classes="-in-reply")
        if first is not None:
            self.mount(notice, before=first)
        else:
            self.mount(notice, before=self.caption)

    @property
    def caption(self) -> Static:
        return self.query_one(".caption", Static)

    def set_caption(self, text: str) -> None:
        self.caption.update(Text(text))

    def set_result(self, metrics: StreamMetrics | None, error: str | None = None) -> None:
        """Show the final figures (and the error, if the engine failed)."""
        caption = reply_caption(self.engine_name, self.model_name, metrics)
        if error:
            caption += f"\nerror: {error}"
        self.set_caption(caption)
        reason = metrics.finish_reason if metrics else None
        label = self.caption
        label.remove_class("-streaming")
        label.set_class(reason == "cancelled", "-cancelled")
        label.set_class(reason == "error" or error is not None, "-error")

    # --- streaming ---------------------------------------------------------------------------

    def begin_stream(self) -> None:
        """Start taking text from :meth:`write` (one MarkdownStream per segment)."""
        self.caption.add_class("-streaming")
        self.set_caption(f"{self.engine_name} · {self.model_name} · streaming…")
        self._splitter = SegmentSplitter()
        self._stream = Markdown.get_stream(self.query(Markdown).last())
        self._stopping: list[asyncio.Task[None]] = []

    async def write(self, text: str) -> None:
        """Append ``text`` (everything since the last frame) to the Markdown.

        A long answer is cut into several Markdown widgets at safe block boundaries (see
        :mod:`tedchat.tui.segments`), so a frame re-lays out only the last few dozen lines.
        """
        # One writer at a time: a frame may still be mounting a segment when the answer's
        # end flushes the rest, and text must land in order, in the live segment.
        async with self._lock:
            self.text += text
            for i, piece in enumerate(self._splitter.feed(text)):
                if i:
                    await self._new_segment()
                if piece and self._stream is not None:
                    await self._stream.write(piece)

    async def _new_segment(self) -> None:
        old = self._stream
        segment = StreamingMarkdown()
        await self.mount(segment, before=self.caption)
        self._stream = Markdown.get_stream(segment)
        # Let the stream's task start: a MarkdownStream stopped before its task ever ran
        # drops the text written to it (its cancel handler, which writes the rest, never runs).
        await asyncio.sleep(0)
        if old is not None:
            # The old segment finishes drawing its queued text in the background, then
            # freezes (see tedchat.tui.widgets.frozen).
            self._stopping.append(asyncio.create_task(self._retire(old)))

    async def _retire(self, stream: MarkdownStream) -> None:
        await stream.stop()

    async def end_stream(self) -> None:
        """Draw whatever is still queued and stop the stream."""
        async with self._lock:
            if self._stream is not None:
                stream, self._stream = self._stream, None
                await stream.stop()
            for task in self._stopping:
                await task
            self._stopping.clear()
        self.freeze_when_idle()

    async def replace_text(self, text: str) -> None:
        """Show ``text`` at once (a resumed reply), replacing what was shown."""
        self.text = text
        for old in list(self.query(FrozenMarkdown)) + list(self.query(Markdown))[1:]:
            await old.remove()
        segment = self.query(Markdown).first()
        await segment.update(text)
        self.freeze_when_idle()

    # --- freezing finished segments -----------------------------------------------------------

    def freeze_when_idle(self) -> None:
        """Freeze the live segments, one at a time, while no answer streams on this screen.

        Not while answers stream: rendering a segment's lines costs a frame's worth of time,
        which the answers still streaming (compare panes) would pay. One segment a step, so a
        key typed meanwhile never waits for a whole answer's worth.
        """
        if not self.freeze_enabled or not self.is_mounted or self._stream is not None:
            return
        clock = getattr(self.screen, "frame_clock", None)
        if clock is not None and clock.running:
            self.set_timer(FREEZE_RETRY_S, self.freeze_when_idle)
            return
        segment = self.query(StreamingMarkdown).first() if self.query(StreamingMarkdown) else None
        if segment is not None:
            self.schedule_freeze(segment, then_next=True)

    def schedule_freeze(self, segment: Markdown, tries: int = 0, then_next: bool = False) -> None:
        """Freeze ``segment`` once it has been laid out and drawn (then the next, if asked)."""
        if self.freeze_enabled:
            self.call_after_refresh(self._freeze, segment, tries, then_next)

    async def _freeze(self, segment: Markdown, tries: int, then_next: bool) -> None:
        live = self._stream.markdown_widget if self._stream is not None else None
        if segment is live or not segment.is_mounted or segment.parent is not self:
            return
        strips = render_strips(segment)
        if strips is None or len(strips) != segment.outer_size.height:
            if tries < 10:  # not laid out yet: try after the next refresh
                self.schedule_freeze(segment, tries + 1, then_next)
            return
        frozen = FrozenMarkdown(segment.source, strips, segment.outer_size.width, self.app.theme)
        await self.mount(frozen, before=segment)
        await segment.remove()
        if then_next:
            self.set_timer(FREEZE_STEP_S, self.freeze_when_idle)

    async def thaw_segment(self, frozen: FrozenMarkdown) -> None:
        """Swap a frozen segment back for a live Markdown (its width or theme changed)."""
        if not frozen.is_mounted:
            return
        segment = StreamingMarkdown()
        await self.mount(segment, before=frozen)
        await segment.update(frozen.source)
        await frozen.remove()
        self.schedule_freeze(segment)

"""The widgets of a conversation: a user's prompt, a model's reply, and a notice.

A :class:`ReplyView` shows its text as Markdown through one :class:`MarkdownView`. While an
answer streams, the frame clock hands it everything that arrived since the last frame
(:meth:`ReplyView.write`); only the answer's last, open, Markdown block is drawn again.

A reply that called tools is drawn as its steps: each step's text (a :class:`MarkdownView`),
then the calls it ended with (:class:`~tedchat.tui.widgets.tool_call.ToolCallBlock`), then
the next step's text. A reply without calls is the one view it always was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.widgets import Static

from tedchat.attachments import Attachment, human_size
from tedchat.metrics import StreamMetrics, format_metrics_line
from tedchat.tools.base import ToolCallRecord, reply_steps
from tedchat.tui.widgets.markdown_view import MarkdownView
from tedchat.tui.widgets.tool_call import ToolCallBlock

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

    def __init__(self, prompt: str, attachments: Sequence[Attachment] = (), **kwargs: Any) -> None:
        text = Text(prompt)
        for a in attachments:
            text.append(f"\n{'▣' if a.kind == 'image' else '≡'} {a.name}", style="dim")
            text.append(f" · {a.kind} · {human_size(a.size)}", style="dim")
        super().__init__(text, **kwargs)
        self.prompt = prompt
        self.attachments = tuple(attachments)


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

    def __init__(self, text: str, *, error: bool = False, **kwargs: Any) -> None:
        super().__init__(Text(text), **kwargs)
        if error:
            self.add_class("-error")


class ReplyView(Vertical):
    """One model reply: Markdown body and a caption with engine, model and figures."""

    # State classes go on the caption, never on the view: a class change on a node restyles
    # its whole subtree.
    DEFAULT_CSS = """
    ReplyView {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 0 0 1;
        border-left: thick $accent 60%;
    }
    ReplyView > .caption {
        height: auto;
        color: $text-muted;
    }
    ReplyView > .caption.-streaming { color: $accent; }
    ReplyView > .caption.-cancelled { color: $warning; }
    ReplyView > .caption.-error { color: $error; }
    ReplyView > .caption.-chosen { text-style: reverse; }
    """

    class Chosen(Message):
        """The reader clicked this reply (the copy actions then work on it)."""

        def __init__(self, view: ReplyView) -> None:
            super().__init__()
            self.view = view

    def __init__(
        self,
        engine: str,
        model: str,
        text: str = "",
        *,
        tool_calls: Sequence[ToolCallRecord] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine_name = engine
        self.model_name = model
        # The reply's parts in order: step texts and tool call blocks (a stored reply's steps).
        self._parts: list[MarkdownView | ToolCallBlock] = []
        self._bodies: list[MarkdownView] = []
        self._blocks: list[ToolCallBlock] = []
        self._new_body = False  # the next text starts a new step (a call came in between)
        steps = reply_steps(text, list(tool_calls)) if tool_calls else [(text, [])]
        for i, (step_text, calls) in enumerate(steps):
            if i == 0 or step_text:
                self._add_body(MarkdownView(step_text))
            for record in calls:
                block = ToolCallBlock(record)
                self._parts.append(block)
                self._blocks.append(block)
        self.body = self._bodies[0]

    def _add_body(self, view: MarkdownView) -> None:
        self._parts.append(view)
        self._bodies.append(view)

    @property
    def text(self) -> str:
        """Everything shown so far (what "copy reply" copies)."""
        if len(self._bodies) == 1:
            return self.body.source
        return "".join(view.source for view in self._bodies)

    @property
    def tool_blocks(self) -> list[ToolCallBlock]:
        """The reply's tool call blocks, in call order."""
        return list(self._blocks)

    def compose(self) -> ComposeResult:
        yield from self._parts
        yield Static(
            Text(reply_caption(self.engine_name, self.model_name, None)), classes="caption"
        )

    def add_notice(self, text: str) -> None:
        """Show something the engine said about this answer (context trimmed, pacing lags)."""
        self.mount(Notice(f"note: {text}", classes="-in-reply"), before=self.body)

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

    def on_click(self, event: Click) -> None:
        if event.chain == 1:  # not the clicks of a text selection by words or lines
            self.post_message(self.Chosen(self))

    def mark_chosen(self, chosen: bool) -> None:
        self.caption.set_class(chosen, "-chosen")

    def begin_stream(self) -> None:
        """Mark the reply as streaming (its text then arrives through :meth:`write`)."""
        self.caption.add_class("-streaming")
        self.set_caption(f"{self.engine_name} · {self.model_name} · streaming…")

    def write(self, text: str) -> None:
        """Append ``text`` (everything that arrived since the last frame)."""
        if self._new_body and text:
            self._new_body = False
            view = MarkdownView()
            self._add_body(view)
            self.mount(view, before=self.caption)
        self._bodies[-1].append(text)

    def add_tool_call(self, record: ToolCallRecord) -> ToolCallBlock:
        """Show a tool call that has begun, after the text so far; later text goes below it."""
        block = ToolCallBlock(record)
        self._parts.append(block)
        self._blocks.append(block)
        self.mount(block, before=self.caption)
        self._new_body = True
        return block

    def block_for(self, record: ToolCallRecord) -> ToolCallBlock | None:
        """The block showing ``record``."""
        for block in self._blocks:
            if block.record is record:
                return block
        return None

    def toggle_tool_calls(self) -> bool:
        """Expand every tool call block, or collapse them all if all are expanded; returns
        whether they are expanded now (False also when there are none)."""
        expand = not all(block.expanded for block in self._blocks)
        for block in self._blocks:
            block.toggle(expand)
        return expand and bool(self._blocks)

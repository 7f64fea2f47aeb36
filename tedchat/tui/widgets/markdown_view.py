"""A reply's Markdown: one widget drawing the lines of :mod:`tedchat.tui.markdown`.

No child widgets: a streamed answer only grows a list of lines, so a frame costs the same
at the 4,000th token as at the first. The lines are drawn for the widget's width and the
app's theme; a new width or theme draws them again (all blocks, once).
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from textual.app import App
from textual.geometry import Size
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget

from tedchat.tui.markdown import BlockRenderer, MarkdownLines

_RENDERERS: WeakKeyDictionary[App[object], dict[str, BlockRenderer]] = WeakKeyDictionary()


def renderer_for(app: App[object]) -> BlockRenderer:
    """The block renderer for ``app``'s current theme (one per theme, shared by all replies)."""
    by_theme = _RENDERERS.setdefault(app, {})
    renderer = by_theme.get(app.theme)
    if renderer is None:
        renderer = BlockRenderer.for_theme(app.get_css_variables(), app.current_theme.dark)
        by_theme[app.theme] = renderer
    return renderer


class MarkdownView(Widget):
    """Markdown text that may keep growing (:meth:`append`)."""

    DEFAULT_CSS = """
    MarkdownView {
        height: auto;
    }
    """

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = MarkdownLines()
        self.document.append(text)

    @property
    def source(self) -> str:
        return self.document.text

    def append(self, text: str) -> None:
        """Add streamed text; it shows on the next refresh."""
        if not text:
            return
        self.document.append(text)
        width = self.size.width
        if width > 0 and self.is_mounted:
            before = len(self.document.lines)
            after = len(self.document.update(renderer_for(self.app), width))
            self.refresh(layout=after != before)
        else:
            self.refresh(layout=True)

    def _lines(self, width: int) -> list[Strip]:
        if width <= 0 or not self.is_mounted:
            return []
        return self.document.update(renderer_for(self.app), width)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = self._lines(width)
        # The lines carry Markdown's own styles; the widget's colours go under them.
        base = self.rich_style
        return (lines[y] if 0 <= y < len(lines) else Strip.blank(width)).apply_style(base)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        text = "\n".join(strip.text.rstrip() for strip in self._lines(self.size.width))
        return selection.extract(text), "\n"

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self.refresh(layout=True)

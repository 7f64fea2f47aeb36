"""Finished Markdown, kept as the lines it was drawn as: one widget instead of dozens.

Why: every layout Textual does walks every widget on the screen, and a Markdown answer is a
widget per paragraph, list item and code block (150 for a 4,000-token answer). While a new
answer streams, the screen is laid out on every frame, so each finished answer above it made
every frame slower: a conversation of a few long answers turned 30 frames a second into a
handful. A finished Markdown segment is therefore rendered once (by a private compositor,
exactly as the screen drew it) and replaced by a :class:`FrozenMarkdown` holding those lines.

The lines fit one width and one theme. When either changes the frozen widget *thaws*: it puts
a live Markdown widget with its source back in its place, which its reply view freezes again
once drawn. Links in frozen text are not clickable; selecting and copying its text works.
"""

from __future__ import annotations

from textual._compositor import Compositor
from textual.events import Resize
from textual.geometry import Size
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget


def render_strips(widget: Widget) -> list[Strip] | None:
    """The lines ``widget`` and its children draw at their current size (None if not laid
    out yet). Uses a compositor of its own, the same machinery the screen draws with."""
    size = widget.outer_size
    if not widget.is_mounted or size.width <= 0 or size.height <= 0:
        return None
    compositor = Compositor()
    compositor.reflow(widget, Size(size.width, size.height))
    return compositor.render_strips(size)


class FrozenMarkdown(Widget):
    """Lines of a finished Markdown segment (see the module docstring)."""

    DEFAULT_CSS = """
    FrozenMarkdown {
        height: auto;
    }
    """

    def __init__(self, source: str, strips: list[Strip], width: int, theme: str) -> None:
        super().__init__()
        self.source = source
        self._strips = strips
        self._width = width
        self._theme = theme
        self._text = "\n".join(strip.text.rstrip() for strip in strips)
        self.thawing = False

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._strips)

    def render_line(self, y: int) -> Strip:
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract(self._text), "\n"

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._width:
            self.thaw()

    def _theme_changed(self, _theme: object) -> None:
        if self.app.theme != self._theme:
            self.thaw()

    def thaw(self) -> None:
        """Put a live Markdown of the same source back (it refits the new width or theme)."""
        if self.thawing or not self.is_mounted:
            return
        self.thawing = True
        parent = self.parent
        thaw = getattr(parent, "thaw_segment", None)
        if thaw is not None:
            self.call_later(thaw, self)

"""Where a streaming Markdown answer may be cut into separate Markdown widgets.

Why cut at all: Textual lays out a Markdown widget's blocks together, and the widget holding
the block that grows is laid out again on every frame. With one widget per answer, a frame of
a 4,000-token answer re-arranged every block of it (~60 ms a frame on this machine, growing
with the answer). Cut into segments of a few dozen lines, a frame only re-arranges the last
segment; finished segments keep their cached layout.

A cut must not change what the Markdown means, so it is made only after a blank line that
ends a block which cannot continue past it: not inside a fenced code block, and not after a
list item, an indented line, a blockquote or a table row (a loose list, a list item's second
paragraph or a quote may resume after a blank line). Decisions need no lookahead, so no text
is ever held back from the screen.
"""

from __future__ import annotations

import re

#: A segment is closed at the first safe blank line after this many lines.
SEGMENT_LINES = 30

_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CONTINUABLE_RE = re.compile(r"^(\s|([-*+]|\d{1,9}[.)])(\s|$)|>|\|)")


class SegmentSplitter:
    """Feeds streamed Markdown and says where new segments begin."""

    def __init__(self, min_lines: int = SEGMENT_LINES) -> None:
        self.min_lines = min_lines
        self._line = ""  # the current, incomplete line (already passed on)
        self._lines = 0  # complete lines in the current segment
        self._fence: tuple[str, int] | None = None  # (char, length) inside a fenced block
        self._closable = False  # the last non-blank line may end a segment after a blank

    def feed(self, text: str) -> list[str]:
        """Split ``text`` into pieces: the first continues the current segment, each further
        piece (possibly empty) begins a new one. Joined, the pieces are ``text``."""
        pieces: list[str] = []
        segment_start = 0
        line_start = 0
        while True:
            end = text.find("\n", line_start)
            if end == -1:
                break
            line = self._line + text[line_start:end]
            self._line = ""
            line_start = end + 1
            if self._complete_line(line):
                pieces.append(text[segment_start:line_start])
                segment_start = line_start
        self._line += text[line_start:]
        pieces.append(text[segment_start:])
        return pieces

    def _complete_line(self, line: str) -> bool:
        """Account for one complete line; True if a segment may end after it."""
        self._lines += 1
        fence = _FENCE_RE.match(line)
        if self._fence is not None:
            char, length = self._fence
            marker = fence.group(1) if fence else ""
            if (
                marker
                and marker[0] == char
                and len(marker) >= length
                and not line.strip(" " + char)
            ):
                self._fence = None
                self._closable = True  # a closed code block may end a segment
            return False
        if fence:
            self._fence = (fence.group(1)[0], len(fence.group(1)))
            self._closable = False
            return False
        if not line.strip():
            if self._closable and self._lines >= self.min_lines:
                self._lines = 0
                self._closable = False
                return True
            return False
        self._closable = _CONTINUABLE_RE.match(line) is None
        return False

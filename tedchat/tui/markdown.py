"""Streamed Markdown as terminal lines: finished blocks are drawn once, the open one per frame.

Why not Textual's Markdown widget: it is a widget per paragraph, list item and code block, so a
streamed answer mounts, styles and lays out a new widget every few tokens, and the screen's
layout grows with the answer. At 5,000 tokens/s that cost ~1 s of CPU per second of stream for
one answer and fell behind with three (``benchmarks/tui_stream.py``). Here an answer is plain
lines (``Strip``) of one widget, and the work per frame does not grow with the answer:

- :class:`BlockSplitter` finds the top-level blocks of the text so far (markdown-it, the parser
  Textual and Rich use). Every block but the last is *finished*: a later block has begun on a
  complete line, and no later text can change it. Only the last, *open*, block is parsed
  again as text arrives.
- :class:`BlockRenderer` draws one block with Rich's Markdown renderer (wrapping, lists, tables,
  syntax-highlighted code) in styles taken from the Textual theme's design variables
  (``markdown-h1-color`` ... , so a theme file can set them), one blank line between blocks.

Rendering blocks one at a time equals rendering the whole text at once, whatever the chunks
(``tests/tui/test_markdown.py``). Reference-style link definitions are the exception: one
only applies inside the block it ends up in.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping
from typing import ClassVar

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich._loop import loop_first
from rich.console import Console, ConsoleOptions, JustifyMethod, RenderableType, RenderResult
from rich.markdown import CodeBlock, Heading, ListItem, Markdown
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.theme import Theme
from textual.color import Color, ColorParseError
from textual.strip import Strip

#: The Markdown dialect: CommonMark with tables and strikethrough (what models write).
_PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")

#: The first line of a fenced code block at the left margin: its fence and info string.
_FENCE_OPEN_RE = re.compile(r"(`{3,}|~{3,})([^\n]*)\n")

#: Lines of code before the new ones that are read again to highlight them in context.
CODE_CONTEXT_LINES = 50

#: Pygments styles for code blocks on dark and light themes (``code-theme`` in a theme's
#: [variables] picks another; ``code-background`` sets their ground, the theme's surface
#: by default).
CODE_THEME_DARK = "monokai"
CODE_THEME_LIGHT = "friendly"


class BlockSplitter:
    """Streamed Markdown text, split into finished top-level blocks and the open one."""

    def __init__(self) -> None:
        self.text = ""
        self.finished: list[str] = []  # the finished blocks' sources, in order
        self._open_start = 0  # where the open block begins in ``text``
        self._after_cr = False  # the last chunk ended in CR (its LF may start the next)

    @property
    def open_text(self) -> str:
        """The text from the start of the last block, which later text may still change."""
        return self.text[self._open_start :]

    @property
    def open_block(self) -> str:
        """The source of the last block."""
        return self.open_text.strip("\n")

    def append(self, text: str) -> None:
        """Add streamed text."""
        # markdown-it reads CR LF and CR as LF; doing it here keeps offsets in step, also
        # when a chunk ends between the CR and the LF.
        if self._after_cr and text:
            self._after_cr = False  # this chunk says whether an LF completed the CR LF
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return
        self._after_cr = text.endswith("\r")
        self.text += text.replace("\r\n", "\n").replace("\r", "\n")
        region = self.text[self._open_start :]
        # Only whole lines decide where blocks begin: a line still being written may yet join
        # the block before ("2" becoming "2. ", a list's next item) or undo a block it seemed
        # to start ("---" under "a |" begins a table that interrupts the paragraph above;
        # "---a" does not).
        complete = region[: region.rfind("\n") + 1]
        starts = [
            token.map[0]
            for token in _PARSER.parse(complete)
            if token.level == 0 and token.nesting >= 0 and token.map is not None
        ]
        if len(starts) < 2:
            return
        offsets = [0]
        for line in region.split("\n")[: starts[-1]]:
            offsets.append(offsets[-1] + len(line) + 1)
        for start, end in itertools.pairwise(starts):
            self.finished.append(region[offsets[start] : offsets[end]].strip("\n"))
        self._open_start += offsets[starts[-1]]


class _LeftHeading(Heading):
    """Rich centres a level-1 heading; in a chat log every heading starts at the left."""

    LEVEL_ALIGN: ClassVar[dict[str, JustifyMethod]] = {f"h{n}": "left" for n in range(1, 7)}


class _CodeBlock(CodeBlock):
    """A fenced or indented code block on the theme's code background."""

    background: str | None = None

    @classmethod
    def create(cls, markdown: Markdown, token: Token) -> CodeBlock:
        block = super().create(markdown, token)
        assert isinstance(markdown, _ChatMarkdown) and isinstance(block, _CodeBlock)
        block.background = markdown.code_background
        return block

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield code_syntax(str(self.text).rstrip(), self.lexer_name, self.theme, self.background)


def code_syntax(
    code: str,
    lexer: str,
    theme: str,
    background: str | None,
    *,
    padding: int | tuple[int, int] = 1,
    line_range: tuple[int, int] | None = None,
) -> Syntax:
    """How a code block is drawn: highlighted, wrapped, padded on the theme's code ground."""
    return Syntax(
        code,
        lexer,
        theme=theme,
        word_wrap=True,
        padding=padding,
        background_color=background,
        line_range=line_range,
    )


class _ListItem(ListItem):
    """A list item; numbered ones read "1." as written, not Rich's bare "1"."""

    def render_number(
        self, console: Console, options: ConsoleOptions, number: int, last_number: int
    ) -> RenderResult:
        width = len(str(last_number)) + 3
        lines = console.render_lines(
            self.elements, options.update(width=options.max_width - width), style=self.style
        )
        style = console.get_style("markdown.item.number", default="none")
        numeral = Segment(f"{number}.".rjust(width - 1) + " ", style)
        padding = Segment(" " * width, style)
        for first, line in loop_first(lines):
            yield numeral if first else padding
            yield from line
            yield Segment.line()


class _ChatMarkdown(Markdown):
    elements: ClassVar = {
        **Markdown.elements,
        "heading_open": _LeftHeading,
        "fence": _CodeBlock,
        "code_block": _CodeBlock,
        "list_item_open": _ListItem,
    }

    def __init__(self, source: str, code_theme: str, code_background: str | None) -> None:
        # What Rich's Markdown.__init__ sets, without building a new parser for every block
        # (profiled: a third of drawing a short block). The same dialect: tables, strikethrough.
        self.markup = source
        self.parsed = _PARSER.parse(source)
        self.code_theme = code_theme
        self.justify = None
        self.style = "none"
        self.hyperlinks = True
        self.inline_code_lexer = None
        self.inline_code_theme = code_theme
        self.code_background = code_background


_BLACK = Color(0, 0, 0)


def _color(value: str | None, ground: Color) -> str | None:
    """A design variable's colour as Rich takes it (translucent ones laid over ``ground``)."""
    if not value or value == "transparent":
        return None
    try:
        color = Color.parse(value)
    except ColorParseError:
        return None
    return (ground + color).hex6 if color.a < 1 else color.hex6


def markdown_styles(variables: Mapping[str, str]) -> dict[str, Style]:
    """Rich's ``markdown.*`` styles from a Textual theme's design variables."""

    try:
        ground = Color.parse(variables.get("background", "black"))
    except ColorParseError:
        ground = _BLACK

    def style(color_key: str, *, text_style: str = "", background_key: str = "") -> Style:
        color = _color(variables.get(color_key), ground)
        background = _color(variables.get(background_key), ground) if background_key else None
        text_style = "" if text_style == "none" else text_style
        return Style.parse(text_style or "none") + Style(color=color, bgcolor=background)

    styles = {
        "markdown.link": style("text-accent", text_style="underline"),
        "markdown.link_url": style("text-accent", text_style="underline"),
        "markdown.code": style("text-accent", text_style="bold", background_key="surface"),
        "markdown.block_quote": style("text-secondary", text_style="italic"),
        "markdown.item.bullet": style("text-primary", text_style="bold"),
        "markdown.item.number": style("text-primary", text_style="bold"),
        "markdown.hr": style("secondary"),
        "markdown.table.border": style("secondary"),
        "markdown.table.header": style("text-primary", text_style="bold"),
        "markdown.h1.border": style("primary"),
    }
    for level in range(1, 7):
        key = f"markdown-h{level}"
        styles[f"markdown.h{level}"] = style(
            f"{key}-color",
            text_style=variables.get(f"{key}-text-style", "bold"),
            background_key=f"{key}-background",
        )
    return styles


class BlockRenderer:
    """Draws Markdown blocks as lines of one width, in one theme's styles."""

    def __init__(
        self, styles: Mapping[str, Style], code_theme: str, code_background: str | None = None
    ) -> None:
        self.code_theme = code_theme
        self.code_background = code_background
        self._console = Console(
            file=io.StringIO(),
            force_terminal=True,
            color_system="truecolor",
            theme=Theme(dict(styles)),
            legacy_windows=False,
            emoji=False,
            markup=False,
            highlight=False,
        )

    @classmethod
    def for_theme(cls, variables: Mapping[str, str], dark: bool) -> BlockRenderer:
        default = CODE_THEME_DARK if dark else CODE_THEME_LIGHT
        background = _color(variables.get("code-background", variables.get("surface")), _BLACK)
        return cls(markdown_styles(variables), variables.get("code-theme", default), background)

    def render(self, source: str, width: int) -> list[Strip]:
        """``source`` (one block or several) as lines exactly ``width`` cells wide."""
        if not source.strip():
            return []
        markdown = _ChatMarkdown(source, self.code_theme, self.code_background)
        return self._lines(markdown, width)

    def render_code(
        self, code: str, lexer: str, lines: tuple[int, int] | None, width: int
    ) -> list[Strip]:
        """Lines ``lines`` (1-based, inclusive; None for all) of a code block's ``code``,
        highlighted in the context of all the code before them, without the block's top and
        bottom padding."""
        syntax = code_syntax(
            code, lexer, self.code_theme, self.code_background, padding=(0, 1), line_range=lines
        )
        return self._lines(syntax, width, trim=False)

    def code_padding(self, lexer: str, width: int) -> Strip:
        """The line that pads a code block above and below."""
        syntax = code_syntax(" ", lexer, self.code_theme, self.code_background)
        return self._lines(syntax, width, trim=False)[0]

    def _lines(self, renderable: RenderableType, width: int, trim: bool = True) -> list[Strip]:
        width = max(1, width)
        options = self._console.options.update(width=width, height=None)
        lines = self._console.render_lines(renderable, options, pad=True, new_lines=False)
        if not trim:
            return [Strip(line, width) for line in lines]
        # Rich sets some blocks (lists, quotes, tables) apart with blank lines of their own;
        # here blocks are one blank line apart whatever they are. Padding with a background
        # (a code block's) is part of the block and stays.
        start, end = 0, len(lines)
        while start < end and _is_empty(lines[start]):
            start += 1
        while end > start and _is_empty(lines[end - 1]):
            end -= 1
        return [Strip(line, width) for line in lines[start:end]]


def _is_empty(line: list[Segment]) -> bool:
    return all(
        not segment.text.strip() and (segment.style is None or segment.style.bgcolor is None)
        for segment in line
    )


class MarkdownLines:
    """A streamed Markdown text and its lines: finished blocks are drawn once per width/theme."""

    def __init__(self) -> None:
        self.blocks = BlockSplitter()
        self.lines: list[Strip] = []  # finished blocks' lines, then the open block's
        self._drawn_with: tuple[BlockRenderer, int] | None = None
        self._finished_lines = 0  # how many of ``lines`` belong to finished blocks
        self._drawn_blocks = 0  # finished blocks already in ``lines``
        self._open_drawn = False  # the open block's lines are up to date
        self._fence: _DrawnFence | None = None  # an open code block's lines drawn so far

    @property
    def text(self) -> str:
        return self.blocks.text

    def append(self, text: str) -> None:
        if text:
            self.blocks.append(text)
            self._open_drawn = False

    def update(self, renderer: BlockRenderer, width: int) -> list[Strip]:
        """Draw what changed since the last call (everything, at a new width or theme)."""
        if self._drawn_with != (renderer, width):
            self._drawn_with = (renderer, width)
            self.lines, self._finished_lines, self._drawn_blocks = [], 0, 0
            self._open_drawn = False
        elif self._open_drawn and self._drawn_blocks == len(self.blocks.finished):
            return self.lines
        del self.lines[self._finished_lines :]
        blank = Strip.blank(width)
        for source in self.blocks.finished[self._drawn_blocks :]:
            block = renderer.render(source, width)
            if block:
                if self.lines:
                    self.lines.append(blank)
                self.lines.extend(block)
        self._drawn_blocks = len(self.blocks.finished)
        self._finished_lines = len(self.lines)
        open_lines = self._open_fence_lines(renderer, width)
        if open_lines is None:
            open_lines = renderer.render(self.blocks.open_block, width)
        if open_lines and self.lines:
            self.lines.append(blank)
        self.lines.extend(open_lines)
        self._open_drawn = True
        return self.lines

    def _open_fence_lines(self, renderer: BlockRenderer, width: int) -> list[Strip] | None:
        """The open block's lines if it is a fenced code block still being written, drawing
        only its lines completed since the last frame (None if it is anything else).

        A model writing a whole file is one long open block: drawn whole on every frame, a
        frame would cost more the longer the file (Pygments re-reading it all). Here each
        complete line is highlighted once, read with up to :data:`CODE_CONTEXT_LINES` lines of
        the code before it, from a line at the left margin; the line being written is shown
        unhighlighted until it ends. Once the fence closes the block is drawn whole, as any
        other block: a string or comment opened further back than that context is coloured
        right from then on.
        """
        text = self.blocks.open_text.lstrip("\n")
        opening = _FENCE_OPEN_RE.match(text)
        if opening is None:
            return None
        fence, info = opening.group(1), opening.group(2)
        if fence[0] == "`" and "`" in info:
            return None  # not a fence (CommonMark): an inline code span
        *complete, partial = text[opening.end() :].split("\n")
        closing = re.compile(rf" {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*")
        if any(closing.fullmatch(line) for line in (*complete, partial)):
            return None
        lexer = info.strip().partition(" ")[0] or "text"
        key = (opening.group(0), renderer, width)
        drawn = self._fence
        if drawn is None or drawn.key != key or drawn.done > len(complete):
            drawn = self._fence = _DrawnFence(key, renderer.code_padding(lexer, width))
        if len(complete) > drawn.done:
            start = _context_start(complete, drawn.done)
            new = (drawn.done - start + 1, len(complete) - start)
            drawn.lines += renderer.render_code("\n".join(complete[start:]), lexer, new, width)
            drawn.done = len(complete)
        tail = renderer.render_code(partial, "text", None, width) if partial else []
        return [drawn.padding, *drawn.lines, *tail, drawn.padding]


def _context_start(lines: list[str], first_new: int) -> int:
    """Where to start reading code so that line ``first_new`` is highlighted in context."""
    start = max(0, first_new - CODE_CONTEXT_LINES)
    for i in range(start, first_new):
        if lines[i][:1].strip():  # starts at the left margin: most likely top-level code
            return i
    return start


class _DrawnFence:
    """The lines drawn so far of an open fenced code block (see ``_open_fence_lines``)."""

    def __init__(self, key: tuple[str, BlockRenderer, int], padding: Strip) -> None:
        self.key = key
        self.padding = padding
        self.lines: list[Strip] = []
        self.done = 0  # complete code lines drawn

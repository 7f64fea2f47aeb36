"""Streamed Markdown drawn block by block (tedchat.tui.markdown): the same lines as drawing the
whole text at once, whatever the chunks, and no more drawing per frame as the answer grows."""

from __future__ import annotations

import random

import pytest
from markdown_it import MarkdownIt
from textual.app import App

from tedchat.tui.markdown import BlockRenderer, BlockSplitter, MarkdownLines, markdown_styles

JAPANESE = (
    "東京エレクトロン デバイスの日本語の段落です。"
    "改行なしで長く続く日本語の文章が正しく折り返されることを確かめます。"
)

DOC = f"""# Report

Intro paragraph with **bold**, *emphasis*, `code` and a [link](https://example.com).
It wraps over a second line.

Setext heading
--------------

- a tight
- list

1. a loose list

2. whose items

   have a second paragraph

```python
def f(x):

    return x  # a blank line inside the fence
```

> a quote
> over two lines

| engine | tok/s |
| --- | --- |
| wafer | 1800 |

---

{JAPANESE}

    an indented
    code block

Last paragraph.
"""


def _renderer(dark: bool = True) -> BlockRenderer:
    return BlockRenderer.for_theme(App().get_css_variables(), dark)


def _top_level_blocks(text: str) -> int:
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    return sum(1 for t in tokens if t.level == 0 and t.nesting >= 0 and t.map is not None)


def _chunks(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.choice([1, 2, 3, 7, 40])
        out.append(text[i : i + n])
        i += n
    return out


@pytest.mark.parametrize("seed", range(40))
def test_streamed_lines_equal_the_whole_text_drawn_at_once(seed: int) -> None:
    renderer = _renderer()
    whole = MarkdownLines()
    whole.append(DOC)
    expected = list(whole.update(renderer, 60))

    streamed = MarkdownLines()
    for chunk in _chunks(DOC, seed):
        streamed.append(chunk)
        if random.Random(seed).random() < 0.9:
            streamed.update(renderer, 60)  # a frame between most chunks
    assert streamed.update(renderer, 60) == expected
    assert streamed.blocks.text == DOC


def test_the_splitter_finds_the_parsers_blocks_and_never_cuts_a_fence_or_a_loose_list() -> None:
    splitter = BlockSplitter()
    for chunk in _chunks(DOC, 1):
        splitter.append(chunk)
    blocks = [*splitter.finished, splitter.open_block]
    assert len(blocks) == _top_level_blocks(DOC)
    fence = next(b for b in blocks if b.startswith("```"))
    assert fence.count("```") == 2 and "return x" in fence
    loose = next(b for b in blocks if b.startswith("1. "))
    assert "have a second paragraph" in loose
    assert splitter.open_block == "Last paragraph."


def test_carriage_returns_do_not_shift_the_blocks() -> None:
    splitter = BlockSplitter()
    for chunk in ["para one\r", "\nstill one\r\n\r", "\npara two\r\r", "para three\n"]:
        splitter.append(chunk)
    assert splitter.finished == ["para one\nstill one", "para two"]
    assert splitter.open_block == "para three"
    assert splitter.text == "para one\nstill one\n\npara two\n\npara three\n"


class _Counting(BlockRenderer):
    def __init__(self) -> None:
        base = _renderer()
        super().__init__({}, base.code_theme)
        self.drawn: list[str] = []

    def render(self, source: str, width: int):  # type: ignore[no-untyped-def]
        self.drawn.append(source)
        return super().render(source, width)


def test_a_frame_draws_only_the_new_blocks_and_the_open_one() -> None:
    renderer = _Counting()
    lines = MarkdownLines()
    for i in range(50):
        lines.append(f"paragraph {i} " + "word " * 30 + "\n\n")
        lines.update(renderer, 60)
    # Each frame drew the block the previous frame left open (now finished) and the new open
    # one; never the 49 finished before it.
    assert len(renderer.drawn) <= 2 * 50
    assert renderer.drawn.count("paragraph 0 " + "word " * 29 + "word") <= 2
    # A new width draws every block again, once.
    renderer.drawn.clear()
    lines.update(renderer, 40)
    assert len(renderer.drawn) == 50


def test_lines_fit_the_width_and_japanese_wraps() -> None:
    lines = MarkdownLines()
    lines.append(DOC)
    drawn = lines.update(_renderer(), 30)
    assert all(strip.cell_length == 30 for strip in drawn)
    text = "\n".join(strip.text for strip in drawn)
    assert "東京エレクトロン" in text
    japanese = [s.text.rstrip() for s in drawn if "日本語" in s.text or "確かめ" in s.text]
    assert len(japanese) >= 2  # wrapped without spaces, inside 30 cells
    # Headings start at the left edge; blocks are one blank line apart.
    assert drawn[0].text.rstrip() == "Report"
    assert drawn[1].text.strip() == ""
    assert drawn[2].text.startswith("Intro paragraph")


def test_code_blocks_keep_their_background_padding() -> None:
    drawn = _renderer().render("```python\nx = 1\n```", 20)
    assert [s.text.strip() for s in drawn] == ["", "x = 1", ""]
    assert all(any(seg.style and seg.style.bgcolor for seg in s) for s in drawn)


def test_theme_variables_become_markdown_styles() -> None:
    variables = {
        "background": "#000000",
        "markdown-h1-color": "#ff0000",
        "markdown-h1-text-style": "bold",
        "markdown-h2-color": "#FFFFFF80",
        "markdown-h2-text-style": "none",
        "text-accent": "#00ff00",
    }
    styles = markdown_styles(variables)
    assert styles["markdown.h1"].color.triplet.hex == "#ff0000"
    assert styles["markdown.h1"].bold
    assert styles["markdown.h2"].color.triplet.hex == "#808080"  # laid over the background
    assert not styles["markdown.h2"].bold
    assert styles["markdown.link"].color.triplet.hex == "#00ff00"
    dark, light = _renderer(True), _renderer(False)
    assert dark.code_theme != light.code_theme


def test_blocks_are_parsed_as_richs_markdown_would_parse_them() -> None:
    from rich.markdown import Markdown

    from tedchat.tui.markdown import _ChatMarkdown

    ours = _ChatMarkdown(DOC, "monokai", None)
    rich_own = Markdown(DOC, code_theme="monokai")
    # Every attribute Rich's own constructor sets is set (a newer Rich adding one fails here).
    assert set(vars(rich_own)) <= set(vars(ours))
    assert [t.type for t in ours.parsed] == [t.type for t in rich_own.parsed]


LONG_CODE = "".join(f"def f{i}(x):\n    return x * {i}  # line {i}\n" for i in range(150))


def test_an_open_code_block_shows_what_drawing_it_whole_would_at_every_line_end() -> None:
    renderer = _renderer()
    text = "Here is the file:\n\n```python\n" + LONG_CODE
    streamed = MarkdownLines()
    cut = 0
    for end in [i + 1 for i, c in enumerate(text) if c == "\n"][2:]:
        streamed.append(text[cut:end])
        cut = end
        if end % 7 and end != len(text):
            continue  # frames at irregular line ends
        whole = MarkdownLines()
        whole.append(text[:end])
        whole._open_fence_lines = lambda *_: None  # type: ignore[method-assign]
        assert streamed.update(renderer, 70) == whole.update(renderer, 70), end


def test_an_open_code_block_reads_a_bounded_context_per_frame() -> None:
    from tedchat.tui.markdown import CODE_CONTEXT_LINES

    class Reading(BlockRenderer):
        def __init__(self) -> None:
            super().__init__({}, "monokai")
            self.read: list[int] = []

        def render_code(self, code, lexer, lines, width):  # type: ignore[no-untyped-def]
            self.read.append(code.count("\n") + 1)
            return super().render_code(code, lexer, lines, width)

    renderer = Reading()
    lines = MarkdownLines()
    lines.append("```python\n")
    for line in LONG_CODE.splitlines(keepends=True):
        lines.append(line)
        lines.update(renderer, 70)
    # One new line a frame: never more than the context and that line re-read (300 lines in).
    assert max(renderer.read) <= CODE_CONTEXT_LINES + 1
    assert len(lines.lines) == 1 + 300 + 1  # padding, the code, padding

"""Property tests of the streamed-Markdown block splitter (``tedchat.tui.markdown``), with
Hypothesis: any text, in any chunks.

- Appending never raises, and ``text`` is the input with CR LF and CR read as LF.
- The finished blocks and the open text are the text itself, in order: between two blocks
  there are only blank lines, and nothing is lost or repeated.
- Streamed in chunks, the text splits into the same blocks as the whole text at once.
- Drawn block by block, an answer gives the same lines as the whole text drawn at once,
  whatever the chunks (the module's documented property; reference-style link definitions
  are its documented exception, so they are left out of the generated text).

Examples per test are stated where each test is (``max_examples``).
"""

from __future__ import annotations

import itertools
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from textual.app import App

from tedchat.tui.markdown import BlockRenderer, BlockSplitter, MarkdownLines

#: Pieces that start and end Markdown blocks, and text between them.
PIECES = st.sampled_from(
    ["\n", "\n\n", "\r", "\r\n", " ", "    ", "#", "# ", "## ", "- ", "* ", "+ ", "1. ", "2) ",
     "2", "> ", "```", "```py\n", "~~~", "---", "***", "===", "| a | b |\n| - | - |\n", "|",
     "<div>", "</div>", "<!-- c -->", "**", "`", "\\", "text", "word ", "東京", "é", "\t"]
)  # fmt: skip
#: Lines that open blocks (or continue them), separated by line ends or blank lines.
PREFIXES = ["", "", "# ", "- ", "* ", "1. ", "2. ", "3) ", "> ", "    ", "  ", "```", "~~~",
            "---", "===", "| ", "<div>", "<!-- ", "2", "-", ">"]  # fmt: skip
LINES = st.lists(
    st.tuples(
        st.sampled_from(PREFIXES),
        st.sampled_from(["a", "b c", "|", "**x**", "`y`", "", "東京"]),
        st.sampled_from(["\n", "\n", "\n\n", "\r\n", "\r"]),
    ).map("".join),
    max_size=12,
).map("".join)
MARKDOWN = st.lists(PIECES | st.text(max_size=3), max_size=40).map("".join) | LINES


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted({min(c, len(text)) for c in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def normalized(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def blocks(chunks: list[str]) -> BlockSplitter:
    splitter = BlockSplitter()
    for chunk in chunks:
        splitter.append(chunk)
    return splitter


@settings(max_examples=300)
@given(text=MARKDOWN | st.text(max_size=80), cuts=st.lists(st.integers(0, 200), max_size=10))
@example(text=" \n#\n0\n", cuts=[])  # found: a blank line of spaces before a block
def test_the_blocks_are_the_text_in_order_whatever_the_chunks(text: str, cuts: list[int]) -> None:
    splitter = blocks(split_at(text, cuts))
    assert splitter.text == normalized(text)
    assert splitter.text.endswith(splitter.open_text)
    # Walk the text: each finished block where the last one ended, blank lines between (a
    # blank line may hold spaces and tabs: Markdown reads it as blank).
    done = splitter.text[: len(splitter.text) - len(splitter.open_text)]
    blank_lines = re.compile(r"(?:[ \t]*\n)*")
    at = 0
    for block in splitter.finished:
        assert block and not block.startswith("\n") and not block.endswith("\n")
        match = blank_lines.match(done, at)
        assert match is not None
        at = match.end()
        assert done.startswith(block, at), (block, done[at:])
        at += len(block)
    assert done[at:].strip(" \t\n") == ""


@settings(max_examples=300)
@given(text=MARKDOWN, cuts=st.lists(st.integers(0, 200), max_size=10))
@example(text="a\n2. |\n---a\n", cuts=[])  # found: "---" seemed to start a table under "2. |"
@example(text="a\r\n\na\n", cuts=[2, 3])  # found: the LF after a CR LF was dropped too
def test_the_blocks_do_not_depend_on_the_chunks(text: str, cuts: list[int]) -> None:
    """A block is finished only once no later text can change it: so streaming finds the
    blocks that the whole text has."""
    whole = blocks([text])
    for streamed in (blocks(split_at(text, cuts)), blocks(list(text))):  # list: every cut
        assert [*streamed.finished, streamed.open_block] == [*whole.finished, whole.open_block]


# One renderer for the module: building it reads the Textual theme.
RENDERER = BlockRenderer.for_theme(App().get_css_variables(), True)


def drawn(chunks: list[str], frames: list[bool]) -> list[object]:
    lines = MarkdownLines()
    for chunk, frame in zip(chunks, itertools.cycle(frames or [True]), strict=False):
        lines.append(chunk)
        if frame:
            lines.update(RENDERER, 40)  # a frame between these chunks
    return list(lines.update(RENDERER, 40))


@settings(max_examples=150)
@given(
    text=MARKDOWN,
    cuts=st.lists(st.integers(0, 200), max_size=8),
    frames=st.lists(st.booleans(), max_size=4),
)
def test_drawn_block_by_block_equals_drawn_whole(
    text: str, cuts: list[int], frames: list[bool]
) -> None:
    assert drawn(split_at(text, cuts), frames) == drawn([text], [True])

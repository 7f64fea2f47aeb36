"""Property tests of the SSE parser (``tedchat_http.sse``) and of what reads its events
(``tedchat_http.chunks.ChunkReader``), with Hypothesis.

- A stream split at arbitrary points parses to the same events as the stream whole, and the
  same as a plain line-by-line reading of the WHATWG algorithm.
- Generated well-formed streams (any line ends, comments, ignored fields, BOM) give back
  exactly the events written.
- Arbitrary bytes, cut anywhere and decoded as the engine decodes them, never raise.
- Whatever a server puts in ``data``, ``ChunkReader`` raises nothing but ``ServerError``.

Examples per test are stated where each test is (``max_examples``).
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from typing import Any, AnyStr

from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.engine import Done, ReasoningDelta, TextDelta, ToolCallDelta
from tedchat.errors import ServerError
from tedchat_http.chunks import ChunkReader
from tedchat_http.sse import SSEParser

Event = tuple[str, str]

# --- helpers ------------------------------------------------------------------------------------


def parse(chunks: list[str]) -> list[Event]:
    parser = SSEParser()
    out: list[Event] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.close()


def reference(text: str) -> list[Event]:
    """The WHATWG event-stream algorithm read line by line over the whole text, plus the
    module's one documented leniency (a last event without its blank line is dispatched)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    out: list[Event] = []
    data: list[str] = []
    event = ""
    for line in re.split(r"\r\n|\r|\n", text):
        if line == "":
            if data:
                out.append((event or "message", "\n".join(data)))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        out.append((event or "message", "\n".join(data)))
    return out


def split_at(text: AnyStr, cuts: list[int]) -> list[AnyStr]:
    """``text`` cut at the positions ``cuts`` (clamped to its length)."""
    bounds = [0, *sorted({min(max(c, 0), len(text)) for c in cuts}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


#: Pieces that make SSE-like text: field names, colons, every line end, a BOM, payloads.
PIECES = st.sampled_from(
    [
        "data",
        "data:",
        "data: ",
        "event:",
        "event: x",
        "id: 1",
        "retry: 5",
        ":",
        ": c",
        " ",
        "\n",
        "\r",
        "\r\n",
        "\n\n",
        "\ufeff",
        "[DONE]",
        '{"a": 1}',
        "é",
        "東京",
        "x",
        "\x00",
    ]
)
SSE_LIKE = st.lists(PIECES | st.text(max_size=4), max_size=40).map("".join)


# --- the parser ---------------------------------------------------------------------------------


@settings(max_examples=400)
@given(text=SSE_LIKE, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_any_split_parses_like_the_whole_stream(text: str, cuts: list[int]) -> None:
    whole = parse([text])
    assert parse(split_at(text, cuts)) == whole
    assert parse(list(text)) == whole  # one character per read: every possible cut at once


@settings(max_examples=400)
@given(text=SSE_LIKE | st.text(max_size=200))
def test_the_parser_follows_the_standard(text: str) -> None:
    assert parse([text]) == reference(text)


LINE_END = st.sampled_from(["\n", "\r\n", "\r"])
FIELD_TEXT = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, list[Event]]:
    """A well-formed stream and the events it holds."""
    out: list[str] = ["\ufeff"] if draw(st.booleans()) else []
    events: list[Event] = []
    # One kind of line end per stream: a CR followed by an LF-ended blank line would be one
    # line end (CRLF), not two.
    eol = draw(LINE_END)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["", "message", "error", "ping"]))
        lines = draw(st.lists(FIELD_TEXT, min_size=1, max_size=4))
        if kind:
            out.append(f"event: {kind}" + eol)
        for line in lines:
            if draw(st.booleans()):
                out.append(": a comment" + eol)
            if draw(st.booleans()):
                out.append("id: 42" + eol)
            space = " " if line.startswith(" ") or draw(st.booleans()) else ""
            out.append(f"data:{space}{line}" + eol)
        out.append(eol)
        events.append((kind or "message", "\n".join(lines)))
    return "".join(out), events


@settings(max_examples=300)
@given(stream=streams(), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_a_well_formed_stream_gives_back_its_events(
    stream: tuple[str, list[Event]], cuts: list[int]
) -> None:
    text, events = stream
    assert parse(split_at(text, cuts)) == events


def decode_and_parse(reads: list[bytes]) -> list[Event]:
    """What the engine's read loop does with network reads (``HttpEngine.stream``)."""
    parser = SSEParser()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    out: list[Event] = []
    for raw in reads:
        out += parser.feed(decoder.decode(raw))
    return out + parser.feed(decoder.decode(b"", True)) + parser.close()


@settings(max_examples=300)
@given(
    raw=st.binary(max_size=300) | SSE_LIKE.map(lambda s: s.encode("utf-8")),
    cuts=st.lists(st.integers(0, 300), max_size=12),
)
def test_arbitrary_bytes_cut_anywhere_decode_and_parse_like_the_whole(
    raw: bytes, cuts: list[int]
) -> None:
    reads = split_at(raw, cuts)
    whole = decode_and_parse([raw])
    assert decode_and_parse(reads) == whole
    assert whole == reference(raw.decode("utf-8", "replace"))


# --- what the engine makes of the events --------------------------------------------------------

SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
TEXT = st.text(max_size=12) | st.sampled_from(["<think>", "</think>", "<th", "ink>"])


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field as servers send it, mostly; now and then any JSON value in its place."""
    return st.one_of(strategy, strategy, JSON)


TOOL_PIECE = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "index": maybe(st.integers(0, 2)),
            "id": maybe(st.sampled_from(["call_a", "call_b"])),
            "type": maybe(st.just("function")),
            "function": maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "name": maybe(st.sampled_from(["get_weather", "get_time"])),
                        "arguments": maybe(st.text(max_size=8)),
                    },
                )
            ),
        },
    )
)
DELTA = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "role": maybe(st.just("assistant")),
            "content": maybe(TEXT),
            "reasoning_content": maybe(TEXT),
            "reasoning": maybe(TEXT),
            "tool_calls": maybe(st.lists(TOOL_PIECE, max_size=3)),
        },
    )
)
CHOICE = maybe(
    st.fixed_dictionaries(
        {},
        optional={
            "index": maybe(st.just(0)),
            "delta": DELTA,
            "message": DELTA,
            "finish_reason": maybe(
                st.sampled_from(["stop", "length", "abort", "weird", "tool_calls"])
            ),
        },
    )
)
FIGURES = maybe(
    st.dictionaries(
        st.sampled_from(["prompt_tokens", "completion_tokens", "predicted_n", "prompt_ms",
                         "queue_time", "completion_tokens_details"]),
        maybe(st.integers(-5, 10**6) | st.floats()),
        max_size=4,
    )
)  # fmt: skip
#: Objects shaped like chat.completion chunks, with any values where the fields go.
CHUNK_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "choices": maybe(st.lists(CHOICE, max_size=2)),
        "usage": FIGURES,
        "timings": FIGURES,
        "time_info": FIGURES,
        "error": JSON,
    },
)


@settings(max_examples=300)
@given(
    payloads=st.lists(CHUNK_LIKE.map(json.dumps) | st.text(max_size=40), min_size=1, max_size=6),
    kind=st.sampled_from(["message", "message", "error", "other"]),
)
def test_whatever_a_server_sends_is_events_or_one_server_error(
    payloads: list[str], kind: str
) -> None:
    reader = ChunkReader("https://server.example/v1")
    events: list[Any] = []
    try:
        for data in payloads:
            events += reader.feed(data, kind)
        events += reader.end()
    except ServerError as exc:
        assert exc.message.startswith(("error from https://server.example/v1", "unparseable"))
        assert "\n" not in exc.message
        return
    for event in events:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            assert isinstance(event.text, str) and event.text
        if isinstance(event, ToolCallDelta):
            assert isinstance(event.index, int) and event.index >= 0
            assert isinstance(event.arguments, str)
            assert event.id or event.name or event.arguments
        assert not isinstance(event, Done)
    assert reader.finish_reason in (None, "stop", "length", "cancelled", "error", "tool_calls")
    calls = any(isinstance(e, ToolCallDelta) for e in events)
    if calls:  # calls were made: the end says so, unless the answer was cut or failed
        assert reader.finish() in ("tool_calls", "length", "cancelled", "error")
    else:
        assert reader.finish() != "tool_calls"


#: Calls as a model makes them: an id, a name, arguments text (any characters).
CALLS = st.lists(
    st.tuples(st.sampled_from(["get_weather", "get_time", "search"]), st.text(max_size=30)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200)
@given(
    calls=CALLS,
    data=st.data(),
    repeat=st.booleans(),
    index=st.booleans(),
)
def test_tool_calls_cut_anywhere_and_interleaved_assemble_to_the_calls_made(
    calls: list[tuple[str, str]], data: st.DataObject, repeat: bool, index: bool
) -> None:
    """Each call's arguments cut at arbitrary points, the calls' pieces interleaved in any
    order (kept in order within a call), id and name in the first piece or (llama_cpp.server)
    in every piece: the deltas concatenate back to exactly the calls, and the stream ends
    ``tool_calls``. Without ``index`` (some servers), calls come one after the other."""
    queues: list[list[dict[str, Any]]] = []
    for i, (name, arguments) in enumerate(calls):
        cuts = data.draw(st.lists(st.integers(0, len(arguments)), max_size=5))
        pieces = split_at(arguments, cuts) or [""]
        queue = []
        for j, piece in enumerate(pieces):
            item: dict[str, Any] = {"function": {"arguments": piece}}
            if index:
                item["index"] = i
            if j == 0 or repeat:
                item["id"] = f"call_{i}"
                item["type"] = "function"
                item["function"]["name"] = name
            queue.append(item)
        queues.append(queue)
    order: list[int] = []
    left = [len(q) for q in queues]
    while any(left):
        live = (
            [i for i, n in enumerate(left) if n]
            if index
            else [left.index(next(n for n in left if n))]
        )
        pick = data.draw(st.sampled_from(live))
        order.append(pick)
        left[pick] -= 1
    reader = ChunkReader("https://server.example/v1")
    events: list[Any] = []
    taken = [0] * len(queues)
    for pick in order:
        item = queues[pick][taken[pick]]
        taken[pick] += 1
        chunk = {"choices": [{"index": 0, "delta": {"content": None, "tool_calls": [item]}}]}
        events += reader.feed(json.dumps(chunk))
    events += reader.feed(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
    made: dict[int, list[Any]] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            call = made.setdefault(e.index, [None, None, ""])
            if e.id is not None:
                assert call[0] is None
                call[0] = e.id
            if e.name is not None:
                assert call[1] is None
                call[1] = e.name
            call[2] += e.arguments
    assert [tuple(made[k]) for k in sorted(made)] == [
        (f"call_{i}", name, arguments) for i, (name, arguments) in enumerate(calls)
    ]
    assert reader.finish() == "tool_calls"

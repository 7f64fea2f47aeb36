"""The SSE parser: the WHATWG event-stream rules, any split of the bytes, and agreement with
httpx-sse (the reference it replaced for speed) on random streams."""

from __future__ import annotations

import random

import httpx
from httpx_sse import EventSource

from tedchat_http.sse import SSEParser


def parse(pieces: list[str]) -> list[tuple[str, str]]:
    parser = SSEParser()
    out = []
    for piece in pieces:
        out += parser.feed(piece)
    return out + parser.close()


def test_line_ends_lf_crlf_and_cr_alike() -> None:
    for nl in ("\n", "\r\n", "\r"):
        text = f"data: a{nl}{nl}data: b{nl}data: c{nl}{nl}"
        assert parse([text]) == [("message", "a"), ("message", "b\nc")], repr(nl)


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    assert parse(["data: a\r", "\ndata: b\r", "\n\r", "\n"]) == [("message", "a\nb")]


def test_comments_fields_and_spaces() -> None:
    text = (
        ": a comment\n"
        "event: delta\n"
        "id: 3\n"
        "retry: 10\n"
        "data:no space\n"
        "data:  two spaces\n"
        "data\n"
        "unknown: field\n"
        "\n"
    )
    assert parse([text]) == [("delta", "no space\n two spaces\n")]


def test_event_type_resets_after_dispatch_and_empty_blocks_do_not_dispatch() -> None:
    text = "event: x\n\nevent: y\ndata: 1\n\ndata: 2\n\n\n\n"
    assert parse([text]) == [("y", "1"), ("message", "2")]


def test_a_leading_bom_is_dropped_only_at_the_start() -> None:
    assert parse(["\ufeffdata: a\n\n", "data: \ufeffb\n\n"]) == [
        ("message", "a"),
        ("message", "\ufeffb"),
    ]


def test_a_last_event_without_its_blank_line_is_kept() -> None:
    assert parse(["data: [DONE]\n"]) == [("message", "[DONE]")]
    assert parse(["data: [DONE]"]) == [("message", "[DONE]")]


def test_every_single_split_point_gives_the_same_events() -> None:
    text = 'data: {"a": 1}\r\n\r\n: c\revent: e\rdata: x\r\rdata: y\n\n'
    expected = [("message", '{"a": 1}'), ("e", "x"), ("message", "y")]
    for cut in range(len(text) + 1):
        assert parse([text[:cut], text[cut:]]) == expected, cut


def reference(pieces: list[str]) -> list[tuple[str, str]]:
    """What httpx-sse makes of the same bytes."""
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=iter([p.encode() for p in pieces]),
    )
    return [(e.event, e.data) for e in EventSource(response).iter_sse()]


def random_stream(rng: random.Random) -> str:
    """Blocks with at least one data line (httpx-sse dispatches data-less blocks, which the
    standard does not, so those are left out), any line ends, comments and other fields."""
    out = []
    for _ in range(rng.randint(1, 8)):
        nl = rng.choice(["\n", "\r\n", "\r"])
        lines = [f"data:{rng.choice(['', ' '])}{rng.choice(['x', '', '{}', ' sp', 'é✓'])}"]
        for _ in range(rng.randint(0, 3)):
            lines.append(
                rng.choice(
                    [
                        f"data: {rng.randint(0, 99)}",
                        f"event: {rng.choice(['a', 'b'])}",
                        ": comment",
                        "id: 5",
                        "retry: 3",
                    ]
                )
            )
        rng.shuffle(lines)
        out.append(nl.join(lines) + nl + nl)
    return "".join(out)


def test_agrees_with_httpx_sse_on_random_streams_and_splits() -> None:
    rng = random.Random(1234)
    for _ in range(500):
        text = random_stream(rng)
        cuts = sorted(rng.sample(range(len(text) + 1), min(3, len(text) + 1)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        pieces = [p for p in pieces if p]
        assert parse(pieces) == reference(pieces), repr(text)

"""Property tests of importing a conversation export (``Store.import_json``), with Hypothesis.

Whatever the file holds (any JSON, or documents shaped like an export with any value in any
field), the import either adds one whole conversation that reads back, or raises
:class:`HistoryImportError` and writes nothing at all.

Examples per test are stated where each test is (``max_examples``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.engine import FINISH_REASONS
from tedchat.errors import HistoryImportError
from tedchat.history.export import EXPORT_FORMAT, EXPORT_VERSION
from tedchat.history.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store for the module (Hypothesis runs many examples per test)."""
    with Store.open(tmp_path_factory.mktemp("import-props") / "history.db") as opened:
        yield opened


def counts(store: Store) -> tuple[int, ...]:
    """Rows in every table the import writes, read through a connection of its own."""
    with sqlite3.connect(store.path) as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("conversations", "messages", "message_fts")
        )


SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
)
JSON = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right shape (so later checks run too), now and then any value."""
    return st.integers(0, 3).flatmap(lambda n: good if n else JSON)


TIME = mostly(st.floats(0, 4e9) | st.integers(0, 4 * 10**9))
METRICS = mostly(
    st.dictionaries(
        st.sampled_from(["ttft_s", "output_tokens_per_s", "prompt_tokens", "output_tokens", "x"]),
        mostly(st.floats(0, 1e6) | st.integers(0, 10**6)),
        max_size=4,
    )
)
REPLY = mostly(
    st.fixed_dictionaries(
        {"content": mostly(st.text(max_size=20))},
        optional={
            "engine": mostly(st.text(max_size=8)),
            "model": mostly(st.text(max_size=8)),
            "created": TIME,
            "finish_reason": mostly(st.sampled_from(sorted(FINISH_REASONS)) | st.none()),
            "metrics": METRICS,
        },
    )
)
MESSAGE = mostly(
    st.fixed_dictionaries(
        {
            "role": mostly(st.sampled_from(["user", "system", "assistant"])),
            "content": mostly(st.text(max_size=20)),
        },
        optional={
            "engine": mostly(st.text(max_size=8)),
            "model": mostly(st.text(max_size=8)),
            "created": TIME,
            "replies": mostly(st.lists(REPLY, max_size=2)),
        },
    )
)
CONVERSATION = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "title": mostly(st.text(max_size=12) | st.none()),
            "created": TIME,
            "updated": TIME,
            "system": mostly(st.text(max_size=12) | st.none()),
            "params": mostly(st.dictionaries(st.text(max_size=6), SCALAR, max_size=3)),
        },
    )
)
#: Exports of the right format and version (any JSON is the other test's business), with any
#: value in any field below.
EXPORTS = st.fixed_dictionaries(
    {
        "format": st.just(EXPORT_FORMAT),
        "version": st.just(1),
        "conversation": CONVERSATION,
        "messages": mostly(st.lists(MESSAGE, max_size=3)),
    }
)


def imports_whole_or_not_at_all(store: Store, data: str | bytes) -> None:
    before = counts(store)
    try:
        cid = store.import_json(data)
    except HistoryImportError as exc:
        assert exc.message and "\n" not in exc.message
        assert counts(store) == before  # nothing partly written
        return
    after = counts(store)
    assert after[0] == before[0] + 1
    conversation = store.get_conversation(cid)  # what was written reads back
    written = len(conversation.messages) + sum(len(m.replies) for m in conversation.messages)
    assert after[1] - before[1] == written
    json.loads(store.export_json(cid))  # and exports again


@settings(max_examples=300)
@given(doc=EXPORTS)
def test_an_export_with_any_values_imports_whole_or_not_at_all(
    store: Store, doc: dict[str, Any]
) -> None:
    imports_whole_or_not_at_all(store, json.dumps(doc))


@settings(max_examples=200)
@given(
    data=JSON.map(json.dumps)
    | st.text(max_size=60)
    | st.binary(max_size=60)
    | EXPORTS.map(lambda d: json.dumps(d)[: len(json.dumps(d)) // 2])  # a file cut short
    | EXPORTS.map(lambda d: json.dumps({**d, "version": EXPORT_VERSION + 1}))  # a newer one
    | EXPORTS.map(lambda d: json.dumps({**d, "format": "other"}))
    | EXPORTS.map(lambda d: json.dumps({**d, "version": "1"}))
)
def test_any_json_or_bytes_import_whole_or_not_at_all(store: Store, data: str | bytes) -> None:
    imports_whole_or_not_at_all(store, data)

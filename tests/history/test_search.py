"""Search: Japanese of any length as a substring, words whole, always from the FTS5 index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tedchat.history.search import fts_query, index_text
from tedchat.history.store import Store


@pytest.fixture
def searchable(db: Path) -> Iterator[Store]:
    store = Store.open(db)
    cid = store.new_conversation(title="search")
    store.add_user_message(cid, "昨日は東京タワーに行きました。夜景がきれいでした。")
    uid = store.add_user_message(cid, "最新のエレクトロンデバイスの技術について教えてください。")
    with store.begin_reply(cid, uid, "wafer", "tiny") as w:
        w.append("The quick brown fox measured the latency of the wafer.")
    store.add_user_message(cid, "東。京は別々の文です。")  # 東 and 京 split by punctuation
    store.add_user_message(cid, "ｴﾚｸﾄﾛﾆｸｽ is half-width katakana")
    yield store
    store.close()


def test_search_finds_two_character_japanese_words(searchable: Store) -> None:
    hits = searchable.search("東京")
    assert len(hits) == 1
    hit = hits[0]
    assert hit.role == "user" and hit.conversation_title == "search"
    assert hit.snippet.startswith("昨日は東京タワー")
    assert hit.snippet[hit.match_start : hit.match_end] == "東京"
    assert searchable.search("夜景")  # another 2-character word, mid-sentence
    assert searchable.search("京都") == []  # bigrams are not a bag of characters


def test_search_finds_katakana_and_english(searchable: Store) -> None:
    (hit,) = searchable.search("エレクトロン")
    assert "エレクトロンデバイス" in hit.snippet
    (hit,) = searchable.search("latency")
    assert hit.role == "assistant"
    assert hit.snippet[hit.match_start : hit.match_end] == "latency"
    assert [h.message_id for h in searchable.search("LATENCY")] == [hit.message_id]
    assert searchable.search("laten") == []  # whole words ...
    assert len(searchable.search("laten*")) == 1  # ... unless asked for a prefix
    assert len(searchable.search("エレクトロ")) == 2  # half-width text is found too (NFKC)
    assert len(searchable.search("東")) == 2  # one kanji: both the word and the lone one
    assert searchable.search("東京 latency") == []  # all terms must match
    assert searchable.search('"*) OR (') == []  # syntax cannot leak into FTS5


def test_search_uses_the_fts_index(searchable: Store) -> None:
    for query in ("東京", "エレクトロン", "latency"):
        plan = " | ".join(searchable.explain_search(query))
        assert "VIRTUAL TABLE INDEX" in plan, plan
        assert "SCAN m " not in plan and "SCAN messages" not in plan, plan
        assert "TEMP B-TREE" not in plan, plan  # newest-first comes from the index order


def test_streaming_reply_is_indexed_when_finished(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation()
        uid = store.add_user_message(cid, "question")
        writer = store.begin_reply(cid, uid, "e", "m", flush_interval=0)
        writer.append("zebra crossing")
        assert store.search("zebra") == []
        writer.finish("stop")
        assert [h.message_id for h in store.search("zebra")] == [writer.id]
        store.delete(cid)
        assert store.search("zebra") == []


def test_index_text_and_query_shapes() -> None:
    assert index_text("東京タワー GPU") == "東京 京タ タワ ワー ー gpu"
    assert fts_query("東京") == '"東京"'
    assert fts_query("エレクトロン") == '"エレ レク クト トロ ロン"'
    assert fts_query("東") == '"東"*'
    assert fts_query("Latency 東京") == '"latency" AND "東京"'
    assert fts_query(" ?! ") is None

"""Export to Markdown and JSON, and importing a JSON export back under new ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tedchat.engine import Done, TextDelta, Usage
from tedchat.errors import HistoryImportError
from tedchat.history.export import EXPORT_VERSION
from tedchat.history.store import Store
from tedchat.metrics import StreamMeter


def without_ids(doc: dict) -> str:
    """An export document with its ids and export time blanked, for comparing two exports."""
    blanked = {
        **doc,
        "exported": 0,
        "conversation": {**doc["conversation"], "id": 0},
        "messages": [
            {**m, "id": 0, "replies": [{**r, "id": 0} for r in m["replies"]]}
            for m in doc["messages"]
        ],
    }
    return json.dumps(blanked, sort_keys=True)


def test_export_markdown_json_and_import_round_trip(db: Path) -> None:
    with Store.open(db) as store:
        cid = store.new_conversation(
            title="Scientists", system="Answer briefly.", params={"temperature": 0.2, "seed": 7}
        )
        uid = store.add_user_message(cid, "Give me 10 great computer scientists.")
        meter = StreamMeter()
        meter.start(0.0)
        meter.observe(TextDelta("Turing, "), 0.05)
        meter.observe(TextDelta("Hopper"), 0.10)
        meter.observe(Usage(prompt_tokens=12, output_tokens=3), 0.11)
        meter.observe(Done("stop"), 0.11)
        with store.begin_reply(cid, uid, "wafer", "smollm2") as w:
            w.append("Turing, ")
            w.append("Hopper")
            w.finish("stop", meter.snapshot())
        with store.begin_reply(cid, uid, "http", "gpu-model") as w:
            w.append("Knuth")
            w.finish("cancelled", {"ttft_s": 0.9, "timings": {"prompt_eval_s": 0.4}})
        uid2 = store.add_user_message(cid, "東京で一番は?")
        with store.begin_reply(cid, uid2, "wafer", "smollm2") as w:
            w.append("答え")

        md = store.export_markdown(cid)
        assert md.startswith("# Scientists\n")
        for text in ("Answer briefly.", "Give me 10 great", "Turing, Hopper", "Knuth", "東京で"):
            assert text in md
        assert "wafer · smollm2 (1 of 2)" in md and "cancelled" in md and "TTFT 50 ms" in md

        exported = store.export_json(cid)
        doc = json.loads(exported)
        assert doc["format"] == "tedchat-conversation" and doc["version"] == EXPORT_VERSION
        first_reply = doc["messages"][0]["replies"][0]["metrics"]
        assert first_reply["prompt_tokens"] == 12 and first_reply["output_tokens"] == 3

        new_id = store.import_json(exported)
        assert new_id != cid
        old, new = store.get_conversation(cid), store.get_conversation(new_id)
        assert (new.title, new.system, new.params, new.created, new.updated) == (
            old.title,
            old.system,
            old.params,
            old.created,
            old.updated,
        )
        assert len(new.messages) == len(old.messages) == 2
        for a, b in zip(old.messages, new.messages, strict=True):
            assert b.id != a.id
            assert (b.role, b.content, b.created) == (a.role, a.content, a.created)
            assert len(a.replies) == len(b.replies)
            for ra, rb in zip(a.replies, b.replies, strict=True):
                assert rb.id != ra.id and rb.parent_id == b.id
                assert (rb.engine, rb.model, rb.content, rb.created, rb.finish_reason) == (
                    ra.engine,
                    ra.model,
                    ra.content,
                    ra.created,
                    ra.finish_reason,
                )
                assert rb.metrics == ra.metrics
        # A re-import exports to the same document apart from ids and export time.
        again = json.loads(store.export_json(new_id))
        assert without_ids(again) == without_ids(doc)
        assert {h.conversation_id for h in store.search("東京")} == {cid, new_id}


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        json.dumps({"format": "something-else", "version": 1}),
        json.dumps({"format": "tedchat-conversation", "version": 99}),
        json.dumps(
            {
                "format": "tedchat-conversation",
                "version": 1,
                "conversation": {},
                "messages": [{"role": "user", "content": "x", "replies": [{"content": 1}]}],
            }
        ),
    ],
)
def test_bad_imports_raise_and_write_nothing(db: Path, data: str) -> None:
    with Store.open(db) as store:
        with pytest.raises(HistoryImportError):
            store.import_json(data)
        assert store.list_conversations() == []

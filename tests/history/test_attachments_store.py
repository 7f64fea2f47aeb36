"""Attachments in the history: stored once by content hash, linked to their user message, read
back in order, exported and imported without loss, gone with the last message using them."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from tedchat.conversation import conversation_from_store, history_pairs
from tedchat.errors import HistoryImportError
from tedchat.history.records import StoredAttachment
from tedchat.history.store import Store
from tests.test_attachments import png_bytes

CODE = StoredAttachment("src/a.py", "text", "text/plain", "print('日本')\n".encode())
IMAGE = StoredAttachment("pic.png", "image", "image/png", png_bytes())


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_each_content_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store.open(db) as store:
        one = store.new_conversation()
        store.add_user_message(one, "first", attachments=[CODE, IMAGE])
        copy = StoredAttachment("copy.py", "text", "text/plain", CODE.data)
        store.add_user_message(one, "again", attachments=[copy])
        two = store.new_conversation()
        store.add_user_message(two, "elsewhere", attachments=[IMAGE])
        first, again = store.get_conversation(one).messages
        assert first.attachments == (CODE, IMAGE)
        assert again.attachments == (copy,) and again.attachments[0].sha256 == CODE.sha256
    assert rows(db, "attachments") == 2 and rows(db, "message_attachments") == 4
    with Store.open(db) as store:
        store.delete(one)  # the image is still attached in conversation two
    assert rows(db, "attachments") == 1 and rows(db, "message_attachments") == 1
    with Store.open(db) as store:
        store.delete(two)
    assert rows(db, "attachments") == 0


def tree(store: Store) -> list[tuple[object, ...]]:
    """A conversation as comparable values, ids left out (import gives new ones)."""
    conv = store.get_conversation(store.last_conversation_id() or 0)
    return [
        (conv.title, conv.system, conv.params),
        *(
            (
                m.role,
                m.content,
                m.created,
                m.attachments,
                tuple((r.content, r.finish_reason, r.metrics, r.tool_calls) for r in m.replies),
            )
            for m in conv.messages
        ),
    ]


def test_export_then_import_is_lossless(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db") as store:
        cid = store.new_conversation(None, "be brief", {"temperature": 0.2})
        mid = store.add_user_message(cid, "look", attachments=[CODE, IMAGE])
        reply = store.begin_reply(cid, mid, "e", "m")
        reply.append("seen")
        reply.finish("stop")
        store.add_user_message(cid, "no files here")
        exported = store.export_json(cid)
        original = tree(store)
        markdown = store.export_markdown(cid)
    doc = json.loads(exported)
    # The image's bytes appear once, under its hash, however it is linked.
    assert list(doc["attachments"]) == [CODE.sha256, IMAGE.sha256]
    assert base64.b64decode(doc["attachments"][IMAGE.sha256]) == IMAGE.data
    assert doc["messages"][0]["attachments"][1] == {
        "name": "pic.png",
        "kind": "image",
        "mime": "image/png",
        "sha256": IMAGE.sha256,
    }
    assert "*attached:* `src/a.py` (text, 16 B)" in markdown
    with Store.open(tmp_path / "b.db") as other:
        other.import_json(exported)
        assert tree(other) == original
        # What the model is sent on --continue comes back too.
        pairs = history_pairs(conversation_from_store(other.get_conversation(1)).exchanges)
        user = pairs[0][0]
        assert not isinstance(user, str)
        assert user.content == "look\n\n```src/a.py\nprint('日本')\n```"
        assert [i.data for i in user.images] == [IMAGE.data]


def test_a_version_1_export_still_imports(tmp_path: Path) -> None:
    doc = {
        "format": "tedchat-conversation",
        "version": 1,
        "conversation": {"title": "old"},
        "messages": [{"role": "user", "content": "hi", "replies": []}],
    }
    with Store.open(tmp_path / "h.db") as store:
        cid = store.import_json(json.dumps(doc))
        assert store.get_conversation(cid).messages[0].attachments == ()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d["attachments"].clear(), "has no content"),
        (lambda d: d["attachments"].update({IMAGE.sha256: "bm90IGl0"}), "does not match"),
        (lambda d: d["attachments"].update({IMAGE.sha256: "!!"}), "not base64"),
        (lambda d: d["messages"][0]["attachments"][0].update(kind="video"), "kind 'video'"),
        (lambda d: d["messages"][0]["attachments"][0].pop("sha256"), "needs name"),
    ],
)
def test_a_damaged_attachment_is_refused_before_anything_is_written(
    tmp_path: Path, change: object, error: str
) -> None:
    with Store.open(tmp_path / "a.db") as store:
        cid = store.new_conversation()
        store.add_user_message(cid, "look", attachments=[CODE, IMAGE])
        doc = json.loads(store.export_json(cid))
    change(doc)  # type: ignore[operator]
    with Store.open(tmp_path / "b.db") as other:
        with pytest.raises(HistoryImportError, match=error):
            other.import_json(json.dumps(doc))
        assert other.list_conversations() == []

"""The message tree in the store: edited prompts and regenerated replies as branches, the
active path, branch numbers, and export -> import of the whole tree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tedchat.conversation import build_messages, conversation_from_store, history_pairs
from tedchat.errors import BranchNotFoundError, HistoryImportError
from tedchat.history.export import EXPORT_VERSION
from tedchat.history.records import Conversation, ReplyMetrics, StoredAttachment
from tedchat.history.store import Store
from tedchat.history.tree import Tree, active_path, branch_leaf, path_steps
from tedchat.tools.base import ToolCallRecord

NOTES = StoredAttachment("notes.md", "text", "text/markdown", "# ノート\n".encode())
PIXEL = StoredAttachment("dot.png", "image", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(40)))


def answer(store: Store, cid: int, mid: int, text: str, calls: int = 0) -> int:
    with store.begin_reply(cid, mid, "fast", "script") as w:
        for k in range(calls):
            record = ToolCallRecord(f"call_{k}", "read_file", '{"path": "a.txt"}', step=0)
            record.args = {"path": "a.txt"}
            record.source = "builtin"
            record.status = "ok"
            record.result = f"contents {k}"
            record.elapsed_s = 0.25
            w.add_tool_call(record.as_dict())
        w.append(text)
        w.finish("stop", ReplyMetrics(ttft_s=0.1, output_tokens=len(text.split())))
        return w.id


def texts(conv: Conversation, leaf: int | None = None) -> list[tuple[str, str | None]]:
    steps = active_path(conv) if leaf is None else path_steps(conv, leaf)
    return [(s.message.content, s.reply.content if s.reply else None) for s in steps]


def branched(store: Store) -> tuple[int, dict[str, int]]:
    """Three prompts; the second edited (a new branch from the first reply) and answered; the
    edited one's reply regenerated. Ids by name."""
    cid = store.new_conversation(None, "be brief", {"temperature": 0.2})
    ids: dict[str, int] = {}
    ids["p1"] = store.add_user_message(cid, "one")
    ids["r1"] = answer(store, cid, ids["p1"], "ONE", calls=2)
    ids["p2"] = store.add_user_message(cid, "two")
    ids["r2"] = answer(store, cid, ids["p2"], "TWO")
    ids["p3"] = store.add_user_message(cid, "three")
    ids["r3"] = answer(store, cid, ids["p3"], "THREE")
    ids["p2b"] = store.add_user_message(
        cid, "two, edited", follows=ids["r1"], attachments=[NOTES, PIXEL]
    )
    ids["r2b"] = answer(store, cid, ids["p2b"], "TWO B")
    ids["r2c"] = answer(store, cid, ids["p2b"], "TWO C", calls=1)
    return cid, ids


def test_edit_and_regenerate_make_branches_and_the_newest_is_active(db: Path) -> None:
    with Store.open(db) as store:
        cid, ids = branched(store)
        conv = store.get_conversation(cid)
        assert texts(conv) == [("one", "ONE"), ("two, edited", "TWO C")]
        path = active_path(conv)
        assert [s.prompt_branch for s in path] == [(1, 1), (2, 2)]
        assert [s.reply_branch for s in path] == [(1, 1), (2, 2)]
        # Branches are leaves in creation order.
        assert Tree.of(conv).leaves() == [ids["r3"], ids["r2b"], ids["r2c"]]
        assert texts(conv, branch_leaf(conv, 1))[-1] == ("three", "THREE")
        # Continuing goes on from the active path's end.
        p4 = store.add_user_message(cid, "four")
        conv = store.get_conversation(cid)
        assert conv.messages[-1].follows_id == ids["r2c"]
        # Stepping to the first version of prompt two brings its own continuation back.
        store.set_active(cid, ids["p2"])
        assert texts(store.get_conversation(cid)) == [
            ("one", "ONE"),
            ("two", "TWO"),
            ("three", "THREE"),
        ]
        store.set_active_branch(cid, 2)
        assert texts(store.get_conversation(cid))[-1] == ("two, edited", "TWO B")
        assert store.get_conversation(cid).active_id == ids["r2b"]
        with pytest.raises(BranchNotFoundError, match="branches 1-3"):
            store.set_active_branch(cid, 4)
        store.set_active(cid, p4)
        assert texts(store.get_conversation(cid))[-1] == ("four", None)


def test_a_message_of_another_conversation_cannot_be_followed(db: Path) -> None:
    with Store.open(db) as store:
        a = store.new_conversation()
        b = store.new_conversation()
        pa = store.add_user_message(a, "a")
        with pytest.raises(Exception, match="not in conversation"):
            store.add_user_message(b, "b", follows=pa)
        with pytest.raises(Exception, match="not in conversation"):
            store.set_active(b, pa)


def tree_shape(conv: Conversation) -> Any:
    """The whole tree without ids: every prompt and reply with all they hold, children nested,
    and which nodes the active path goes through."""
    tree = Tree.of(conv)
    messages = {m.id: m for m in conv.messages}
    replies = {r.id: r for m in conv.messages for r in m.replies}
    on_path = set(tree.path_to(tree.active_leaf(conv.active_id)))

    def node(i: int) -> Any:
        if i in messages:
            m = messages[i]
            body: dict[str, Any] = {
                "prompt": (m.role, m.content, m.engine, m.model, m.created),
                "attachments": [(a.name, a.kind, a.mime, a.data, a.sha256) for a in m.attachments],
            }
        else:
            r = replies[i]
            body = {
                "reply": (r.engine, r.model, r.content, r.created, r.finish_reason),
                "metrics": r.metrics.as_dict(),
                "tool_calls": list(r.tool_calls),
            }
        body["active"] = i in on_path
        body["children"] = [node(c) for c in tree.children(i)]
        return body

    settings = (conv.title, conv.system, conv.params, conv.created, conv.updated)
    return settings, [node(c) for c in tree.children(None)]


def test_export_import_of_a_branched_conversation_is_lossless(db: Path) -> None:
    with Store.open(db) as store:
        cid, ids = branched(store)
        store.set_active(cid, ids["p2"])  # an active path that is not the newest
        old = store.get_conversation(cid)
        new_id = store.import_json(store.export_json(cid))
        new = store.get_conversation(new_id)
        assert tree_shape(new) == tree_shape(old)
        shape = repr(tree_shape(old))
        assert shape.count("'tool_calls': [{") == 2  # calls were compared
        assert "dot.png" in shape and "notes.md" in shape  # and attachments
        assert Tree.of(new).leaves() and len(Tree.of(new).leaves()) == len(Tree.of(old).leaves())
        assert texts(new) == texts(old)
        # Branch numbers survive the round trip.
        for n in (1, 2, 3):
            assert texts(new, branch_leaf(new, n)) == texts(old, branch_leaf(old, n))


def test_a_version_1_export_imports_as_one_branch(db: Path) -> None:
    doc = {
        "format": "tedchat-conversation",
        "version": 1,
        "conversation": {"title": "old"},
        "messages": [
            {"role": "user", "content": "a", "replies": [{"content": "A1"}, {"content": "A2"}]},
            {"role": "user", "content": "b", "replies": []},
            {"role": "user", "content": "c", "replies": [{"content": "C"}]},
        ],
    }
    with Store.open(db) as store:
        conv = store.get_conversation(store.import_json(json.dumps(doc)))
        assert texts(conv) == [("a", "A2"), ("b", None), ("c", "C")]
        assert len(Tree.of(conv).leaves()) == 2  # A1 is a branch of its own


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"id": 1, "role": "user", "content": "a", "follows": 9}], "not an earlier message"),
        ([{"role": "user", "content": "a"}], "has no id"),
        (
            [
                {"id": 1, "role": "user", "content": "a"},
                {"id": 1, "role": "user", "content": "b"},
            ],
            "two messages have id 1",
        ),
    ],
)
def test_a_tree_that_does_not_hold_together_is_refused(
    db: Path, messages: list[dict[str, Any]], error: str
) -> None:
    doc = {"format": "tedchat-conversation", "version": EXPORT_VERSION, "conversation": {}}
    with Store.open(db) as store:
        with pytest.raises(HistoryImportError, match=error):
            store.import_json(json.dumps({**doc, "messages": messages}))
        assert store.list_conversations() == []


def test_the_model_is_sent_the_active_path_with_its_tool_calls(db: Path) -> None:
    head = [
        ("system", "be brief"),
        ("user", "one"),
        ("assistant", ""),  # the first reply called two tools before its text
        ("tool", "contents 0"),
        ("tool", "contents 1"),
        ("assistant", "ONE"),
    ]
    with Store.open(db) as store:
        cid, ids = branched(store)
        for active, tail in (
            (
                ids["p3"],  # the path through prompt three goes on to its reply
                [("user", "two"), ("assistant", "TWO"), ("user", "three"), ("assistant", "THREE")],
            ),
            (
                ids["r2c"],
                [
                    ("user", "two, edited"),
                    ("assistant", ""),
                    ("tool", "contents 0"),
                    ("assistant", "TWO C"),
                ],
            ),
        ):
            store.set_active(cid, active)
            conv = conversation_from_store(store.get_conversation(cid))
            pairs = history_pairs(conv.exchanges)
            built = build_messages(conv.system, pairs, "next", 10_000, tools=True)
            # (the edited prompt's attachments follow its first line)
            sent = [(m.role, m.content.split("\n")[0]) for m in built.messages]
            assert sent == [*head, *tail, ("user", "next")]
            assert [c.id for c in built.messages[2].tool_calls] == ["call_0", "call_1"]

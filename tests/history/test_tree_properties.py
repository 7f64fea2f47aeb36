"""Property tests of the message tree (Hypothesis, on the real store): any sequence of sends,
edits, regenerations and steps keeps the tree whole, and export -> import keeps it exactly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.history.store import Store
from tedchat.history.tree import Tree, active_path, branch_leaf
from tests.history.test_branches import tree_shape


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One store for the module (Hypothesis runs many examples per test)."""
    with Store.open(tmp_path_factory.mktemp("tree-props") / "history.db") as opened:
        yield opened


#: One step: ("send", -): a prompt continuing the active path; ("edit", k): a prompt after the
#: parent of the k-th prompt (a new branch); ("reply", k): a reply to the k-th prompt;
#: ("step", k): make the k-th message (any) active.
STEPS = st.lists(
    st.tuples(st.sampled_from(["send", "edit", "reply", "step"]), st.integers(0, 50)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(steps=STEPS)
def test_any_edit_history_keeps_a_whole_tree_that_round_trips(
    store: Store, steps: list[tuple[str, int]]
) -> None:
    cid = store.new_conversation()
    prompts: list[int] = []
    every: list[int] = []
    for n, (kind, k) in enumerate(steps):
        if kind == "send" or not prompts:
            prompts.append(store.add_user_message(cid, f"p{n}"))
            every.append(prompts[-1])
        elif kind == "edit":
            original = next(
                m for m in store.get_conversation(cid).messages if m.id == prompts[k % len(prompts)]
            )
            prompts.append(store.add_user_message(cid, f"e{n}", follows=original.follows_id))
            every.append(prompts[-1])
        elif kind == "reply":
            with store.begin_reply(cid, prompts[k % len(prompts)], "e", "m") as w:
                w.append(f"r{n}")
                w.finish("stop", {})
                every.append(w.id)
        else:
            store.set_active(cid, every[k % len(every)])
    conv = store.get_conversation(cid)
    tree = Tree.of(conv)
    leaves = tree.leaves()
    # Every message is on the path to some leaf; each branch's path ends at its leaf.
    on_paths = {node for leaf in leaves for node in tree.path_to(leaf)}
    assert on_paths == set(tree.nodes)
    for number, leaf in enumerate(leaves, 1):
        assert branch_leaf(conv, number) == leaf
        assert tree.path_to(leaf)[-1] == leaf
    # The active path ends in a leaf and goes through the active message.
    path = tree.path_to(tree.active_leaf(conv.active_id))
    assert path[-1] in leaves
    assert conv.active_id in path
    steps_shown = active_path(conv)
    assert [s.message.id for s in steps_shown] == [n for n in path if n in set(prompts)]
    # Export -> import keeps the whole tree, the active path and the branch numbers.
    new = store.get_conversation(store.import_json(store.export_json(cid)))
    assert tree_shape(new) == tree_shape(conv)

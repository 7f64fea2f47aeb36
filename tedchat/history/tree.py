"""A conversation as a tree of messages: branches, the active path, siblings.

Every message row is a node. A reply's parent is the user message it answers (``parent_id``);
a user message's parent is the message it was sent after (``follows_id``): the reply it
continues, the previous prompt when that had no reply, or nothing for a first prompt. So
editing a prompt and sending it again makes a *sibling prompt* (same parent), and regenerating
makes a *sibling reply* (same user message).

The active path
---------------
A conversation remembers one node as active (``conversations.active_id``: the newest message
written, or the one a person stepped to). The active path runs from the root to that node and
on down to a leaf, taking the newest child at each step; with no active node it starts at the
newest first prompt. What is sent to a model, shown in the TUI and printed by ``history show``
is the active path.

Branches
--------
A branch is a leaf (a node with no children) and the path from the root to it. Branches are
numbered 1, 2, ... in the order their leaves were created (by message id), so a number stays
put when later messages make new branches; ``history show ID --branch N`` and
``ask --continue --branch N`` use these numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tedchat.errors import BranchNotFoundError
from tedchat.history.records import Conversation, Reply, StoredMessage

#: ``follows`` for :meth:`tedchat.history.store.Store.add_user_message`: after the end of the
#: active path (continuing the conversation as it is shown).
ACTIVE_END = "active"


@dataclass(frozen=True)
class Node:
    """One message row as the tree sees it: ``parent`` is the parent node's id (None: root)."""

    id: int
    parent: int | None
    is_reply: bool


class Tree:
    """The shape of one conversation's messages (ids only)."""

    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes: dict[int, Node] = {n.id: n for n in nodes}
        self._children: dict[int | None, list[int]] = {}
        for node in sorted(self.nodes.values(), key=lambda n: n.id):
            parent = node.parent if node.parent in self.nodes else None
            if node.is_reply and parent is None:
                continue  # a reply whose prompt is gone: not part of any path
            self._children.setdefault(parent, []).append(node.id)

    @classmethod
    def of(cls, conv: Conversation) -> Tree:
        """The tree of a conversation read from the store."""
        nodes: list[Node] = []
        for msg in conv.messages:
            nodes.append(Node(msg.id, msg.follows_id, False))
            nodes += [Node(rep.id, msg.id, True) for rep in msg.replies]
        return cls(nodes)

    def children(self, node: int | None) -> list[int]:
        """The children of ``node`` (None: the first prompts), oldest first."""
        return list(self._children.get(node, ()))

    def parent(self, node: int) -> int | None:
        parent = self.nodes[node].parent
        return parent if parent in self.nodes else None

    def siblings(self, node: int) -> list[int]:
        """``node`` and the other nodes of its kind (prompts or replies) under its parent."""
        kind = self.nodes[node].is_reply
        return [c for c in self.children(self.parent(node)) if self.nodes[c].is_reply == kind]

    def leaves(self) -> list[int]:
        """Every branch's last node, in creation order: branch N is ``leaves()[N - 1]``."""
        return [i for i in sorted(self.nodes) if not self._children.get(i) and self._reachable(i)]

    def _reachable(self, node: int) -> bool:
        n = self.nodes[node]
        return not n.is_reply or n.parent in self.nodes

    def leaf_below(self, node: int | None) -> int | None:
        """The leaf reached from ``node`` by taking the newest child at every step."""
        current = node
        while True:
            kids = self.children(current)
            if not kids:
                return current
            current = kids[-1]

    def path_to(self, node: int | None) -> list[int]:
        """The node ids from the root down to ``node``."""
        out: list[int] = []
        current = node
        while current is not None and current in self.nodes:
            out.append(current)
            current = self.parent(current)
        out.reverse()
        return out

    def active_leaf(self, active: int | None) -> int | None:
        """The leaf of the active path (see the module doc)."""
        if active is None or active not in self.nodes or not self._reachable(active):
            return self.leaf_below(None)
        return self.leaf_below(active)

    def branch_of(self, leaf: int) -> int:
        """The branch number (1-based) of ``leaf``."""
        return self.leaves().index(leaf) + 1

    def end_for_next_prompt(self, active: int | None) -> int | None:
        """What a new prompt on the active path follows: the active path's leaf."""
        return self.active_leaf(active)


@dataclass(frozen=True)
class PathStep:
    """One exchange of a path: a prompt, the reply shown for it (None: none on this path), and
    where each stands among its siblings as (position, count), 1-based."""

    message: StoredMessage
    reply: Reply | None
    prompt_branch: tuple[int, int]
    reply_branch: tuple[int, int]


def path_steps(conv: Conversation, leaf: int | None) -> list[PathStep]:
    """The exchanges on the path from the root to ``leaf`` (see :func:`active_path`)."""
    tree = Tree.of(conv)
    messages = {m.id: m for m in conv.messages}
    replies = {r.id: r for m in conv.messages for r in m.replies}
    steps: list[PathStep] = []
    for node in tree.path_to(leaf):
        if node in messages:
            steps.append(PathStep(messages[node], None, _place(tree, node), (0, 0)))
        elif node in replies and steps:
            last = steps[-1]
            steps[-1] = PathStep(
                last.message, replies[node], last.prompt_branch, _place(tree, node)
            )
    return steps


def active_path(conv: Conversation) -> list[PathStep]:
    """The conversation's active path as exchanges."""
    return path_steps(conv, Tree.of(conv).active_leaf(conv.active_id))


def branch_leaf(conv: Conversation, branch: int) -> int:
    """The leaf of branch ``branch`` (1-based); :class:`BranchNotFoundError` names the valid
    range."""
    leaves = Tree.of(conv).leaves()
    if not 1 <= branch <= len(leaves):
        many = f"branches 1-{len(leaves)}" if len(leaves) != 1 else "one branch (1)"
        raise BranchNotFoundError(
            f"conversation {conv.id} has no branch {branch}: it has {many}"
            if leaves
            else f"conversation {conv.id} has no messages, so no branch {branch}"
        )
    return leaves[branch - 1]


def _place(tree: Tree, node: int) -> tuple[int, int]:
    sibs = tree.siblings(node)
    return sibs.index(node) + 1, len(sibs)

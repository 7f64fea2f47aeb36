"""Properties of the attachment rules: a fence always outlasts the text it holds, and an
``@word`` attaches only a file that exists under the workspace."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.attachments import fenced_block, mentions

WORDS = st.text(alphabet=st.sampled_from("ab.@/` \n(-_x日"), max_size=40)


@given(st.text(max_size=200))
def test_a_fence_is_never_closed_by_the_text_inside(text: str) -> None:
    block = fenced_block("f.md", text)
    fence = block.split("f.md", 1)[0]
    body = block[len(fence) + len("f.md\n") : -len(fence)]
    assert body.rstrip("\n") == text.rstrip("\n") or body == text + "\n"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    assert len(fence) > longest and len(fence) >= 3


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_only_existing_files_under_the_workspace_attach(tmp_path_factory, text: str) -> None:
    root = tmp_path_factory.mktemp("ws")
    (root / "a.x").write_text("a")
    (root / "b").mkdir()
    (root / "b" / "a.x").write_text("b")
    found = mentions(text, root)
    for name in found:
        path = (root / name).resolve()
        assert path.is_file() and root.resolve() in path.parents
        assert f"@{name}" in text
    # An @ straight after a letter (an e-mail address) never starts a mention.
    assert mentions(text.replace("@", "x@"), root) == []
    assert mentions("mail me@a.x or x@b/a.x", root) == []

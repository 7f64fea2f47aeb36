"""Branches through the real CLI: ``history show`` marks them and picks one with ``--branch``;
``ask --continue`` follows the active path and ``--branch N`` continues another."""

from __future__ import annotations

import json
from pathlib import Path

from tedchat.history.store import Store
from tedchat.history.tree import active_path
from tests.conftest import one_error_line, run_cli
from tests.history.test_branches import branched
from tests.tui.conftest import PLUGINS

CONFIG = f"""
default_engine = "fast"

[plugins]
dirs = [{str(PLUGINS)!r}]

[engines.fast]
type = "scripted"
model = "script-fast"
text = "scripted answer"
ttft_s = 0.0
tokens_per_s = 1000.0
"""


def home_with_branches(home: Path) -> dict[str, int]:
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG, encoding="utf-8")
    with Store.open(home / "data" / "history.db") as store:
        _cid, ids = branched(store)
    return ids


def test_history_show_prints_the_active_path_and_picks_a_branch(tedchat_home: Path) -> None:
    home_with_branches(tedchat_home)
    shown = run_cli(tedchat_home, "history", "show", "1")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "Branch 3 of 3 (the active branch)" in out
    assert "two, edited" in out and "TWO C" in out and "(prompt 2 of 2)" in out
    assert "(reply 2 of 2)" not in out and "(2 of 2)" in out  # the reply's mark
    assert "three" not in out and "TWO B" not in out
    first = run_cli(tedchat_home, "history", "show", "1", "--branch", "1")
    assert first.returncode == 0, first.stderr
    assert "Branch 1 of 3 (the active one is 3)" in first.stdout
    assert "THREE" in first.stdout and "(prompt 1 of 2)" in first.stdout
    assert "edited" not in first.stdout
    missing = run_cli(tedchat_home, "history", "show", "1", "--branch", "7")
    assert missing.returncode == 2
    assert (
        one_error_line(missing.stderr)
        == "error: conversation 1 has no branch 7: it has branches 1-3"
    )


def test_ask_continue_follows_the_active_path_and_branch_picks_another(
    tedchat_home: Path,
) -> None:
    ids = home_with_branches(tedchat_home)
    done = run_cli(tedchat_home, "ask", "--continue", "four")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scripted answer"
    other = run_cli(tedchat_home, "ask", "--continue", "--branch", "1", "--json", "after three")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["text"] == "scripted answer"
    with Store.open(tedchat_home / "data" / "history.db") as store:
        conv = store.get_conversation(1)
        by_text = {m.content: m for m in conv.messages}
        assert by_text["four"].follows_id == ids["r2c"]
        assert by_text["after three"].follows_id == ids["r3"]
        # --branch made branch 1 the active one: the path the model was sent.
        assert [s.message.content for s in active_path(conv)] == [
            "one",
            "two",
            "three",
            "after three",
        ]
    bad = run_cli(tedchat_home, "ask", "--branch", "1", "hi")
    assert bad.returncode == 2 and "--branch" in one_error_line(bad.stderr)

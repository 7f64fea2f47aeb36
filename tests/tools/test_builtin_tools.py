"""The built-in tools through a real Toolbox: files confined to the workspace, the shell tool
never running unapproved, killed with everything it started on a timeout or a cancel."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tedchat.config import ToolSettings
from tedchat.engine import ToolCall
from tedchat.tools import builtin
from tedchat.tools.base import Approval, ApprovalRequest, Approver, ToolCallRecord
from tedchat.tools.toolbox import Toolbox

SECRET = "TOP-SECRET-OUTSIDE"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with files, a folder, symlinks pointing in and out; a secret beside it."""
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\ndelta\n", encoding="utf-8")
    (root / "sub" / "deep.py").write_text("def beta():\n    return 'Beta'\n", encoding="utf-8")
    (root / "blob.bin").write_bytes(b"\0\1\2beta")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")
    (root / "link_out").symlink_to(outside / "secret.txt")
    (root / "dir_out").symlink_to(outside)
    (root / "link_in").symlink_to(root / "sub" / "deep.py")
    return root


def box(root: Path, **settings: Any) -> Toolbox:
    settings.setdefault("approval", "auto")
    return Toolbox(ToolSettings(workspace=str(root), **settings), builtin.TOOLS)


async def call(
    toolbox: Toolbox, name: str, args: dict[str, Any], approver: Approver | None = None
) -> ToolCallRecord:
    import json

    record = ToolCallRecord(id="c1", name=name, arguments=json.dumps(args))
    await toolbox.call(ToolCall("c1", name, record.arguments), record, approver)
    return record


def answering(answer: Approval, asked: list[ApprovalRequest]) -> Approver:
    async def approver(request: ApprovalRequest) -> Approval:
        asked.append(request)
        return answer

    return approver


# --- confinement -----------------------------------------------------------------------------

ESCAPES = [
    "../secret.txt",
    "sub/../../secret.txt",
    "link_out",
    "dir_out/secret.txt",
    "dir_out",
    "~",
]


@pytest.mark.parametrize("path", [*ESCAPES, "ABSOLUTE"])
@pytest.mark.parametrize("tool", ["read_file", "list_directory", "search_text"])
async def test_file_tools_refuse_paths_outside_the_workspace(
    ws: Path, tool: str, path: str
) -> None:
    if path == "ABSOLUTE":
        path = str(ws.parent / "secret.txt")
    args: dict[str, Any] = {"path": path}
    if tool == "search_text":
        args["pattern"] = "SECRET"
    record = await call(box(ws), tool, args)
    assert record.status == "error"
    assert record.error is not None and "outside the workspace" in record.error
    assert record.result is None


async def test_a_symlink_inside_that_resolves_inside_is_fine(ws: Path) -> None:
    record = await call(box(ws), "read_file", {"path": "link_in"})
    assert record.status == "done"
    assert record.result == "def beta():\n    return 'Beta'\n"


async def test_an_absolute_path_inside_is_fine(ws: Path) -> None:
    record = await call(box(ws), "read_file", {"path": str(ws / "notes.txt")})
    assert record.result == "alpha\nbeta\ngamma\ndelta\n"


async def test_search_does_not_follow_symlinks_out_of_the_workspace(ws: Path) -> None:
    record = await call(box(ws), "search_text", {"pattern": SECRET})
    assert record.status == "done"
    assert record.result == "no matches"


async def test_the_workspace_defaults_to_the_current_directory(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws / "sub")
    toolbox = Toolbox(ToolSettings(approval="auto"), builtin.TOOLS)
    assert toolbox.workspace == (ws / "sub").resolve()
    assert (await call(toolbox, "read_file", {"path": "deep.py"})).status == "done"
    assert "outside" in ((await call(toolbox, "read_file", {"path": "../notes.txt"})).error or "")


async def test_each_toolbox_calls_in_its_own_workspace_side_by_side(tmp_path: Path) -> None:
    roots = [tmp_path / "a", tmp_path / "b"]
    for root in roots:
        root.mkdir()
        (root / f"only-in-{root.name}").write_text("x")
    records = await asyncio.gather(*(call(box(r), "list_directory", {}) for r in roots))
    assert [r.result for r in records] == ["only-in-a", "only-in-b"]


# --- read, list, search ----------------------------------------------------------------------


async def test_read_file_lines_and_bytes(ws: Path) -> None:
    toolbox = box(ws)
    lines = await call(toolbox, "read_file", {"path": "notes.txt", "start_line": 2, "end_line": 3})
    assert lines.result == "beta\ngamma\n\n[more of notes.txt follows; read on with start_line]"
    head = await call(toolbox, "read_file", {"path": "notes.txt", "max_bytes": 8})
    assert head.result is not None and head.result.startswith("alpha\nbe\n[more of notes.txt")
    past = await call(toolbox, "read_file", {"path": "notes.txt", "start_line": 50})
    assert past.error == "notes.txt has fewer than 50 lines"


async def test_read_file_cuts_only_between_characters(ws: Path) -> None:
    (ws / "ja.txt").write_text("日本語", encoding="utf-8")  # 3 bytes a character
    record = await call(box(ws), "read_file", {"path": "ja.txt", "max_bytes": 4})
    assert record.result is not None and record.result.startswith("日\n[more of ja.txt")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("blob.bin", "blob.bin is a binary file (7 bytes)"),
        ("sub", "sub is a directory (list it with list_directory)"),
        ("missing.txt", "cannot read missing.txt: No such file or directory"),
        ("fifo", "fifo is not a regular file"),
    ],
)
async def test_read_file_errors(ws: Path, path: str, error: str) -> None:
    os.mkfifo(ws / "fifo")
    record = await call(box(ws), "read_file", {"path": path})
    assert (record.status, record.error) == ("error", error)


async def test_list_directory(ws: Path) -> None:
    toolbox = box(ws)
    record = await call(toolbox, "list_directory", {})
    assert record.result == "blob.bin\ndir_out@\nlink_in@\nlink_out@\nnotes.txt\nsub/"
    assert (await call(toolbox, "list_directory", {"path": "sub"})).result == "deep.py"
    assert (await call(toolbox, "list_directory", {"path": "notes.txt"})).error == (
        "notes.txt is not a directory"
    )


async def test_search_text_literal_regex_case_and_limit(ws: Path) -> None:
    toolbox = box(ws)
    literal = await call(toolbox, "search_text", {"pattern": "beta"})
    # the binary file and the symlinks' duplicates are skipped; link_in resolves inside
    assert literal.result == "link_in:1: def beta():\nnotes.txt:2: beta\nsub/deep.py:1: def beta():"
    nocase = await call(
        toolbox, "search_text", {"pattern": "BETA", "ignore_case": True, "path": "sub"}
    )
    assert nocase.result == "sub/deep.py:1: def beta():\nsub/deep.py:2:     return 'Beta'"
    regex = await call(toolbox, "search_text", {"pattern": r"^(al|ga)", "regex": True})
    assert regex.result == "notes.txt:1: alpha\nnotes.txt:3: gamma"
    assert (await call(toolbox, "search_text", {"pattern": ".", "regex": False})).result == (
        "no matches"
    )
    limited = await call(toolbox, "search_text", {"pattern": "a", "max_matches": 2})
    assert limited.result is not None and limited.result.endswith("[stopped at 2 matches]")
    assert limited.result.count("\n") == 2
    bad = await call(toolbox, "search_text", {"pattern": "(", "regex": True})
    assert bad.error is not None and bad.error.startswith("invalid regular expression '('")


# --- shell -----------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone_within(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def touch(marker: Path) -> dict[str, str]:
    return {"command": f"touch {marker.name}"}


@pytest.mark.parametrize(
    ("settings", "yes"),
    [
        ({"approval": "ask"}, False),
        ({"approval": "auto"}, False),  # auto does not cover the shell
        ({"approval": "ask"}, True),  # nor does --yes
        ({"approval": "auto"}, True),
    ],
)
async def test_shell_never_runs_without_approval(
    ws: Path, settings: dict[str, Any], yes: bool
) -> None:
    marker = ws / "marker"
    toolbox = Toolbox(ToolSettings(workspace=str(ws), **settings), builtin.TOOLS, yes=yes)
    record = await call(toolbox, "shell", touch(marker))
    assert record.status == "denied"
    assert record.error is not None and record.error.startswith("refused: needs approval (")
    assert 'shell = "auto"' in record.error
    denied: list[ApprovalRequest] = []
    record = await call(toolbox, "shell", touch(marker), answering("deny", denied))
    assert (record.status, record.error) == ("denied", "denied by the user")
    assert [r.name for r in denied] == ["shell"]
    assert denied[0].args == {"command": "touch marker"}
    assert not marker.exists()


async def test_shell_runs_when_approved(ws: Path) -> None:
    marker = ws / "marker"
    asked: list[ApprovalRequest] = []
    record = await call(box(ws), "shell", touch(marker), answering("once", asked))
    assert record.status == "done", record.error
    assert marker.exists() and len(asked) == 1


async def test_shell_runs_unasked_only_with_its_own_override(ws: Path) -> None:
    marker = ws / "marker"
    toolbox = box(ws, approval="ask", tool_approval={"shell": "auto"})
    record = await call(toolbox, "shell", touch(marker))
    assert record.status == "done", record.error
    assert marker.exists()


async def test_shell_output_status_and_cap(ws: Path) -> None:
    toolbox = box(ws, tool_approval={"shell": "auto"}, max_result_bytes=1000)
    record = await call(toolbox, "shell", {"command": "pwd; echo oops >&2; exit 3"})
    assert record.result == f"{ws.resolve()}\noops\n\n[exit status 3]"
    big = await call(toolbox, "shell", {"command": "head -c 100000 /dev/zero | tr '\\0' x"})
    assert big.result == "x" * 920 + "\n[output cut: 99080 more bytes]"
    assert len(big.result) <= 1000
    quiet = await call(toolbox, "shell", {"command": "true"})
    assert quiet.result == "(no output)"


async def test_shell_timeout_kills_the_process_group(ws: Path) -> None:
    toolbox = box(ws, tool_approval={"shell": "auto"}, timeout_s=1.0)
    command = "sleep 300 & echo $! > child.pid; wait"
    record = await call(toolbox, "shell", {"command": command})
    assert (record.status, record.error) == ("error", "timed out after 1 s")
    pid = int((ws / "child.pid").read_text())
    assert gone_within(pid), f"the shell's child {pid} outlived the timeout"


async def test_shell_leaves_nothing_running_after_it_exits(ws: Path) -> None:
    toolbox = box(ws, tool_approval={"shell": "auto"}, timeout_s=60.0)
    record = await call(toolbox, "shell", {"command": "sleep 300 & echo $! > child.pid"})
    assert record.status == "done"
    assert gone_within(int((ws / "child.pid").read_text()))
    assert record.elapsed_s < 60  # it did not wait for the background sleep


async def test_cancelling_the_shell_kills_it(ws: Path) -> None:
    toolbox = box(ws, tool_approval={"shell": "auto"}, timeout_s=120.0)
    record = ToolCallRecord(id="c1", name="shell", arguments="")
    args = '{"command": "echo $$ > shell.pid; sleep 300"}'
    task = asyncio.ensure_future(toolbox.call(ToolCall("c1", "shell", args), record, None))
    deadline = time.monotonic() + 30
    while not (ws / "shell.pid").exists() or not (ws / "shell.pid").read_text().strip():
        assert time.monotonic() < deadline, "the shell did not start"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert record.status == "cancelled"
    assert gone_within(int((ws / "shell.pid").read_text()))


def test_the_builtin_tools_are_described_by_json_schema() -> None:
    from jsonschema.validators import validator_for

    for tool in builtin.TOOLS:
        schema = dict(tool.parameters)
        validator_for(schema).check_schema(schema)
        assert schema["type"] == "object"
        for name, prop in schema["properties"].items():
            assert prop.get("type") and prop.get("description"), (tool.name, name)
    assert [t.name for t in builtin.TOOLS if t.ask_always] == ["shell"]


async def test_shell_runs_in_a_process_group_of_its_own(ws: Path) -> None:
    # the group killed on a timeout is the shell's own, never tedchat's
    toolbox = box(ws, tool_approval={"shell": "auto"})
    record = await call(toolbox, "shell", {"command": "echo $$; cut -d' ' -f5 /proc/$$/stat"})
    assert record.result is not None
    pid, group = (int(n) for n in record.result.split())
    assert group == pid != os.getpgid(0)


async def test_shell_returns_when_a_child_escaped_its_group_holding_the_output(ws: Path) -> None:
    import shutil
    import signal

    if shutil.which("setsid") is None:
        pytest.skip("needs setsid")
    toolbox = box(ws, tool_approval={"shell": "auto"}, timeout_s=60.0)
    command = "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & sleep 0.5; echo done"
    try:
        record = await call(toolbox, "shell", {"command": command})
        assert (record.status, record.result) == ("done", "done\n"), record.error
        assert record.elapsed_s < 30
    finally:
        if (ws / "escaped.pid").exists():
            os.kill(int((ws / "escaped.pid").read_text()), signal.SIGKILL)


async def test_shell_that_closes_its_output_still_runs_to_the_end(ws: Path) -> None:
    toolbox = box(ws, tool_approval={"shell": "auto"})
    record = await call(
        toolbox, "shell", {"command": "echo early; exec >&- 2>&-; sleep 0.3; touch m"}
    )
    assert record.result == "early\n"
    assert (ws / "m").exists()


async def test_read_file_of_one_long_line_reads_only_what_it_keeps(ws: Path) -> None:
    (ws / "long.json").write_bytes(b"[" + b"1," * 2_000_000 + b"1]\nsecond\n")
    toolbox = box(ws, max_result_bytes=2000)
    head = await call(toolbox, "read_file", {"path": "long.json"})
    assert head.result is not None
    assert head.result.startswith("[1,1,") and head.result.endswith("read on with start_line]")
    assert len(head.result.encode()) <= 2000
    second = await call(toolbox, "read_file", {"path": "long.json", "start_line": 2})
    assert second.result == "second\n"


async def test_shell_does_not_hand_secret_variables_to_the_command(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-1234567890")
    monkeypatch.setenv("HF_TOKEN", "hf_test_1234567890")
    monkeypatch.setenv("TEDCHAT_PLAIN_SETTING", "visible")
    toolbox = box(ws, tool_approval={"shell": "auto"})
    command = 'echo "${OPENAI_API_KEY:-unset} ${HF_TOKEN:-unset} $TEDCHAT_PLAIN_SETTING"'
    record = await call(toolbox, "shell", {"command": command})
    assert record.result == "unset unset visible\n"

"""Files tedchat writes are private (0600, folders 0700); plugin folders must be trustworthy.

The CLI tests run tedchat as a person would, on a fresh home given by HOME and XDG_* (not
TEDCHAT_HOME), with the usual umask 022: whatever is private is so because tedchat made it so.
Tests check mode bits, not access (CI runs as root, which may read anything).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tedchat import paths
from tedchat.history.store import Store
from tests.conftest import ISOLATING_VARS
from tests.http.fault_server import FaultServer
from tests.test_plugins import ECHO_PLUGIN

XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def xdg(tmp_path: Path) -> dict[str, Path]:
    """A fresh HOME and XDG base folders (they exist: they are the user's, not tedchat's)."""
    roots = {"HOME": tmp_path / "home"}
    roots.update({var: tmp_path / var.lower() for var in XDG})
    for folder in roots.values():
        folder.mkdir(mode=0o755)
        os.chmod(folder, 0o755)
    return roots


def run(
    roots: dict[str, Path], *args: str, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (*ISOLATING_VARS, "TEDCHAT_HOME")}
    env.update({k: str(v) for k, v in roots.items()}, **extra)
    return subprocess.run(
        [sys.executable, "-m", "tedchat", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=str(cwd or roots["HOME"]),
        umask=0o022,  # the usual default: private modes must come from tedchat itself
    )


def tedchat_tree(roots: dict[str, Path]) -> list[Path]:
    """Everything under the four tedchat folders, the folders included."""
    found = []
    for var in XDG:
        top = roots[var] / "tedchat"
        if top.exists():
            found.append(top)
            found.extend(top.rglob("*"))
    return found


# --- the helpers ---------------------------------------------------------------------------


def test_private_dir_makes_only_the_missing_folders_private(tmp_path: Path) -> None:
    existing = tmp_path / "mine"
    existing.mkdir()
    os.chmod(existing, 0o755)
    old = os.umask(0o022)
    try:
        made = paths.private_dir(existing / "a" / "b")
    finally:
        os.umask(old)
    assert made.is_dir()
    assert mode(existing) == 0o755  # the user's folder is left as it was
    assert mode(existing / "a") == 0o700 and mode(existing / "a" / "b") == 0o700
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        paths.private_dir(tmp_path / "file")


def test_private_files_and_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        created = paths.private_file(tmp_path / "new" / "f.db")
        rewritten = tmp_path / "state.json"
        rewritten.write_text("old")
        os.chmod(rewritten, 0o644)
        paths.write_private_text(rewritten, "new")
        with paths.private_umask():
            (tmp_path / "lib").mkdir()
            (tmp_path / "lib" / "w.bin").write_bytes(b"x")
        after = os.umask(0o022)
    finally:
        os.umask(old)
    assert mode(created) == 0o600 and mode(created.parent) == 0o700
    assert rewritten.read_text() == "new" and mode(rewritten) == 0o600
    assert mode(tmp_path / "lib") == 0o700 and mode(tmp_path / "lib" / "w.bin") == 0o600
    assert after == 0o022  # the context restored the umask


def test_history_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store.open(tmp_path / "new-folder" / "history.db")
        try:
            conversation = store.new_conversation(title="t")
            store.add_user_message(conversation, "hello")
            files = sorted(p.name for p in (tmp_path / "new-folder").iterdir())
            modes = {p.name: mode(p) for p in (tmp_path / "new-folder").iterdir()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert files == ["history.db", "history.db-shm", "history.db-wal"]
    assert set(modes.values()) == {0o600}, modes
    assert mode(tmp_path / "new-folder") == 0o700


# --- the CLI on a fresh home ---------------------------------------------------------------


def test_everything_tedchat_writes_on_a_fresh_home_is_private(
    xdg: dict[str, Path], server: FaultServer
) -> None:
    init = run(xdg, "--debug", "config", "init")
    assert init.returncode == 0, init.stderr
    config = xdg["XDG_CONFIG_HOME"] / "tedchat" / "config.toml"
    # Point the example config's http engine at the loopback test server.
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text + f'\n[engines.f]\ntype = "http"\nbase_url = "{server.url("ok", "modes")}"\n'
        "max_retries = 0\n",
        encoding="utf-8",
    )
    asked = run(xdg, "--debug", "ask", "--engine", "f", "--max-tokens", "8", "hi")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "The capital of France is Paris."
    listed = run(xdg, "history", "list")
    assert listed.returncode == 0 and "hi" in listed.stdout, listed.stderr
    fresh = run(xdg, "ask", "--engine", "f", "--new-history", "again")
    assert fresh.returncode == 0, fresh.stderr

    tree = tedchat_tree(xdg)
    names = {p.relative_to(xdg[v]).as_posix() for v in XDG for p in tree if xdg[v] in p.parents}
    for expected in (
        "tedchat/config.toml",
        "tedchat/history.db",
        "tedchat/tedchat.log",
        "tedchat/history.json",
    ):
        assert expected in names, names
    assert not [p for p in tree if p.is_dir() and mode(p) != 0o700], tree
    assert not [p for p in tree if p.is_file() and mode(p) != 0o600], {
        str(p): oct(mode(p)) for p in tree
    }
    # The user's own folders were not touched.
    assert {mode(xdg[v]) for v in (*XDG, "HOME")} == {0o755}


def test_existing_user_folders_are_never_chmod_ed(
    xdg: dict[str, Path], server: FaultServer
) -> None:
    mine = xdg["XDG_DATA_HOME"] / "tedchat"
    mine.mkdir(mode=0o755)
    os.chmod(mine, 0o755)
    config = xdg["HOME"] / "c.toml"
    config.write_text(f'[engines.f]\ntype = "http"\nbase_url = "{server.url("ok")}"\n')
    asked = run(xdg, "--config", str(config), "ask", "--engine", "f", "hi")
    assert asked.returncode == 0, asked.stderr
    assert mode(mine) == 0o755
    assert mode(mine / "history.db") == 0o600


def test_config_with_a_key_readable_by_others_is_warned_about(xdg: dict[str, Path]) -> None:
    config = xdg["HOME"] / "config.toml"
    config.write_text('[engines.r]\ntype = "http"\napi_key = "sk-abcdef123456"\n')
    os.chmod(config, 0o644)
    loose = run(xdg, "--config", str(config), "config", "show")
    assert loose.returncode == 0, loose.stderr
    assert loose.stderr.splitlines() == [
        f"warning: {config} holds an API key or password and others may read it "
        f"(mode 0644); run: chmod 600 {config}"
    ]
    listed = run(xdg, "--config", str(config), "--debug", "history", "list")
    assert listed.returncode == 0 and listed.stderr.count("warning:") == 1, listed.stderr
    os.chmod(config, 0o600)
    tight = run(xdg, "--config", str(config), "config", "show")
    assert tight.returncode == 0 and "warning" not in tight.stderr, tight.stderr
    # Readable by others but holding no secret: nothing to say.
    config.write_text('[engines.r]\ntype = "http"\napi_key_env = "MY_KEY"\n')
    os.chmod(config, 0o644)
    plain = run(xdg, "--config", str(config), "config", "show")
    assert "warning" not in plain.stderr, plain.stderr


# --- plugin folders ------------------------------------------------------------------------


def plugin_config(folder: Path, dirs: str) -> Path:
    config = folder / "config.toml"
    config.write_text(f'[plugins]\ndirs = [{dirs}]\n[engines.p]\ntype = "parrot"\n')
    os.chmod(config, 0o600)
    return config


def test_world_writable_plugin_folder_is_refused(xdg: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "shared-plugins"
    folder.mkdir()
    (folder / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    os.chmod(folder, 0o777)
    config = plugin_config(tmp_path, f'"{folder}"')
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hello")
    assert result.returncode == 2, result.stderr
    assert (
        f"warning: plugin folder {folder} not loaded: it is writable by others (mode 0777; "
        f"fix: chmod go-w {folder})" in result.stderr.splitlines()
    ), result.stderr
    assert "unknown engine type 'parrot'" in result.stderr

    os.chmod(folder, 0o755)
    os.chmod(folder / "parrot.py", 0o664)  # the folder is fine now, the file is not
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hello")
    assert result.returncode == 2, result.stderr
    assert f"warning: plugin '{folder / 'parrot.py'}' not loaded: it is writable by its group" in (
        result.stderr
    )

    os.chmod(folder / "parrot.py", 0o644)
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_plugin_owned_by_another_user_is_refused(xdg: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    os.chown(folder / "parrot.py", 4242, 4242)
    config = plugin_config(tmp_path, f'"{folder}"')
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hello")
    assert result.returncode == 2
    assert "not loaded: it is owned by another user (uid 4242)" in result.stderr, result.stderr


def test_relative_plugin_dir_is_relative_to_the_config_file(
    xdg: dict[str, Path], tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    (conf / "plugins-here").mkdir(parents=True)
    (conf / "plugins-here" / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    config = plugin_config(conf, '"plugins-here"')
    # From another folder holding a decoy of the same relative name: the decoy never loads.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "plugins-here").mkdir(parents=True)
    decoy = ECHO_PLUGIN.format(type="parrot").replace('self.prefix = settings["prefix"]', "1/0")
    (elsewhere / "plugins-here" / "parrot.py").write_text(decoy)
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hi", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hi"

    # And a relative folder that exists only beside the cwd is not loaded at all.
    config.write_text('[plugins]\ndirs = ["only-in-cwd"]\n[engines.p]\ntype = "parrot"\n')
    (elsewhere / "only-in-cwd").mkdir()
    (elsewhere / "only-in-cwd" / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    result = run(xdg, "--config", str(config), "ask", "--engine", "p", "hi", cwd=elsewhere)
    assert result.returncode == 2
    assert "unknown engine type 'parrot'" in result.stderr, result.stderr


def test_remembered_ui_choices_are_private(tedchat_home: Path) -> None:
    from tedchat.tui import themes

    old = os.umask(0o022)
    try:
        themes.remember("theme", "light")
    finally:
        os.umask(old)
    state = themes.ui_state_path()
    assert themes.read_ui_state()["theme"] == "light"
    assert mode(state) == 0o600 and mode(state.parent) == 0o700

"""Where tedchat keeps its files: XDG base directories on every platform.

``TEDCHAT_HOME`` puts all of them under one folder (handy for tests and portable installs).

What tedchat creates in them is private to the user: folders 0700, files 0600 (conversations,
logs and configs may hold secrets or private text). Every writer goes through
:func:`private_dir`, :func:`private_file`, :func:`write_private_text`, or, for files a library
writes, :func:`private_umask`. Folders that already exist are never chmod-ed: they are the
user's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

APP = "tedchat"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _base(xdg_var: str, fallback: str, sub: str) -> Path:
    home = os.environ.get("TEDCHAT_HOME")
    if home:
        return Path(home) / sub
    root = os.environ.get(xdg_var) or str(Path.home() / fallback)
    return Path(root) / APP


def config_dir() -> Path:
    """User config: ``config.toml``, ``plugins/``, ``themes/``."""
    return _base("XDG_CONFIG_HOME", ".config", "config")


def data_dir() -> Path:
    """User data: the history database and downloaded or converted models."""
    return _base("XDG_DATA_HOME", ".local/share", "data")


def state_dir() -> Path:
    """User state: the ``--debug`` log and remembered UI choices."""
    return _base("XDG_STATE_HOME", ".local/state", "state")


def default_config_path() -> Path:
    return config_dir() / "config.toml"


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents as 0700 folders (like ``mkdir -p``).

    Only the folders created here get the mode; existing ones are left as they are.
    """
    path = Path(path)
    missing = []
    here = path
    while not os.path.lexists(here) and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, not ours to chmod
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is cut by the umask; be exact
    if not path.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(path))
    return path


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create an empty 0600 file at ``path`` (and 0700 parents) unless it exists.

    For files a library then opens (SQLite, a log handler): they keep the mode, and SQLite
    gives its ``-wal`` and ``-shm`` files the database file's mode.
    """
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a 0600 file, atomically (a temporary file renamed over ``path``).

    Replacing a file gives it the new mode: files tedchat rewrites end up private.
    """
    path = Path(path)
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp makes it 0600
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Within it, files and folders anyone creates (a library downloading or converting a
    model) are private: the process umask is widened to 077, and restored after.

    Also a decorator: ``@private_umask()``. The umask is per process, so keep the span short
    where other threads may create files meant to be shared.
    """
    old = os.umask(0o077)
    os.umask(old | 0o077)
    try:
        yield
    finally:
        os.umask(old)


def resource_path(name: str) -> Path:
    """A file shipped with tedchat (``themes``, ``config.example.toml``).

    In an installed wheel it lies inside the package; in a source checkout (editable install)
    at the top of the repo.
    """
    here = Path(__file__).resolve().parent
    packaged = here / name
    if packaged.exists():
        return packaged
    return here.parent / name

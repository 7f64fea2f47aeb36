"""Which history file the front ends use, and starting a fresh one.

The file is ``[history] path`` (or ``$TEDCHAT_HISTORY``), else ``history.db`` in the user data
dir. ``--new-history`` starts a new file next to it, moving and deleting nothing, and remembers
the choice (in the user state dir) so later runs keep using the new file until the config
names another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from tedchat import paths
from tedchat.config import Settings

if TYPE_CHECKING:
    from tedchat.history.store import Store


def _remembered_file() -> Path:
    return paths.state_dir() / "history.json"


def history_path(settings: Settings) -> Path:
    """The history file to open: configured, else remembered from --new-history, else default."""
    if settings.history.path:
        return settings.history_path()
    try:
        remembered = json.loads(_remembered_file().read_text(encoding="utf-8")).get("path")
    except (OSError, ValueError, AttributeError):
        remembered = None
    return Path(remembered) if remembered else settings.history_path()


def open_history(settings: Settings, *, new_history: bool = False) -> Store:
    """Open the conversation store (import deferred: sqlite3 is not needed for --help)."""
    from tedchat.history.store import Store

    store = Store.open(
        history_path(settings),
        new_history=new_history,
        lock_timeout_s=settings.history.lock_timeout_s,
    )
    if new_history:
        state = _remembered_file()
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"path": str(store.path)}), encoding="utf-8")
    return store

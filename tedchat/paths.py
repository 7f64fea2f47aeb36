"""Where tedchat keeps its files: XDG base directories on every platform.

``TEDCHAT_HOME`` puts all of them under one folder (handy for tests and portable installs).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "tedchat"


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

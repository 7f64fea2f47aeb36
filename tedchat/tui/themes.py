"""Themes as data: ``themes/*.toml`` files become :class:`textual.theme.Theme` objects.

A theme file holds the fields of ``Theme`` at its top level (``name``, ``dark``, ``primary``,
``secondary``, ``accent``, ``warning``, ``error``, ``success``, ``foreground``, ``background``,
``surface``, ``panel``, ``boost``, ``luminosity_spread``, ``text_alpha``) and an optional
``[variables]`` table of Textual design variables. ``name`` defaults to the file's stem.

Shipped themes come from :func:`tedchat.paths.resource_path` ``("themes")``; user themes from
``<config dir>/themes/*.toml`` and win over a shipped theme of the same name. A broken file is
reported (:attr:`ThemeSet.problems`) and skipped, never fatal.

Which theme starts: ``--theme`` > ``$TEDCHAT_THEME`` > the one last chosen in the UI
(remembered in ``<state dir>/ui.json``) > config ``[ui] theme``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from textual.theme import Theme

from tedchat import paths
from tedchat.errors import ThemeFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_COLOR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_FLOAT_KEYS = ("luminosity_spread", "text_alpha")
UI_STATE_FILE = "ui.json"


def theme_from_toml(path: Path) -> Theme:
    """Read one theme file (see the module docstring for its keys)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeFileError(f"cannot read theme file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ThemeFileError(f"malformed TOML in theme file {path}: {exc}") from exc
    return theme_from_dict(data, default_name=path.stem, origin=str(path))


def theme_from_dict(data: dict[str, Any], *, default_name: str, origin: str) -> Theme:
    """Build a theme from a parsed theme table, rejecting unknown keys and ill-typed values."""
    valid = {f.name for f in fields(Theme)} - {"ansi"}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ThemeFileError(
            f"unknown key(s) {', '.join(unknown)} in theme file {origin}; "
            f"valid keys: {', '.join(sorted(valid))}"
        )
    values: dict[str, Any] = {"name": str(data.get("name") or default_name)}
    if "primary" not in data:
        raise ThemeFileError(f'theme file {origin} needs a primary colour (primary = "#RRGGBB")')
    for key in _COLOR_KEYS:
        if key in data:
            if not isinstance(data[key], str):
                raise ThemeFileError(f"{key} in theme file {origin} must be a colour string")
            values[key] = data[key]
    for key in _FLOAT_KEYS:
        if key in data:
            if not isinstance(data[key], (int, float)) or isinstance(data[key], bool):
                raise ThemeFileError(f"{key} in theme file {origin} must be a number")
            values[key] = float(data[key])
    if "dark" in data:
        if not isinstance(data["dark"], bool):
            raise ThemeFileError(f"dark in theme file {origin} must be true or false")
        values["dark"] = data["dark"]
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ThemeFileError(f"[variables] in theme file {origin} must map names to strings")
    values["variables"] = dict(variables)
    theme = Theme(**values)
    try:
        theme.to_color_system()  # parse every colour now, so a typo is reported by file name
    except Exception as exc:
        raise ThemeFileError(f"bad colour in theme file {origin}: {exc}") from exc
    return theme


@dataclass
class ThemeSet:
    """The themes found on disk, by name, and the files that could not be read."""

    themes: dict[str, Theme] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def theme_dirs() -> list[Path]:
    """Where themes are read from, lowest precedence first."""
    return [paths.resource_path("themes"), paths.config_dir() / "themes"]


def discover_themes(dirs: list[Path] | None = None) -> ThemeSet:
    """Every ``*.toml`` theme in ``dirs`` (default :func:`theme_dirs`); later dirs win."""
    found = ThemeSet()
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = theme_from_toml(path)
            except ThemeFileError as exc:
                found.problems.append(str(exc))
                continue
            found.themes[theme.name] = theme
    return found


# --- the remembered choice ------------------------------------------------------------------


def ui_state_path() -> Path:
    return paths.state_dir() / UI_STATE_FILE


def read_ui_state() -> dict[str, Any]:
    """The remembered UI choices; an unreadable file counts as none (it is only a memory)."""
    try:
        data = json.loads(ui_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(key: str, value: Any) -> None:
    """Store one UI choice; failing to write is not worth interrupting anyone for."""
    state = read_ui_state()
    state[key] = value
    path = ui_state_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


def choose_theme(cli_theme: str | None, config_theme: str) -> str:
    """The theme to start with: --theme > $TEDCHAT_THEME > remembered > config ``[ui] theme``.

    ``config_theme`` already includes ``$TEDCHAT_THEME`` (settings apply the environment), so
    the environment is checked here only to know whether it outranks the remembered choice.
    """
    if cli_theme:
        return cli_theme
    if os.environ.get("TEDCHAT_THEME"):
        return config_theme
    remembered = read_ui_state().get("theme")
    if isinstance(remembered, str) and remembered:
        return remembered
    return config_theme

"""Named presets: ``[presets.NAME]`` tables of a system prompt, an engine and sampling settings.

A preset holds any of ``system_prompt``, ``engine``, ``temperature``, ``top_p``,
``max_tokens``, ``seed`` and ``tools`` (the tool sources, like ``[tools] sources`` and
``ask --tools``). Precedence: command line > preset > engine config; ``compare`` ignores a
preset's ``engine`` (its engines are its arguments). :func:`parse_presets` checks the tables
when the config file is read; :func:`find_preset` turns an unknown name into one line naming
the valid ones (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from tedchat.errors import ConfigError, UsageError


@dataclass(frozen=True)
class Preset:
    """One ``[presets.NAME]`` table; None is "not set" (the next source decides)."""

    name: str
    system_prompt: str | None = None
    engine: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    tools: tuple[str, ...] | None = None

    def summary(self) -> str:
        """One line for pickers: what the preset sets."""
        parts = []
        if self.engine:
            parts.append(f"engine {self.engine}")
        for key in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key} {value}")
        if self.tools is not None:
            parts.append("tools " + (",".join(self.tools) or "none"))
        if self.system_prompt:
            first = self.system_prompt.strip().splitlines()[0] if self.system_prompt.strip() else ""
            parts.append(f"“{first[:40]}{'…' if len(first) > 40 else ''}”")
        return " · ".join(parts) or "(sets nothing)"


#: Each key's accepted type and its name in error messages.
_KINDS: dict[str, tuple[type, str]] = {
    "system_prompt": (str, "a string"),
    "engine": (str, "a string"),
    "temperature": (float, "a number"),
    "top_p": (float, "a number"),
    "max_tokens": (int, "an integer"),
    "seed": (int, "an integer"),
    "tools": (list, "a list of strings"),
}

PRESET_KEYS = tuple(f.name for f in fields(Preset) if f.name != "name")


def _shown(name: str) -> str:
    """A name as error lines show it: quoted when it holds a newline or other control."""
    return name if name.isprintable() and name else repr(name)


def parse_preset(name: str, table: Mapping[str, Any], origin: str) -> Preset:
    """A checked :class:`Preset`; an unknown key or ill-typed value is a :class:`ConfigError`."""
    values: dict[str, Any] = {}
    shown = _shown(name)
    for key, value in table.items():
        if key not in _KINDS:
            raise ConfigError(
                f"unknown key {key!r} in [presets.{shown}] ({origin}); valid keys: "
                + ", ".join(PRESET_KEYS)
            )
        kind, label = _KINDS[key]
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if kind is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        if not ok:
            raise ConfigError(f"presets.{shown}.{key} in {origin} must be {label}, got {value!r}")
        if key == "max_tokens" and value < 1:
            raise ConfigError(f"presets.{shown}.max_tokens in {origin} must be at least 1")
        values[key] = value
    return Preset(name, **values)


def parse_presets(data: Any, origin: str) -> dict[str, Preset]:
    """The ``[presets]`` table of a config file: ``[presets.NAME]`` tables."""
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{origin}: [presets] must hold tables like [presets.NAME]")
    return {name: parse_preset(name, table, origin) for name, table in data.items()}


def find_preset(presets: Mapping[str, Preset], name: str) -> Preset:
    """The preset ``name``; unknown: a :class:`UsageError` naming the configured ones."""
    if name in presets:
        return presets[name]
    raise UsageError(
        f"unknown preset {name!r}; configured presets: "
        + (", ".join(_shown(p) for p in presets) or "none"),
        hint="presets are [presets.NAME] tables in the config file (tedchat config path)",
    )

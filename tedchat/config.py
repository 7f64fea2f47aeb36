"""Typed settings: defaults < config file < environment < command line.

The file is TOML (``tomllib``; ``tomli`` below Python 3.11), found at ``--config PATH``, else
``$TEDCHAT_CONFIG``, else ``config.toml`` in the user config dir (none at all is fine: the
defaults work). Every key is declared here, with its default, in the dataclasses below; an
unknown key is an error naming the valid ones. ``config.example.toml`` documents them all.

Engine instances are the tables ``[engines.NAME]`` with ``type = "wafer" | "llamacpp" |
"http" | <plugin type>``; their other keys belong to the engine type and are checked against
it by :mod:`tedchat.engines` once the plugins are loaded.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tedchat import paths
from tedchat.errors import ConfigError
from tedchat.presets import PRESET_KEYS, Preset, parse_presets
from tedchat.redact import MCP_SECRET_TABLES, redact_settings, secrets_in

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass
class RuntimeSettings:
    # 0 = every core of this machine. Local engines running at once divide this budget.
    threads: int = 0


@dataclass
class UISettings:
    theme: str = "tokyo-electron"
    # Context window assumed for engines that do not report theirs (http), in tokens.
    context_tokens: int = 8192


@dataclass
class PluginSettings:
    dirs: list[str] = field(default_factory=list)


@dataclass
class HistorySettings:
    path: str = ""  # empty: history.db in the user data dir
    enabled: bool = True
    # How long a write waits while another process holds the file's lock, then gives up.
    lock_timeout_s: float = 60.0


#: Tool approval policies: ask a person first, or run without asking.
APPROVAL_POLICIES = ("ask", "auto")


@dataclass
class ToolSettings:
    """``[tools]``: which tools the model is offered and how calls run.

    ``approval`` is the default policy; ``[tools.approval]`` as a table holds ``default`` and
    per-tool overrides (``shell = "auto"``), kept in ``tool_approval``.
    """

    # builtin, plugin (every plugin's tools), plugin:NAME, mcp (every [mcp.NAME]), mcp:NAME.
    sources: list[str] = field(default_factory=lambda: ["builtin", "plugin", "mcp"])
    approval: str = "ask"
    timeout_s: float = 60.0
    max_result_bytes: int = 32768
    # How long the first request waits for MCP servers' tool lists.
    startup_timeout_s: float = 10.0
    # Model -> tools -> model rounds in one turn before it ends with finish reason "length".
    max_steps: int = 8
    # The folder the file tools may read (empty: the current directory).
    workspace: str = ""
    tool_approval: dict[str, str] = field(default_factory=dict)


@dataclass
class AttachmentSettings:
    """``[attachments]``: files given with ``ask -f`` or ``@path`` in the chat."""

    # One file larger than this is refused (not cut).
    max_file_bytes: int = 256 * 1024
    # All the attachments of one message together.
    max_total_bytes: int = 1024 * 1024


#: Keys of a settings section that the file does not set directly.
_INTERNAL_KEYS = {"tools": ("tool_approval",)}


@dataclass
class Settings:
    """Everything configurable; ``engines`` holds the raw ``[engines.NAME]`` tables."""

    default_engine: str = "local"
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    ui: UISettings = field(default_factory=UISettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    tools: ToolSettings = field(default_factory=ToolSettings)
    attachments: AttachmentSettings = field(default_factory=AttachmentSettings)
    keymap: dict[str, str] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [mcp.NAME] tables, checked by tedchat.tools.mcp when a server is used.
    mcp: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [presets.NAME] tables (tedchat.presets), checked when the file is read.
    presets: dict[str, Preset] = field(default_factory=dict)
    source: Path | None = None

    def threads(self) -> int:
        return self.runtime.threads or os.cpu_count() or 1

    def plugin_dirs(self) -> list[Path]:
        """The plugin folders; a relative ``[plugins] dirs`` entry is relative to the config
        file's folder (not to wherever tedchat was started)."""
        base = self.source.parent if self.source else paths.config_dir()
        return [
            paths.config_dir() / "plugins",
            *(base / Path(d).expanduser() for d in self.plugins.dirs),
        ]

    def history_path(self) -> Path:
        if self.history.path:
            return Path(self.history.path).expanduser()
        return paths.data_dir() / "history.db"


# Engines that exist with no config file at all. A file's [engines.NAME] table replaces the
# default of the same name; defaults whose type no loaded plugin provides are left out.
DEFAULT_ENGINES: dict[str, dict[str, Any]] = {
    "local": {"type": "llamacpp", "model": "smollm2"},
    # TEDLLM under llama.cpp, once fetched (`tedchat models pull tedllm && tedchat models
    # convert tedllm`); until then `tedchat engines` shows it unavailable with those commands.
    "tedllm": {"type": "llamacpp", "model": "tedllm", "n_ctx": 8192},
    "wafer": {"type": "wafer", "model": "smollm2", "hardware": "cs3"},
    "wafer-70b": {
        "type": "wafer",
        "model": "smollm2",
        "hardware": "cs3",
        "systems": 4,
        "pace": True,
        "timing_target": "llama-3.1-70b",
    },
    "gpu-70b": {
        "type": "wafer",
        "model": "smollm2",
        "hardware": "h100",
        "systems": 2,
        "precision": 8,  # 70B in FP8 fits two H100s (in 16-bit it needs four)
        "pace": True,
        "timing_target": "llama-3.1-70b",
    },
    "http": {"type": "http", "base_url": "http://127.0.0.1:8080/v1"},
}

# Environment overrides: variable -> (section, key); "" is the top level.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "TEDCHAT_ENGINE": ("", "default_engine"),
    "TEDCHAT_THREADS": ("runtime", "threads"),
    "TEDCHAT_THEME": ("ui", "theme"),
    "TEDCHAT_HISTORY": ("history", "path"),
}


def config_path(explicit: str | Path | None = None) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for (then it must exist)."""
    if explicit:
        return Path(explicit).expanduser(), True
    env = os.environ.get("TEDCHAT_CONFIG")
    if env:
        return Path(env).expanduser(), True
    return paths.default_config_path(), False


def load_settings(
    explicit: str | Path | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
    *,
    warn: bool = True,
) -> Settings:
    """Read the settings: defaults < file < environment < ``overrides`` (the command line).

    ``warn``: say on stderr (one line) when the file holds a secret others can read.
    """
    path, required = config_path(explicit)
    settings = Settings()
    if path.exists():
        data = read_toml(path)
        apply_table(settings, data, path)
        settings.source = path
        warning = exposed_secret_warning(path, data)
        if warn and warning:
            print(warning, file=sys.stderr)
    elif required:
        raise ConfigError(
            f"config file not found: {path}", hint="create one with: tedchat config init"
        )
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in os.environ:
            _set(settings, section, key, os.environ[var], origin=f"${var}", from_text=True)
    for (section, key), value in (overrides or {}).items():
        if value is not None:
            _set(settings, section, key, value, origin="the command line")
    return settings


def exposed_secret_warning(path: Path, data: Mapping[str, Any]) -> str | None:
    """The warning for a config file that holds a secret (an ``api_key``, a secret header, a
    URL with a password) and that group or others may read; None when all is well."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    engines = data.get("engines") or {}
    servers = data.get("mcp") or {}
    found = [secrets_in(t) for t in engines.values() if isinstance(t, Mapping)]
    found += [
        secrets_in(t, secret_tables=MCP_SECRET_TABLES)
        for t in servers.values()
        if isinstance(t, Mapping)
    ]
    if not mode & 0o044 or not any(found):
        return None
    return (
        f"warning: {path} holds an API key or password and others may read it "
        f"(mode {mode:04o}); run: chmod 600 {path}"
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML in {path}: {exc}") from exc
    except UnicodeDecodeError as exc:  # tomllib decodes the file itself
        raise ConfigError(
            f"malformed TOML in {path}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc


def apply_table(settings: Settings, data: Mapping[str, Any], path: Path) -> None:
    """Apply a parsed config file, rejecting unknown keys and ill-typed values."""
    for key, value in data.items():
        if key == "engines":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{path}: [engines] must hold tables like [engines.NAME]")
            for name, table in value.items():
                if not name.isprintable() or not name.strip():
                    # Names appear in every line about the engine: one line each, readable.
                    raise ConfigError(f"{path}: engine name {name!r} is not a printable name")
                settings.engines[name] = dict(table)
        elif key == "mcp":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ConfigError(f"{path}: [mcp] must hold tables like [mcp.NAME]")
            for name, table in value.items():
                settings.mcp[name] = dict(table)
        elif key == "presets":
            settings.presets.update(parse_presets(value, str(path)))
        elif key == "tools" and isinstance(value, dict) and isinstance(value.get("approval"), dict):
            _apply_tool_approval(settings, value["approval"], path)
            rest = {k: v for k, v in value.items() if k != "approval"}
            for sub, subvalue in rest.items():
                _set(settings, key, sub, subvalue, origin=str(path))
        elif key == "keymap":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f'{path}: [keymap] maps binding ids to keys, e.g. send = "enter"')
            settings.keymap.update(value)
        elif _is_section(key):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key} must be a table [{key}]")
            for sub, subvalue in value.items():
                _set(settings, key, sub, subvalue, origin=str(path))
        else:
            _set(settings, "", key, value, origin=str(path))


def _apply_tool_approval(settings: Settings, table: Mapping[str, Any], path: Path) -> None:
    """``[tools.approval]``: ``default`` is the policy, other keys override it per tool."""
    overrides: dict[str, str] = {}
    for tool, policy in table.items():
        if policy not in APPROVAL_POLICIES:
            raise ConfigError(
                f"tools.approval.{tool} in {path} must be "
                + " or ".join(f'"{p}"' for p in APPROVAL_POLICIES)
                + f", got {policy!r}"
            )
        if tool == "default":
            settings.tools.approval = policy
        else:
            overrides[tool] = policy
    settings.tools.tool_approval.update(overrides)


def _is_section(name: str) -> bool:
    return dataclasses.is_dataclass(getattr(Settings(), name, None))


def _valid_keys(section: str) -> list[str]:
    """What may stand in a section; at the top level, its scalars and its tables."""
    if section:
        internal = _INTERNAL_KEYS.get(section, ())
        return [
            f.name
            for f in dataclasses.fields(getattr(Settings(), section))
            if f.name not in internal
        ]
    names = []
    for f in dataclasses.fields(Settings):
        if f.name == "source":
            continue
        if f.name in ("engines", "mcp", "presets"):
            names.append(f"[{f.name}.NAME]")
        elif f.name == "keymap" or _is_section(f.name):
            names.append(f"[{f.name}]")
        else:
            names.append(f.name)
    return names


def _set(
    settings: Settings, section: str, key: str, value: Any, *, origin: str, from_text: bool = False
) -> None:
    target: Any = getattr(settings, section) if section else settings
    dotted = f"{section}.{key}" if section else key
    if key not in _valid_keys(section):
        where = f"in [{section}]" if section else "at the top level"
        raise ConfigError(
            f"unknown config key {dotted!r} in {origin}; valid {where}: "
            + ", ".join(_valid_keys(section))
        )
    current = getattr(target, key)
    value = coerce(dotted, value, current, origin, from_text=from_text)
    if dotted == "tools.approval" and value not in APPROVAL_POLICIES:
        raise ConfigError(
            f"tools.approval in {origin} must be "
            + " or ".join(f'"{p}"' for p in APPROVAL_POLICIES)
            + f", got {value!r}"
        )
    setattr(target, key, value)


def coerce(dotted: str, value: Any, like: Any, origin: str, *, from_text: bool = False) -> Any:
    """Check ``value`` has the type of the default ``like``; text (environment) is parsed."""
    kind = type(like)
    if like is None:
        return value
    try:
        if from_text and isinstance(value, str):
            if kind is bool:
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError
            if kind is list:
                return [v for v in value.split(os.pathsep) if v]
            return kind(value)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if kind is list and isinstance(value, list):
            # The items have the default's item type; config lists hold names and paths.
            item = type(like[0]) if like else str
            if all(isinstance(v, item) for v in value):
                return value
            plural = {str: "strings", int: "integers", float: "numbers"}.get(item, item.__name__)
            raise ConfigError(f"{dotted} in {origin} must be a list of {plural}, got {value!r}")
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    except ValueError:
        pass
    raise ConfigError(
        f"{dotted} in {origin} must be {_NAMES.get(kind, kind.__name__)}, got {value!r}"
    )


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def to_toml(settings: Settings, engines: Mapping[str, Mapping[str, Any]]) -> str:
    """The effective settings as TOML (secrets redacted), for ``tedchat config show``."""
    lines = [f"default_engine = {_toml_value(settings.default_engine)}", ""]
    for section in ("runtime", "ui", "plugins", "history", "tools", "attachments"):
        lines.append(f"[{section}]")
        for f in dataclasses.fields(getattr(settings, section)):
            if f.name in _INTERNAL_KEYS.get(section, ()):
                continue
            lines.append(f"{f.name} = {_toml_value(getattr(getattr(settings, section), f.name))}")
        lines.append("")
    if settings.tools.tool_approval:
        lines.append("[tools.approval]")
        lines.append(f"default = {_toml_value(settings.tools.approval)}")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in settings.tools.tool_approval.items()
        )
        lines.append("")
    if settings.keymap:
        lines.append("[keymap]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in settings.keymap.items())
        lines.append("")
    for name, table in engines.items():
        lines.append(f"[engines.{_toml_key(name)}]")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}" for k, v in redact_settings(table).items()
        )
        lines.append("")
    for name, preset in settings.presets.items():
        lines.append(f"[presets.{_toml_key(name)}]")
        for key in PRESET_KEYS:
            value = getattr(preset, key)
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    for name, table in settings.mcp.items():
        lines.append(f"[mcp.{_toml_key(name)}]")
        lines.extend(
            f"{_toml_key(k)} = {_toml_value(v)}"
            for k, v in redact_settings(table, MCP_SECRET_TABLES).items()
        )
        lines.append("")
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    if value is None:
        return '""'
    return _toml_value(str(value))

"""The plugin manager: built-in engines, entry-point plugins and local plugin folders.

Three sources, loaded in this order:

1. the built-in plugins, registered directly: the wafer engine type (``tedchat.wafer.plugin``)
   and the built-in tools (``tedchat.tools.builtin``);
2. installed distributions with entry points in group ``tedchat`` (the shipped ``llamacpp``
   and ``http`` engines come this way, exactly like third-party ones). ``TEDCHAT_PLUGINS``
   chooses which load: a comma-separated list of entry-point names; empty means none;
3. single-file plugins (``*.py``) in local plugin folders: ``plugins/`` in the user config
   dir, plus ``[plugins] dirs`` from the config. A plugin runs as the user, so a folder or
   file that someone else could have written (writable by group or others, or owned by
   another user than the user or root) is refused: reported, not loaded.

A plugin that fails to import or register is reported (:attr:`Plugins.failures`), never fatal.

Whatever a plugin registers carries where it came from: an engine type its plugin's source,
a tool its tool source (``builtin`` for the built-in plugins, else ``plugin:NAME``, NAME being
the entry point's name or the plugin file's stem).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pluggy

from tedchat import hookspecs
from tedchat.engine import EngineType
from tedchat.errors import PluginError
from tedchat.tools.base import Tool

ENTRY_POINT_GROUP = "tedchat"
BUILTIN_PLUGINS = ("tedchat.wafer.plugin", "tedchat.tools.builtin")
BUILTIN = "builtin"


@dataclass(frozen=True)
class RegisteredType:
    """An engine type and the plugin it came from."""

    type: EngineType
    plugin: str


class Plugins:
    """The loaded plugins and the engine types they registered."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("tedchat")
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginError] = []
        self._sources: dict[str, str] = {}  # plugin name -> distribution or file it came from
        self._types: dict[str, RegisteredType] | None = None
        self._tools: list[Tool] | None = None

    # --- loading ---------------------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                self._fail(module_name, exc)
                continue
            self._register(module, module_name, source=BUILTIN)

    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        wanted = None if only is None else set(only)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if wanted is not None and ep.name not in wanted:
                continue
            if self.pm.has_plugin(ep.name):
                continue  # the same distribution seen twice on sys.path
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(ep.name, exc)
                continue
            dist = ep.dist.name if ep.dist is not None else ep.value
            self._register(module, ep.name, source=f"{ep.name} ({dist})")

    def load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        unsafe = unsafe_reason(folder)
        if unsafe:
            self.failures.append(PluginError(f"plugin folder {folder} not loaded: {unsafe}"))
            return
        for path in sorted(folder.glob("*.py")):
            unsafe = unsafe_reason(path)
            if unsafe:
                self.failures.append(PluginError(f"plugin {str(path)!r} not loaded: {unsafe}"))
                continue
            name = f"tedchat_local_{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            except Exception as exc:
                sys.modules.pop(name, None)
                self._fail(str(path), exc)
                continue
            self._register(module, path.stem, source=str(path))

    def _register(self, module: ModuleType, name: str, source: str | None = None) -> None:
        try:
            self.pm.register(module, name=name)
        except Exception as exc:
            self._fail(name, exc)
            return
        self._sources[name] = source or name

    def _fail(self, plugin: str, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        error = PluginError(f"plugin {plugin!r} failed to load ({detail})")
        error.__cause__ = exc
        self.failures.append(error)

    # --- engine types ----------------------------------------------------------------------

    def engine_types(self) -> dict[str, RegisteredType]:
        """Every registered engine type by name; duplicates are reported, the first one wins."""
        if self._types is not None:
            return self._types
        types: dict[str, RegisteredType] = {}
        for plugin in self.pm.get_plugins():
            hook = getattr(plugin, "register_engine_types", None)
            if hook is None:
                continue
            plugin_name = self.pm.get_name(plugin) or "?"
            collected: list[EngineType] = []
            try:
                hook(register=collected.append)
            except Exception as exc:
                self._fail(plugin_name, exc)
                continue
            for etype in collected:
                if etype.name in types:
                    other = types[etype.name].plugin
                    self.failures.append(
                        PluginError(
                            f"plugin {plugin_name!r} registers engine type {etype.name!r}, "
                            f"already registered by {other!r}; keeping {other!r}'s"
                        )
                    )
                    continue
                types[etype.name] = RegisteredType(
                    etype, self._sources.get(plugin_name, plugin_name)
                )
        self._types = types
        return types

    # --- tools -----------------------------------------------------------------------------

    def tool_source(self, plugin_name: str) -> str:
        """The tool source of a plugin: ``builtin`` or ``plugin:NAME``."""
        if self._sources.get(plugin_name) == BUILTIN:
            return BUILTIN
        return f"plugin:{plugin_name}"

    def tools(self) -> list[Tool]:
        """Every tool the plugins register (``register_tools``), in load order, each with its
        ``source`` set; a plugin whose hook fails or registers something else than a
        :class:`~tedchat.tools.base.Tool` is reported."""
        if self._tools is not None:
            return self._tools
        tools: list[Tool] = []
        for plugin_name, plugin in self.pm.list_name_plugin():  # in load order
            hook = getattr(plugin, "register_tools", None)
            if hook is None:
                continue
            collected: list[object] = []
            try:
                hook(register=collected.append)
            except Exception as exc:
                self._fail(plugin_name, exc)
                continue
            source = self.tool_source(plugin_name)
            for tool in collected:
                if not isinstance(tool, Tool):
                    self.failures.append(
                        PluginError(
                            f"plugin {plugin_name!r} registered {type(tool).__name__!r} as a "
                            "tool; register_tools takes tedchat.tools.base.Tool values"
                        )
                    )
                    continue
                tools.append(replace(tool, source=source))
        self._tools = tools
        return tools


def unsafe_reason(path: Path) -> str | None:
    """Why code at ``path`` may not be trusted (someone other than the user or root could have
    written it), or None. Follows symlinks: what counts is the file that would run."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot check it ({exc.strerror or exc})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if mode & stat.S_IWOTH else "its group"
        return f"it is writable by {who} (mode {mode:04o}; fix: chmod go-w {path})"
    getuid = getattr(os, "getuid", None)
    if getuid is not None and st.st_uid not in (getuid(), 0):
        return f"it is owned by another user (uid {st.st_uid})"
    return None


def load_plugins(folders: Iterable[Path] = ()) -> Plugins:
    """Build the plugin manager from every source (see the module docstring)."""
    plugins = Plugins()
    plugins.load_builtins()
    chosen = os.environ.get("TEDCHAT_PLUGINS")
    only = None if chosen is None else [n.strip() for n in chosen.split(",") if n.strip()]
    plugins.load_entry_points(only)
    for folder in folders:
        plugins.load_folder(Path(folder).expanduser())
    return plugins

"""The plugin manager: built-in engines, entry-point plugins and local plugin folders.

Three sources, loaded in this order:

1. the built-in wafer engine type (``tedchat.wafer.plugin``), registered directly;
2. installed distributions with entry points in group ``tedchat`` (the shipped ``llamacpp``
   and ``http`` engines come this way, exactly like third-party ones). ``TEDCHAT_PLUGINS``
   chooses which load: a comma-separated list of entry-point names; empty means none;
3. single-file plugins (``*.py``) in local plugin folders: ``plugins/`` in the user config
   dir, plus ``[plugins] dirs`` from the config.

A plugin that fails to import or register is reported (:attr:`Plugins.failures`), never fatal.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pluggy

from tedchat import hookspecs
from tedchat.engine import EngineType
from tedchat.errors import PluginError

ENTRY_POINT_GROUP = "tedchat"
BUILTIN_PLUGINS = ("tedchat.wafer.plugin",)


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

    # --- loading ---------------------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                self._fail(module_name, exc)
                continue
            self._register(module, "builtin")

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
        for path in sorted(folder.glob("*.py")):
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

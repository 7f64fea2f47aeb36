"""Configured engines: settings + loaded plugins -> engine instances.

:func:`load_context` is how every front end (CLI, TUI, bench) starts: it reads the settings,
loads the plugins from every source and validates the ``[engines.NAME]`` tables against the
engine types the plugins registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tedchat.config import DEFAULT_ENGINES, Settings, coerce, load_settings
from tedchat.engine import Engine, Runtime
from tedchat.errors import ConfigError
from tedchat.gauges import PRICE_SETTINGS, Prices, prices_of
from tedchat.plugins import Plugins, RegisteredType, load_plugins
from tedchat.redact import redact_settings


@dataclass(frozen=True)
class EngineSpec:
    """One configured engine instance before it is built."""

    name: str
    type: str
    settings: dict[str, Any]
    origin: str  # "default" or the config file


class Engines:
    """The engines a person can name: built-in defaults plus the config file's tables."""

    def __init__(self, settings: Settings, plugins: Plugins) -> None:
        self.settings = settings
        self.plugins = plugins
        self.runtime = Runtime(threads=settings.threads())
        self._built: dict[str, Engine] = {}
        types = plugins.engine_types()
        origin = str(settings.source) if settings.source else "config"
        tables: dict[str, tuple[dict[str, Any], str]] = {
            name: (dict(table), "default")
            for name, table in DEFAULT_ENGINES.items()
            if table["type"] in types
        }
        for name, table in settings.engines.items():
            tables[name] = (dict(table), origin)
        self.specs: dict[str, EngineSpec] = {}
        for name, (table, where) in tables.items():
            kind = table.pop("type", None)
            if not isinstance(kind, str):
                raise ConfigError(f'[engines.{name}] in {where} needs type = "<engine type>"')
            self.specs[name] = EngineSpec(name, kind, table, where)

    def names(self) -> list[str]:
        return list(self.specs)

    def spec(self, name: str) -> EngineSpec:
        if name not in self.specs:
            raise ConfigError(
                f"unknown engine {name!r}; configured engines: {', '.join(self.specs) or 'none'}",
                hint="list them with: tedchat engines",
            )
        return self.specs[name]

    def engine_type(self, spec: EngineSpec) -> RegisteredType:
        types = self.plugins.engine_types()
        if spec.type not in types:
            failed = "; ".join(f.message for f in self.plugins.failures)
            raise ConfigError(
                f"unknown engine type {spec.type!r} for engine {spec.name!r} ({spec.origin}); "
                f"known types: {', '.join(sorted(types)) or 'none'}"
                + (f" ({failed})" if failed else "")
            )
        return types[spec.type]

    def resolved_settings(self, spec: EngineSpec) -> dict[str, Any]:
        """The spec's settings over its type's defaults, each key and type checked; every type
        also takes the prices (``price_input_per_mtok``, ``price_output_per_mtok``)."""
        declared = {**PRICE_SETTINGS, **self.engine_type(spec).type.settings}
        values = dict(declared)
        for key, value in spec.settings.items():
            if key not in declared:
                raise ConfigError(
                    f"unknown config key {key!r} in [engines.{spec.name}] ({spec.origin}); "
                    f"valid keys for type {spec.type!r}: type, {', '.join(declared)}"
                )
            values[key] = coerce(f"engines.{spec.name}.{key}", value, declared[key], spec.origin)
        return values

    def get(self, name: str) -> Engine:
        """The engine instance named ``name`` (built once, not yet loaded)."""
        if name not in self._built:
            spec = self.spec(name)
            etype = self.engine_type(spec).type
            values = self.resolved_settings(spec)
            own = {
                k: v for k, v in values.items() if k in etype.settings or k not in PRICE_SETTINGS
            }
            self._built[name] = etype.factory(name, own, self.runtime)
        return self._built[name]

    def prices(self, name: str) -> Prices | None:
        """The engine's prices (USD per million tokens); None when it sets none."""
        try:
            return prices_of(self.resolved_settings(self.spec(name)))
        except ConfigError:
            return None

    def describe(self, name: str) -> dict[str, Any]:
        """Type, plugin and redacted settings of an engine, for ``engines`` and records."""
        spec = self.spec(name)
        out: dict[str, Any] = {"name": name, "type": spec.type, "origin": spec.origin}
        try:
            registered = self.engine_type(spec)
            out["plugin"] = registered.plugin
            out["settings"] = redact_settings(self.resolved_settings(spec))
        except ConfigError as exc:
            out["plugin"] = None
            out["settings"] = redact_settings(spec.settings)
            out["error"] = exc.message
        return out

    async def close(self) -> None:
        for engine in self._built.values():
            await engine.close()


@dataclass
class Context:
    """What a front end needs: settings, plugins, engines."""

    settings: Settings
    plugins: Plugins
    engines: Engines


def load_context(
    config: str | Path | None = None, overrides: Mapping[tuple[str, str], Any] | None = None
) -> Context:
    settings = load_settings(config, overrides)
    plugins = load_plugins(settings.plugin_dirs())
    return Context(settings, plugins, Engines(settings, plugins))

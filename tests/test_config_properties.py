"""Property tests of the config loader (``tedchat.config`` and the ``[engines.NAME]`` checks of
``tedchat.engines``), with Hypothesis.

Whatever a config file holds (any TOML document: the known sections and keys with values of
every TOML type, unknown keys, engine tables of any shape; or text that is not TOML at all),
loading it ends in usable settings or one :class:`ConfigError` line, never another exception.

Examples per test are stated where each test is (``max_examples``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.config import Settings, load_settings, to_toml
from tedchat.engines import Engines
from tedchat.errors import ConfigError
from tedchat.plugins import Plugins, load_plugins
from tedchat.presets import PRESET_KEYS
from tedchat.redact import redact_settings
from tests.conftest import ISOLATING_VARS


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home and a config file of their own for the module (Hypothesis runs many examples
    per test)."""
    folder = tmp_path_factory.mktemp("config-props")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEDCHAT_HOME", str(folder / "home"))
        for var in ISOLATING_VARS:
            mp.delenv(var, raising=False)
        yield folder / "config.toml"


@pytest.fixture(scope="module")
def plugins(config_file: Path) -> Plugins:
    return load_plugins([])


# --- TOML documents -----------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string (control characters and DEL escaped, as TOML requires)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{ " + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
NAMES = st.sampled_from(
    ["default_engine", "runtime", "threads", "ui", "theme", "context_tokens", "plugins", "dirs",
     "history", "path", "enabled", "keymap", "engines", "type", "base_url", "model", "n_ctx",
     "verify_tls", "ca_bundle", "headers", "read_timeout", "hardware", "systems", "pace",
     "tokenizer", "send"]
) | TEXT  # fmt: skip
SCALARS = st.one_of(
    TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.dates(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=8,
)


def mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right shape (so later checks run too), now and then any value."""
    return st.one_of(good, good, good, VALUES)


#: Every key any shipped engine type declares, and a few it does not.
ENGINE_KEYS = st.sampled_from(
    [
        *sorted({key for t in load_plugins([]).engine_types().values() for key in t.type.settings}),
        *("typo", "api-key"),
    ]
)
ENGINE_VALUES = mostly(
    st.one_of(TEXT, st.integers(-5, 10**6), st.floats(), st.booleans(), st.lists(TEXT, max_size=2))
    | st.dictionaries(TEXT, TEXT, max_size=2)
)
ENGINE_TABLES = st.dictionaries(
    st.sampled_from(["local", "http", "wafer", "x"]) | TEXT,
    mostly(
        st.dictionaries(ENGINE_KEYS, ENGINE_VALUES, max_size=4).flatmap(
            lambda table: mostly(st.sampled_from(["http", "llamacpp", "wafer", "nope"])).map(
                lambda kind: {"type": kind, **table}
            )
        )
    ),
    max_size=3,
)


PRESET_TABLES = st.dictionaries(
    st.sampled_from(["review", "ja"]) | TEXT,
    mostly(
        st.dictionaries(
            st.sampled_from([*PRESET_KEYS, "typo"]),
            mostly(ENGINE_VALUES | st.lists(st.sampled_from(["builtin", "mcp", "nope"]))),
            max_size=4,
        )
    ),
    max_size=3,
)


def section(keys: list[str], good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.one_of(st.sampled_from(keys), st.sampled_from(keys), TEXT)
    return mostly(st.dictionaries(names, mostly(good), max_size=3))


#: What each top-level key may hold.
SECTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "default_engine": mostly(TEXT),
    "runtime": section(["threads"], st.integers(-2, 64)),
    "ui": section(["theme", "context_tokens"], TEXT | st.integers(-5, 10**6)),
    "plugins": section(["dirs"], st.lists(mostly(TEXT), max_size=3)),
    "history": section(["path", "enabled"], TEXT | st.booleans()),
    "keymap": mostly(st.dictionaries(TEXT, mostly(TEXT), max_size=3)),
    "engines": mostly(ENGINE_TABLES),
    "presets": mostly(PRESET_TABLES),
}
SECTIONS = st.fixed_dictionaries({}, optional=SECTION_VALUES)
DOCUMENTS = st.one_of(
    SECTIONS,
    SECTIONS,
    SECTIONS.flatmap(
        lambda d: st.dictionaries(NAMES, VALUES, max_size=1).map(lambda x: {**d, **x})
    ),
)


def load_everything(plugins: Plugins, config_file: Path) -> Settings:
    """What a front end does with a config file: settings, engines, each engine's settings."""
    loaded = load_settings(config_file)
    engines = Engines(loaded, plugins)
    resolved = {}
    for name in engines.names():
        try:
            resolved[name] = engines.resolved_settings(engines.spec(name))
        except ConfigError as exc:  # one engine's bad table is reported for that engine
            assert exc.message and "\n" not in exc.message
        engines.describe(name)
    loaded.threads()
    loaded.plugin_dirs()
    loaded.history_path()
    to_toml(loaded, resolved)
    redact_settings(loaded.engines)
    return loaded


def loads_or_config_error(plugins: Plugins, config_file: Path, content: bytes) -> Settings | None:
    config_file.write_bytes(content)
    try:
        return load_everything(plugins, config_file)
    except ConfigError as exc:
        assert exc.message and "\n" not in exc.message
        return None


@settings(max_examples=400)
@given(doc=DOCUMENTS)
def test_any_toml_document_loads_or_is_one_config_error(
    plugins: Plugins, config_file: Path, doc: dict[str, Any]
) -> None:
    loads_or_config_error(plugins, config_file, toml_document(doc).encode("utf-8"))


#: Documents of one section or table each: every example's values reach that section's checks.
ONE_SECTION = st.one_of(
    [st.fixed_dictionaries({name: strategy}) for name, strategy in SECTION_VALUES.items()]
)


@settings(max_examples=300)
@given(doc=ONE_SECTION)
def test_any_single_section_loads_or_is_one_config_error(
    plugins: Plugins, config_file: Path, doc: dict[str, Any]
) -> None:
    loads_or_config_error(plugins, config_file, toml_document(doc).encode("utf-8"))


@settings(max_examples=200)
@given(content=st.binary(max_size=200) | TEXT.map(lambda t: t.encode("utf-8")))
def test_bytes_that_are_not_toml_are_one_config_error(
    plugins: Plugins, config_file: Path, content: bytes
) -> None:
    loads_or_config_error(plugins, config_file, content)

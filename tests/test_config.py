"""Settings: precedence, validation and the messages people see."""

from __future__ import annotations

from pathlib import Path

import pytest

from tedchat.config import load_settings, redact
from tedchat.engines import Engines
from tedchat.errors import ConfigError
from tedchat.paths import resource_path
from tedchat.plugins import load_plugins


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_work_without_a_file(tedchat_home: Path) -> None:
    settings = load_settings()
    assert settings.source is None
    assert settings.default_engine == "local"
    assert settings.threads() >= 1
    assert settings.history_path().parent.parent == tedchat_home


def test_precedence_defaults_file_env_cli(tedchat_home: Path, monkeypatch) -> None:
    cfg = write(tedchat_home / "c.toml", 'default_engine = "a"\n[runtime]\nthreads = 3\n')
    s = load_settings(cfg)
    assert (s.default_engine, s.runtime.threads) == ("a", 3)
    monkeypatch.setenv("TEDCHAT_ENGINE", "b")
    monkeypatch.setenv("TEDCHAT_THREADS", "5")
    s = load_settings(cfg)
    assert (s.default_engine, s.runtime.threads) == ("b", 5)
    s = load_settings(cfg, {("", "default_engine"): "c", ("runtime", "threads"): None})
    assert (s.default_engine, s.runtime.threads) == ("c", 5)


def test_tedchat_config_env_names_the_file(tedchat_home: Path, monkeypatch) -> None:
    cfg = write(tedchat_home / "x.toml", '[ui]\ntheme = "light"\n')
    monkeypatch.setenv("TEDCHAT_CONFIG", str(cfg))
    assert load_settings().ui.theme == "light"
    monkeypatch.setenv("TEDCHAT_CONFIG", str(tedchat_home / "missing.toml"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings()


def test_malformed_toml_names_file_and_line(tedchat_home: Path) -> None:
    cfg = write(tedchat_home / "bad.toml", 'default_engine = "a"\n[ui\ntheme = 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert str(cfg) in info.value.message
    assert "line 2" in info.value.message


def test_unknown_keys_name_the_valid_ones(tedchat_home: Path) -> None:
    cfg = write(tedchat_home / "c.toml", '[ui]\nthemee = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "'ui.themee'" in info.value.message and "theme" in info.value.message
    cfg = write(tedchat_home / "c.toml", 'colour = "x"\n')
    with pytest.raises(
        ConfigError, match=r"valid at the top level: default_engine.*\[engines.NAME\]"
    ):
        load_settings(cfg)


def test_wrong_types_are_refused(tedchat_home: Path, monkeypatch) -> None:
    cfg = write(tedchat_home / "c.toml", '[runtime]\nthreads = "many"\n')
    with pytest.raises(ConfigError, match=r"runtime.threads .* must be an integer"):
        load_settings(cfg)
    monkeypatch.setenv("TEDCHAT_THREADS", "lots")
    with pytest.raises(ConfigError, match=r"\$TEDCHAT_THREADS must be an integer"):
        load_settings()


def test_engine_tables_checked_against_their_type(tedchat_home: Path) -> None:
    cfg = write(
        tedchat_home / "c.toml",
        '[engines.mine]\ntype = "llamacpp"\nmodel = "smollm2"\nn_threadz = 2\n',
    )
    settings = load_settings(cfg)
    engines = Engines(settings, load_plugins())
    assert "mine" in engines.names() and "local" in engines.names()
    with pytest.raises(ConfigError) as info:
        engines.get("mine")
    assert "'n_threadz'" in info.value.message and "n_threads" in info.value.message
    with pytest.raises(ConfigError, match="unknown engine 'nope'; configured engines: "):
        engines.get("nope")


def test_unknown_engine_type(tedchat_home: Path) -> None:
    cfg = write(tedchat_home / "c.toml", '[engines.x]\ntype = "warp-drive"\n')
    engines = Engines(load_settings(cfg), load_plugins())
    with pytest.raises(
        ConfigError, match=r"unknown engine type 'warp-drive'.*known types: .*llamacpp"
    ):
        engines.get("x")


def test_redact_hides_secrets_but_not_the_variable_name() -> None:
    table = {
        "api_key": "sk-123",
        "api_key_env": "CEREBRAS_API_KEY",
        "headers": {"Authorization": "Bearer sk-123", "X-Api-Key": "sk-123", "X-Trace": "1"},
        "base_url": "https://user:sk-123@example.com/v1",
        "tokenizer": "smollm2",
        "max_tokens": 5,
        "model": "m",
    }
    out = redact(table)
    assert "sk-123" not in repr(out)
    assert out["base_url"] == "https://***@example.com/v1"
    assert out["tokenizer"] == "smollm2" and out["max_tokens"] == 5
    assert out["api_key_env"] == "CEREBRAS_API_KEY"
    assert out["headers"]["X-Trace"] == "1" and out["model"] == "m"


def test_example_config_is_valid_and_documents_every_default_key(tedchat_home: Path) -> None:
    example = resource_path("config.example.toml")
    settings = load_settings(example)
    engines = Engines(settings, load_plugins())
    text = example.read_text(encoding="utf-8")
    for name in engines.names():
        spec = engines.spec(name)
        if spec.type not in engines.plugins.engine_types():
            continue
        for key in engines.engine_type(spec).type.settings:
            assert f"\n{key} =" in text or f"\n{key}=" in text, f"{spec.type}.{key} undocumented"
        engines.resolved_settings(spec)  # every value in the example has the right type

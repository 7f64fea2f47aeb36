"""``[presets.NAME]`` tables: the example config's presets, ``config show`` round trip."""

from __future__ import annotations

from pathlib import Path

from tedchat.config import load_settings, read_toml, to_toml
from tedchat.engines import Engines
from tedchat.plugins import load_plugins
from tedchat.tools.setup import sources_for

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_example_presets_are_valid_in_english_and_japanese(tedchat_home: Path) -> None:
    settings = load_settings(EXAMPLE)
    engines = Engines(settings, load_plugins())
    presets = settings.presets
    assert len(presets) >= 4
    for preset in presets.values():
        if preset.engine is not None:
            engines.spec(preset.engine)  # names a configured engine
        if preset.tools is not None:
            settings.tools.sources = list(preset.tools)
            sources_for(settings)  # valid tool sources
    prompts = [p.system_prompt or "" for p in presets.values()]
    assert any(p.isascii() and p for p in prompts)
    assert any("日本語" in p for p in prompts)


def test_config_show_writes_presets_back_as_read(tedchat_home: Path) -> None:
    settings = load_settings(EXAMPLE)
    shown = tedchat_home / "shown.toml"
    shown.write_text(to_toml(settings, {}), encoding="utf-8")
    assert load_settings(shown).presets == settings.presets
    assert set(read_toml(shown)["presets"]) == set(settings.presets)

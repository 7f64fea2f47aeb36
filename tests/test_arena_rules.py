"""The arena's rules on the real default engines: which panes share a text model."""

from __future__ import annotations

from pathlib import Path

from tedchat.arena import LABELS, labels_for, shared_groups, text_model_key
from tedchat.engines import load_context
from tedchat.models.registry import resolve_model


def test_the_default_wafer_gpu_and_llamacpp_engines_share_the_bundled_text_model(
    tedchat_home: Path,
) -> None:
    """wafer-70b and gpu-70b (wafer type, emulating different hardware) and local (llama.cpp)
    all take their text from SmolLM2: the same resolved GGUF file, so the arena flags them.
    An http engine naming no model is never counted as shared."""
    engines = load_context().engines
    gguf = str(resolve_model("smollm2").resolve())
    keys = {name: text_model_key(engines, name) for name in ("wafer-70b", "gpu-70b", "local")}
    assert set(keys.values()) == {gguf} and Path(gguf).is_file()
    assert text_model_key(engines, "http") is None
    assert text_model_key(engines, "no-such-engine") is None
    labels = labels_for(["wafer-70b", "http", "gpu-70b"])
    assert labels == {"wafer-70b": "A", "http": "B", "gpu-70b": "C"}
    by_label = {labels[n]: text_model_key(engines, n) for n in labels}
    assert shared_groups(by_label) == [["A", "C"]]


def test_a_model_path_and_its_registry_name_are_the_same_text_model(
    tedchat_home: Path,
) -> None:
    gguf = resolve_model("smollm2").resolve()
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[engines.by-path]\ntype = "llamacpp"\nmodel = "{gguf}"\n'
        '[engines.other]\ntype = "wafer"\nmodel = "tedllm-not-pulled"\n',
        encoding="utf-8",
    )
    engines = load_context().engines
    assert text_model_key(engines, "by-path") == text_model_key(engines, "local") == str(gguf)
    # A model that resolves to no file is compared as written.
    assert text_model_key(engines, "other") == "tedllm-not-pulled"
    assert LABELS[:2] == ("A", "B")

"""Registers the built-in engine type ``wafer`` (imported by :mod:`tedchat.plugins`; light)."""

from __future__ import annotations

from typing import Any

from tedchat.engine import Engine, EngineType, Runtime
from tedchat.hookspecs import hookimpl

SETTINGS: dict[str, Any] = {
    "model": "smollm2",  # registry name or GGUF path: the model whose text is generated
    "hardware": "cs3",  # cs3 | cs2 | h100 | h200 | a100 (tedchat.wafer.hardware)
    "systems": 0,  # wafers (or GPUs, tensor-parallel); 0 = the fewest that hold the model
    "context": 8192,  # KV tokens reserved per sequence
    "sequences": 1,  # concurrent sequences the KV reservation is sized for
    "precision": 16,  # emulated weight bits (16 or 8); the NumPy numerics are float32
    "pace": False,  # release tokens at their emulated times
    "timing_target": "",  # a preset whose timing is emulated; `model` is then a stand-in
    "threads": 0,  # NumPy threads; 0 = this engine's share of [runtime] threads
    # Speculative decoding on the emulated hardware (tedchat.wafer.speculative): "off",
    # "prompt-lookup" (drafts from n-grams of the context, free to draft) or "draft" (a GGUF
    # with the same tokenizer, draft_model, placed beside the target). The text is the same.
    "speculative": "off",
    "draft_model": "",  # for "draft": a registry name or GGUF path
    "draft_tokens": 4,  # k: tokens drafted per step (1..15)
    "alpha": 0.0,  # assumed per-token acceptance, only for "draft" with a timing_target
}


def _factory(name: str, settings: dict[str, Any], runtime: Runtime) -> Engine:
    from tedchat.wafer.engine import WaferEngine

    return WaferEngine(name, settings, runtime)


@hookimpl
def register_engine_types(register: Any) -> None:
    register(
        EngineType(
            name="wafer",
            factory=_factory,
            settings=SETTINGS,
            description="wafer-scale emulation: NumPy Llama on emulated CS-3 systems",
            local=True,
        )
    )

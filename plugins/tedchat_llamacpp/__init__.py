"""Engine type ``llamacpp``: llama.cpp through llama-cpp-python, running a GGUF on this machine.

Registered through the ``tedchat`` entry-point group like any third-party plugin. Token counts
and timings come from llama.cpp itself (its perf counters, reset for every request).

Threads: ``n_threads = 0`` (the default) means *auto*: this engine's share of the machine's
thread budget, minus one core left for tedchat itself when the share is more than one. llama.cpp
worker threads spin while they wait; on a busy 2-core machine two of them ran a hundred times
slower than one (MODELS.md), because the spinning threads starve the process that feeds them
and the terminal that draws the answer. One free core for the app avoids that collapse.
"""

from __future__ import annotations

from typing import Any

import tedchat
from tedchat.engine import EngineType

SETTINGS: dict[str, Any] = {
    "model": "smollm2",  # a model registry name or a path to a GGUF file
    "n_ctx": 4096,  # context window in tokens
    "n_threads": 0,  # 0 = auto (see the module docstring)
    "n_gpu_layers": 0,  # layers offloaded to a GPU, where llama.cpp was built with one
    "flash_attn": False,
    # How a conversation becomes the prompt (tedchat.models.prompt_formats): "auto" (the registry's
    # format for the model, else the GGUF's chat template, else "plain"), "chat-template",
    # "plain" (User:/Assistant: turns, for base models) or "plain-ja" (ユーザー:/アシスタント:).
    "prompt_format": "auto",
    # Load a model even when it needs more memory than is available (tedchat.models.memory):
    # by default such a model is refused before loading, with one line saying why.
    "force": False,
    # Speculative decoding (tedchat_llamacpp.speculative): "off", "prompt-lookup" (drafts copied
    # from earlier text of the prompt and answer) or "draft" (a smaller GGUF of the same
    # vocabulary, draft_model, drafts). Output is the model's own; only the speed changes.
    "speculative": "off",
    "draft_model": "",  # for "draft": a registry name, hf: name or path of a GGUF
    "draft_tokens": 8,  # most tokens drafted per step
}


def _factory(name: str, settings: dict[str, Any], runtime: tedchat.Runtime) -> tedchat.Engine:
    from tedchat_llamacpp.engine import LlamaCppEngine

    return LlamaCppEngine(name, settings, runtime)


@tedchat.hookimpl
def register_engine_types(register):
    register(
        EngineType(
            name="llamacpp",
            factory=_factory,
            settings=SETTINGS,
            description="llama.cpp on this machine (GGUF)",
            local=True,
        )
    )

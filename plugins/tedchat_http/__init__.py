"""Engine type ``http``: any OpenAI-compatible ``/v1/chat/completions`` server, streamed (SSE).

llama.cpp's llama-server, llama_cpp.server, vLLM, Ollama's /v1, Cerebras Cloud, Bedrock's
OpenAI-compatible endpoint. Registered through the ``tedchat`` entry-point group like any
third-party plugin; the engine itself (and httpx) is imported only when an engine is built, so
``tedchat --help`` stays fast.

Token counts, in order of trust: the server's ``usage`` (or llama-server's ``timings``), the
configured ``tokenizer`` (a model registry name or GGUF path: its vocabulary alone is loaded),
and only then the number of chunks, shown as approximate.
"""

from __future__ import annotations

from typing import Any

import tedchat
from tedchat.engine import EngineType

SETTINGS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:8080/v1",  # up to and including /v1
    "model": "",  # empty: the first model the server lists (GET /v1/models)
    "api_key_env": "",  # name of the environment variable holding the API key (preferred)
    "api_key": "",  # the key itself (kept out of every output; prefer api_key_env)
    "headers": {},  # extra request headers, e.g. { "OpenAI-Organization" = "org-..." }
    "connect_timeout": 5.0,  # seconds to establish the connection
    "read_timeout": 120.0,  # seconds of silence tolerated (before and during the answer)
    "verify_tls": True,  # check the server's certificate (https); false warns once
    "ca_bundle": "",  # PEM file of the CA(s) to trust instead of the default store
    "max_retries": 2,  # retries before the answer starts: refused, 429, 503
    "tokenizer": "",  # registry name or GGUF path counting tokens when the server does not
    "vision": False,  # the model takes images (sent as image_url data URLs); false refuses them
}


def _factory(name: str, settings: dict[str, Any], runtime: tedchat.Runtime) -> tedchat.Engine:
    from tedchat_http.engine import HttpEngine

    return HttpEngine(name, settings, runtime)


@tedchat.hookimpl
def register_engine_types(register):  # pluggy hook: the argument name is the contract
    register(
        EngineType(
            name="http",
            factory=_factory,
            settings=SETTINGS,
            description="an OpenAI-compatible server (/v1/chat/completions, SSE)",
            local=False,
        )
    )

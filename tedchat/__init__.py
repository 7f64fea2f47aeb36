"""tedchat: a terminal chat client for large language models.

The public API for plugin authors is re-exported here; importing it stays light (no Textual,
NumPy or llama.cpp).
"""

from tedchat.engine import (
    Done,
    EmulatedTimings,
    Engine,
    EngineStatus,
    EngineType,
    Event,
    GenerationParams,
    LoadProgress,
    Message,
    Notice,
    ReasoningDelta,
    Runtime,
    TextDelta,
    Timings,
    Usage,
    stream_from_thread,
)
from tedchat.errors import (
    AuthError,
    ConfigError,
    EngineConnectionError,
    EngineError,
    EngineUnavailable,
    ModelFormatError,
    ModelNotFoundError,
    ServerError,
    TedchatError,
)
from tedchat.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "Done",
    "EmulatedTimings",
    "Engine",
    "EngineConnectionError",
    "EngineError",
    "EngineStatus",
    "EngineType",
    "EngineUnavailable",
    "Event",
    "GenerationParams",
    "LoadProgress",
    "Message",
    "ModelFormatError",
    "ModelNotFoundError",
    "Notice",
    "ReasoningDelta",
    "Runtime",
    "ServerError",
    "TedchatError",
    "TextDelta",
    "Timings",
    "Usage",
    "__version__",
    "hookimpl",
    "stream_from_thread",
]

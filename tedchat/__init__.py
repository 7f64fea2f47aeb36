"""tedchat: a terminal chat client for large language models.

The public API for plugin authors is re-exported here; importing it stays light (no Textual,
NumPy or llama.cpp). Where each concept lives: docs/architecture.md (engine contract in
``engine``, plugin API in ``hookspecs``, metrics in ``metrics``, the turn in ``session``, the
wafer timing model in ``wafer.timing``); writing an engine plugin: docs/plugins.md.
"""

from tedchat.engine import (
    CacheResetting,
    Capabilities,
    Done,
    EmulatedTimings,
    Engine,
    EngineStatus,
    EngineType,
    Event,
    GenerationParams,
    HasFloorplan,
    HasTokenIds,
    ImagePart,
    LoadProgress,
    Message,
    ModelLister,
    Notice,
    PromptTokenCounter,
    ReasoningDelta,
    Recorder,
    Runtime,
    TextDelta,
    Timings,
    Usage,
    capabilities_of,
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
    "CacheResetting",
    "Capabilities",
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
    "HasFloorplan",
    "HasTokenIds",
    "ImagePart",
    "LoadProgress",
    "Message",
    "ModelFormatError",
    "ModelLister",
    "ModelNotFoundError",
    "Notice",
    "PromptTokenCounter",
    "ReasoningDelta",
    "Recorder",
    "Runtime",
    "ServerError",
    "TedchatError",
    "TextDelta",
    "Timings",
    "Usage",
    "__version__",
    "capabilities_of",
    "hookimpl",
    "stream_from_thread",
]

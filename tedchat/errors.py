"""The one exception hierarchy of tedchat.

Every error a person can meet is a :class:`TedchatError`: its message is one line that says
what went wrong, and ``hint`` (optional) says what to do about it. The CLI prints
``error: <message>`` (plus ``hint: ...``) and exits with the class's ``exit_code``; only
``--debug`` shows a traceback.

    TedchatError
    ├── UsageError          bad command-line input                       exit 2
    ├── ConfigError         bad config file, key, value or engine name   exit 2
    │   ├── ThemeFileError        a theme file that cannot become a theme
    │   └── McpCommandError       an MCP server's command cannot be run (not found)
    ├── PluginError         a plugin failed to import or register        (reported, not fatal)
    ├── McpError            an MCP server failed                         exit 1
    │   ├── McpStartupError       the handshake failed, or the server exited or hung in it
    │   ├── McpCallError          a call failed: the server died or refused the request
    │   └── McpToolError          the tool ran and reported an error (its text is the message)
    ├── HistoryError        the conversation store cannot be used        exit 1
    │   ├── HistoryCorruptError       the file is damaged or unreadable (left untouched)
    │   ├── HistorySchemaError        the file was written by a newer tedchat
    │   ├── HistoryBusyError          another process held the write lock too long
    │   ├── ConversationNotFoundError no conversation has that id
    │   └── HistoryImportError        a conversation export cannot be imported
    ├── ToolError           a tool call failed: its message is the error result the model gets
    │   └── OutsideWorkspaceError     a file tool's path resolves outside the workspace
    └── EngineError         an engine failed; partial text is kept       exit 1
        ├── ModelNotFoundError    a model file or registry name is missing
        │   └── ModelNotPulledError   a Hub model that is not downloaded yet        exit 2
        ├── ModelFormatError      a file is not a usable model (truncated, wrong architecture)
        │   ├── WaferModelError   a GGUF the wafer engine cannot run
        │   │   └── ContextFullError  a wafer sequence would outgrow its KV cache
        │   └── GGUFShapeError    a GGUF whose model shape cannot be read (wafer plan)
        ├── EngineUnavailable     the engine cannot run here (dependency, memory, server down)
        │   └── ModelTooLargeError    the model needs more memory than is available
        ├── EngineConnectionError the connection to a server failed or broke
        ├── AuthError             the server refused the credentials
        └── ServerError           the server answered with an error
"""

from __future__ import annotations

EXIT_ENGINE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


class TedchatError(Exception):
    """Base of every error tedchat reports to a person."""

    exit_code = EXIT_ENGINE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(TedchatError):
    """The command line asks for something that cannot be done."""

    exit_code = EXIT_USAGE


class AttachmentError(UsageError):
    """A file that cannot be attached (missing, binary, too large, or an image for an engine
    without vision): refused before anything is sent."""


class ConfigError(TedchatError):
    """The configuration (file, environment or flags) is invalid."""

    exit_code = EXIT_USAGE


class PluginError(TedchatError):
    """A plugin failed to import or register; tedchat goes on without it."""


class HistoryError(TedchatError):
    """The conversation history cannot be read or written."""


# --- MCP servers (tedchat.tools.mcp) ----------------------------------------------------------


class McpCommandError(ConfigError):
    """An MCP server's ``command`` cannot be run (not found, not executable): the server cannot
    be started as configured."""


class McpError(TedchatError):
    """An MCP server failed; the message names the server and never holds its secrets."""


class McpStartupError(McpError):
    """An MCP server did not complete the handshake: it exited, answered an error, could not be
    reached, or did not answer within the startup timeout."""


class McpCallError(McpError):
    """A tool call to an MCP server failed: the server died, is not running, or refused it."""


class McpToolError(McpError):
    """An MCP tool ran and reported an error (``isError``); the message is its text."""


# --- themes and the history (tedchat.tui.themes, tedchat.history) -----------------------------


class ThemeFileError(ConfigError, ValueError):
    """A theme file that cannot become a theme; the message names the file and the problem.
    (Also a ValueError, as it was before it joined this hierarchy.)"""


class HistoryCorruptError(HistoryError):
    """The history file is damaged or cannot be read; it has been left untouched."""


class HistorySchemaError(HistoryError):
    """The history file was written by a newer tedchat than this one."""


class HistoryBusyError(HistoryError):
    """Another process held the history's write lock for longer than the retry deadline."""


class ConversationNotFoundError(HistoryError):
    """No conversation has the given id."""


class HistoryImportError(HistoryError):
    """A conversation export could not be imported (bad JSON, unknown format or version)."""


# --- tools (tedchat.tools) -------------------------------------------------------------------


class ToolError(TedchatError):
    """A tool call failed. Raised by a tool's function, its message (one line) is the error
    result the model is sent, without the exception's type name."""


class OutsideWorkspaceError(ToolError):
    """A file tool was given a path that resolves outside the workspace root (through ``..``,
    an absolute path or a symlink)."""


class EngineError(TedchatError):
    """An engine failed to load or to generate."""


class ModelNotFoundError(EngineError):
    """A model file or model registry name does not exist."""


class ModelNotPulledError(ModelNotFoundError):
    """A model from the Hub that is not downloaded: the hint is the pull command.

    Nothing downloads implicitly, so this is the person's next step, like a usage error.
    """

    exit_code = EXIT_USAGE


class ModelFormatError(EngineError):
    """A file exists but is not a model this engine can run."""


# wafer
class WaferModelError(ModelFormatError):
    """A GGUF file the wafer engine cannot run: missing, truncated, corrupt, not Llama, too big.

    The message is one line a person can act on.
    """


class ContextFullError(WaferModelError):
    """A sequence would grow past its KV cache."""


class GGUFShapeError(ModelFormatError, ValueError):
    """A GGUF file whose model shape cannot be read (unreadable, or not a llama model)."""


class EngineUnavailable(EngineError):
    """The engine cannot run in this environment."""


class ModelTooLargeError(EngineUnavailable):
    """A model (weights plus its context's KV cache) needs more memory than is available."""


class EngineConnectionError(EngineError):
    """A connection to an inference server failed or broke mid-stream."""


class AuthError(EngineError):
    """A server refused the request's credentials."""


class ServerError(EngineError):
    """A server answered with an error status or an error object."""

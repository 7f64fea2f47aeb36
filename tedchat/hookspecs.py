"""The whole plugin API of tedchat.

A plugin is a module (installed with an entry point in group ``tedchat``, or a single ``.py``
file in a plugin folder) with functions marked ``@tedchat.hookimpl`` named after the hooks
below. Example::

    import tedchat

    @tedchat.hookimpl
    def register_engine_types(register):
        register(tedchat.EngineType(name="echo", factory=EchoEngine, settings={"prefix": ""}))

The engine contract is :mod:`tedchat.engine`; ``docs/plugins.md`` is the guide, and
:mod:`tedchat.testing` the suite a plugin's engine should pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("tedchat")
hookimpl = pluggy.HookimplMarker("tedchat")


@hookspec
def register_engine_types(register: Callable[..., None]) -> None:
    """Call ``register(EngineType(...))`` once for every engine type this plugin provides.

    Keep the module light: import heavy libraries inside the engine's ``load``/``stream``, so
    ``tedchat --help`` stays instant.
    """


@hookspec
def register_tools(register: Callable[..., None]) -> None:
    """Call ``register(Tool(...))`` once for every tool this plugin offers the model.

    :class:`tedchat.tools.base.Tool` holds the name, a description, JSON Schema parameters and
    the function. The tools are the source ``plugin:NAME`` (NAME being the plugin's name) in
    ``[tools] sources``; tedchat's built-in tools come through this same hook as ``builtin``.
    """

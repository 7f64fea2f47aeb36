"""Tools the model may call: where they come from and how a call runs.

- :mod:`tedchat.tools.base`: :class:`~tedchat.tools.base.Tool` (what a source registers) and
  :class:`~tedchat.tools.base.ToolCallRecord` (one call as it ran), the approval types;
- :mod:`tedchat.tools.builtin`: the built-in tools (files in the workspace, a shell command),
  registered through the ``register_tools`` hook like any plugin's;
- :mod:`tedchat.tools.mcp`: MCP servers from ``[mcp.NAME]``, through the official ``mcp`` SDK
  (imported only when an MCP source is in use);
- :mod:`tedchat.tools.toolbox`: the tools of one process, named for the model, each call
  checked, approved, timed out and capped.

The turn loop that calls them is :func:`tedchat.session.run_turn`.
"""

"""The prompt in an external editor: ``$VISUAL``, else ``$EDITOR``.

:func:`edit_text` writes the text to an owner-only temporary file, suspends the app (Textual
gives the terminal back, and takes it again afterwards), runs the editor on the file and reads
the file back. Problems are one line each, as :class:`EditorError`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tedchat.errors import UsageError


class EditorError(UsageError):
    """No editor set, or it could not run; the prompt is left as it was."""


def editor_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """The editor's argv from ``$VISUAL`` or ``$EDITOR`` (shell words, e.g. ``code -w``)."""
    env = os.environ if environ is None else environ
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if value:
            try:
                words = shlex.split(value)
            except ValueError as exc:
                raise EditorError(f"${var} cannot be read as a command ({exc}): {value}") from exc
            if words:
                return words
    raise EditorError("no editor: set $VISUAL or $EDITOR (e.g. export EDITOR=nano)")


def edit_text(app: Any, text: str) -> str:
    """``text`` after the person edited it in their editor, with the app suspended meanwhile.

    A trailing newline the editor added is dropped. The editor exiting non-zero, or the app
    being unable to suspend (no real terminal), is an :class:`EditorError`."""
    from textual.app import SuspendNotSupported

    command = editor_command()
    handle, name = tempfile.mkstemp(prefix="tedchat-prompt-", suffix=".md")
    path = Path(name)  # mkstemp makes it owner-only
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            with app.suspend():
                try:
                    done = subprocess.run([*command, str(path)], check=False)
                except OSError as exc:
                    raise EditorError(f"cannot run the editor {command[0]!r}: {exc}") from exc
        except SuspendNotSupported as exc:
            raise EditorError("the external editor needs a real terminal") from exc
        if done.returncode != 0:
            raise EditorError(
                f"the editor {command[0]!r} exited with status {done.returncode}; "
                "the prompt is unchanged"
            )
        edited = path.read_text(encoding="utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)
    return edited[:-1] if edited.endswith("\n") else edited

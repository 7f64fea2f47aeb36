"""Driving tedchat in a real terminal: a tmux session, keys typed into it, its screen read back.

Shared by ``benchmarks/tui_stream.py``, ``benchmarks/tui_startup.py`` and the tmux test in
``tests/tui``. tmux renders what the program writes exactly as a terminal would; ``capture-pane``
returns the screen as text, which is what a person sees.

Times are ``time.monotonic()``, the same system-wide clock a server in another process uses.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Placeholder text of the empty prompt: seeing it means the first frame is on screen.
PROMPT_PLACEHOLDER = "Ask anything"


def tmux_path() -> str | None:
    return shutil.which("tmux")


def tedchat_exe() -> str:
    """The tedchat console script of the Python running this (the venv's)."""
    exe = Path(sys.executable).parent / "tedchat"
    return str(exe) if exe.exists() else "tedchat"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a tedchat under test: its own home, no tedchat variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEDCHAT_")}
    env["TEDCHAT_HOME"] = str(home)
    env.setdefault("TERM", "xterm-256color")
    env.update(extra)
    return env


@dataclass
class Seen:
    """When something first showed on screen, and the screen then."""

    t: float
    screen: str


class TmuxSession:
    """One detached tmux session running one command in a window of the given size."""

    def __init__(self, width: int = 160, height: int = 50, socket: str | None = None) -> None:
        self.width = width
        self.height = height
        # A private server socket: nothing of the user's tmux is touched.
        self.socket = socket or f"tedchat-test-{uuid.uuid4().hex[:8]}"
        self.name = "t"
        self.started_at: float | None = None

    def _tmux(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=check,
            env=dict(env) if env is not None else None,
        )

    def start(self, argv: list[str], env: Mapping[str, str], cwd: Path | None = None) -> float:
        """Start ``argv`` in the session; returns the launch time."""
        # This first command starts the private tmux server, which passes its environment on
        # to the program. After the program exits the pane stays a while, so its last screen
        # (an error, say) can still be read.
        command = f"cd {shlex.quote(str(cwd or REPO))} && exec {shlex.join(argv)}"
        self.started_at = time.monotonic()
        self._tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            command,
            env=env,
        )
        self._tmux("set-option", "-t", self.name, "remain-on-exit", "on", check=False)
        return self.started_at

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name, check=False).stdout

    def send_keys(self, *keys: str, literal: bool = False) -> float:
        """Type ``keys``; returns the time just before tmux was asked to."""
        t = time.monotonic()
        args = ["send-keys", "-t", self.name]
        if literal:
            args.append("-l")
        self._tmux(*args, *keys)
        return t

    def wait_for(
        self,
        predicate: Callable[[str], bool],
        timeout: float,
        poll: float = 0.02,
        on_poll: Callable[[str], None] | None = None,
    ) -> Seen | None:
        """Poll the screen every ``poll`` seconds until ``predicate(screen)``; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            t = time.monotonic()
            screen = self.capture()
            if on_poll is not None:
                on_poll(screen)
            if predicate(screen):
                return Seen(t, screen)
            if t > deadline:
                return None
            time.sleep(max(0.0, poll - (time.monotonic() - t)))

    def pane_pid(self) -> int | None:
        """The pid of the program running in the pane."""
        out = self._tmux("list-panes", "-t", self.name, "-F", "#{pane_pid}", check=False).stdout
        return int(out.split()[0]) if out.strip() else None

    def kill(self) -> None:
        self._tmux("kill-server", check=False)

    def __enter__(self) -> TmuxSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used (Linux /proc; 0 where unreadable)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def temp_home(prefix: str = "tedchat-tui-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def input_line(screen: str) -> str:
    """The prompt's text rows (between the prompt's borders, above the footer)."""
    lines = screen.rstrip("\n").splitlines()
    # The prompt sits just above the footer: the last few lines hold it.
    return "\n".join(lines[-5:])

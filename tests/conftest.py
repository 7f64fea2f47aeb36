"""Shared fixtures: an isolated tedchat home per test, and running the real CLI.

Also the test run's policies: under CI (``CI`` set, as the CI script runs) a test whose
prerequisite is missing fails instead of skipping (:func:`require_or_skip`), and Hypothesis
runs derandomized without deadlines (the ``ci`` profile).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests state their own max_examples. No deadlines anywhere: a busy two-core machine
# makes single examples slow now and then, which is no fault of the code under test. Under CI
# the examples are fixed (the same cases every run) and nothing is kept between runs.
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def in_ci() -> bool:
    """True when the CI script runs the tests (it sets ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


settings.load_profile("ci" if in_ci() else "dev")


def require_or_skip(condition: bool, reason: str) -> None:
    """Skip the calling test unless ``condition`` (its prerequisite is there) holds; under CI
    fail it instead, so a missing tmux or bundled model can never turn into a green run."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (under CI a missing prerequisite fails, it does not skip)")
    pytest.skip(reason)


def default_sigint() -> None:
    """``preexec_fn`` for a child a test sends SIGINT: Ctrl-C's default disposition.

    A pytest started in the background (``pytest &`` from a script) inherits SIGINT ignored,
    and so would every child; Python then installs no KeyboardInterrupt handler and the child
    would never see the signal the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


REPO = Path(__file__).resolve().parent.parent
ISOLATING_VARS = (
    "TEDCHAT_CONFIG",
    "TEDCHAT_ENGINE",
    "TEDCHAT_THREADS",
    "TEDCHAT_THEME",
    "TEDCHAT_HISTORY",
    "TEDCHAT_PLUGINS",
)


@pytest.fixture
def tedchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every tedchat directory at a fresh folder and clear tedchat's variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("TEDCHAT_HOME", str(home))
    for var in ISOLATING_VARS:
        monkeypatch.delenv(var, raising=False)
    yield home


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ISOLATING_VARS}
    env["TEDCHAT_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(
    home: Path, *args: str, input: str | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tedchat ARGS`` as a separate process, the way a person would."""
    return subprocess.run(
        [sys.executable, "-m", "tedchat", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(home, **env),
        cwd=str(home),
    )


#: llama.cpp on one thread: the CLI tests run beside other work on two cores.
ONE_THREAD = {"TEDCHAT_THREADS": "1"}

LONG_ESSAY = "Write a very long essay about the history of computing."


def start_long_answer(home: Path, max_tokens: int) -> subprocess.Popen[bytes]:
    """Start ``tedchat ask`` on a long greedy answer (the bundled model, one thread) as its own
    process, its answer readable from ``stdout``: for tests that interrupt it mid-stream."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "tedchat", "ask"),
            *("--max-tokens", str(max_tokens), "--temperature", "0", LONG_ESSAY),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(home, **ONE_THREAD),
        preexec_fn=default_sigint,  # tests interrupt it with SIGINT
    )


def one_error_line(stderr: str) -> str:
    """The stderr of a failed command: exactly one 'error:' line (plus an optional hint)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    others = [line for line in lines if not line.startswith(("error: ", "hint: "))]
    assert len(errors) == 1, stderr
    assert not others, stderr
    return errors[0]


@contextlib.contextmanager
def serve_llama_cpp(log_dir: Path, *extra: str) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the bundled model on a free loopback port, one thread
    (the machine is shared, and spinning llama.cpp threads collapse when busy); yields its
    base_url and stops it after. ``extra`` are more server options."""
    import httpx

    from tedchat.models.registry import resolve_model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (log_dir / "server.log").open("w")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_model("smollm2"))]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "2048"]
    server = subprocess.Popen([*command, *extra], stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not come up in 90 s; see {log.name}")
            time.sleep(0.25)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()

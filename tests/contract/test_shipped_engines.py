"""Every engine tedchat ships or tests with, held to the contract by :mod:`tedchat.testing`.

Real parts: the wafer engine and llama.cpp on the bundled SmolLM2 (one thread), the http
engine against a real ``llama_cpp.server`` on loopback and against the scripted fault server
(which also breaks a stream for the errors rule), and the TUI tests' scripted plugin.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tedchat.engine import Engine, Runtime
from tedchat.testing import RULES, ContractReport, check_engine
from tests.conftest import require_or_skip, serve_llama_cpp
from tests.http.fault_server import FaultServer

ONE = Runtime(threads=1)


def statuses(report: ContractReport) -> dict[str, str]:
    return {r.rule: r.status for r in report.results}


def all_passed_except(report: ContractReport, *not_covered: str) -> None:
    """Every rule passed, but ``not_covered`` ones, which must be reported as not covered."""
    want = {r: ("not covered" if r in not_covered else "passed") for r in RULES}
    assert statuses(report) == want, report.summary()


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on the bundled model, on loopback; its base_url.

    ``--interrupt_requests false``: by default that server cuts a running answer short when
    another request arrives (the first stream gets ``[DONE]`` and nothing else), which the
    concurrency rule reports; served one after the other, both answers are whole.
    """
    try:
        import llama_cpp.server.app  # noqa: F401  (its dependencies: fastapi, uvicorn, ...)
    except ImportError:
        require_or_skip(False, "needs llama-cpp-python[server]")
    with serve_llama_cpp(
        tmp_path_factory.mktemp("llama-server"), "--interrupt_requests", "false"
    ) as url:
        yield url


def http_engine(base_url: str, secret: str, **settings: Any) -> Engine:
    from tedchat_http import SETTINGS
    from tedchat_http.engine import HttpEngine

    values = {**SETTINGS, "base_url": base_url, "api_key": secret, **settings}
    # A secret header too: servers and proxies take keys there as well.
    values["headers"] = {"X-Api-Key": secret}
    return HttpEngine("srv", values, ONE)


async def test_http_engine_against_the_fault_server(fault_server: FaultServer) -> None:
    report = await check_engine(
        lambda secret: http_engine(fault_server.url("ok", "contract"), secret),
        # Words, then the connection is cut: an EngineConnectionError with the words kept.
        failing_factory=lambda secret: http_engine(fault_server.url("drop", "contract"), secret),
    )
    all_passed_except(report)


async def test_http_engine_when_the_server_reports_an_error_mid_stream(
    fault_server: FaultServer,
) -> None:
    report = await check_engine(
        lambda secret: http_engine(fault_server.url("ok", "contract-mid"), secret),
        failing_factory=lambda secret: http_engine(
            fault_server.url("midstream_error", "contract"), secret
        ),
        rules=["errors", "secrets"],
    )
    assert statuses(report) == {"errors": "passed", "secrets": "passed"}, report.summary()


@pytest.mark.slow
async def test_http_engine_against_a_real_llama_cpp_server(llama_server: str) -> None:
    report = await check_engine(
        lambda secret: http_engine(llama_server, secret, read_timeout=60.0),
        max_tokens=8,
    )
    all_passed_except(report, "errors")


@pytest.mark.slow
async def test_wafer_engine_on_the_bundled_model() -> None:
    from tedchat.wafer.engine import WaferEngine
    from tedchat.wafer.plugin import SETTINGS

    def make(secret: str) -> Engine:  # the wafer engine keeps no credentials
        settings = {**SETTINGS, "threads": 1, "context": 1024, "sequences": 2}
        return WaferEngine("wafer", settings, ONE)

    report = await check_engine(make, max_tokens=6, cancel_max_tokens=128)
    all_passed_except(report, "errors", "secrets", "tools")  # wafer declares no tools


@pytest.mark.slow
async def test_llamacpp_engine_on_the_bundled_model() -> None:
    from tedchat_llamacpp import SETTINGS
    from tedchat_llamacpp.engine import LlamaCppEngine

    def make(secret: str) -> Engine:  # llama.cpp on this machine keeps no credentials
        return LlamaCppEngine("local", {**SETTINGS, "n_threads": 1, "n_ctx": 1024}, ONE)

    report = await check_engine(make, max_tokens=8)
    all_passed_except(report, "errors", "secrets")


def scripted_module() -> Any:
    """The TUI tests' scripted plugin, loaded from its file as a plugin folder would."""
    path = Path(__file__).resolve().parent.parent / "tui" / "plugins" / "scripted_engine.py"
    spec = importlib.util.spec_from_file_location("contract_scripted_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("features", [{}, {"floorplan": True, "stages": 2, "context": 256}])
async def test_scripted_test_engine(features: dict[str, Any]) -> None:
    scripted = scripted_module()

    def make(secret: str, **extra: Any) -> Engine:  # a scripted engine keeps no credentials
        settings = {**scripted.SETTINGS, "ttft_s": 0.01, "tokens_per_s": 200.0, **features}
        return scripted.ScriptedEngine("scripted", {**settings, **extra}, ONE)

    report = await check_engine(
        make, failing_factory=lambda secret: make(secret, fail="the script says fail")
    )
    all_passed_except(report, "secrets", "tools")  # no tool_script: no tools declared

"""Fixtures for the http engine: the scripted fault server and engines pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tedchat.engine import Runtime
from tedchat_http import SETTINGS
from tedchat_http.engine import HttpEngine
from tests.http.fault_server import FaultServer


@pytest.fixture(scope="session")
def fault_server() -> Iterator[FaultServer]:
    """One scripted server for the whole session, stopped at its end."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def make_engine(fault_server: FaultServer) -> Callable[..., HttpEngine]:
    """``make_engine("scenario", tag="...", **settings)``: an http engine playing a scenario."""

    def make(scenario: str, tag: str = "", **settings: Any) -> HttpEngine:
        values = {**SETTINGS, "base_url": fault_server.url(scenario, tag), **settings}
        return HttpEngine(f"fault-{scenario}", values, Runtime(threads=1))

    return make

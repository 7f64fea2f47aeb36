"""The http engine over TLS: the scripted server on https://127.0.0.1 with certificates from
``trustme`` (a throwaway CA made for each test module, trusted by nothing on this machine).

A CA trusted through ``ca_bundle`` or ``SSL_CERT_FILE`` works; an untrusted certificate is one
error line naming those settings (and is not retried); ``verify_tls = false`` works and warns
once.
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tedchat.engine import Done, GenerationParams, Message, Runtime, TextDelta
from tedchat.errors import ConfigError, EngineConnectionError
from tedchat_http import SETTINGS
from tedchat_http.engine import HttpEngine
from tests.http.fault_server import FaultServer
from tests.http.test_http_cli import ask, the_error

ANSWER = "The capital of France is Paris."
NO_ENV_CA = {"SSL_CERT_FILE": "", "SSL_CERT_DIR": ""}  # a developer's own settings don't count


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "test-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def other_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the server's certificate."""
    path = tmp_path_factory.mktemp("tls-other") / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


class TLSServer(FaultServer):
    """The fault server over TLS, counting TLS handshakes (ClientHellos) it received."""

    handshakes = 0


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[TLSServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = TLSServer(ssl=context)

    def hello(*_: Any) -> None:
        server.handshakes += 1

    context.sni_callback = hello  # called for every ClientHello, with or without SNI
    with server:
        yield server


def engine(server: FaultServer, scenario: str = "ok", **settings: Any) -> HttpEngine:
    values = {**SETTINGS, "base_url": server.url(scenario), "max_retries": 0, **settings}
    return HttpEngine("tls", values, Runtime(threads=1))


async def answer(engine: HttpEngine) -> str:
    text, done = [], None
    try:
        async for event in engine.stream(
            [Message("user", "What is the capital of France?")], GenerationParams(max_tokens=16)
        ):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Done):
                done = event
    finally:
        await engine.close()
    assert done is not None and done.finish_reason == "stop"
    return "".join(text)


# --- in process -------------------------------------------------------------------------------


async def test_a_ca_trusted_through_ca_bundle(
    tls_server: TLSServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in NO_ENV_CA:
        monkeypatch.delenv(var, raising=False)
    assert tls_server.url("ok").startswith("https://127.0.0.1:")
    assert await answer(engine(tls_server, ca_bundle=str(ca_file))) == ANSWER


async def test_a_ca_trusted_through_ssl_cert_file(
    tls_server: TLSServer, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    assert await answer(engine(tls_server)) == ANSWER


async def test_an_untrusted_certificate_is_one_error_and_not_retried(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in NO_ENV_CA:
        monkeypatch.delenv(var, raising=False)
    before = tls_server.handshakes
    with pytest.raises(EngineConnectionError) as err:
        await answer(engine(tls_server, model="m", max_retries=3))
    url = tls_server.url("ok")
    assert err.value.message == (
        f"TLS certificate not trusted for {url} (unable to get local issuer certificate): "
        'set ca_bundle = "PATH" in [engines.tls] or SSL_CERT_FILE'
    )
    assert tls_server.handshakes - before == 1  # max_retries = 3, yet one try: it cannot help
    status = await (probe := engine(tls_server)).status()
    await probe.close()
    assert not status.ready and status.detail == err.value.message


async def test_a_ca_bundle_without_the_servers_ca_says_so(
    tls_server: TLSServer, other_ca_file: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # ca_bundle wins over the environment
    with pytest.raises(EngineConnectionError) as err:
        await answer(engine(tls_server, model="m", ca_bundle=str(other_ca_file)))
    assert err.value.message.startswith(f"TLS certificate not trusted for {tls_server.url('ok')}")
    assert err.value.message.endswith(
        f"ca_bundle {other_ca_file} does not hold the CA that signed it"
    )


async def test_verify_tls_false_works_and_warns_once(
    tls_server: TLSServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for var in NO_ENV_CA:
        monkeypatch.delenv(var, raising=False)
    e = engine(tls_server, verify_tls=False)
    with caplog.at_level(logging.WARNING, logger="tedchat.http"):
        assert await answer(e) == ANSWER
        assert await answer(e) == ANSWER  # a second answer: no second warning
    assert [r.getMessage() for r in caplog.records] == [
        "warning: engine 'tls' does not check the TLS certificate of 127.0.0.1 "
        "(verify_tls = false): anyone on the way can read and change the traffic"
    ]


@pytest.mark.parametrize(
    ("bad", "why"),
    [("missing.pem", "cannot read {path}: No such file or directory"),
     ("not-pem.pem", "{path} holds no usable PEM certificate (")],
)  # fmt: skip
def test_an_unusable_ca_bundle_is_a_config_error(
    tls_server: TLSServer, tmp_path: Path, bad: str, why: str
) -> None:
    path = tmp_path / bad
    if bad == "not-pem.pem":
        path.write_text("this is no certificate\n")
    with pytest.raises(ConfigError) as err:  # when the engine is built, before any request
        engine(tls_server, model="m", ca_bundle=str(path))
    assert err.value.message.startswith("[engines.tls] ca_bundle: " + why.format(path=path))
    assert "\n" not in err.value.message


# --- `tedchat ask`, as a person runs it ---------------------------------------------------------


def test_ask_trusts_a_ca_bundle(tedchat_home: Path, tls_server: TLSServer, ca_file: Path) -> None:
    result = ask(tedchat_home, tls_server.url("ok"), ca_bundle=str(ca_file), env=NO_ENV_CA)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"


def test_ask_trusts_ssl_cert_file(tedchat_home: Path, tls_server: TLSServer, ca_file: Path) -> None:
    result = ask(tedchat_home, tls_server.url("ok"), env={"SSL_CERT_FILE": str(ca_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"


def test_ask_with_an_untrusted_certificate_is_one_line(
    tedchat_home: Path, tls_server: TLSServer
) -> None:
    url = tls_server.url("ok")
    result = ask(tedchat_home, url, "--json", model="m", env=NO_ENV_CA)
    line = the_error(result)
    assert line == (
        f"error: TLS certificate not trusted for {url} (unable to get local issuer "
        'certificate): set ca_bundle = "PATH" in [engines.f] or SSL_CERT_FILE'
    )
    record = json.loads(result.stdout)
    assert record["finish_reason"] == "error" and record["text"] == ""


def test_ask_with_verify_tls_false_warns_once(tedchat_home: Path, tls_server: TLSServer) -> None:
    result = ask(tedchat_home, tls_server.url("ok"), verify_tls=False, env=NO_ENV_CA)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    warning, metrics = result.stderr.strip().splitlines()
    assert warning == (
        "warning: engine 'f' does not check the TLS certificate of 127.0.0.1 "
        "(verify_tls = false): anyone on the way can read and change the traffic"
    )
    assert metrics.startswith("[f · fault-model] TTFT ")

"""The one redactor: secret names, URLs, settings tables, free text and log records."""

from __future__ import annotations

import base64
import io
import logging
from urllib.parse import quote

import pytest

from tedchat.redact import (
    MASK,
    RedactingFormatter,
    Redactor,
    environ_secrets,
    is_secret_name,
    redact_settings,
    redact_text,
    redact_url,
    secrets_in,
    url_secrets,
)

SECRET = "sk-live-0123456789abcdef"
PASSWORD = "pa@ss:w0rd/Z"  # a password with the characters URLs must encode


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API-KEY",
        "X-Api-Key",
        "x-goog-api-key",
        "Ocp-Apim-Subscription-Key",
        "Authorization",
        "Proxy-Authorization",
        "access_token",
        "HF_TOKEN",
        "OPENAI_API_KEY",
        "client_secret",
        "password",
        "sig",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "Cookie",
        "apikey",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "api_key_env",
        "token_env",
        "max_tokens",
        "tokenizer",
        "context_tokens",
        "model",
        "base_url",
        "api-version",
        "OpenAI-Organization",
        "keymap",
        "verify_tls",
    ],
)
def test_harmless_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_url_hides_the_whole_userinfo_and_secret_query_values() -> None:
    encoded = quote(PASSWORD, safe="")
    url = f"https://bob:{encoded}@h.example/v1?api-version=2024-06-01&key={SECRET}&sig=abc%2Fd"
    shown = redact_url(url)
    assert shown == f"https://{MASK}@h.example/v1?api-version=2024-06-01&key={MASK}&sig={MASK}"
    # A raw @ inside the password: the last @ ends the userinfo.
    assert redact_url("http://u:p@ss@h/v1") == f"http://{MASK}@h/v1"
    # Any secret-looking query name, however spelled.
    assert redact_url("http://h/x?X-Amz-Signature=zz&access_token=t&n=1") == (
        f"http://h/x?X-Amz-Signature={MASK}&access_token={MASK}&n=1"
    )
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert redact_url("not a url") == "not a url"


def test_url_secrets_include_decoded_and_encoded_forms() -> None:
    encoded = quote(PASSWORD, safe="")
    found = url_secrets(f"https://bob:{encoded}@h/v1?key={quote(SECRET)}&n=1")
    assert PASSWORD in found and encoded in found and SECRET in found
    assert f"bob:{PASSWORD}" in found  # what Basic auth encodes
    assert "1" not in found


def test_redact_settings_hides_secrets_but_not_the_variable_name() -> None:
    table = {
        "api_key": SECRET,
        "api_key_env": "CEREBRAS_API_KEY",
        "headers": {"Authorization": "Bearer x", "X-Api-Key": SECRET, "X-Trace": "1"},
        "base_url": f"https://user:{SECRET}@example.com/v1?api-version=1&token={SECRET}",
        "env": {"GITHUB_PAT": SECRET, "PATH": "/usr/bin"},
        "urls": [f"https://example.com/?key={SECRET}"],
        "tokenizer": "smollm2",
        "max_tokens": 5,
        "model": "m",
        "empty_key": "",
    }
    out = redact_settings(table)
    assert SECRET not in repr(out)
    assert out["base_url"] == f"https://{MASK}@example.com/v1?api-version=1&token={MASK}"
    assert out["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "X-Trace": "1"}
    assert out["env"] == {"GITHUB_PAT": MASK, "PATH": MASK}  # an env table is hidden whole
    assert out["tokenizer"] == "smollm2" and out["max_tokens"] == 5 and out["model"] == "m"
    assert out["api_key_env"] == "CEREBRAS_API_KEY"
    assert out["empty_key"] == ""  # nothing to hide: shows that none is set


def test_secrets_in_follows_variable_names_and_urls() -> None:
    tables = [
        {"api_key": SECRET, "base_url": "http://h/v1"},
        {"api_key_env": "MY_KEY", "headers": {"X-Api-Key": "hdr-secret-1"}},
        {"base_url": f"http://u:{quote(PASSWORD, safe='')}@h/v1?sig=sig-secret-2"},
        {"command": "mcp-server", "env": {"GITHUB_PAT": "env-secret-4"}},
    ]
    found = [s for table in tables for s in secrets_in(table, {"MY_KEY": "env-secret-3"})]
    for value in (SECRET, "hdr-secret-1", "env-secret-3", PASSWORD, "sig-secret-2", "env-secret-4"):
        assert value in found
    assert "http://h/v1" not in found and "mcp-server" not in found
    assert environ_secrets({"HF_TOKEN": "hf_xyz123", "HOME": "/root", "USE_AUTH": "true"}) == [
        "hf_xyz123"
    ]


@pytest.mark.parametrize("prefix", ["", "u", "us", "user:", "longer-user-name:"])
def test_redactor_finds_a_known_secret_inside_base64_at_any_offset(prefix: str) -> None:
    basic = base64.b64encode(f"{prefix}{PASSWORD}".encode()).decode()
    out = Redactor([PASSWORD])(f"Authorization: Basic {basic} and again: x{basic}y")
    assert basic not in out


def test_redactor_hides_known_values_in_every_form() -> None:
    redactor = Redactor([PASSWORD, SECRET])
    text = (
        f"raw {PASSWORD} pct {quote(PASSWORD, safe='')} form {quote(PASSWORD)} "
        f'json {PASSWORD!r} "{SECRET}" b64 {base64.urlsafe_b64encode(SECRET.encode()).decode()}'
    )
    out = redactor(text)
    for form in (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), SECRET):
        assert form not in out
    assert "sk-live" not in out


def test_redactor_hides_unknown_secrets_by_their_names() -> None:
    text = (
        "GET http://u:zz@h/v1/models?api-version=1&key=unknown1 "
        "headers={'X-Api-Key': 'unknown2', 'X-Trace': 'visible'} "
        "[(b'authorization', b'Bearer unknown3')] api_key=unknown4 max_tokens=256 "
        "Authorization: Basic dW5rbm93bjU6eHg= tokens: 7"
    )
    out = redact_text(text)
    for hidden in ("unknown1", "unknown2", "unknown3", "unknown4", "dW5rbm93bjU6eHg=", "u:zz"):
        assert hidden not in out, out
    for kept in ("api-version=1", "'X-Trace': 'visible'", "max_tokens=256", "tokens: 7"):
        assert kept in out, out


def test_formatter_redacts_third_party_records_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(name)s: %(message)s", Redactor([SECRET])))
    logger = logging.getLogger("httpx")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("HTTP Request: POST %s", f"http://u:{SECRET}@h/v1?key=k1")
        try:
            raise ValueError(f"bad key {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    log = stream.getvalue()
    assert "httpx: HTTP Request: POST http://***@h/v1?key=***" in log
    assert "ValueError: bad key ***" in log
    assert SECRET not in log and "k1" not in log

"""Secrets in every place a person may put one never come out of tedchat, in any form.

The keys are in the config (``api_key``), in the environment (``api_key_env``), in the URL's
query (``?key=``) and in the URL's userinfo (a password holding an ``@``, %-encoded). Every
command that prints, logs or writes runs against the loopback fault server, and then stdout,
stderr and every file under the tedchat home are searched for each secret raw, %-encoded,
decoded and as the base64 of HTTP Basic auth.

Also here: a ``base_url`` with a query (Azure's ``?api-version=``) keeps it on every request.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import quote, quote_plus

import pytest

from tedchat.engine import GenerationParams, Message
from tedchat_http.engine import HttpEngine
from tests.conftest import run_cli
from tests.http.fault_server import FaultServer

CONFIG_KEY = "sk-cfg-7Hq2Lx9Pz4Kw"
ENV_KEY = "sk-env-3Vb8Nm1Qr6Ty"
QUERY_KEY = "qk-9Zx4Cv7/Bn2Ml"  # a / : %-encoded in the URL
USER = "alice"
PASSWORD = "pa@ss-W0rd-5Ug"
ENV = {"TEDCHAT_LEAK_KEY": ENV_KEY}


def forbidden_forms() -> dict[str, str]:
    """Each secret in each form it could leak in, by a name for the failure message."""
    forms: dict[str, str] = {}
    for name, secret in (
        ("config key", CONFIG_KEY),
        ("env key", ENV_KEY),
        ("query key", QUERY_KEY),
        ("password", PASSWORD),
    ):
        forms[f"{name} raw"] = secret
        forms[f"{name} %-encoded"] = quote(secret, safe="")
        forms[f"{name} form-encoded"] = quote_plus(secret)
        forms[f"{name} base64"] = base64.b64encode(secret.encode()).decode()
    for name, secret in (("config key", CONFIG_KEY), ("env key", ENV_KEY)):
        forms[f"{name} bearer"] = f"Bearer {secret}"
    forms["basic auth"] = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    forms["userinfo"] = f"{USER}:{quote(PASSWORD, safe='')}"
    return forms


def base_url(server: FaultServer, scenario: str, tag: str) -> str:
    """The scenario's URL with the user's password and a key in the query."""
    url = server.url(scenario, tag).replace("http://", f"http://{USER}:{quote(PASSWORD, safe='')}@")
    return f"{url}?api-version=2024-06-01&key={quote(QUERY_KEY, safe='')}"


def write_config(home: Path, server: FaultServer) -> Path:
    engines = {
        "cfg": {"base_url": server.url("ok", "cfg"), "api_key": CONFIG_KEY},
        "env": {"base_url": server.url("ok", "env"), "api_key_env": "TEDCHAT_LEAK_KEY"},
        "url": {"base_url": base_url(server, "ok", "url")},
        "badcfg": {"base_url": server.url("auth", "cfg"), "api_key": CONFIG_KEY},
        "badenv": {"base_url": server.url("auth", "env"), "api_key_env": "TEDCHAT_LEAK_KEY"},
        "badurl": {"base_url": base_url(server, "auth", "url")},
    }
    lines = []
    for name, settings in engines.items():
        lines += [f"[engines.{name}]", 'type = "http"', "max_retries = 0"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        lines.append('headers = { "X-Trace" = "visible", "X-Api-Key" = "' + CONFIG_KEY + '" }')
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.slow  # some thirty CLI runs
def test_no_secret_leaks_from_any_command_or_file(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    write_config(tedchat_home, fault_server)
    results: dict[str, CompletedProcess[str]] = {}

    def cli(label: str, *args: str, ok: bool = True) -> CompletedProcess[str]:
        result = run_cli(tedchat_home, *args, timeout=120, **ENV)
        assert (result.returncode == 0) == ok, (label, result.stderr)
        assert "Traceback" not in result.stderr or "--debug" in args, result.stderr
        results[label] = result
        return result

    for engine in ("cfg", "env", "url"):
        answer = cli(f"ask {engine}", "ask", "--engine", engine, f"question for {engine}")
        assert answer.stdout == "The capital of France is Paris.\n"
    for engine in ("badcfg", "badenv", "badurl"):
        failed = cli(f"ask {engine}", "ask", "--engine", engine, f"question for {engine}", ok=False)
        assert "401 from" in failed.stderr
        # The server echoed the credential (Bearer key or Basic auth); it is scrubbed.
        assert re.search(r"Incorrect API key provided: (Basic )?\*\*\*;", failed.stderr)

    cli("debug ask", "--debug", "ask", "--engine", "url", "hello debug")
    cli("debug 401", "--debug", "ask", "--engine", "badurl", "hello", ok=False)
    # (``engines`` checks every default engine too: slow on a busy machine, so run it twice only)
    cli("engines", "engines")
    listed = cli("debug engines --json", "--debug", "engines", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["url"]["status"] == "ready", rows["url"]
    shown = cli("config show", "config", "show")
    assert 'X-Trace = "visible"' in shown.stdout and "api-version=2024-06-01" in shown.stdout
    for engine in ("cfg", "url"):
        models = cli(f"models {engine}", "models", "list", "--engine", engine)
        assert "fault-model" in models.stdout
    cli("models badurl", "models", "list", "--engine", "badurl", ok=False)
    cli(
        "bench",
        *("bench", "--engines", "cfg,env,url", "--prompts", "builtin:short-en"),
        *("--runs", "1", "--warmup", "0", "--max-tokens", "8"),
        *("--html", str(tedchat_home / "bench.html"), "--csv", str(tedchat_home / "bench.csv")),
    )
    history = json.loads(cli("history list", "history", "list", "--json").stdout)
    ids = {c["title"]: str(c["id"]) for c in history}
    for title in ("question for url", "question for badurl", "question for cfg"):
        cid = ids[title]
        cli(f"show {cid}", "history", "show", cid)
        cli(f"show json {cid}", "history", "show", cid, "--json")
        cli(f"export md {cid}", "history", "export", cid, "-o", str(tedchat_home / f"{cid}.md"))
        out = str(tedchat_home / f"{cid}.json")
        cli(f"export json {cid}", "history", "export", cid, "--format", "json", "-o", out)

    # The secrets did reach the server (so finding none below means something).
    sent = fault_server.requests
    assert sent["ok~cfg"][-1].headers["authorization"] == f"Bearer {CONFIG_KEY}"
    assert sent["ok~env"][-1].headers["authorization"] == f"Bearer {ENV_KEY}"
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert sent["ok~url"][-1].headers["authorization"] == f"Basic {basic}"
    assert sent["ok~url"][-1].path.endswith(f"key={quote(QUERY_KEY, safe='')}")

    texts = {
        f"{label} {part}": getattr(r, part)
        for label, r in results.items()
        for part in ("stdout", "stderr")
    }
    files = [p for p in tedchat_home.rglob("*") if p.is_file() and p.name != "config.toml"]
    names = {p.relative_to(tedchat_home).as_posix() for p in files}
    assert "state/tedchat.log" in names and "data/history.db" in names, names
    assert any(n.startswith("data/bench/bench-") for n in names), names
    log = (tedchat_home / "state" / "tedchat.log").read_text(encoding="utf-8")
    assert "HTTP Request: POST http://***@127.0.0.1" in log  # httpx's own record, redacted
    assert "api-version=2024-06-01&key=***" in log
    leaks = []
    for form_name, form in forbidden_forms().items():
        for where, text in texts.items():
            if form in text:
                leaks.append(f"{form_name} in {where}")
        for path in files:
            if form.encode() in path.read_bytes():
                leaks.append(f"{form_name} in {path.relative_to(tedchat_home)}")
    assert not leaks, leaks


# --- base_url with a query ------------------------------------------------------------------


async def test_base_url_query_stays_the_query_of_every_request(
    make_engine: Callable[..., HttpEngine], fault_server: FaultServer
) -> None:
    query = "api-version=2024-06-01"
    engine = make_engine(
        "ok", tag="azure", base_url=f"{fault_server.url('ok', 'azure')}/?{query}", model="m"
    )
    engine_without_model = make_engine(
        "ok", tag="azure", base_url=f"{fault_server.url('ok', 'azure')}?{query}", model=""
    )
    try:
        assert (await engine.status()).ready
        assert [m["id"] for m in await engine.list_models()] == ["fault-model"]
        chunks = [
            e async for e in engine.stream([Message("user", "hi")], GenerationParams(max_tokens=8))
        ]
        assert chunks
        await engine_without_model.load()  # discovers the model through GET /models
        assert engine_without_model.model == "fault-model"
    finally:
        await engine.close()
        await engine_without_model.close()
    received = [(r.method, r.path) for r in fault_server.requests["ok~azure"]]
    assert received == [
        ("GET", f"/ok~azure/v1/models?{query}"),
        ("GET", f"/ok~azure/v1/models?{query}"),
        ("POST", f"/ok~azure/v1/chat/completions?{query}"),
        ("GET", f"/ok~azure/v1/models?{query}"),
    ]
    assert engine.url == f"{fault_server.url('ok', 'azure')}/?{query}"  # as messages show it

"""An MCP server's ``env`` and ``headers`` values never come out of tedchat, in any form:
``config show``, ``tools list`` (table and JSON), ``ask --mcp`` failing on a server that quotes
its token, and the ``--debug`` log; stdout, stderr and every file under the home are searched."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from urllib.parse import quote

from tests.conftest import run_cli
from tests.tools.mcp_helpers import FAULTY, marker, wait_gone

ENV_TOKEN = "tok-env-4Rt7Yu2Io9"
HEADER_TOKEN = "sk-head-8Gh3Jk5Lm1"


def forms() -> dict[str, str]:
    out = {}
    for name, secret in (("env token", ENV_TOKEN), ("header token", HEADER_TOKEN)):
        out[f"{name} raw"] = secret
        out[f"{name} %-encoded"] = quote(secret, safe="")
        out[f"{name} base64"] = base64.b64encode(secret.encode()).decode()
    return out


def test_mcp_secrets_appear_nowhere(tedchat_home: Path) -> None:
    tag = marker()
    config = tedchat_home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[tools]\nsources = ["mcp"]\nstartup_timeout_s = 5.0\n\n'
        f"[mcp.broken]\ncommand = {json.dumps(sys.executable)}\n"
        f'args = [{json.dumps(FAULTY)}, "exit", "{tag}"]\n'
        f'env = {{ FAULTY_TOKEN = "{ENV_TOKEN}" }}\n\n'
        '[mcp.remote]\nurl = "http://127.0.0.1:9/mcp"\n'
        f'headers = {{ Authorization = "Bearer {HEADER_TOKEN}" }}\n\n'
        '[engines.local]\ntype = "http"\nbase_url = "http://127.0.0.1:9/v1"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    runs = [
        run_cli(tedchat_home, "config", "show"),
        run_cli(tedchat_home, "tools", "list"),
        run_cli(tedchat_home, "tools", "list", "--json"),
        run_cli(tedchat_home, "--debug", "ask", "--mcp", "broken", "hi"),
        run_cli(tedchat_home, "ask", "--mcp", "remote", "hi"),
    ]
    # The servers did fail, and said why (the broken one quotes its token on stderr).
    listing = json.loads(runs[2].stdout)
    failed = {row["source"]: row["error"] for row in listing if row["status"] == "failed"}
    assert set(failed) == {"mcp:broken", "mcp:remote"}
    assert "was refused" in failed["mcp:broken"] and "***" in failed["mcp:broken"]
    assert runs[3].returncode == 1 and runs[4].returncode == 1
    texts = {
        f"run {i} {part}": getattr(r, part)
        for i, r in enumerate(runs)
        for part in ("stdout", "stderr")
    }
    for path in tedchat_home.rglob("*"):
        if path.is_file() and path != config:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any("debug" in name or name.endswith(".log") for name in texts), sorted(texts)
    for where, text in texts.items():
        for form, value in forms().items():
            assert value not in text, f"{form} in {where}"
    assert wait_gone(tag) == []

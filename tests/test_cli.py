"""The CLI as people meet it: bad input gets one clear line and the documented exit code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env, one_error_line, run_cli


def config(home: Path, text: str) -> Path:
    path = home / "config" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_help_and_version(tedchat_home: Path) -> None:
    result = run_cli(tedchat_home, "--help")
    assert result.returncode == 0
    for command in ("ask", "engines", "models", "config"):
        assert command in result.stdout
    assert run_cli(tedchat_home, "--version").stdout.startswith("tedchat ")


def test_help_imports_no_heavy_library(tedchat_home: Path) -> None:
    code = (
        "import sys, contextlib, io\n"
        "from tedchat.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(sorted(m for m in ('textual', 'numpy', 'llama_cpp', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(tedchat_home)
    )
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize(
    ("toml", "args", "code", "expected"),
    [
        (
            'default_engine = "a"\n[ui\n',
            ["engines"],
            2,
            r"malformed TOML in .*config.toml: .*line 2",
        ),
        (
            "[ui]\nthem = 1\n",
            ["engines"],
            2,
            r"unknown config key 'ui.them' .* valid in \[ui\]: theme",
        ),
        (
            "",
            ["ask", "--engine", "nope", "hi"],
            2,
            r"unknown engine 'nope'; configured engines: local",
        ),
        (
            '[engines.w]\ntype = "warp"\n',
            ["ask", "--engine", "w", "hi"],
            2,
            r"unknown engine type 'warp' for engine 'w' .* known types: .*llamacpp",
        ),
        (
            '[engines.m]\ntype = "llamacpp"\nmodel = "/no/such/model.gguf"\n',
            ["ask", "--engine", "m", "hi"],
            1,
            r"model file not found: /no/such/model.gguf",
        ),
        (
            '[engines.m]\ntype = "llamacpp"\nmodel = "smollm3"\n',
            ["ask", "--engine", "m", "hi"],
            1,
            r"unknown model 'smollm3': not a registry name \(smollm2",
        ),
        ("", ["ask", "--engine", "local"], 2, r"no prompt: give one as an argument or pipe it"),
    ],
)
def test_bad_input_gets_one_clear_line(
    tedchat_home: Path, toml: str, args: list[str], code: int, expected: str
) -> None:
    config(tedchat_home, toml)
    result = run_cli(tedchat_home, *args)
    assert result.returncode == code, result.stderr
    assert re.search(expected, one_error_line(result.stderr)), result.stderr


def test_not_a_gguf_file(tedchat_home: Path) -> None:
    fake = tedchat_home / "fake.gguf"
    fake.write_bytes(b"this is not a model at all")
    config(tedchat_home, f'[engines.m]\ntype = "llamacpp"\nmodel = "{fake}"\n')
    result = run_cli(tedchat_home, "ask", "--engine", "m", "hi")
    assert result.returncode == 1
    assert "not a GGUF model file" in one_error_line(result.stderr)


def test_engines_lists_status_and_why(tedchat_home: Path) -> None:
    config(tedchat_home, '[engines.gone]\ntype = "llamacpp"\nmodel = "/missing.gguf"\n')
    result = run_cli(tedchat_home, "engines", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["local"]["status"] == "ready"
    assert rows["gone"]["status"] == "unavailable"
    assert "model file not found" in rows["gone"]["detail"]
    table = run_cli(tedchat_home, "engines").stdout
    assert "gone" in table and "unavailable: model file not found" in table


def test_config_init_show_path(tedchat_home: Path) -> None:
    path = run_cli(tedchat_home, "config", "path").stdout.strip()
    assert path == str(tedchat_home / "config" / "config.toml")
    assert run_cli(tedchat_home, "config", "init").returncode == 0
    assert Path(path).read_text().startswith("# tedchat configuration")
    again = run_cli(tedchat_home, "config", "init")
    assert again.returncode == 2 and "already exists" in one_error_line(again.stderr)
    shown = run_cli(tedchat_home, "config", "show")
    assert shown.returncode == 0 and "[engines.local]" in shown.stdout

"""Plugins from every source, run through the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import one_error_line, run_cli

# A complete engine plugin, as a third party would write it against tedchat's public API.
ECHO_PLUGIN = textwrap.dedent(
    """
    import tedchat


    class EchoEngine:
        local = False

        def __init__(self, name, settings, runtime):
            self.name, self.type = name, "{type}"
            self.model = "echo"
            self.prefix = settings["prefix"]

        async def load(self, progress=None):
            pass

        async def stream(self, messages, params):
            words = (self.prefix + messages[-1].content).split(" ")
            for i, word in enumerate(words):
                yield tedchat.TextDelta(word if i == 0 else " " + word, tokens=1)
            yield tedchat.Usage(output_tokens=len(words), source="engine")
            yield tedchat.Done("stop")

        async def status(self):
            return tedchat.EngineStatus(True, "always")

        def describe(self):
            return {{"prefix": self.prefix}}

        async def close(self):
            pass


    @tedchat.hookimpl
    def register_engine_types(register):
        register(tedchat.EngineType(name="{type}", factory=EchoEngine, settings={{"prefix": ""}}))
    """
)


def build_distribution(tmp_path: Path) -> Path:
    """Build and install a real plugin distribution into a folder of its own; return it."""
    src = tmp_path / "echo-dist"
    (src / "tedchat_echo").mkdir(parents=True)
    (src / "tedchat_echo" / "__init__.py").write_text(ECHO_PLUGIN.format(type="echo"))
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "tedchat-echo"
            version = "0.1"

            [project.entry-points.tedchat]
            echo = "tedchat_echo"

            [tool.hatch.build.targets.wheel]
            packages = ["tedchat_echo"]
            """
        )
    )
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    assert list(site.glob("tedchat_echo-0.1.dist-info/entry_points.txt"))
    return site


def test_installed_distribution_and_folder_plugin_answer(
    tedchat_home: Path, tmp_path: Path
) -> None:
    site = build_distribution(tmp_path)
    folder = tedchat_home / "config" / "plugins"
    folder.mkdir(parents=True)
    (folder / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    config = tedchat_home / "config" / "config.toml"
    config.write_text(
        '[engines.e]\ntype = "echo"\nprefix = "dist: "\n'
        '[engines.p]\ntype = "parrot"\nprefix = "file: "\n'
    )
    env = {"PYTHONPATH": str(site)}

    listed = run_cli(tedchat_home, "engines", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["e"]["status"] == "ready" and rows["e"]["plugin"].startswith("echo")
    assert rows["p"]["status"] == "ready" and rows["p"]["plugin"].endswith("parrot.py")

    for engine, prefix in (("e", "dist:"), ("p", "file:")):
        answer = run_cli(tedchat_home, "ask", "--engine", engine, "hello there", **env)
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.strip() == f"{prefix} hello there"
        assert "tok/s" in answer.stderr and "3 tokens" in answer.stderr


def test_tedchat_plugins_chooses_entry_points(tedchat_home: Path, tmp_path: Path) -> None:
    site = build_distribution(tmp_path)
    only_echo = run_cli(
        tedchat_home, "engines", "--json", PYTHONPATH=str(site), TEDCHAT_PLUGINS="echo"
    )
    types = {r["type"] for r in json.loads(only_echo.stdout)}
    assert "llamacpp" not in types  # the default 'local' engine needs the llamacpp plugin
    none = run_cli(tedchat_home, "ask", "--engine", "local", "hi", TEDCHAT_PLUGINS="")
    assert none.returncode == 2
    assert "unknown engine 'local'" in one_error_line(none.stderr)


def test_plugin_that_raises_on_import_is_reported_not_fatal(tedchat_home: Path) -> None:
    folder = tedchat_home / "config" / "plugins"
    folder.mkdir(parents=True)
    (folder / "broken.py").write_text("raise RuntimeError('this plugin is broken')\n")
    (folder / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    (tedchat_home / "config" / "config.toml").write_text('[engines.p]\ntype = "parrot"\n')
    result = run_cli(tedchat_home, "ask", "--engine", "p", "still works")
    assert result.returncode == 0
    assert result.stdout.strip() == "still works"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert (
        len(warnings) == 1 and "broken.py" in warnings[0] and "this plugin is broken" in warnings[0]
    )
    assert "Traceback" not in result.stderr


def test_folder_plugins_from_config_dirs(tedchat_home: Path, tmp_path: Path) -> None:
    extra = tmp_path / "more-plugins"
    extra.mkdir()
    (extra / "parrot.py").write_text(ECHO_PLUGIN.format(type="parrot"))
    (tedchat_home / "config").mkdir()
    (tedchat_home / "config" / "config.toml").write_text(
        f'[plugins]\ndirs = ["{extra}"]\n[engines.p]\ntype = "parrot"\n'
    )
    result = run_cli(tedchat_home, "ask", "--engine", "p", "from", "--max-tokens", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from"


def test_readme_plugin_example_works(tedchat_home: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = next(b for b in readme.split("```python")[1:] if b.lstrip().startswith("# shout.py"))
    folder = tedchat_home / "config" / "plugins"
    folder.mkdir(parents=True)
    (folder / "shout.py").write_text(block.split("```")[0])
    (tedchat_home / "config" / "config.toml").write_text(
        '[engines.loud]\ntype = "shout"\nsuffix = "!!!"\n'
    )
    result = run_cli(tedchat_home, "ask", "--engine", "loud", "hello there")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "HELLO THERE!!!"


def test_the_installed_third_party_plugin_meets_the_engine_contract(tmp_path: Path) -> None:
    site = build_distribution(tmp_path)
    script = textwrap.dedent(
        """
        import json

        import tedchat
        import tedchat_echo
        from tedchat.testing import assert_meets_contract

        types = []
        tedchat_echo.register_engine_types(types.append)  # as the plugin manager calls it
        (echo,) = types
        report = assert_meets_contract(
            lambda secret: echo.factory("e", dict(echo.settings), tedchat.Runtime(threads=1))
        )
        print(json.dumps({r.rule: r.status for r in report.results}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The echo engine predates capabilities (none declared: nothing optional), keeps no
    # credentials and has no way to fail, so those two rules are not covered, never passed;
    # nor is tools (not declared).
    assert json.loads(result.stdout) == {
        "declaration": "passed",
        "one-done": "passed",
        "cancel": "passed",
        "errors": "not covered",
        "secrets": "not covered",
        "counts": "passed",
        "concurrency": "passed",
        "tools": "not covered",
    }

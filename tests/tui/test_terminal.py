"""tedchat in a real terminal: tmux runs the installed command, keys are typed into it and the
screen is read back with capture-pane (what a person would see).

Skipped, saying why, where tmux is not installed (Debian/Ubuntu package: ``tmux``); under CI
that fails instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import require_or_skip

from .conftest import BASE_CONFIG

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from tui_terminal import (
    PROMPT_PLACEHOLDER,
    TmuxSession,
    clean_env,
    tedchat_exe,
    tmux_path,
)


@pytest.fixture(autouse=True)
def _needs_tmux() -> None:
    require_or_skip(tmux_path() is not None, "tmux is not installed (apt-get install tmux)")


FIGURES = re.compile(r"TTFT \d+ ms · ~?[\d.]+ tok/s · ~?\d+ tokens")


def home_with_config(tmp_path: Path, config: str = BASE_CONFIG) -> Path:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(config, encoding="utf-8")
    return home


def start(tmux: TmuxSession, home: Path, *args: str) -> None:
    tmux.start([tedchat_exe(), *args], clean_env(home))
    seen = tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 30)
    assert seen is not None, "tedchat did not start:\n" + tmux.capture()


def type_prompt(tmux: TmuxSession, text: str) -> None:
    tmux.send_keys(text, literal=True)
    tmux.send_keys("Enter")


def test_bare_tedchat_streams_an_answer_with_figures(tmp_path: Path) -> None:
    home = home_with_config(tmp_path)
    with TmuxSession(100, 30) as tmux:
        start(tmux, home)  # no command: the chat screen
        type_prompt(tmux, "what is the answer?")
        # The caption under the reply is drawn when the stream ends: a frame after the status
        # bar's last live figures, so wait for it too.
        caption = re.compile(r"fast · script-fast · " + FIGURES.pattern)
        seen = tmux.wait_for(lambda s: "12 tokens" in s and bool(caption.search(s)), 30)
        assert seen is not None, tmux.capture()
        screen = seen.screen
        assert "what is the answer?" in screen
        assert "The answer is 42." in screen  # Markdown rendered: ** markers gone
        assert "print('hi')" in screen
        # Under the reply and in the status bar: engine, model and figures.
        assert re.search(r"fast · script-fast · " + FIGURES.pattern, screen)
        status = [
            line for line in screen.splitlines() if line.lstrip().startswith("fast · script-fast")
        ]
        assert any(FIGURES.search(line) for line in status), screen


def test_chat_with_the_real_llamacpp_engine(tmp_path: Path) -> None:
    home = home_with_config(tmp_path, "")  # the default config: engine "local"
    with TmuxSession(100, 30) as tmux:
        start(tmux, home, "chat", "--engine", "local", "--temperature", "0", "--max-tokens", "16")
        type_prompt(tmux, "What is the capital of France?")
        seen = tmux.wait_for(lambda s: re.search(r"local · smollm2 · " + FIGURES.pattern, s), 120)
        assert seen is not None, tmux.capture()
        reply_area = seen.screen.split("What is the capital of France?", 1)[1]
        assert re.search(r"[A-Za-z]{3,}", reply_area.split("local · smollm2")[0]), seen.screen


def test_compare_two_engines_side_by_side(tmp_path: Path) -> None:
    home = home_with_config(tmp_path)
    with TmuxSession(140, 36) as tmux:
        start(tmux, home, "compare", "local", "fast", "--temperature", "0", "--max-tokens", "16")
        type_prompt(tmux, "Name a colour.")
        seen = tmux.wait_for(lambda s: "Side by side" in s, 120)
        assert seen is not None, tmux.capture()
        screen = seen.screen
        assert screen.count("Name a colour.") == 2  # the prompt went to both panes
        assert "local · smollm2" in screen and "fast · script-fast" in screen
        assert len(FIGURES.findall(screen)) >= 2  # each pane's own status line
        assert "★" in screen  # the summary marks winners


EDITOR_SCRIPT = """\
import sys
from pathlib import Path

path = Path(sys.argv[1])
before = path.read_text(encoding="utf-8")
Path(sys.argv[0]).with_name("seen.txt").write_text(before, encoding="utf-8")
after = "edited in the editor: " + before.upper() + "\\nline two 日本語\\n"
path.write_text(after, encoding="utf-8")
"""


def test_ctrl_g_opens_the_prompt_in_editor_and_brings_the_text_back(tmp_path: Path) -> None:
    home = home_with_config(tmp_path)
    script = tmp_path / "editor.py"
    script.write_text(EDITOR_SCRIPT, encoding="utf-8")
    editor = f"{sys.executable} {script}"
    with TmuxSession(100, 30) as tmux:
        tmux.start([tedchat_exe()], clean_env(home, VISUAL="", EDITOR=editor))
        assert tmux.wait_for(lambda s: PROMPT_PLACEHOLDER in s, 30) is not None, tmux.capture()
        tmux.send_keys("draft", literal=True)
        assert tmux.wait_for(lambda s: "draft" in s, 10) is not None, tmux.capture()
        tmux.send_keys("C-g")
        # The app suspends, the editor runs on the prompt, the app comes back with its text.
        seen = tmux.wait_for(lambda s: "line two 日本語" in s, 30)
        assert seen is not None, tmux.capture()
        assert (tmp_path / "seen.txt").read_text(encoding="utf-8") == "draft"
        assert "edited in the editor: DRAFT" in seen.screen
        assert "^p Commands" in seen.screen  # the whole screen is drawn again (the footer)
        tmux.send_keys("Enter")
        seen = tmux.wait_for(lambda s: "Done." in s, 30)
        assert seen is not None, tmux.capture()
        log = seen.screen.split("fast · script-fast")[0]
        assert "edited in the editor: DRAFT" in log and "line two 日本語" in log

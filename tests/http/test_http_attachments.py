"""Acceptance: ``ask -f`` with a text file, a glob and an image, against the scripted server.

The request the server receives holds exactly the expected parts; refused inputs (binary, too
large, an image for an engine without vision) are one line each, exit 2, and nothing is sent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from subprocess import CompletedProcess

from tests.conftest import run_cli
from tests.http.fault_server import FaultServer
from tests.test_attachments import png_bytes

PROMPT = "Review these."


def write_config(home: Path, base_url: str, *, vision: bool, max_file_bytes: int = 65536) -> Path:
    path = home / "config.toml"
    path.write_text(
        "[engines.f]\n"
        'type = "http"\n'
        f'base_url = "{base_url}"\n'
        "max_retries = 0\n"
        f"vision = {json.dumps(vision)}\n"
        "[attachments]\n"
        f"max_file_bytes = {max_file_bytes}\n"
    )
    return path


def ask(
    home: Path, base_url: str, *flags: str, vision: bool = True, input: str | None = None, **kw: int
) -> CompletedProcess[str]:
    config = write_config(home, base_url, vision=vision, **kw)
    return run_cli(
        home,
        "--config",
        str(config),
        "ask",
        "--engine",
        "f",
        *flags,
        PROMPT,
        input=input,
        timeout=60,
    )


def files(home: Path) -> None:
    (home / "notes.txt").write_text("remember the milk\n")
    (home / "src").mkdir()
    (home / "src" / "a.py").write_text("print('a')\n")
    (home / "src" / "b.py").write_text("x = `1`\n")
    (home / "pic.png").write_bytes(png_bytes())


def chat_requests(server: FaultServer, tag: str) -> list[dict[str, object]]:
    return [
        r.body
        for r in server.requests.get(f"ok~{tag}", [])
        if r.path.partition("?")[0].endswith("/chat/completions")
    ]


def test_a_text_file_a_glob_and_an_image_arrive_as_exactly_these_parts(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    files(tedchat_home)
    url = fault_server.url("ok", "attach-parts")
    result = ask(tedchat_home, url, "-f", "notes.txt", "-f", "src/*.py", "-f", "pic.png")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The capital of France is Paris.\n"
    (body,) = chat_requests(fault_server, "attach-parts")
    text = (
        f"{PROMPT}\n\n"
        "```notes.txt\nremember the milk\n```\n\n"
        "```src/a.py\nprint('a')\n```\n\n"
        "```src/b.py\nx = `1`\n```"
    )
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    assert body["messages"] == [  # type: ignore[index]
        {
            "role": "user",
            "content": [
                {"type": "text", "text": text},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]
    # Sizes and estimates were shown before sending, one line per file and a total.
    lines = result.stderr.splitlines()
    assert lines[0] == "attached notes.txt (text, 18 B, ~9 tokens)"
    assert lines[3].startswith("attached pic.png (image, ") and lines[3].endswith("~765 tokens)")
    assert lines[4].startswith("attached 4 files, ")


def test_attachments_are_kept_in_the_history(tedchat_home: Path, fault_server: FaultServer) -> None:
    files(tedchat_home)
    url = fault_server.url("ok", "attach-history")
    assert ask(tedchat_home, url, "-f", "src", "-f", "pic.png").returncode == 0
    shown = run_cli(tedchat_home, "history", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "*attached:* `src/a.py` (text, 11 B)" in shown.stdout
    assert "*attached:* `pic.png` (image, " in shown.stdout
    # --continue sends the earlier attachments again, as they were.
    again = ask(tedchat_home, url, "--continue")
    assert again.returncode == 0, again.stderr
    first, second = chat_requests(fault_server, "attach-history")
    assert second["messages"][0] == first["messages"][0]  # type: ignore[index]


def test_stdin_as_an_attachment(tedchat_home: Path, fault_server: FaultServer) -> None:
    url = fault_server.url("ok", "attach-stdin")
    result = ask(tedchat_home, url, "-f", "-", input="piped text\n")
    assert result.returncode == 0, result.stderr
    (body,) = chat_requests(fault_server, "attach-stdin")
    assert body["messages"] == [  # type: ignore[index]
        {"role": "user", "content": f"{PROMPT}\n\n```stdin\npiped text\n```"}
    ]


def refused(result: CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def test_refused_inputs_are_one_line_exit_2_and_nothing_is_sent(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    files(tedchat_home)
    (tedchat_home / "blob.bin").write_bytes(b"\x00\x01\x02\x03")
    (tedchat_home / "big.txt").write_text("x" * 2000)
    url = fault_server.url("ok", "attach-refused")

    line = refused(ask(tedchat_home, url, "-f", "blob.bin"))
    assert line == "error: blob.bin: a binary file (not text, not an image): not attached"
    line = refused(ask(tedchat_home, url, "-f", "big.txt", max_file_bytes=1000))
    assert line.startswith("error: big.txt: larger than [attachments] max_file_bytes")
    line = refused(ask(tedchat_home, url, "-f", "notes.txt", "-f", "pic.png", vision=False))
    assert line.startswith("error: engine 'f' does not take images (pic.png)")
    line = refused(ask(tedchat_home, url, "-f", "missing.txt"))
    assert line == "error: missing.txt: no such file or folder"

    assert fault_server.requests.get("ok~attach-refused", []) == []
    # Nothing was saved either.
    listed = run_cli(tedchat_home, "history", "list")
    assert "Review these" not in listed.stdout


def test_continuing_on_an_engine_without_vision_says_the_images_are_left_out(
    tedchat_home: Path, fault_server: FaultServer
) -> None:
    files(tedchat_home)
    url = fault_server.url("ok", "attach-blind")
    assert ask(tedchat_home, url, "-f", "pic.png", "-f", "notes.txt").returncode == 0
    again = ask(tedchat_home, url, "--continue", vision=False)
    assert again.returncode == 0, again.stderr
    assert "note: f does not take images: the conversation's 1 image(s) are left out" in (
        again.stderr
    )
    _first, second = chat_requests(fault_server, "attach-blind")
    earlier = second["messages"][0]  # type: ignore[index]
    assert earlier == {
        "role": "user",
        "content": f"{PROMPT}\n\n```notes.txt\nremember the milk\n```",
    }

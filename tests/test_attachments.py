"""The attachment reader: files, globs, folders (hidden, .gitignored and binary skipped), caps,
fenced blocks named by path, images by magic bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from tedchat.attachments import (
    Limits,
    check_engine,
    collect,
    compose_prompt,
    fenced_block,
    image_mime,
    user_message,
)
from tedchat.errors import AttachmentError, UsageError

LIMITS = Limits(max_file_bytes=10_000, max_total_bytes=20_000)


def png_bytes() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("build/\n*.log\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("print('a')\n")
    (tmp_path / "src" / "b.py").write_text("print('b')\n")
    (tmp_path / "src" / "notes.log").write_text("ignored\n")
    (tmp_path / "src" / ".secret").write_text("hidden\n")
    (tmp_path / "src" / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "src" / "sub").mkdir()
    (tmp_path / "src" / "sub" / ".gitignore").write_text("local.txt\n")
    (tmp_path / "src" / "sub" / "c.md").write_text("# c\n")
    (tmp_path / "src" / "sub" / "local.txt").write_text("ignored below\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.py").write_text("generated\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("hidden folder\n")
    (tmp_path / "pic.png").write_bytes(png_bytes())
    return tmp_path


def names(specs: list[str], cwd: Path) -> list[str]:
    return [a.name for a in collect(specs, limits=LIMITS, cwd=cwd)]


def test_a_folder_is_recursed_skipping_hidden_ignored_and_binary(tree: Path) -> None:
    assert names(["src"], tree) == ["src/a.py", "src/b.py", "src/sub/c.md"]


def test_the_whole_repository_skips_gitignored_folders(tree: Path) -> None:
    got = names(["."], tree)
    assert "build/out.py" not in got and ".hidden/x.py" not in got
    assert got == ["pic.png", "src/a.py", "src/b.py", "src/sub/c.md"]


def test_a_glob_expands_sorted_and_skips_ignored(tree: Path) -> None:
    assert names(["src/*"], tree) == ["src/a.py", "src/b.py", "src/sub/c.md"]
    assert names(["**/*.py"], tree) == ["src/a.py", "src/b.py"]


def test_each_file_once_in_the_order_named(tree: Path) -> None:
    assert names(["src/b.py", "src/*.py"], tree) == ["src/b.py", "src/a.py"]


def test_a_binary_file_named_directly_is_refused(tree: Path) -> None:
    with pytest.raises(AttachmentError, match=r"^src/blob.bin: a binary file"):
        collect(["src/blob.bin"], limits=LIMITS, cwd=tree)


def test_too_large_and_too_much_are_refused(tree: Path) -> None:
    (tree / "big.txt").write_text("x" * 10_001)
    with pytest.raises(AttachmentError, match="max_file_bytes"):
        collect(["big.txt"], limits=LIMITS, cwd=tree)
    for i in range(3):
        (tree / f"part{i}.txt").write_text("y" * 9_000)
    with pytest.raises(AttachmentError, match="max_total_bytes"):
        collect(["part*.txt"], limits=LIMITS, cwd=tree)


def test_nothing_named_is_one_usage_error(tree: Path) -> None:
    with pytest.raises(AttachmentError, match="no such file") as info:
        collect(["missing.py"], limits=LIMITS, cwd=tree)
    assert isinstance(info.value, UsageError) and "\n" not in str(info.value)
    with pytest.raises(AttachmentError, match="no file matches"):
        collect(["*.rs"], limits=LIMITS, cwd=tree)


def test_images_are_known_by_their_bytes_not_their_name(tree: Path) -> None:
    (tree / "disguised.txt").write_bytes(png_bytes())
    (tree / "fake.png").write_text("not a picture\n")
    got = {
        a.name: a
        for a in collect(["pic.png", "disguised.txt", "fake.png"], limits=LIMITS, cwd=tree)
    }
    assert got["pic.png"].kind == "image" and got["pic.png"].mime == "image/png"
    assert got["disguised.txt"].kind == "image"
    assert got["fake.png"].kind == "text"
    assert image_mime(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert image_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_mime(b"GIF89a...") == "image/gif"


def test_stdin_is_an_attachment(tree: Path) -> None:
    (got,) = collect(
        ["-"], limits=LIMITS, cwd=tree, stdin=io.BytesIO("日本語のテキスト\n".encode())
    )
    assert got.name == "stdin" and got.text == "日本語のテキスト\n"


def test_text_goes_as_fenced_blocks_named_by_path(tree: Path) -> None:
    atts = collect(["src/a.py", "pic.png"], limits=LIMITS, cwd=tree)
    assert compose_prompt("review", atts) == "review\n\n```src/a.py\nprint('a')\n```"
    message = user_message("review", atts, vision=True)
    assert message.content == "review\n\n```src/a.py\nprint('a')\n```"
    assert [(i.mime, i.data) for i in message.images] == [("image/png", png_bytes())]
    assert user_message("review", atts, vision=False).images == ()


def test_a_fence_outlasts_backticks_inside() -> None:
    block = fenced_block("doc.md", "```py\nx\n```\n")
    assert block.startswith("````doc.md\n") and block.endswith("\n````")


def test_an_image_for_an_engine_without_vision_is_one_line(tree: Path) -> None:
    atts = collect(["pic.png", "src/a.py"], limits=LIMITS, cwd=tree)
    check_engine("cloud", atts, vision=True)
    check_engine("local", atts[1:], vision=False)
    with pytest.raises(AttachmentError, match=r"^engine 'local' does not take images \(pic.png\)"):
        check_engine("local", atts, vision=False)


def test_the_hash_names_the_content(tree: Path) -> None:
    (tree / "copy.py").write_text("print('a')\n")
    a, b = collect(["src/a.py", "copy.py"], limits=LIMITS, cwd=tree)
    assert a.sha256 == b.sha256 and len(a.sha256) == 64


def test_history_images_go_only_to_engines_with_vision(tree: Path) -> None:
    from tedchat.conversation import IMAGE_TOKENS_ESTIMATE, build_messages

    atts = collect(["pic.png"], limits=LIMITS, cwd=tree)
    earlier = user_message("what is this?", atts, vision=True)
    seen = build_messages("", [(earlier, "a dot")], "and now?", 10_000, vision=True)
    assert seen.messages[0].images == earlier.images
    blind = build_messages("", [(earlier, "a dot")], "and now?", 10_000, vision=False)
    assert blind.messages[0].images == () and blind.messages[0].content == "what is this?"
    assert seen.estimated_tokens - blind.estimated_tokens == IMAGE_TOKENS_ESTIMATE

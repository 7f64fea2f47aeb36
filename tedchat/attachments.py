"""Files attached to a prompt: read, checked, and turned into what the model is sent.

``ask -f PATH`` and the chat's ``@path`` both end here. :func:`collect` expands what a person
named (a file, a glob, a directory recursed, ``-`` for stdin) into :class:`Attachment` values,
refusing with one line (:class:`~tedchat.errors.AttachmentError`) a missing file, a binary one
named directly, or one over ``[attachments] max_file_bytes`` (all together over
``max_total_bytes``). A directory or a glob skips hidden entries, what a ``.gitignore`` on the
way ignores, and binary files, silently: they were not named one by one.

Text goes to the model as a fenced block whose info string is the path
(:func:`compose_prompt`); an image (recognised by its first bytes, not its name) goes as an
:class:`~tedchat.engine.ImagePart`, and only to an engine declaring ``vision``
(:func:`check_engine`). Pure functions over bytes and paths: no Textual, no history.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from tedchat.engine import ImagePart, Message
from tedchat.errors import AttachmentError

Kind = Literal["text", "image"]

#: Bytes read to decide whether a file is text.
SNIFF_BYTES = 8192

# Magic numbers of the image formats OpenAI-compatible vision servers take.
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Attachment:
    """One attached file: the name it is shown and sent under, what it is, its bytes."""

    name: str
    kind: Kind
    mime: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")

    def block(self) -> str:
        """A text attachment as the model sees it: a fenced block named by its path."""
        return fenced_block(self.name, self.text)


@dataclass(frozen=True)
class Limits:
    """``[attachments]``: the largest file, and the largest total of one message."""

    max_file_bytes: int = 256 * 1024
    max_total_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        a = settings.attachments
        return cls(a.max_file_bytes, a.max_total_bytes)


def image_mime(data: bytes) -> str | None:
    """The image type ``data`` starts like, or None (by magic bytes, never by file name)."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_text(data: bytes) -> bool:
    """True when ``data`` reads as UTF-8 text: no NUL byte and valid UTF-8 in its first
    :data:`SNIFF_BYTES` (a character cut at that edge is allowed)."""
    head = data[:SNIFF_BYTES]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return len(head) == SNIFF_BYTES and exc.start >= SNIFF_BYTES - 4
    return True


def from_bytes(name: str, data: bytes) -> Attachment:
    """An attachment of ``data`` shown as ``name``; :class:`AttachmentError` if it is neither
    an image nor UTF-8 text."""
    mime = image_mime(data)
    if mime is not None:
        return Attachment(name, "image", mime, data)
    if not is_text(data):
        raise AttachmentError(f"{name}: a binary file (not text, not an image): not attached")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttachmentError(f"{name}: not UTF-8 text: not attached") from None
    return Attachment(name, "text", "text/plain", data)


def fenced_block(name: str, text: str) -> str:
    """``text`` in a Markdown fence longer than any backtick run inside it, the info string
    naming the file."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{name}\n{body}{fence}"


def compose_prompt(prompt: str, attachments: Sequence[Attachment]) -> str:
    """The prompt's text as sent: what was typed, then each text attachment's block."""
    blocks = [a.block() for a in attachments if a.kind == "text"]
    if not blocks:
        return prompt
    return "\n\n".join([prompt, *blocks]) if prompt else "\n\n".join(blocks)


def images_of(attachments: Sequence[Attachment]) -> tuple[ImagePart, ...]:
    return tuple(ImagePart(a.mime, a.data) for a in attachments if a.kind == "image")


def user_message(prompt: str, attachments: Sequence[Attachment], *, vision: bool) -> Message:
    """The user message of ``prompt`` with its attachments (images only when ``vision``)."""
    images = images_of(attachments) if vision else ()
    return Message("user", compose_prompt(prompt, attachments), images=images)


def check_engine(engine_name: str, attachments: Sequence[Attachment], *, vision: bool) -> None:
    """Refuse images for an engine that does not declare ``vision`` (before anything is sent)."""
    if vision:
        return
    images = [a.name for a in attachments if a.kind == "image"]
    if images:
        raise AttachmentError(
            f"engine {engine_name!r} does not take images ({images[0]}"
            + (f" and {len(images) - 1} more" if len(images) > 1 else "")
            + "): use an engine that declares vision (an http engine with vision = true)"
        )


def describe(attachment: Attachment, tokens: int) -> str:
    """One line for a person: ``src/x.py (text, 1.2 KB, ~310 tokens)``; ``tokens`` is the
    estimate (:func:`tedchat.conversation.attachment_tokens`)."""
    return f"{attachment.name} ({attachment.kind}, {human_size(attachment.size)}, ~{tokens} tokens)"


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


# --- reading what a person named -----------------------------------------------------------


def collect(
    specs: Sequence[str],
    *,
    limits: Limits,
    cwd: Path | None = None,
    stdin: IO[bytes] | None = None,
) -> list[Attachment]:
    """The attachments ``specs`` name, in order, each file once.

    A spec is ``-`` (stdin, named ``stdin``), a file, a directory (recursed), or a glob
    (``*``, ``?``, ``[...]``; ``**`` crosses folders). Names are relative to ``cwd`` where
    the file is under it. Raises :class:`AttachmentError` for a spec that names nothing, a
    binary or over-size file named directly, or a total over ``limits.max_total_bytes``.
    """
    base = (cwd or Path.cwd()).resolve()
    out: list[Attachment] = []
    seen: set[Path] = set()
    for spec in specs:
        if spec == "-":
            stream = stdin if stdin is not None else _stdin_bytes()
            data = stream.read(limits.max_file_bytes + 1)
            _check_size("stdin", len(data), limits)
            out.append(from_bytes("stdin", data))
            continue
        for path, explicit in _expand(spec, base):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            attachment = _read_file(path, _display_name(path, base), limits, explicit=explicit)
            if attachment is not None:
                out.append(attachment)
    total = sum(a.size for a in out)
    if total > limits.max_total_bytes:
        raise AttachmentError(
            f"attachments total {human_size(total)}, over [attachments] max_total_bytes "
            f"({human_size(limits.max_total_bytes)}): attach fewer files"
        )
    return out


def _stdin_bytes() -> IO[bytes]:
    import sys

    return sys.stdin.buffer


def _display_name(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _check_size(name: str, size: int, limits: Limits) -> None:
    if size > limits.max_file_bytes:
        raise AttachmentError(
            f"{name}: larger than [attachments] max_file_bytes "
            f"({human_size(limits.max_file_bytes)}): not attached"
        )


def _read_file(path: Path, name: str, limits: Limits, *, explicit: bool) -> Attachment | None:
    """The file's attachment; for one found by a directory or glob walk (``explicit`` False)
    None when binary. Too large is refused either way: leaving it out silently would hide it."""
    try:
        size = path.stat().st_size
        _check_size(name, size, limits)
        with path.open("rb") as f:
            data = f.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise AttachmentError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    _check_size(name, len(data), limits)
    if not explicit and image_mime(data) is None and not is_text(data):
        return None
    return from_bytes(name, data)


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _expand(spec: str, base: Path) -> Iterator[tuple[Path, bool]]:
    """(file, named directly) pairs for one spec, sorted within a directory or glob."""
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_file():
        yield path, True
        return
    if path.is_dir():
        found = list(walk(path))
        if not found:
            raise AttachmentError(f"{spec}: no text files in this folder (hidden, ignored)")
        yield from ((p, False) for p in found)
        return
    if _is_glob(spec):
        pattern = str(path)
        matches = sorted(Path(m) for m in globlib.glob(pattern, recursive=True))
        files: list[Path] = []
        for m in matches:
            if m.is_dir():
                files.extend(walk(m))
            elif m.is_file() and not _ignored_on_the_way(m):
                files.append(m)
        if not files:
            raise AttachmentError(f"{spec}: no file matches")
        yield from ((p, False) for p in files)
        return
    raise AttachmentError(f"{spec}: no such file or folder")


def walk(root: Path) -> Iterator[Path]:
    """Files under ``root``, sorted, skipping hidden entries and what ``.gitignore`` files
    (in ``root``, below it, and in its parents up to the repository's top) ignore."""
    ignores = _parent_ignores(root)
    yield from _walk(root, ignores)


@dataclass(frozen=True)
class _Ignore:
    """One ``.gitignore``: its folder and its patterns."""

    folder: Path
    spec: Any  # pathspec.GitIgnoreSpec

    def ignores(self, path: Path, is_dir: bool) -> bool:
        try:
            rel = path.relative_to(self.folder).as_posix()
        except ValueError:
            return False
        return bool(self.spec.match_file(rel + "/" if is_dir else rel))


def _load_ignore(folder: Path) -> _Ignore | None:
    file = folder / ".gitignore"
    if not file.is_file():
        return None
    import pathspec

    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return _Ignore(folder.resolve(), pathspec.GitIgnoreSpec.from_lines(lines))


def _parent_ignores(root: Path) -> list[_Ignore]:
    """The ``.gitignore`` files of ``root``'s parents, up to the folder holding ``.git``."""
    found: list[_Ignore] = []
    for folder in root.resolve().parents:
        ignore = _load_ignore(folder)
        if ignore is not None:
            found.append(ignore)
        if (folder / ".git").exists():
            break
    else:
        return []  # not in a repository: a stray .gitignore above says nothing about this
    return found


def _ignored_on_the_way(path: Path) -> bool:
    """For a glob's match: hidden, or ignored by a ``.gitignore`` of its folders."""
    if path.name.startswith("."):
        return True
    ignores = [i for i in (_load_ignore(path.parent),) if i is not None]
    ignores += _parent_ignores(path.parent)
    return any(i.ignores(path.resolve(), False) for i in ignores)


def _walk(folder: Path, ignores: list[_Ignore]) -> Iterator[Path]:
    own = _load_ignore(folder)
    here = [*ignores, own] if own is not None else ignores
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        is_dir = entry.is_dir(follow_symlinks=False)
        if any(i.ignores(path.resolve(), is_dir) for i in here):
            continue
        if is_dir:
            yield from _walk(path, here)
        elif entry.is_file():
            yield path


# --- @path in a typed prompt ---------------------------------------------------------------

#: ``@`` at the start or after a space or an opening bracket, then a path-like word: an e-mail
#: address (``a@b.c``) or ``x@y`` never starts a mention.
_MENTION = re.compile(r"(?:(?<=^)|(?<=[\s(\[{]))@([^\s@`'\"<>]+)", re.MULTILINE)
_TRAILING = ".,;:!?)]}"


def mentions(text: str, root: Path, picked: Collection[str] = ()) -> list[str]:
    """The ``@path`` words of ``text`` that attach a file, in order, each once, as paths
    relative to ``root``: a path picked from completion (``picked``; a folder too), or an
    existing file under ``root``. Anything else (``@dataclass``, ``@team``) is only text."""
    chosen = {p.rstrip("/") for p in picked}
    out: list[str] = []
    for match in _MENTION.finditer(text):
        word = match.group(1).rstrip(_TRAILING).rstrip("/")
        if not word or word in out:
            continue
        path = _under(root, word)
        if path is None:
            continue
        if path.is_file() or (word in chosen and path.is_dir()):
            out.append(word)
    return out


def _under(root: Path, word: str) -> Path | None:
    """``root/word`` if it stays inside ``root`` (no ``..`` or absolute escape)."""
    base = root.resolve()
    path = (base / word).resolve()
    if path != base and base not in path.parents:
        return None
    return path


def complete(prefix: str, root: Path, limit: int = 20) -> list[str]:
    """Paths under ``root`` starting with ``prefix`` (what follows ``@``), for completion:
    the entries of the folder ``prefix`` names, folders ending in ``/``, sorted, hidden ones
    only when ``prefix``'s last part starts with ``.``."""
    folder_part, _, name_part = prefix.rpartition("/")
    folder = _under(root, folder_part) if folder_part else root.resolve()
    if folder is None or not folder.is_dir():
        return []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    out: list[str] = []
    lead = f"{folder_part}/" if folder_part else ""
    for entry in entries:
        if not entry.name.startswith(name_part):
            continue
        if entry.name.startswith(".") and not name_part.startswith("."):
            continue
        out.append(lead + entry.name + ("/" if entry.is_dir() else ""))
        if len(out) >= limit:
            break
    return out


def mention_at(line: str, column: int) -> tuple[int, str] | None:
    """The ``@word`` being typed at ``column`` of ``line``: (where its ``@`` is, the text after
    it up to the cursor), or None when the cursor is not in one."""
    start = column
    while start > 0 and not line[start - 1].isspace():
        start -= 1
    word = line[start:column]
    if not word.startswith("@") or "@" in word[1:]:
        return None
    return start, word[1:]

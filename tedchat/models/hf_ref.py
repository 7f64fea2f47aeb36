"""``hf:ORG/REPO[:QUANT|:FILE]``: naming one GGUF of a Hugging Face repo, and finding it.

The same rules pick the file among a repo's files on the Hub (``models pull``) and among the
files already pulled (an engine's ``model = "hf:..."``, ``models info``, ``models rm``):

- ``:FILE`` (ends in ``.gguf``): that file, by its exact path in the repo (or file name);
- ``:QUANT`` (e.g. ``Q4_K_M``): the file whose name holds that quantisation, case-insensitive,
  as a whole word (``Q4_K`` does not pick ``Q4_K_M``, ``Q4_XS`` does not pick ``IQ4_XS``);
- neither: ``Q4_K_M`` if the repo has it, else its only GGUF, else the choices are listed and
  the command exits 2.

A split GGUF (``NAME-00001-of-00003.gguf`` …) is one model: it is chosen, fetched, shown and
removed whole, under the name of its first part. Vision projectors (``mmproj*.gguf``) are no
chat model: only ``:FILE`` picks one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tedchat.errors import UsageError

PREFIX = "hf:"
DEFAULT_QUANT = "Q4_K_M"
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf:ORG/REPO[:QUANT|:FILE]``."""

    repo_id: str
    selector: str | None = None

    @property
    def file(self) -> str | None:
        return self.selector if self.selector and _is_gguf(self.selector) else None

    @property
    def quant(self) -> str | None:
        return self.selector if self.selector and not _is_gguf(self.selector) else None

    def __str__(self) -> str:
        return f"{PREFIX}{self.repo_id}" + (f":{self.selector}" if self.selector else "")


def is_ref(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_ref(text: str) -> HfRef:
    """``hf:ORG/REPO[:QUANT|:FILE]`` -> :class:`HfRef`, or a :class:`UsageError`."""
    body = text.removeprefix(PREFIX)
    repo_id, _, selector = body.partition(":")
    if not REPO_ID.fullmatch(repo_id) or (_ and not selector):
        raise UsageError(
            f"not a Hugging Face model name: {text!r}",
            hint="write hf:ORG/REPO, hf:ORG/REPO:QUANT (e.g. :Q4_K_M) or hf:ORG/REPO:FILE.gguf",
        )
    return HfRef(repo_id, selector or None)


def _is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf")


def split_parts(path: str) -> tuple[int, int] | None:
    """(part, of) for a split GGUF's file, else None."""
    m = SPLIT.search(path)
    return (int(m.group(1)), int(m.group(2))) if m else None


def group_models(paths: Iterable[str]) -> dict[str, list[str]]:
    """GGUF paths grouped into models: first part's path -> every part's path, in order.

    A split model whose parts are not all there is left out (it cannot be run or chosen).
    """
    groups: dict[str, list[str]] = {}
    for path in sorted(p for p in paths if _is_gguf(p)):
        parts = split_parts(path)
        if parts is None:
            groups[path] = [path]
            continue
        first = SPLIT.sub(f"-00001-of-{parts[1]:05d}.gguf", path)
        groups.setdefault(first, []).append(path)
    return {first: parts for first, parts in groups.items() if _whole(first, parts)}


def _whole(first: str, parts: list[str]) -> bool:
    split = split_parts(first)
    return split is None or (split[0] == 1 and len(parts) == split[1])


def quant_pattern(quant: str) -> re.Pattern[str]:
    """Matches ``quant`` as a whole word of a file name (``_`` joins words of a quant name)."""
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])", re.IGNORECASE)


def _is_projector(path: str) -> bool:
    return path.rsplit("/", 1)[-1].lower().startswith("mmproj")


class Ambiguous(UsageError):
    """No single GGUF answers the name: the message lists the choices."""


class NoMatch(UsageError):
    """No GGUF answers the name."""


def choose(ref: HfRef, paths: Iterable[str], where: str) -> list[str]:
    """The parts of the one model ``ref`` names among ``paths`` (a repo's or a folder's files).

    Raises :class:`NoMatch` or :class:`Ambiguous` (both exit 2), naming ``where`` and the
    choices.
    """
    groups = group_models(paths)

    def listing(names: Iterable[str]) -> str:
        return ", ".join(names) or "none"

    if ref.file is not None:
        want = ref.file
        for parts in groups.values():
            if want in parts or any(p.rsplit("/", 1)[-1] == want for p in parts):
                return parts
        raise NoMatch(
            f"{ref}: no file {want} in {where}",
            hint=f"GGUF files there: {listing(groups)}",
        )
    if ref.quant is not None:
        pattern = quant_pattern(ref.quant)
        matches = [f for f in groups if pattern.search(f) and not _is_projector(f)]
        if len(matches) == 1:
            return groups[matches[0]]
        if not matches:
            raise NoMatch(
                f"{ref}: no {ref.quant} GGUF in {where}",
                hint=f"GGUF files there: {listing(groups)}",
            )
        raise Ambiguous(
            f"{ref}: {len(matches)} GGUF files in {where} match {ref.quant}",
            hint=f"name one with hf:{ref.repo_id}:FILE: {listing(matches)}",
        )
    pattern = quant_pattern(DEFAULT_QUANT)
    models = [first for first in groups if not _is_projector(first)]
    default = [first for first in models if pattern.search(first)]
    if len(default) == 1:
        return groups[default[0]]
    if len(models) == 1:
        return groups[models[0]]
    if not models:
        raise NoMatch(f"{ref}: no GGUF file in {where}")
    raise Ambiguous(
        f"{ref}: {where} has {len(models)} GGUF files and no single {DEFAULT_QUANT}: say which",
        hint=f"add :QUANT or :FILE to the name; choices: {listing(models)}",
    )


def local_files(folder: Path) -> list[str]:
    """The GGUF files under ``folder``, as paths relative to it."""
    if not folder.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.gguf") if p.is_file())


def split_siblings(path: Path) -> list[Path]:
    """Every part of the split GGUF whose first part is ``path`` (just ``[path]`` otherwise)."""
    parts = split_parts(path.name)
    if parts is None or parts[0] != 1:
        return [path]
    return [
        path.with_name(SPLIT.sub(f"-{i:05d}-of-{parts[1]:05d}.gguf", path.name))
        for i in range(1, parts[1] + 1)
    ]

"""The GGUF files on this machine: finding one by any of its names, its facts, removing it.

The names ``models info``, ``models rm`` and an engine's ``model`` setting accept:

- a registry name (``smollm2``, ``qwen2.5-1.5b``);
- ``hf:ORG/REPO[:QUANT|:FILE]`` (:mod:`tedchat.models.hf_ref`), found among pulled files only;
- a path to a GGUF file.

Facts come from the header (:mod:`tedchat.models.gguf_header`): no weights are read, the
vocabulary is stepped over.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tedchat.errors import ModelNotFoundError, UsageError
from tedchat.models.gguf_header import GGUFInfo, read_gguf_header
from tedchat.models.hf_ref import group_models, is_ref, parse_ref, split_siblings
from tedchat.models.registry import (
    REGISTRY,
    ModelEntry,
    entry_path,
    models_dir,
    pulled_parts,
    resolve_model,
)


@dataclass(frozen=True)
class LocalModel:
    """A model file present here (every part of a split one)."""

    name: str
    paths: tuple[Path, ...]
    entry: ModelEntry | None = None

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


def find(name: str) -> LocalModel:
    """The present model a name means, or the error saying how to get it (nothing downloads)."""
    entry = REGISTRY.get(name)
    if is_ref(name):
        return LocalModel(name, tuple(pulled_parts(parse_ref(name))))
    path = resolve_model(name)  # registry names and paths; the error says how to get it
    parts = split_siblings(path)
    missing = [p for p in parts if not p.is_file()]
    if missing:
        raise ModelNotFoundError(f"split model {path.name} is missing part {missing[0].name}")
    return LocalModel(name, tuple(parts), entry)


def header_facts(model: LocalModel) -> tuple[GGUFInfo, dict[str, Any]]:
    """The first part's header and the model's facts (parameters summed over every part)."""
    first, *rest = model.paths
    infos = [read_gguf_header(first)]
    infos += [read_gguf_header(p, require_architecture=False) for p in rest]
    info = infos[0]
    template = info.chat_template
    facts: dict[str, Any] = {
        "name": model.name,
        "path": str(model.paths[0]),
        "parts": len(model.paths),
        "size_bytes": model.size_bytes,
        "architecture": info.architecture,
        "name_in_file": info.metadata.get("general.name"),
        "parameters": sum(i.parameter_count for i in infos),
        "quantization": info.quantization,
        "context_length": info.context_length,
        "layers": info.layers,
        "vocab_size": info.vocab_size,
        "chat_template": template is not None,
        "template_supports_tools": info.template_supports_tools,
        "license": (model.entry.license if model.entry else None)
        or info.metadata.get("general.license"),
        "header_bytes_read": sum(i.bytes_read for i in infos),
    }
    return info, facts


def present_models() -> list[LocalModel]:
    """Every GGUF here: registry models that are present, then pulled and converted files."""
    out: list[LocalModel] = []
    seen: set[Path] = set()
    for entry in REGISTRY.values():
        path = entry_path(entry)
        if path.is_file():
            parts = tuple(split_siblings(path))
            if all(p.is_file() for p in parts):
                out.append(LocalModel(entry.name, parts, entry))
                seen.update(parts)
    root = models_dir()
    hub = root / "hf"
    if hub.is_dir():
        for folder in sorted(hub.iterdir()):
            if not folder.is_dir() or folder.name.endswith(".partial") or "--" not in folder.name:
                continue
            repo_id = folder.name.replace("--", "/", 1)
            files = sorted(
                p.relative_to(folder).as_posix()
                for p in folder.rglob("*.gguf")
                if p.is_file() and not p.relative_to(folder).as_posix().startswith(".")
            )
            for first, names in group_models(files).items():
                found = tuple(folder / n for n in names)
                if found[0] not in seen:
                    out.append(LocalModel(f"hf:{repo_id}:{first}", found))
                    seen.update(found)
    if root.is_dir():
        for path in sorted(root.glob("*.gguf")):
            if path not in seen and path.is_file():
                out.append(LocalModel(str(path), (path,)))
    return out


def remove(name: str) -> LocalModel:
    """Delete a pulled or converted model's files (every part); the registry entry stays.

    Only files under tedchat's models folder are removed: a bundled model belongs to its
    package, a path elsewhere to whoever put it there.
    """
    model = find(name)
    root = models_dir().resolve()
    for path in model.paths:
        if not path.resolve().is_relative_to(root):
            if model.entry is not None and model.entry.package:
                raise UsageError(
                    f"{name} is bundled with the {model.entry.package} package, not "
                    "downloaded: nothing to remove",
                    hint=f"pip uninstall {model.entry.package.replace('_', '-')}",
                )
            raise UsageError(
                f"{path} is not in tedchat's models folder ({root}): not removing it",
                hint="delete it yourself if you mean to",
            )
    for path in model.paths:
        path.unlink()
    folder = model.paths[0].parent
    while folder != root and folder.is_relative_to(root) and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
    staging = model.paths[0].parent.with_name(model.paths[0].parent.name + ".partial")
    if model.paths[0].parent.parent == root / "hf" and staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)
    return model

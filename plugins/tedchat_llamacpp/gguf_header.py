"""Check a GGUF file before llama.cpp opens it.

llama.cpp trusts its input: a truncated download, a file that is not GGUF, or a model of an
architecture this build does not know can end in an abort or a crash instead of an error. So
the header is read first by tedchat's GGUF header reader (:mod:`tedchat.models.gguf_header`:
the magic and version, counts that fit, every key/value and tensor-info entry inside the file,
the tensor data as long as the last tensor's end), and this module adds what is llama.cpp's
own: ``general.architecture`` must be one of :data:`SUPPORTED_ARCHITECTURES`. Anything wrong is
one :class:`~tedchat.errors.ModelFormatError` line. :func:`check_memory` refuses a model
that would not fit in memory (engine setting ``force = true`` skips it).
"""

from __future__ import annotations

from pathlib import Path

from tedchat.errors import ModelFormatError
from tedchat.models.gguf_header import GGUFInfo
from tedchat.models.gguf_header import read_gguf_header as read_any_gguf_header
from tedchat.models.hf_ref import split_siblings
from tedchat.models.memory import check_fits

__all__ = ["SUPPORTED_ARCHITECTURES", "GGUFInfo", "check_memory", "read_gguf_header"]

# Architectures (general.architecture) of decoder models this project's llama.cpp build runs
# (llama-cpp-python 0.3.36). Keep it to ones known to work; extend it when a new one is tried.
SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "llama",
    "llama4",
    "mistral3",
    "qwen2",
    "qwen2moe",
    "qwen3",
    "qwen3moe",
    "gemma",
    "gemma2",
    "gemma3",
    "phi2",
    "phi3",
    "starcoder2",
    "falcon",
    "gpt2",
    "gptneox",
    "mpt",
    "bloom",
    "stablelm",
    "olmo",
    "olmo2",
    "granite",
    "granitemoe",
    "deepseek",
    "deepseek2",
    "command-r",
    "cohere2",
    "internlm2",
    "minicpm",
    "exaone",
    "chatglm",
    "glm4",
    "smollm3",
    "gpt-oss",
)


def read_gguf_header(path: Path) -> GGUFInfo:
    """Parse and check ``path``'s GGUF header for llama.cpp; one error line says what is wrong."""
    info = read_any_gguf_header(path)
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise ModelFormatError(
            f"unsupported model architecture {info.architecture!r} in {path}; llama.cpp here "
            "runs: " + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    return info


def _parts(info: GGUFInfo) -> list[GGUFInfo]:
    parts = [info]
    for sibling in split_siblings(info.path)[1:]:
        parts.append(read_any_gguf_header(sibling, require_architecture=False))
    return parts


def check_memory(
    info: GGUFInfo,
    n_ctx: int,
    setting: str,
    *,
    logits_all: bool = False,
    draft: GGUFInfo | None = None,
) -> None:
    """Refuse, before llama.cpp loads it, a model (all parts of a split one) whose weights and
    ``n_ctx``-token KV cache exceed the available memory (:mod:`tedchat.models.memory`), with
    the logits of every position (``logits_all``) and a ``draft`` model for speculation."""
    check_fits(
        _parts(info),
        n_ctx,
        setting=setting,
        logits_all=logits_all,
        draft=_parts(draft) if draft is not None else (),
    )

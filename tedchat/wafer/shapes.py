"""Model shapes as data: the sizes placement and timing need, without any weights.

A :class:`ModelShape` describes a Llama-architecture decoder (RMSNorm, grouped-query attention,
SwiGLU MLP, tied or separate output head). Presets come from the models' published configs
(``docs/hardware.md``); :func:`shape_from_gguf` reads the same numbers from a GGUF's
metadata without loading a tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from tedchat.errors import GGUFShapeError, WaferModelError

#: KV-cache entries are kept in 16-bit whatever the weight precision: activations are 16-bit on
#: both the wafer and the GPUs modelled here.
KV_BYTES_PER_VALUE = 2

_PRECISION_ALIASES: Mapping[str, int] = MappingProxyType(
    {
        "16": 16,
        "16-bit": 16,
        "16bit": 16,
        "bf16": 16,
        "fp16": 16,
        "f16": 16,
        "8": 8,
        "8-bit": 8,
        "8bit": 8,
        "int8": 8,
        "fp8": 8,
        "q8": 8,
        "q8_0": 8,
    }
)


def bytes_per_weight(precision: int | str) -> int:
    """Bytes one weight takes at ``precision`` (16-bit = 2, 8-bit = 1).

    Accepts 16 / 8 or a name such as ``"bf16"``, ``"fp16"``, ``"int8"``, ``"8-bit"``.

    Raises:
        ValueError: for any other precision.
    """
    key = str(precision).strip().lower()
    bits = _PRECISION_ALIASES.get(key)
    if bits is None:
        raise ValueError(f"unsupported precision {precision!r}: use 16 (bf16/fp16) or 8 (int8)")
    return bits // 8


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a Llama-architecture model.

    ``head_dim`` defaults to ``hidden // heads``; ``context`` is the model's maximum context.
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    tied: bool
    head_dim: int = 0
    context: int = 8192

    def __post_init__(self) -> None:
        for attr in ("layers", "hidden", "heads", "kv_heads", "ffn", "vocab", "context"):
            if getattr(self, attr) <= 0:
                raise ValueError(f"model shape {self.name!r}: {attr} must be positive")
        if self.heads % self.kv_heads:
            raise ValueError(f"model shape {self.name!r}: heads must be a multiple of kv_heads")
        if self.head_dim <= 0:
            # Frozen dataclass: set the derived default through object.__setattr__.
            object.__setattr__(self, "head_dim", self.hidden // self.heads)

    # --- parameter counts ---------------------------------------------------------------------

    @property
    def q_dim(self) -> int:
        """Width of the query projection (heads x head_dim)."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of each of the key and value projections (kv_heads x head_dim)."""
        return self.kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        """Weights of one decoder block: Q, K, V, O, gate, up, down and two RMSNorms."""
        attention = self.hidden * (2 * self.q_dim + 2 * self.kv_dim)
        mlp = 3 * self.hidden * self.ffn
        return attention + mlp + 2 * self.hidden

    @property
    def embedding_params(self) -> int:
        """Weights of the token-embedding table."""
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        """Weights the output head multiplies by: the vocab projection plus the final norm.

        For a tied model the projection is the embedding matrix; it is counted here too because
        the head needs it where it runs (see :meth:`model_params` for the deduplicated count).
        """
        return self.vocab * self.hidden + self.hidden

    @property
    def model_params(self) -> int:
        """Distinct weights of the model (a tied matrix counted once)."""
        head = self.hidden if self.tied else self.head_params
        return self.layers * self.layer_params + self.embedding_params + head

    # --- bytes ---------------------------------------------------------------------------------

    def layer_weight_bytes(self, precision: int | str = 16) -> int:
        """Bytes of one decoder block's weights at ``precision``."""
        return self.layer_params * bytes_per_weight(precision)

    def embedding_bytes(self, precision: int | str = 16) -> int:
        """Bytes of the token-embedding table at ``precision``."""
        return self.embedding_params * bytes_per_weight(precision)

    def head_bytes(self, precision: int | str = 16) -> int:
        """Bytes of the output head (vocab projection + final norm) at ``precision``."""
        return self.head_params * bytes_per_weight(precision)

    def weight_bytes(self, precision: int | str = 16) -> int:
        """Bytes of all distinct weights (the model's size) at ``precision``."""
        return self.model_params * bytes_per_weight(precision)

    @property
    def kv_bytes_per_token_per_layer(self) -> int:
        """KV-cache bytes one token adds to one layer (keys + values, 16-bit)."""
        return 2 * self.kv_dim * KV_BYTES_PER_VALUE

    def kv_bytes(self, context: int, sequences: int = 1) -> int:
        """KV-cache bytes of all layers for ``sequences`` sequences of ``context`` tokens."""
        return self.layers * self.kv_bytes_per_token_per_layer * context * sequences

    @property
    def activation_bytes(self) -> int:
        """Bytes of one token's hidden state in 16-bit: what crosses between systems."""
        return self.hidden * 2

    # --- FLOPs ---------------------------------------------------------------------------------

    def layer_flops(self, context_len: int) -> int:
        """FLOPs of one token through one block attending to ``context_len`` positions.

        Two FLOPs per weight for the matrix products, plus QK^T and softmax x V over the
        context (2 x 2 x q_dim per position).
        """
        matmul = 2 * (self.layer_params - 2 * self.hidden)
        attention = 4 * self.q_dim * max(context_len, 1)
        return matmul + attention

    @property
    def head_flops(self) -> int:
        """FLOPs of one token's logits (the vocab projection)."""
        return 2 * self.vocab * self.hidden

    def flops_per_token(self, context_len: int) -> int:
        """FLOPs of one token through the whole model (embedding lookup costs none)."""
        return self.layers * self.layer_flops(context_len) + self.head_flops


#: Presets from the models' published configs (docs/hardware.md's table).
PRESETS: Mapping[str, ModelShape] = MappingProxyType(
    {
        "smollm2": ModelShape(
            "smollm2",
            layers=30,
            hidden=576,
            heads=9,
            kv_heads=3,
            ffn=1536,
            vocab=49152,
            tied=True,
            context=8192,
        ),
        "tedllm": ModelShape(
            "tedllm",
            layers=32,
            hidden=4096,
            heads=32,
            kv_heads=8,
            ffn=14336,
            vocab=141056,
            tied=False,
            context=8192,
        ),
        "llama-3.1-8b": ModelShape(
            "llama-3.1-8b",
            layers=32,
            hidden=4096,
            heads=32,
            kv_heads=8,
            ffn=14336,
            vocab=128256,
            tied=False,
            context=131072,
        ),
        "llama-3.1-70b": ModelShape(
            "llama-3.1-70b",
            layers=80,
            hidden=8192,
            heads=64,
            kv_heads=8,
            ffn=28672,
            vocab=128256,
            tied=False,
            context=131072,
        ),
        "llama-3.1-405b": ModelShape(
            "llama-3.1-405b",
            layers=126,
            hidden=16384,
            heads=128,
            kv_heads=8,
            ffn=53248,
            vocab=128256,
            tied=False,
            context=131072,
        ),
    }
)


def get_shape(name: str) -> ModelShape:
    """The preset called ``name`` (case-insensitive).

    Raises:
        KeyError: with the list of known presets.
    """
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise KeyError(
            f"unknown model preset {name!r}: choose one of {', '.join(PRESETS)}"
        ) from None


def shape_from_gguf(path: str | Path) -> ModelShape:
    """A llama-architecture GGUF's shape, from its metadata only (no tensor data is loaded).

    The file is read by :func:`tedchat.wafer.gguf_weights.read_config`, the one GGUF reader
    of the wafer engine, so a truncated or foreign file gets the same clear error here as when
    the engine loads it.

    Raises:
        GGUFShapeError: (a ``ValueError``) if the file cannot be read or is not a llama model.
    """
    from tedchat.wafer.gguf_weights import read_config

    path = Path(path)
    try:
        config = read_config(path)
    except WaferModelError as exc:
        raise GGUFShapeError(exc.message, hint=exc.hint) from exc
    try:
        return ModelShape(
            name=config.name or path.stem,
            layers=config.n_layers,
            hidden=config.hidden,
            heads=config.n_heads,
            kv_heads=config.n_kv_heads,
            ffn=config.ffn,
            vocab=config.vocab,
            tied=config.tied_output,
            head_dim=config.head_dim,
            context=config.context_length or 8192,
        )
    except ValueError as exc:
        raise GGUFShapeError(f"{path.name}: inconsistent llama metadata: {exc}") from exc

"""Pipeline stages: one per emulated system, each owning its layers' weights and KV caches.

A :class:`Stage` holds a contiguous range of decoder layers (the first stage also the token
embeddings, the last the final norm and output head), and for every sequence in flight the KV
cache of exactly those layers. A token's activations flow stage to stage through
:meth:`Pipeline.run`; nothing but activations crosses between stages, as on the hardware, where
weights stay SRAM-resident and only ``hidden x 2`` bytes per token cross the links.

The virtual clock is not here: :mod:`tedchat.wafer.pipeline_sim` schedules the same steps in
emulated time, and the engine records both.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tedchat.errors import ContextFullError
from tedchat.wafer.numerics import KVCache, Layer, Model


@dataclass
class Stage:
    """One system's share of the model: layers ``first..last`` and their per-sequence KV."""

    index: int
    layers: list[Layer]
    model: Model
    context: int
    holds_embeddings: bool = False
    holds_head: bool = False
    caches: dict[Hashable, KVCache] = field(default_factory=dict)

    @property
    def layer_range(self) -> tuple[int, int]:
        return self.layers[0].index, self.layers[-1].index

    def open(self, seq_id: Hashable) -> None:
        """Reserve this stage's KV cache for a new sequence."""
        self.caches[seq_id] = self.model.new_cache(
            self.context, layers=[layer.index for layer in self.layers]
        )

    def close(self, seq_id: Hashable) -> None:
        self.caches.pop(seq_id, None)

    def forward(
        self,
        seq_id: Hashable,
        h: np.ndarray,
        start: int,
        on_layer: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Run this stage's layers on activations ``h`` at positions from ``start``
        (``on_layer(stage, layer)`` is told as each layer begins)."""
        cache = self.caches[seq_id]
        for layer in self.layers:
            if on_layer is not None:
                on_layer(self.index, layer.index)
            h = layer.forward(h, cache, start)
        return h

    def forward_batch(
        self,
        seq_ids: Sequence[Hashable],
        h: np.ndarray,
        positions: Sequence[int],
        on_layer: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """One new token of each sequence (row b of ``h`` at ``positions[b]``) through this
        stage's layers, the weights streamed once for all the rows."""
        caches = [self.caches[s] for s in seq_ids]
        for layer in self.layers:
            if on_layer is not None:
                on_layer(self.index, layer.index)
            h = layer.forward_batch(h, caches, positions)
        return h


class Pipeline:
    """The model split into stages; :meth:`run` moves one sequence-step through all of them."""

    def __init__(self, model: Model, layer_ranges: Sequence[tuple[int, int]], context: int):
        if not layer_ranges:
            raise ValueError("a pipeline needs at least one stage")
        self.model = model
        self.context = min(context, model.context)
        last = len(layer_ranges) - 1
        self.stages = [
            Stage(
                index=i,
                layers=model.layers[first : stop + 1],
                model=model,
                context=self.context,
                holds_embeddings=i == 0,
                holds_head=i == last,
            )
            for i, (first, stop) in enumerate(layer_ranges)
        ]
        self.positions: dict[Hashable, int] = {}
        #: (stage, layer) the host is computing now, None between steps: what a floorplan
        #: highlights. Read from other threads; a tuple is replaced whole, never mutated.
        self.active: tuple[int, int] | None = None

    @staticmethod
    def split(n_layers: int, n_stages: int) -> list[tuple[int, int]]:
        """Contiguous, balanced layer ranges for ``n_stages`` stages."""
        n_stages = max(1, min(n_stages, n_layers))
        bounds = [round(i * n_layers / n_stages) for i in range(n_stages + 1)]
        return [(bounds[i], bounds[i + 1] - 1) for i in range(n_stages)]

    def open(self, seq_id: Hashable) -> None:
        for stage in self.stages:
            stage.open(seq_id)
        self.positions[seq_id] = 0

    def close(self, seq_id: Hashable) -> None:
        for stage in self.stages:
            stage.close(seq_id)
        self.positions.pop(seq_id, None)

    def run(
        self,
        seq_id: Hashable,
        token_ids: Sequence[int],
        chunk: int = 256,
        *,
        all_logits: bool = False,
    ) -> np.ndarray:
        """Append ``token_ids`` to the sequence; return the last position's logits ``[vocab]``,
        or with ``all_logits`` every position's ``[T, vocab]`` (a speculative verify).

        A prompt runs in chunks, each chunk's activations passing every stage in turn.
        """
        ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        start = self.positions[seq_id]
        if start + ids.size > self.context:
            raise ContextFullError(
                f"context full: {start + ids.size} positions exceed the context of "
                f"{self.context} tokens"
            )
        h = None
        outs = []
        try:
            for c0 in range(0, ids.size, chunk):
                h = self.model.embed(ids[c0 : c0 + chunk])  # stage 0 holds the embeddings
                for stage in self.stages:
                    h = stage.forward(seq_id, h, start + c0, self._at)
                if all_logits:
                    outs.append(self.model.final_norm_and_logits(h))
        finally:
            self.active = None
        self.positions[seq_id] = start + ids.size
        assert h is not None
        if all_logits:
            return np.concatenate(outs, axis=0)
        return self.model.final_norm_and_logits(h[-1:])[0]  # the last stage holds the head

    def run_batch(self, seq_ids: Sequence[Hashable], token_ids: Sequence[int]) -> np.ndarray:
        """Append one token to each sequence in one pass; return logits ``[B, vocab]``.

        Row b's logits equal what :meth:`run` gives that sequence alone, bit for bit (the
        numerics are row-invariant), so batching changes the host's work, never a result.
        """
        if len(seq_ids) != len(token_ids) or len(set(seq_ids)) != len(seq_ids):
            raise ValueError("one token for each of distinct sequences")
        positions = [self.positions[s] for s in seq_ids]
        for p in positions:
            if p + 1 > self.context:
                raise ContextFullError(
                    f"context full: {p + 1} positions exceed the context of {self.context} tokens"
                )
        try:
            h = self.model.embed(token_ids)
            for stage in self.stages:
                h = stage.forward_batch(seq_ids, h, positions, self._at)
        finally:
            self.active = None
        for s, p in zip(seq_ids, positions, strict=True):
            self.positions[s] = p + 1
        return self.model.final_norm_and_logits(h)

    def truncate(self, seq_id: Hashable, n: int) -> None:
        """Keep the sequence's first ``n`` positions in every stage (drop rejected drafts)."""
        for stage in self.stages:
            stage.caches[seq_id].truncate(n)
        self.positions[seq_id] = min(self.positions[seq_id], n)

    def _at(self, stage: int, layer: int) -> None:
        self.active = (stage, layer)

    def context_len(self, seq_id: Hashable) -> int:
        return self.positions[seq_id]

"""Choosing the next token from logits: greedy, temperature, top-k and top-p, seeded.

Order as in Hugging Face transformers and vLLM: divide by the temperature, keep the top-k,
then the smallest set whose probability reaches top-p, and draw. Stop strings are the
caller's business. Everything stays float32.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

# Candidates examined before falling back to a full sort for top-p: the nucleus almost always
# lies inside the few hundred most likely tokens, and argpartition is much cheaper than argsort.
_TOP_P_PROBE = 256


class Sampler:
    """Picks tokens from logits; one sampler per generated reply (it owns the RNG).

    ``temperature`` <= 0 is greedy (argmax). ``top_k`` <= 0 and ``top_p`` >= 1 disable those
    filters. ``seed`` makes the draws reproducible; None seeds from the OS.
    """

    def __init__(
        self,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
    ) -> None:
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0.0 < top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)
        self.rng = np.random.default_rng(seed)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def __call__(self, logits: np.ndarray) -> int:
        return self.sample(logits)

    def sample(self, logits: np.ndarray) -> int:
        """The next token id for one position's logits ``[vocab]``."""
        logits = np.asarray(logits, dtype=F32).reshape(-1)
        if self.greedy:
            return int(np.argmax(logits))
        ids, probs = self.distribution(logits)
        cdf = np.cumsum(probs, dtype=F32)
        u = self.rng.random(dtype=F32) * cdf[-1]
        k = int(np.searchsorted(cdf, u, side="right"))
        return int(ids[min(k, ids.size - 1)])

    def distribution(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate ids and their renormalised float32 probabilities after the filters.

        With top-p the candidates come most likely first.
        """
        z = np.asarray(logits, dtype=F32).reshape(-1) / F32(max(self.temperature, 1e-6))
        n = z.size
        if 0 < self.top_k < n:
            ids = np.argpartition(z, n - self.top_k)[n - self.top_k :]
            z = z[ids]
        else:
            ids = np.arange(n)
        w = np.exp(z - np.max(z))
        total = np.sum(w, dtype=F32)
        if self.top_p < 1.0:
            m = w.size
            probe = min(m, _TOP_P_PROBE)
            top = np.argpartition(w, m - probe)[m - probe :] if probe < m else np.arange(m)
            # The probe holds the nucleus only if it already reaches top_p of the mass.
            if probe < m and np.sum(w[top], dtype=F32) < F32(self.top_p) * total:
                top = np.arange(m)
            order = top[np.argsort(w[top])[::-1]]
            cdf = np.cumsum(w[order], dtype=F32) / total
            keep = min(int(np.searchsorted(cdf, F32(self.top_p), side="left")) + 1, order.size)
            order = order[:keep]
            ids, w = ids[order], w[order]
            total = np.sum(w, dtype=F32)
        return ids, w / total

"""The gauges of a request: how full the context is, and what a reply cost.

- :func:`measure_context` counts the prompt of the whole conversation (before trimming) with the
  engine's own tokenizer and chat template where it declares ``prompt_tokens``
  (:class:`~tedchat.engine.PromptTokenCounter`), else estimates it at characters / 4 (shown
  with ``~``), against the engine's context size (else ``[ui] context_tokens``, shown with
  ``?``), and says how many of the oldest exchanges trimming leaves out.
- :func:`reply_cost` turns an engine's ``price_input_per_mtok`` / ``price_output_per_mtok``
  (USD per million tokens) and a reply's token counts into a :class:`Cost`; engines without
  prices have no cost, and nothing shows one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tedchat.conversation import IMAGE_TOKENS_ESTIMATE, MESSAGE_OVERHEAD_TOKENS, estimate_tokens
from tedchat.engine import (
    Engine,
    GenerationParams,
    Message,
    ToolSpec,
    as_prompt_token_counter,
    capabilities_of,
)

#: The per-engine price settings every engine type takes, USD per million tokens (0: none).
PRICE_SETTINGS: dict[str, float] = {"price_input_per_mtok": 0.0, "price_output_per_mtok": 0.0}


@dataclass(frozen=True)
class ContextGauge:
    """Context used by the next request's prompt (before trimming) / the context size."""

    used: int
    size: int
    exact: bool  # counted by the engine's tokenizer (else estimated: ``~``)
    size_known: bool  # the engine declared its context size (else ``[ui] context_tokens``)
    dropped_exchanges: int = 0  # the oldest exchanges trimming leaves out of the request

    def text(self) -> str:
        """``ctx 1,234/4,096``, ``~`` when estimated, ``?`` after an assumed size, plus what
        trimming drops."""
        approx = "" if self.exact else "~"
        size = f"{self.size:,}" + ("" if self.size_known else "?")
        line = f"ctx {approx}{self.used:,}/{size}"
        if self.dropped_exchanges:
            n = self.dropped_exchanges
            line += f" · trims {n} oldest exchange{'s' if n != 1 else ''}"
        return line


def estimated_prompt_tokens(messages: Sequence[Message]) -> int:
    """The characters / 4 estimate of a prompt (per-message overhead included)."""
    return sum(
        estimate_tokens(m.content)
        + sum(estimate_tokens(c.name + c.arguments) for c in m.tool_calls)
        + len(m.images) * IMAGE_TOKENS_ESTIMATE
        + MESSAGE_OVERHEAD_TOKENS
        for m in messages
    )


async def measure_context(
    engine: Engine,
    untrimmed: Sequence[Message],
    params: GenerationParams,
    context: tuple[int, bool],
    *,
    dropped_exchanges: int = 0,
    tools: Sequence[ToolSpec] = (),
) -> ContextGauge:
    """The gauge for a request: ``untrimmed`` is the whole conversation's messages,
    ``context`` (size, declared) from :func:`~tedchat.conversation.engine_context_tokens`,
    ``dropped_exchanges`` what trimming leaves out, ``tools`` the specs offered."""
    size, known = context
    used: int | None = None
    if capabilities_of(engine).prompt_tokens:
        try:
            used = await as_prompt_token_counter(engine).count_prompt_tokens(
                untrimmed, replace(params, tools=tuple(tools))
            )
        except Exception:  # a gauge never stops a request: it estimates instead
            used = None  # the request itself will say what is wrong, if anything is
    exact = used is not None
    if used is None:
        used = estimated_prompt_tokens(untrimmed)
    return ContextGauge(used, size, exact, known, dropped_exchanges)


@dataclass(frozen=True)
class Prices:
    """An engine's prices in USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Cost:
    """What one reply cost, in USD."""

    input: float
    output: float

    @property
    def total(self) -> float:
        return self.input + self.output

    def as_dict(self) -> dict[str, float]:
        """``{"input", "output", "total"}``, as ``ask --json`` and bench records hold it."""
        return {
            "input": round(self.input, 8),
            "output": round(self.output, 8),
            "total": round(self.total, 8),
        }

    def text(self) -> str:
        """``$0.0012`` (enough digits for a cheap reply)."""
        return format_usd(self.total)


def format_usd(amount: float) -> str:
    """``$1.25``, ``$0.0123``, ``$0.000051``: cents for dollars, more digits below a cent."""
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount >= 0.01:
        return f"${amount:.4f}"
    return f"${amount:.6f}"


def prices_of(settings: Mapping[str, Any]) -> Prices | None:
    """The prices in an engine's resolved settings; None when neither is set (above 0)."""
    inp = float(settings.get("price_input_per_mtok") or 0.0)
    out = float(settings.get("price_output_per_mtok") or 0.0)
    if inp <= 0 and out <= 0:
        return None
    return Prices(inp, out)


def reply_cost(
    prices: Prices | None, prompt_tokens: int | None, output_tokens: int | None
) -> Cost | None:
    """The cost of a reply with these counts; None without prices."""
    if prices is None:
        return None
    return Cost(
        (prompt_tokens or 0) * prices.input_per_mtok / 1e6,
        (output_tokens or 0) * prices.output_per_mtok / 1e6,
    )

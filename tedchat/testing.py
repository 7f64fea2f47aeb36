"""The engine contract suite: hold any engine, shipped or third-party, to the rules of
:mod:`tedchat.engine`.

A plugin author runs it on their engine from a test::

    from tedchat.testing import check_engine

    async def test_my_engine_meets_the_contract():
        report = await check_engine(
            lambda secret: MyEngine("mine", {"api_key": secret}, tedchat.Runtime(threads=1)),
            failing_factory=lambda secret: MyEngine("mine", {"api_key": secret, "fail": True}, ...),
        )
        report.raise_for_failures()

or, outside an event loop, ``assert_meets_contract(factory, ...)``. Each rule below ends
*passed*, *failed* (the message starts with ``[rule]``) or *not covered* (the suite could not
judge it, e.g. no ``failing_factory``: never counted as passed).

``factory(secret)`` builds a fresh engine; ``secret`` is a string the suite plants: put it
where the engine keeps credentials (an API key setting, a secret header, an environment
variable its settings name). An engine with no credentials ignores it, and the secrets rule is
then not covered. ``failing_factory(secret)`` builds an engine that fails partway through an
answer, after some text (e.g. a server that breaks the stream).

The rules (:data:`RULES`):

``declaration``
    Every :class:`~tedchat.engine.Engine` member is there; ``capabilities`` is a
    :class:`~tedchat.engine.Capabilities` whose declared features have their members and whose
    undeclared ones have none; ``stream()`` returns an async generator; ``describe()`` a dict.
``one-done``
    Every answer ends with exactly one :class:`~tedchat.engine.Done`, the last event, with a
    finish reason from :data:`~tedchat.engine.FINISH_REASONS`; every event is an ``Event``.
``cancel``
    ``aclose()`` after a few text deltas returns within ``idle_timeout_s``, nothing is delivered
    after it, and the engine is idle within ``idle_timeout_s``. *Idle* is observed two ways:
    this process's CPU use falls (below a third of what it was while the answer streamed, or
    below 5% of a core) for half a second, so no worker of the engine computes on;
    and a new request on the same engine answers in full within ``idle_timeout_s`` plus twice
    the time a request took before, so nothing abandoned holds the engine.
``errors``
    The failing engine's stream delivers its text, then raises an
    :class:`~tedchat.errors.EngineError` with a message (not another exception, not a quiet
    ``Done``): the partial text is the caller's to keep.
``secrets``
    The planted secret appears nowhere a person or a record sees: ``describe()`` (its repr and
    its JSON, before and after loading and answering), ``status()``'s detail, notices and the
    failing engine's error message.
``counts``
    Token counts are non-negative, ``Usage.output_tokens`` is at least the tokens the text
    deltas said they carry, neither exceeds ``max_tokens``; every timing figure (server,
    engine, emulated) is finite and non-negative, an emulated end no earlier than its arrival.
``concurrency``
    Two streams on one engine at once (different prompts and seeds, temperature 0) each give
    the same answer, in the same order, as that request alone: streams do not mix.
``tools``
    An engine that declares ``tools``, offered one tool (an enum parameter) and told to call
    it (``tool_choice`` its name), streams :class:`~tedchat.engine.ToolCallDelta` pieces that
    make one call: the first piece has an ``id`` and the tool's name, no later piece names
    another, the arguments joined are a JSON object valid against the tool's schema, and the
    stream ends ``Done("tool_calls")``. Not covered for an engine that does not declare tools.
"""

from __future__ import annotations

import asyncio
import collections.abc
import json
import math
import os
import secrets as _secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tedchat.engine import (
    FINISH_REASONS,
    Done,
    EmulatedTimings,
    Engine,
    Event,
    GenerationParams,
    Message,
    Notice,
    ReasoningDelta,
    TextDelta,
    Timings,
    ToolCallDelta,
    ToolSpec,
    Usage,
    capabilities_of,
    declaration_problems,
)
from tedchat.errors import EngineError

RULES: tuple[str, ...] = (
    "declaration",
    "one-done",
    "cancel",
    "errors",
    "secrets",
    "counts",
    "concurrency",
    "tools",
)
Status = Literal["passed", "failed", "not covered"]
#: ``factory(secret) -> Engine``: a fresh engine, with ``secret`` planted where it keeps
#: credentials (see the module docstring).
EngineFactory = Callable[[str], Engine]

PROMPTS: tuple[str, str] = ("Name three colours.", "What is two plus two?")
CANCEL_PROMPT = (
    "Count from 1 to 200, one number per line, and then write a long story about a lighthouse."
)
_EVENT_TYPES = (
    TextDelta,
    ReasoningDelta,
    ToolCallDelta,
    Usage,
    Timings,
    EmulatedTimings,
    Notice,
    Done,
)
#: The tool the ``tools`` rule tells the engine to call, and what it asks.
TOOL = ToolSpec(
    "pick_colour",
    "Pick one colour for the user.",
    {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
    },
)
TOOL_PROMPT = "Pick a colour for my bicycle."


@dataclass(frozen=True)
class RuleResult:
    """How one rule went. ``detail`` says why (for a failure it starts with ``[rule]``)."""

    rule: str
    status: Status
    detail: str = ""
    seconds: float = 0.0  # how long the check took (an answer shared by rules counts once)


@dataclass
class ContractReport:
    """Every rule's result for one engine."""

    engine: str
    results: list[RuleResult] = field(default_factory=list)

    def result(self, rule: str) -> RuleResult:
        """The result of ``rule`` (KeyError for a rule that was not run)."""
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(rule)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def not_covered(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == "not covered"]

    @property
    def passed(self) -> bool:
        """No rule failed (rules not covered are not failures, nor passes)."""
        return not self.failures

    def summary(self) -> str:
        """One line a rule: ``passed|FAILED|not covered  rule: detail``."""
        marks = {"passed": "passed", "failed": "FAILED", "not covered": "not covered"}
        lines = [f"contract of engine {self.engine!r}:"]
        for r in self.results:
            lines.append(
                f"  {marks[r.status]:<11}  {r.rule}" + (f": {r.detail}" if r.detail else "")
            )
        return "\n".join(lines)

    def raise_for_failures(self, *, allow_not_covered: bool = True) -> None:
        """Raise :class:`ContractFailure` (an AssertionError, so pytest shows it) if a rule
        failed, or, with ``allow_not_covered=False``, if one was not covered."""
        bad = self.failures + ([] if allow_not_covered else self.not_covered)
        if bad:
            raise ContractFailure(self)


class ContractFailure(AssertionError):
    """An engine broke the contract; the message is the report's summary."""

    def __init__(self, report: ContractReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class _Answer:
    """One stream as the suite saw it."""

    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta))


class _RuleFailed(Exception):
    pass


async def check_engine(
    factory: EngineFactory,
    *,
    failing_factory: EngineFactory | None = None,
    max_tokens: int = 16,
    tools_max_tokens: int = 64,
    cancel_max_tokens: int = 256,
    cancel_after: int = 2,
    idle_timeout_s: float = 5.0,
    prompts: tuple[str, str] = PROMPTS,
    rules: Sequence[str] = RULES,
) -> ContractReport:
    """Run the contract suite on the engine ``factory`` builds; see the module docstring.

    ``max_tokens`` bounds the ordinary answers (keep it small for slow engines),
    ``tools_max_tokens`` the forced tool call of the ``tools`` rule;
    ``cancel_max_tokens`` the answer that is cancelled after ``cancel_after`` text deltas.
    The engine is loaded once (an error there propagates: nothing could be judged) and
    closed at the end.
    """
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ValueError(f"unknown rules {unknown}; the rules are {', '.join(RULES)}")
    secret = "tedchat-contract-secret-" + _secrets.token_hex(12)
    engine = factory(secret)
    suite = _Suite(engine, secret, max_tokens, cancel_max_tokens, cancel_after, idle_timeout_s)
    try:
        name = str(engine.name)
    except AttributeError:  # the declaration rule says so
        name = type(engine).__name__
    report = ContractReport(name)
    try:
        await engine.load()
        suite.shown.append(("describe() after load()", _describe_text(engine)))
        checks: dict[str, Callable[[], Any]] = {
            "declaration": suite.declaration,
            "concurrency": lambda: suite.concurrency(prompts),
            "one-done": lambda: suite.one_done(prompts),  # also judges the concurrent answers
            "counts": lambda: suite.counts(prompts),
            "tools": lambda: suite.tools(tools_max_tokens),
            "cancel": suite.cancel,
            "errors": lambda: suite.errors(failing_factory, prompts[0]),
            "secrets": suite.secrets_shown,  # last: it looks at everything the others saw
        }
        results = {
            rule: await _judge(rule, check) for rule, check in checks.items() if rule in rules
        }
        report.results = [results[r] for r in RULES if r in results]
    finally:
        await engine.close()
    return report


def assert_meets_contract(
    factory: EngineFactory, *, allow_not_covered: bool = True, **options: Any
) -> ContractReport:
    """:func:`check_engine` for synchronous tests: raises :class:`ContractFailure` when a rule
    fails (or, with ``allow_not_covered=False``, is not covered); returns the report."""
    report = asyncio.run(check_engine(factory, **options))
    report.raise_for_failures(allow_not_covered=allow_not_covered)
    return report


async def _judge(rule: str, check: Callable[[], Any]) -> RuleResult:
    t0 = time.monotonic()
    try:
        outcome = await check()
    except _RuleFailed as exc:
        return RuleResult(rule, "failed", f"[{rule}] {exc}", time.monotonic() - t0)
    except Exception as exc:  # the engine failed where it should have answered
        detail = f"[{rule}] unexpected {type(exc).__name__}: {exc}"
        return RuleResult(rule, "failed", detail, time.monotonic() - t0)
    if isinstance(outcome, str):
        return RuleResult(rule, "not covered", outcome, time.monotonic() - t0)
    return RuleResult(rule, "passed", "", time.monotonic() - t0)


def _describe_text(engine: Engine) -> str:
    try:
        described = engine.describe()
    except Exception as exc:  # the declaration rule reports it
        return f"describe() failed: {exc}"
    return repr(described) + "\n" + json.dumps(described, default=str, ensure_ascii=False)


class _Suite:
    """The checks, sharing one loaded engine and what its answers showed."""

    def __init__(
        self,
        engine: Engine,
        secret: str,
        max_tokens: int,
        cancel_max_tokens: int,
        cancel_after: int,
        idle_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.secret = secret
        self.max_tokens = max_tokens
        self.cancel_max_tokens = cancel_max_tokens
        self.cancel_after = cancel_after
        self.idle_timeout_s = idle_timeout_s
        self.answers: dict[str, _Answer] = {}  # solo answers, by prompt
        self.concurrent: list[_Answer] = []
        self.shown: list[tuple[str, str]] = [("describe() before load()", _describe_text(engine))]
        self.planted = self._planted(engine)

    # --- helpers -----------------------------------------------------------------------

    def _planted(self, engine: Engine) -> bool:
        """Whether the factory put the secret in the engine (its state or the environment)."""
        try:
            state = repr(vars(engine))
        except TypeError:  # __slots__: look at the environment only
            state = ""
        return self.secret in state or self.secret in os.environ.values()

    def params(self, index: int) -> GenerationParams:
        return GenerationParams(max_tokens=self.max_tokens, temperature=0.0, seed=index + 1)

    async def answer(self, engine: Engine, prompt: str, params: GenerationParams) -> _Answer:
        out = _Answer()
        t0 = time.monotonic()
        try:
            async for event in engine.stream([Message("user", prompt)], params):
                out.events.append(event)
                if isinstance(event, Notice):
                    self.shown.append(("a Notice", event.text))
        except Exception as exc:
            out.error = exc
        out.seconds = time.monotonic() - t0
        return out

    async def solo(self, prompts: tuple[str, str]) -> list[_Answer]:
        """Each prompt alone (once; later rules reuse the answers)."""
        for i, prompt in enumerate(prompts):
            if prompt not in self.answers:
                self.answers[prompt] = await self.answer(self.engine, prompt, self.params(i))
        answers = [self.answers[p] for p in prompts]
        for answer in answers:
            if answer.error is not None:
                raise _RuleFailed(f"the engine failed to answer: {_error_text(answer.error)}")
        return answers

    # --- rules -------------------------------------------------------------------------

    async def declaration(self) -> None:
        problems = declaration_problems(self.engine)
        described = self.engine.describe()
        if not isinstance(described, dict):
            problems.append(f"describe() returned {type(described).__name__}, not a dict")
        stream = self.engine.stream([Message("user", "hi")], self.params(0))
        if isinstance(stream, collections.abc.AsyncGenerator):
            await stream.aclose()
        else:
            problems.append(
                f"stream() returned {type(stream).__name__}, not an async generator "
                "(write it as `async def stream(...)` with `yield`)"
            )
            if isinstance(stream, collections.abc.Coroutine):
                stream.close()
        if problems:
            raise _RuleFailed("; ".join(problems))

    async def one_done(self, prompts: tuple[str, str]) -> None:
        for answer in [*await self.solo(prompts), *self.concurrent]:
            _check_one_done(answer)

    async def counts(self, prompts: tuple[str, str]) -> None:
        for answer in [*await self.solo(prompts), *self.concurrent]:
            _check_counts(answer, self.max_tokens)

    async def concurrency(self, prompts: tuple[str, str]) -> None:
        alone = await self.solo(prompts)
        together = await asyncio.gather(
            *(self.answer(self.engine, p, self.params(i)) for i, p in enumerate(prompts))
        )
        self.concurrent = list(together)
        for i, (one, both) in enumerate(zip(alone, together, strict=True)):
            if both.error is not None:
                raise _RuleFailed(
                    f"stream {i + 1} failed when run alongside another: {_error_text(both.error)}"
                )
            if both.text != one.text:
                raise _RuleFailed(
                    f"stream {i + 1} ({prompts[i]!r}, seed {i + 1}, temperature 0) answered "
                    f"{_clip(both.text)!r} alongside another stream but {_clip(one.text)!r} "
                    "alone: concurrent streams must not mix"
                )

    async def tools(self, max_tokens: int) -> str | None:
        import jsonschema

        if not capabilities_of(self.engine).tools:
            return "the engine does not declare tools"
        params = GenerationParams(
            max_tokens=max_tokens, temperature=0.0, seed=1, tools=(TOOL,), tool_choice=TOOL.name
        )
        answer = await self.answer(self.engine, TOOL_PROMPT, params)
        if answer.error is not None:
            raise _RuleFailed(f"a forced tool call failed: {_error_text(answer.error)}")
        _check_one_done(answer)
        pieces = [e for e in answer.events if isinstance(e, ToolCallDelta)]
        if not pieces:
            raise _RuleFailed(
                f"told to call {TOOL.name} (tool_choice), the engine made no call "
                f"(it answered {_clip(answer.text)!r})"
            )
        indices = sorted({p.index for p in pieces})
        if len(indices) != 1:
            raise _RuleFailed(f"one call was asked for; the pieces make {len(indices)} calls")
        first = pieces[0]
        if not first.id or first.name != TOOL.name:
            raise _RuleFailed(
                f"a call's first piece must carry its id and name; it had id {first.id!r}, "
                f"name {first.name!r} (the tool is {TOOL.name!r})"
            )
        renamed = [p.name for p in pieces[1:] if p.name not in (None, first.name)]
        if renamed:
            raise _RuleFailed(f"a later piece of the call names another tool: {renamed[0]!r}")
        arguments = "".join(p.arguments for p in pieces)
        try:
            parsed = json.loads(arguments)
            jsonschema.validate(parsed, TOOL.parameters)
        except ValueError:
            raise _RuleFailed(f"the call's arguments are not JSON: {_clip(arguments)!r}") from None
        except jsonschema.ValidationError as exc:
            raise _RuleFailed(
                f"the call's arguments {_clip(arguments)!r} do not match the tool's schema: "
                f"{exc.message}"
            ) from None
        done = answer.events[-1]
        assert isinstance(done, Done)
        if done.finish_reason != "tool_calls":
            raise _RuleFailed(
                f"a stream that made a call ended Done({done.finish_reason!r}), "
                "not Done('tool_calls')"
            )
        return None

    async def cancel(self) -> str | None:
        engine = self.engine
        params = GenerationParams(max_tokens=self.cancel_max_tokens)
        baseline = max((a.seconds for a in self.answers.values()), default=0.0)
        cpu0, wall0 = time.process_time(), time.monotonic()
        stream = engine.stream([Message("user", CANCEL_PROMPT)], params)
        if not isinstance(stream, collections.abc.AsyncGenerator):
            raise _RuleFailed("stream() did not return an async generator: it cannot be closed")
        texts = 0
        async for event in stream:
            if isinstance(event, Done):
                await stream.aclose()
                return (
                    f"the answer ended after {texts} text deltas, before it could be cancelled "
                    f"(cancel_after={self.cancel_after}; raise cancel_max_tokens)"
                )
            if isinstance(event, TextDelta) and event.text:
                texts += 1
                if texts >= self.cancel_after:
                    break
        busy_rate = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-3)
        closed_at = time.monotonic()
        try:
            await asyncio.wait_for(stream.aclose(), self.idle_timeout_s)
        except asyncio.TimeoutError:
            raise _RuleFailed(f"aclose() did not return within {self.idle_timeout_s:g} s") from None
        try:
            late = await asyncio.wait_for(stream.__anext__(), 1.0)
        except (StopAsyncIteration, asyncio.TimeoutError):
            pass
        except Exception as exc:  # a closed stream may refuse loudly; it must not deliver
            _ = exc
        else:
            raise _RuleFailed(f"an event arrived after aclose(): {late!r}")
        quiet = max(0.05, busy_rate / 3)
        rate = await self._settle(quiet, closed_at + self.idle_timeout_s)
        if rate is not None:
            raise _RuleFailed(
                f"the engine kept computing after aclose(): this process still used "
                f"{rate:.2f} cores {self.idle_timeout_s:g} s later ({busy_rate:.2f} while "
                "streaming); the worker must stop between tokens"
            )
        limit = self.idle_timeout_s + 2 * baseline
        try:
            again = await asyncio.wait_for(self.answer(engine, PROMPTS[0], self.params(0)), limit)
        except asyncio.TimeoutError:
            raise _RuleFailed(
                f"a new request after aclose() did not finish within {limit:.1f} s (a request "
                f"took {baseline:.1f} s before): the cancelled work still holds the engine"
            ) from None
        if again.error is not None:
            raise _RuleFailed(f"a new request after aclose() failed: {_error_text(again.error)}")
        return None

    async def _settle(self, quiet: float, deadline: float) -> float | None:
        """None once a half-second window used less than ``quiet`` cores of CPU in this
        process; else (at ``deadline``) the last window's rate."""
        rate = 0.0
        while True:
            cpu0, wall0 = time.process_time(), time.monotonic()
            await asyncio.sleep(0.5)
            rate = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-3)
            if rate < quiet:
                return None
            if time.monotonic() >= deadline:
                return rate

    async def errors(self, failing_factory: EngineFactory | None, prompt: str) -> str | None:
        if failing_factory is None:
            return "no failing_factory: how the engine fails was not checked"
        engine = failing_factory(self.secret)
        try:
            try:
                await engine.load()
            except Exception as exc:
                raise _RuleFailed(
                    f"the failing engine failed in load() ({_error_text(exc)}); the failing "
                    "factory must make an engine that fails partway through an answer"
                ) from None
            answer = await self.answer(engine, prompt, self.params(0))
        finally:
            await engine.close()
        if answer.error is None:
            ends = [e for e in answer.events if isinstance(e, Done)]
            how = f"with Done({ends[-1].finish_reason!r})" if ends else "without Done"
            raise _RuleFailed(
                f"the failing engine's stream ended {how} instead of raising an EngineError"
            )
        self.shown.append(("the failing engine's error", str(answer.error)))
        if not isinstance(answer.error, EngineError):
            raise _RuleFailed(
                f"a failure raised {type(answer.error).__name__} ({answer.error}), "
                "not an EngineError"
            )
        if not answer.error.message.strip():
            raise _RuleFailed("the EngineError has an empty message")
        if any(isinstance(e, Done) for e in answer.events):
            raise _RuleFailed("the stream sent Done and then raised: Done must end the stream")
        if not answer.text:
            raise _RuleFailed(
                "no text arrived before the EngineError: the partial answer was lost "
                "(deliver text as it comes; the failing factory must fail after some text)"
            )
        return None

    async def secrets_shown(self) -> str | None:
        if not self.planted:
            return (
                "the factory planted no secret in the engine (its settings or the "
                "environment): an engine without credentials has none to leak"
            )
        self.shown.append(("describe() after answering", _describe_text(self.engine)))
        status = await self.engine.status()
        self.shown.append(("status().detail", status.detail))
        leaks = [where for where, text in self.shown if self.secret in text]
        if leaks:
            raise _RuleFailed("the planted secret appears in " + ", ".join(leaks))
        return None


def _check_one_done(answer: _Answer) -> None:
    strays = [e for e in answer.events if not isinstance(e, _EVENT_TYPES)]
    if strays:
        raise _RuleFailed(f"the stream yielded {strays[0]!r}, which is not an Event")
    dones = [i for i, e in enumerate(answer.events) if isinstance(e, Done)]
    if len(dones) != 1:
        raise _RuleFailed(f"an answer held {len(dones)} Done events; it must hold exactly one")
    if dones[0] != len(answer.events) - 1:
        after = answer.events[dones[0] + 1]
        raise _RuleFailed(f"Done was not the last event: {after!r} followed it")
    done = answer.events[-1]
    assert isinstance(done, Done)
    if done.finish_reason not in FINISH_REASONS:
        raise _RuleFailed(f"finish reason {done.finish_reason!r} is not one of {FINISH_REASONS}")


def _check_counts(answer: _Answer, max_tokens: int) -> None:
    said = 0
    for event in answer.events:
        if isinstance(event, TextDelta | ReasoningDelta) and event.tokens is not None:
            if not (isinstance(event.tokens, int) and event.tokens >= 0):
                raise _RuleFailed(f"a delta says it carries {event.tokens!r} tokens")
            if isinstance(event, TextDelta):
                said += event.tokens
        elif isinstance(event, Timings):
            for key, value in event.figures.items():
                _non_negative(f"Timings[{key!r}] ({event.source})", value)
        elif isinstance(event, EmulatedTimings):
            _non_negative("EmulatedTimings.ttft_s", event.ttft_s)
            _non_negative("EmulatedTimings.output_tokens_per_s", event.output_tokens_per_s)
            _non_negative("EmulatedTimings.arrival_s", event.arrival_s)
            for key, value in event.breakdown.items():
                _non_negative(f"EmulatedTimings.breakdown[{key!r}]", value)
            if event.end_s is not None and not event.end_s >= event.arrival_s:
                raise _RuleFailed(
                    f"EmulatedTimings end_s {event.end_s} is before arrival_s {event.arrival_s}"
                )
    if said > max_tokens:
        raise _RuleFailed(f"text deltas carried {said} tokens with max_tokens={max_tokens}")
    for usage in (e for e in answer.events if isinstance(e, Usage)):
        for name, count in (
            ("prompt_tokens", usage.prompt_tokens),
            ("output_tokens", usage.output_tokens),
        ):
            if count is not None and not (isinstance(count, int) and count >= 0):
                raise _RuleFailed(f"Usage.{name} is {count!r}")
        out = usage.output_tokens
        if out is None:
            continue
        if out < said:
            raise _RuleFailed(
                f"Usage.output_tokens is {out} ({usage.source}) but the text deltas said they "
                f"carried {said} tokens"
            )
        if out > max_tokens:
            raise _RuleFailed(f"Usage.output_tokens is {out} with max_tokens={max_tokens}")


def _non_negative(what: str, value: object) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise _RuleFailed(f"{what} is {value!r}: timings must be finite and non-negative")


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

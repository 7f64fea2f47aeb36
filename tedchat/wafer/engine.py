"""The ``wafer`` engine: real NumPy decoding, laid out and timed as emulated wafer-scale systems.

One :class:`_Runner` thread per engine owns the :class:`~tedchat.wafer.stages.Pipeline` (the
stages, their weights and every sequence's KV caches) and a
:class:`~tedchat.wafer.pipeline_sim.PipelineScheduler`. Every request is a sequence; the runner
repeatedly takes the sequence the scheduler says can go next, really computes its next step
with the NumPy numerics, and records the step in the scheduler, whose trace is the emulated
timeline. So concurrent requests interleave through the stages exactly as the timeline says.

Each request's stream carries the runner's tokens to the caller (through the shared
:func:`tedchat.engine.stream_from_thread`). With ``pace`` on, a token is released at its
emulated time; when this machine cannot make the text as fast as the emulated hardware would,
a :class:`~tedchat.engine.Notice` says so and :func:`record` + :mod:`tedchat.wafer.replay`
offer a replay instead. Every emulated figure travels in :class:`~tedchat.engine.EmulatedTimings`,
always labelled; the meter's own figures stay wall-clock.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tedchat.engine import (
    Capabilities,
    Done,
    EmulatedTimings,
    EngineStatus,
    Event,
    GenerationParams,
    LoadProgress,
    Message,
    Notice,
    PaceSpeeds,
    ProgressCallback,
    Runtime,
    StopCheck,
    TextDelta,
    Usage,
    stream_from_thread,
)
from tedchat.errors import EngineError, EngineUnavailable, TedchatError
from tedchat.models.registry import apply_model_defaults, model_label, resolve_model
from tedchat.wafer.speculative import spec_settings

# Released late by more than this (host slower than the emulated hardware), pacing says so.
PACE_SLACK_S = 0.25
#: Sequences one batched decode pass advances at most (the numerics keep rows invariant up to
#: ``numerics.ROW_INVARIANT_ROWS``).
MAX_BATCH = 8

#: One emitted item: (emulated seconds since the request arrived, event).
Timed = tuple[float, Event]


@dataclass
class _Sequence:
    """One request in flight in the runner."""

    id: int
    prompt_ids: list[int]
    params: GenerationParams
    sampler: Any
    decoder: Any
    out: queue.Queue[Timed | BaseException]
    arrival: float = 0.0
    generated: int = 0  # tokens sampled
    output_tokens: int = 0  # of which carried text (not the end-of-turn token)
    last_token: int | None = None
    text: str = ""
    cancelled: bool = False
    first_emit: float | None = None
    last_emit: float | None = None
    busy: dict[str, float] = field(default_factory=dict)  # summed decode step breakdowns
    decode_steps: int = 0  # decode tokens the breakdowns in ``busy`` cover
    tokens: list[int] = field(default_factory=list)  # prompt and sampled tokens (for drafts)
    spec: Any = None  # speculative counters (tedchat.wafer.speculative.SpecStats), or None
    pending: list[int] = field(default_factory=list)  # computed, not yet on the (assumed) clock
    ready: Any = None  # next decode step's logits, computed early in another's batch


class _Runner:
    """The thread that decodes every sequence of one engine, in the scheduler's order."""

    def __init__(self, engine: WaferEngine) -> None:
        self.engine = engine
        self.cond = threading.Condition()
        self.active: dict[int, _Sequence] = {}
        self.ids = itertools.count(1)
        self.scheduler: Any = None
        self.now = 0.0  # the emulated clock: the latest emission so far
        self.thread: threading.Thread | None = None

    def submit(self, prompt_ids: list[int], params: GenerationParams) -> _Sequence:
        from tedchat.wafer.sampling import Sampler

        e = self.engine
        seq = _Sequence(
            id=next(self.ids),
            prompt_ids=prompt_ids,
            params=params,
            sampler=Sampler(params.temperature or 0.0, params.top_p or 1.0, seed=params.seed),
            decoder=e.tokenizer.stream(),
            out=queue.Queue(),
            tokens=list(prompt_ids),
        )
        if e.spec is not None:
            from tedchat.wafer.speculative import SpecStats

            seq.spec = SpecStats(e.spec.mode, e.spec.draft_tokens, e.spec.alpha)
        with self.cond:
            if not self.active:  # an idle pipeline: a new emulated timeline
                self.scheduler = e.timing.scheduler()
                self.now = 0.0
            seq.arrival = self.now
            self.scheduler.add_sequence(seq.id, arrival=seq.arrival)
            e.pipeline.open(seq.id)
            if e.draft is not None:
                e.draft.open(seq.id)
            self.active[seq.id] = seq
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="tedchat-wafer", daemon=True)
                self.thread.start()
            self.cond.notify()
        return seq

    def cancel(self, seq: _Sequence) -> None:
        with self.cond:
            seq.cancelled = True
            self.cond.notify()

    def _loop(self) -> None:
        from tedchat.wafer.kernels import on_numerics_thread

        while True:
            with self.cond:
                while not self.active:
                    if not self.cond.wait(timeout=30.0) and not self.active:
                        self.thread = None  # idle: let the thread end
                        return
                for seq in [s for s in self.active.values() if s.cancelled]:
                    self._close(seq)
                if not self.active:
                    continue
                sid = self.scheduler.next_ready(list(self.active))
                seq = self.active[sid]
            try:
                if seq.ready is not None:  # computed in an earlier batch: nothing to compute
                    self._step(seq)
                else:
                    on_numerics_thread(functools.partial(self._threaded_step, seq))
            except BaseException as exc:  # handed to the request's stream
                seq.out.put(exc)
                with self.cond:
                    self._close(seq)

    def _threaded_step(self, seq: _Sequence) -> None:
        from tedchat.wafer.kernels import compute_threads

        with compute_threads(self.engine.threads()):
            self._step(seq)

    def _close(self, seq: _Sequence) -> None:
        self.active.pop(seq.id, None)
        self.engine.pipeline.close(seq.id)
        if self.engine.draft is not None:
            self.engine.draft.close(seq.id)

    def _step(self, seq: _Sequence) -> None:
        e = self.engine
        pipeline, timing = e.pipeline, e.timing
        if seq.last_token is not None and seq.spec is not None:
            from tedchat.wafer.speculative import speculative_step

            speculative_step(self, seq)
            return
        if seq.last_token is None:
            logits = pipeline.run(seq.id, seq.prompt_ids)
            n = len(seq.prompt_ids)
            record = self.scheduler.step(seq.id, "prefill", n, n)
        else:
            logits = self._decode(seq)
            ctx = pipeline.context_len(seq.id)
            record = self.scheduler.step(seq.id, "decode", 1, ctx)
            for s in range(timing.n_stages):
                for part, t in timing.stage_step_time(s, "decode", 1, ctx).items():
                    seq.busy[part] = seq.busy.get(part, 0.0) + t
                if s < timing.n_stages - 1:
                    for part, t in timing.link_time(s, 1).items():
                        seq.busy[part] = seq.busy.get(part, 0.0) + t
            for part, t in timing.return_link_time().items():
                seq.busy[part] = seq.busy.get(part, 0.0) + t
            seq.decode_steps += 1
        self.deliver(seq, seq.sampler(logits), record.emit)

    def _decode(self, seq: _Sequence) -> Any:
        """``seq``'s next decode logits: computed already in an earlier batch, or now, in one
        batched pass with every other sequence waiting for a plain decode step (up to
        :data:`MAX_BATCH` rows). The others keep theirs for when the scheduler picks them, so
        the emulated timeline is the scheduler's alone; a row's logits do not depend on the
        batch (row-invariant numerics), so neither does any text."""
        if seq.ready is not None:
            logits, seq.ready = seq.ready, None
            return logits
        assert seq.last_token is not None
        with self.cond:
            others = [
                s
                for s in self.active.values()
                if s is not seq
                and s.ready is None
                and s.last_token is not None
                and s.spec is None
                and not s.cancelled
                and self.engine.pipeline.context_len(s.id) < self.engine.pipeline.context
            ][: MAX_BATCH - 1]
        if not others:
            return self.engine.pipeline.run(seq.id, [seq.last_token])
        batch = [seq, *others]
        rows = self.engine.pipeline.run_batch(
            [s.id for s in batch],
            [int(s.last_token) for s in batch],  # type: ignore[arg-type]
        )
        for s, row in zip(others, rows[1:], strict=True):
            s.ready = row
        return rows[0]

    def deliver(self, seq: _Sequence, token: int, emit: float) -> bool:
        """Hand ``seq``'s next sampled ``token``, emitted at emulated time ``emit``, to its
        stream; finish and close the sequence when it ends there (True)."""
        e = self.engine
        pipeline = e.pipeline
        with self.cond:
            self.now = max(self.now, emit)
        t = emit - seq.arrival
        if seq.first_emit is None:
            seq.first_emit = t
        seq.last_emit = t
        seq.last_token = token
        seq.tokens.append(token)
        seq.generated += 1
        finish = None
        if e.tokenizer.is_end_of_turn(token):
            finish = "stop"
            text = seq.decoder.flush()
        else:
            text = seq.decoder.push(token)
            seq.text += text
            stop_at = _stop_index(seq.text, seq.params.stop)
            if stop_at is not None:
                cut = len(seq.text) - stop_at
                text = text[: len(text) - cut] if cut <= len(text) else ""
                finish = "stop"
            elif seq.generated >= seq.params.max_tokens:
                finish = "length"
                text += seq.decoder.flush()
        # An end-of-turn token is sampled but carries no text: it is not an output token.
        counted = 0 if e.tokenizer.is_end_of_turn(token) else 1
        seq.output_tokens += counted
        seq.out.put((t, TextDelta(text, tokens=counted)))
        # The positions a step-by-step decode would hold now: all tokens but this last one
        # (a speculative step has already cached some of the tokens it delivers next).
        if finish is None and len(seq.tokens) - 1 >= pipeline.context:
            finish = "length"
        if finish is not None:
            self._finish(seq, finish, t)
            with self.cond:
                self._close(seq)
        return finish is not None

    def _finish(self, seq: _Sequence, reason: str, t: float) -> None:
        e = self.engine
        output = seq.output_tokens
        span = (seq.last_emit or 0.0) - (seq.first_emit or 0.0)
        tps = (output - 1) / span if output > 1 and span > 0 else 0.0
        steps = max(seq.decode_steps, 1)
        per_token = {k: v / steps for k, v in seq.busy.items()}
        observed = span / (output - 1) if output > 1 else 0.0
        if per_token and observed > sum(per_token.values()):
            # Time spent waiting for a stage another sequence held: interleaving, not work.
            per_token["queueing"] = observed - sum(per_token.values())
        seq.out.put((t, Usage(prompt_tokens=len(seq.prompt_ids), output_tokens=output)))
        seq.out.put(
            (
                t,
                EmulatedTimings(
                    hardware=e.hardware_name,
                    systems=e.placement.n_systems,
                    ttft_s=seq.first_emit or 0.0,
                    output_tokens_per_s=tps,
                    breakdown=per_token,
                    timing_target=e.timing_target,
                    arrival_s=seq.arrival,
                    end_s=seq.arrival + t,
                    speculative=seq.spec.as_dict() if seq.spec is not None else None,
                ),
            )
        )
        seq.out.put((t, Done(reason)))  # type: ignore[arg-type]


def _stop_index(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop string begins in ``text``, if one occurs."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


class WaferEngine:
    """The built-in wafer-scale emulation engine (see the module docstring)."""

    type = "wafer"
    local = True

    def __init__(
        self,
        name: str,
        settings: dict[str, Any],
        runtime: Runtime,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime
        self.model = model_label(settings["model"])
        self.timing_target: str | None = settings["timing_target"] or None
        self.hardware_name = settings["hardware"]
        self.capabilities = Capabilities(
            record=True, pace=True, floorplan=True, context_size=int(settings["context"])
        )
        self.clock = clock
        self.sleep = sleep
        self.tokenizer: Any = None
        self.pipeline: Any = None
        self.timing: Any = None
        self.placement: Any = None
        self._runner: _Runner | None = None
        self._path: Any = None  # the GGUF file, once loaded
        self._load_lock = threading.Lock()
        self.spec = spec_settings(name, settings)
        self.draft: Any = None  # the draft model's numerics (speculative = "draft")
        self.draft_timing: Any = None  # its timing model, placed on the same hardware

    # --- loading -------------------------------------------------------------------------

    def threads(self) -> int:
        return int(self.settings["threads"]) or self.runtime.thread_share()

    def plan(self, path: Any = None) -> Any:
        """The placement this engine times with (the timing target's, when one is set)."""
        from tedchat.wafer.hardware import get_hardware
        from tedchat.wafer.placement import plan
        from tedchat.wafer.shapes import get_shape, shape_from_gguf

        try:
            hardware = get_hardware(self.settings["hardware"])
        except KeyError as exc:
            raise EngineUnavailable(f"{self.name}: {exc.args[0]}") from exc
        if self.timing_target:
            shape = get_shape(self.timing_target)
        else:
            shape = shape_from_gguf(path or resolve_model(self.settings["model"]))
        placement = plan(
            shape,
            hardware,
            self.settings["systems"] or None,
            context=self.settings["context"],
            sequences=self.settings["sequences"],
            precision=self.settings["precision"],
        )
        if not placement.fits:
            need = placement.min_systems
            raise EngineUnavailable(
                f"{self.name}: {shape.name} does not fit on {placement.n_systems} "
                f"{hardware.name} at context {self.settings['context']}"
                + (f": it needs {need} systems" if need else ""),
                hint="set systems in the engine's table (tedchat wafer plan shows the layout)",
            )
        return placement

    async def load(self, progress: ProgressCallback | None = None) -> None:
        if self.pipeline is None:
            await asyncio.to_thread(self._load_sync, progress)

    def _load_sync(self, progress: ProgressCallback | None) -> None:
        from tedchat.wafer import host_speed
        from tedchat.wafer.kernels import compute_threads, on_numerics_thread
        from tedchat.wafer.numerics import Model
        from tedchat.wafer.shared_weights import shared_weights
        from tedchat.wafer.stages import Pipeline
        from tedchat.wafer.timing import TimingModel
        from tedchat.wafer.tokenizer import Tokenizer

        with self._load_lock:
            if self.pipeline is not None:
                return
            path = resolve_model(self.settings["model"])
            placement = self.plan(path)
            self.tokenizer = Tokenizer(path)

            def report(done: int, total: int) -> None:
                if progress:
                    progress(LoadProgress("dequantizing weights", done / total if total else None))

            with compute_threads(self.threads()):
                # Engines on one GGUF share its weights; the model (RoPE tables) is this one's.
                model = Model(shared_weights(path, progress=report), self.settings["context"])
            if self.timing_target or placement.mode != "pipeline":
                ranges = Pipeline.split(len(model.layers), placement.n_stages)
            else:
                ranges = [
                    (s.first_layer, s.last_layer)
                    for s in placement.systems
                    if s.first_layer is not None and s.last_layer is not None
                ]
            if self.spec is not None and self.spec.mode == "draft":
                self._load_draft(placement)
            self.placement = placement
            self.timing = TimingModel(placement)
            self.pipeline = Pipeline(model, ranges, self.settings["context"])
            self._runner = _Runner(self)
            self._path = path
            if progress:
                progress(LoadProgress("measuring this machine's speed", None))
            pipeline, bos = self.pipeline, self.tokenizer.bos_id

            def timed_steps() -> None:
                with compute_threads(self.threads()):
                    host_speed.measure(path, pipeline, bos)

            on_numerics_thread(timed_steps)
            if progress:
                progress(LoadProgress("ready", 1.0))

    def pace_speeds(self) -> PaceSpeeds:
        """Paced or not, the emulated decode speed and this machine's (measured at load)."""
        from tedchat.wafer import host_speed

        host = host_speed.host_tokens_per_s(self._path) if self._path is not None else None
        if self.timing is None:
            raise EngineError(f"{self.name}: pace speeds are known once the engine is loaded")
        emulated = self.timing.predict(prompt_tokens=64, output_tokens=256).decode_tokens_per_s
        return PaceSpeeds(bool(self.settings["pace"]), emulated, host)

    def _load_draft(self, target: Any) -> None:
        """The draft GGUF (same tokenizer, checked), its numerics and its timing model: placed
        beside the target on its systems (its SRAM counts, :func:`plan_draft`), refused when it
        does not fit there."""
        from tedchat.wafer.numerics import Model
        from tedchat.wafer.placement import plan_draft
        from tedchat.wafer.shapes import shape_from_gguf
        from tedchat.wafer.shared_weights import shared_weights
        from tedchat.wafer.speculative import DraftModel, check_same_tokenizer
        from tedchat.wafer.timing import TimingModel
        from tedchat.wafer.tokenizer import Tokenizer

        assert self.spec is not None
        path = resolve_model(self.spec.draft_model)
        draft_tokenizer = Tokenizer(path)
        try:
            check_same_tokenizer(self.tokenizer, draft_tokenizer, path)
        finally:
            draft_tokenizer.close()
        beside = plan_draft(target, shape_from_gguf(path))
        if beside.placement is None:
            raise EngineUnavailable(
                f"{self.name}: {beside.reason}",
                hint="set systems in the engine's table (wafer plan --speculative shows it)",
            )
        placed = beside.placement
        self.draft_timing = TimingModel(placed)
        self.draft = DraftModel(Model(shared_weights(path), self.settings["context"]))

    async def status(self) -> EngineStatus:
        try:
            path = resolve_model(self.settings["model"])
            placement = self.plan(path)
        except TedchatError as exc:
            return EngineStatus(False, exc.message)
        label = f"{placement.n_systems}x {self.hardware_name}"
        if self.timing_target:
            label += f" timed as {self.timing_target} (stand-in: {self.model})"
        return EngineStatus(True, f"emulated {label}")

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "model": self.model, **self.settings, "threads": self.threads()}

    def floorplan(self) -> dict[str, Any]:
        """The placement as a JSON-ready dict (``wafer plan --json``'s shape), for the TUI."""
        from tedchat.wafer.plan_report import plan_report

        target = self.timing_target or str(resolve_model(self.settings["model"]))
        return plan_report(
            target,
            hardware=self.hardware_name,
            systems=self.settings["systems"] or None,
            context=self.settings["context"],
            sequences=self.settings["sequences"],
            prompt_tokens=min(1000, self.settings["context"] // 2),
            precision=self.settings["precision"],
        )

    def activity(self) -> dict[str, Any] | None:
        """The stage the host is computing right now, for the floorplan's highlight:
        ``{"system": i, "layer": n}`` (``layer`` None when a stand-in model runs for the
        placed one, whose layers it does not have), or None between steps."""
        pipeline, placement = self.pipeline, self.placement
        active = pipeline.active if pipeline is not None else None
        if active is None or placement is None or placement.mode != "pipeline":
            return None
        stage, layer = active
        return {"system": stage, "layer": None if self.timing_target else layer}

    async def close(self) -> None:
        self.pipeline = None
        self._runner = None
        self.draft = None

    # --- generation ----------------------------------------------------------------------

    def _prompt(self, messages: Sequence[Message], params: GenerationParams) -> tuple:
        messages, params = apply_model_defaults(self.settings["model"], messages, params)
        ids = self.tokenizer.encode_chat(messages)
        if len(ids) >= self.pipeline.context:
            raise EngineError(
                f"{self.name}: the prompt has {len(ids)} tokens; "
                f"the context holds {self.pipeline.context}"
            )
        return ids, params

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        await self.load()
        ids, params = self._prompt(messages, params)
        pace = bool(self.settings["pace"])
        async for event in stream_from_thread(
            lambda should_stop: self._deliver(ids, params, should_stop, pace), name=self.name
        ):
            yield event

    async def record(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        progress: Callable[[int], None] | None = None,
    ) -> list[Timed]:
        """The whole answer with each event's emulated time, computed as fast as possible;
        ``progress`` is told the output tokens made so far (from the runner's thread)."""
        await self.load()
        ids, params = self._prompt(messages, params)

        stop = threading.Event()  # set when the caller stops waiting (Esc): the runner stops

        def run() -> list[Timed]:
            out: list[Timed] = []
            tokens = 0
            for item in self._timed(ids, params, stop.is_set):
                out.append(item)
                if progress is not None and isinstance(item[1], TextDelta):
                    tokens += item[1].tokens or 0
                    progress(tokens)
            return out

        try:
            return await asyncio.to_thread(run)
        except asyncio.CancelledError:
            stop.set()
            raise

    def _timed(
        self, ids: list[int], params: GenerationParams, should_stop: StopCheck
    ) -> Iterator[Timed]:
        """The runner's output for one request, as it comes (cancelled when abandoned)."""
        assert self._runner is not None
        seq = self._runner.submit(ids, params)
        try:
            while True:
                try:
                    item = seq.out.get(timeout=0.05)
                except queue.Empty:
                    if should_stop():
                        return
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item[1], Done):
                    return
        finally:
            self._runner.cancel(seq)

    def _deliver(
        self, ids: list[int], params: GenerationParams, should_stop: StopCheck, pace: bool
    ) -> Iterator[Event]:
        """Events for the caller; with ``pace``, each released at its emulated time."""
        start = self.clock()
        warned = False
        for t, event in self._timed(ids, params, should_stop):
            if pace:
                late = self.clock() - (start + t)
                if late < 0:
                    self._sleep_until(start + t, should_stop)
                elif late > PACE_SLACK_S and not warned and isinstance(event, TextDelta):
                    warned = True
                    yield Notice(
                        f"{self.name}: this machine makes the text slower than the emulated "
                        f"{self.hardware_name} would stream it, so live pacing lags; use a "
                        "replay (--replay) to see the emulated timing"
                    )
            yield event

    def _sleep_until(self, deadline: float, should_stop: StopCheck) -> None:
        while not should_stop():
            left = deadline - self.clock()
            if left <= 0:
                return
            self.sleep(min(left, 0.05))

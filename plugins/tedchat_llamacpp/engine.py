"""The ``llamacpp`` engine: a GGUF run by llama.cpp in a worker thread.

What it adds to llama-cpp-python, and why:

- **The file is checked before llama.cpp opens it** (:mod:`tedchat_llamacpp.gguf_header`): a
  truncated download, a file that is not GGUF, or an architecture this llama.cpp does not run
  becomes one clear error line instead of an abort.
- **An explicit prompt format** (setting ``prompt_format``, see
  :mod:`tedchat.models.prompt_formats`): the GGUF's own chat template when it has one, else a
  documented completion format for base models such as TEDLLM — never llama-cpp-python's
  silent fallback to the llama-2 template.
- **Cancel while the prompt is processed**: a 2,000-token prompt takes seconds on this kind of
  machine, and the tokens loop cannot stop it. llama.cpp's abort callback asks the request's
  ``should_stop`` between graph nodes, so the decode returns within milliseconds. It is set
  for the prompt only: llama.cpp calls it at every node (about 600 times a token for
  SmolLM2), and while tokens are generated the loop checks ``should_stop`` between them.
- **A conversation longer than the context** loses its oldest exchanges (never the system
  message or the newest user message), said by a :class:`~tedchat.engine.Notice` event before
  the answer (and in :attr:`LlamaCppEngine.last_trim`, for tests and tools).
  The cut is sticky: later turns keep dropping the same prefix while the rest fits, so the
  prompt keeps its prefix and llama.cpp's KV cache is reused instead of reprocessing the whole
  context every turn; when it must cut again it cuts down to :data:`TRIM_TARGET` of the room.
- **Tool calls** (:mod:`tedchat_llamacpp.tool_calls`): a named or required ``tool_choice``
  constrains the answer with a grammar made from the tools' JSON Schemas, so even the 135M
  bundled model makes a valid call; ``auto`` offers the tools only to a chat template that
  knows them. A template that does not gets the calls and results of earlier steps as
  plain turns (:func:`tedchat.models.prompt_formats.tool_turns_as_text`).
- **Speculative decoding** (setting ``speculative``, :mod:`tedchat_llamacpp.speculative`):
  prompt lookup or a draft GGUF, with drafted and accepted tokens counted per reply (Timings
  ``draft_tokens``, ``draft_accepted_tokens``, ``draft_acceptance``).
- **Figures from its own counters**, under the names the ``http`` engine gives llama-server's
  ``timings``: prompt tokens evaluated, their speed, the prompt tokens served from the KV cache
  (``cached_prompt_tokens``), and the decoding after the prompt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tedchat.engine import (
    Capabilities,
    Done,
    EngineStatus,
    Event,
    GenerationParams,
    LoadProgress,
    Message,
    Notice,
    ProgressCallback,
    Runtime,
    StopCheck,
    TextDelta,
    Timings,
    ToolCallDelta,
    Usage,
    stream_from_thread,
)
from tedchat.errors import ConfigError, EngineError, ModelFormatError, TedchatError
from tedchat.llama_streams import LLAMA_PROCESS_LOCK
from tedchat.models.prompt_formats import (
    CHAT_TEMPLATE,
    PLAIN_FORMATS,
    PROMPT_FORMATS,
    choose_format,
    tool_turns_as_text,
)
from tedchat.models.registry import apply_model_defaults, model_label, registry_entry, resolve_model
from tedchat_llamacpp.gguf_header import GGUFInfo, check_memory, read_gguf_header
from tedchat_llamacpp.tool_calls import (
    NAMED,
    NO_TOOLS,
    OFF,
    REQUIRED,
    TEMPLATE,
    CallSpotter,
    ToolPlan,
    make_grammar,
    plan_for,
    read_required,
    template_knows_tools,
    template_messages,
    tools_json,
    tools_note,
    with_note,
)

if TYPE_CHECKING:  # numpy and llama_cpp: imported when a model loads
    from tedchat_llamacpp.speculative import DraftCounter, DraftStats

log = logging.getLogger("tedchat.llamacpp")
native_log = logging.getLogger("tedchat.llamacpp.native")

# When the conversation must be cut, cut it down to this share of the room for the prompt, so
# the next turns fit without cutting again (and reuse the KV cache).
TRIM_TARGET = 0.6

# The engine setting ``speculative`` (tedchat_llamacpp.speculative).
SPECULATIVE_MODES = ("off", "prompt-lookup", "draft")


def check_gguf_header(path: Path) -> GGUFInfo:
    """Refuse a file llama.cpp cannot run before it opens it (it may crash on some)."""
    return read_gguf_header(path)


def _never() -> bool:
    return False


_LLAMA_LOG_LEVELS = {0: "NONE", 1: "INFO", 2: "WARN", 3: "ERROR", 4: "DEBUG", 5: "CONT"}


def _route_llama_logs() -> None:
    """Send llama.cpp's own log lines to Python logging, at DEBUG level.

    llama-cpp-python prints llama.cpp's ERROR lines to stderr, and an aborted decode (a
    cancelled prompt) logs one ("removing memory module entries ..."): that would break the
    one-line contract of the CLI and draw over the TUI. Whatever goes wrong is raised as an
    error by this engine anyway; the lines stay available in the ``--debug`` log.
    """
    import ctypes

    import llama_cpp

    global _log_callback  # llama.cpp keeps the pointer: the object must live as long
    if _log_callback is None:

        @llama_cpp.llama_log_callback
        def on_log(level: int, text: bytes, _data: ctypes.c_void_p) -> None:
            if native_log.isEnabledFor(logging.DEBUG):
                line = text.decode("utf-8", errors="replace").rstrip()
                if line:
                    native_log.debug("%s %s", _LLAMA_LOG_LEVELS.get(level, level), line)

        _log_callback = on_log
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


_log_callback: Any = None


@dataclass(frozen=True)
class ContextTrimmed:
    """The oldest messages were left out so the conversation fits the context window."""

    dropped_messages: int
    dropped_tokens: int
    prompt_tokens: int
    n_ctx: int

    def text(self) -> str:
        return (
            f"the conversation is longer than the {self.n_ctx}-token context: the oldest "
            f"{self.dropped_messages} messages ({self.dropped_tokens} tokens) were left out"
        )


class LlamaCppEngine:
    """llama.cpp on this machine. One ``Llama`` per engine, used under one lock."""

    type = "llamacpp"
    local = True

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime
        self.model = model_label(settings["model"])
        self.capabilities = Capabilities(
            cache_reset=True, tools=True, prompt_tokens=True, context_size=int(settings["n_ctx"])
        )
        spec = settings.get("speculative", "off")
        if spec not in SPECULATIVE_MODES:
            raise ConfigError(
                f"engines.{name}.speculative must be one of {', '.join(SPECULATIVE_MODES)}; "
                f"got {spec!r}"
            )
        if spec == "draft" and not settings.get("draft_model"):
            raise ConfigError(
                f'engines.{name}: speculative = "draft" needs draft_model (a GGUF)',
                hint='set draft_model, or use speculative = "prompt-lookup"',
            )
        if int(settings.get("draft_tokens", 8)) < 1:
            raise ConfigError(f"engines.{name}.draft_tokens must be at least 1")
        self._spec: str = spec
        self._counter: DraftCounter | None = None
        self._draft_llm: Any = None
        fmt = settings.get("prompt_format", "auto")
        if fmt not in PROMPT_FORMATS:
            raise ConfigError(
                f"engines.{name}.prompt_format must be one of {', '.join(PROMPT_FORMATS)}; "
                f"got {fmt!r}"
            )
        self._llm: Any = None
        # llama-cpp-python's Llama is not thread-safe: every use of it holds this lock.
        self._lock = threading.Lock()
        self._info: GGUFInfo | None = None
        self._format: str | None = None  # the concrete format, chosen at load
        self._formatter: Any = None  # the GGUF's chat template (Jinja), for chat-template
        self._template_tools = False  # that template renders the tools it is given
        # The running request's stop check, read by llama.cpp's abort callback; the ctypes
        # callback object must stay referenced for as long as llama.cpp may call it.
        self._should_stop: StopCheck = _never
        self._abort_callback: Any = None
        self._dropped: tuple[Message, ...] = ()
        self.last_trim: ContextTrimmed | None = None

    # --- contract ------------------------------------------------------------------------

    def threads(self) -> int:
        """Threads for the next request (see the plugin docstring for *auto*)."""
        if self.settings["n_threads"] > 0:
            return int(self.settings["n_threads"])
        share = self.runtime.thread_share()
        return max(1, share - 1) if share > 1 else 1

    async def load(self, progress: ProgressCallback | None = None) -> None:
        if self._llm is None:
            await asyncio.to_thread(self._load_sync, progress)

    def _load_sync(self, progress: ProgressCallback | None) -> None:
        with self._lock:
            if self._llm is not None:
                return
            path = resolve_model(self.settings["model"])
            info = check_gguf_header(path)
            draft_info = None
            if self._spec == "draft":
                draft_info = check_gguf_header(resolve_model(self.settings["draft_model"]))
            if not self.settings.get("force"):
                check_memory(
                    info,
                    int(self.settings["n_ctx"]),
                    f"engines.{self.name}",
                    logits_all=self._spec != "off",
                    draft=draft_info,
                )
            fmt = self._choose_format(info)
            if progress:
                progress(LoadProgress(f"loading {path.name}", None))
            try:
                from llama_cpp import Llama
            except ImportError as exc:  # pragma: no cover - a broken install
                raise EngineError(f"llama-cpp-python is not installed: {exc}") from exc
            threads = self.threads()
            # One thread at a time (tedchat.llama_streams): a quiet load points fds 1 and 2
            # at /dev/null and back, which two loads at once can leave on /dev/null.
            with LLAMA_PROCESS_LOCK:
                _route_llama_logs()
                try:
                    counter = self._draft_counter(draft_info, threads)
                    # A draft model makes llama-cpp-python keep every position's logits
                    # (logits_all): counted in the memory check above. It must be asked for
                    # explicitly too: llama-cpp-python sizes its logits array by the argument
                    # (n_batch rows without it), and a prompt past 512 tokens then overflows it.
                    llm = Llama(
                        model_path=str(path),
                        n_ctx=self.settings["n_ctx"],
                        n_threads=threads,
                        n_threads_batch=threads,
                        n_gpu_layers=self.settings["n_gpu_layers"],
                        flash_attn=self.settings["flash_attn"],
                        draft_model=counter,
                        logits_all=counter is not None,
                        verbose=False,
                    )
                except (ValueError, RuntimeError) as exc:
                    raise ModelFormatError(f"llama.cpp could not load {path}: {exc}") from exc
            self._counter = counter
            self._formatter = self._chat_formatter(llm, info) if fmt == CHAT_TEMPLATE else None
            self._template_tools = self._formatter is not None and template_knows_tools(
                info.metadata.get("tokenizer.chat_template")
            )
            self._install_abort_callback(llm)
            self._llm, self._info, self._format = llm, info, fmt
            if progress:
                progress(LoadProgress("ready", 1.0))

    def _draft_counter(self, draft_info: GGUFInfo | None, threads: int) -> DraftCounter | None:
        """The draft policy for ``speculative``, wrapped in its counter (None when off)."""
        from tedchat_llamacpp.speculative import DraftCounter, DraftGGUF, PromptLookup

        tokens = int(self.settings.get("draft_tokens", 8))
        n_ctx = int(self.settings["n_ctx"])
        if self._spec == "prompt-lookup":
            return DraftCounter(PromptLookup(max_tokens=tokens), n_ctx)
        if self._spec == "draft" and draft_info is not None:
            from llama_cpp import Llama

            try:
                self._draft_llm = Llama(
                    model_path=str(draft_info.path),
                    n_ctx=self.settings["n_ctx"],
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=self.settings["n_gpu_layers"],
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelFormatError(
                    f"llama.cpp could not load the draft model {draft_info.path}: {exc}"
                ) from exc
            return DraftCounter(DraftGGUF(self._draft_llm, tokens), n_ctx)
        return None

    def _choose_format(self, info: GGUFInfo) -> str:
        entry = registry_entry(self.settings["model"])
        fmt = choose_format(
            self.settings.get("prompt_format", "auto"),
            entry.prompt_format if entry else None,
            info.has_chat_template,
        )
        if fmt == CHAT_TEMPLATE and not info.has_chat_template:
            raise ConfigError(
                f"{info.path.name} has no chat template (a base model?), but "
                f'[engines.{self.name}] sets prompt_format = "chat-template"',
                hint='use prompt_format = "plain" (or "plain-ja", or "auto")',
            )
        return fmt

    @staticmethod
    def _chat_formatter(llm: Any, info: GGUFInfo) -> Any:
        """The GGUF's chat template, rendered as llama-cpp-python's own chat handler does."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos, bos = llm.token_eos(), llm.token_bos()
        return Jinja2ChatFormatter(
            template=info.metadata["tokenizer.chat_template"],
            eos_token=llm.detokenize([eos], special=True).decode("utf-8", "replace")
            if eos != -1
            else "",
            bos_token=llm.detokenize([bos], special=True).decode("utf-8", "replace")
            if bos != -1
            else "",
            stop_token_ids=[eos],
        )

    def _install_abort_callback(self, llm: Any) -> None:
        """Make the callback through which llama.cpp asks the request whether to stop."""
        import llama_cpp

        def abort(_data: Any) -> bool:
            try:
                return bool(self._should_stop())
            except Exception:  # an exception must not cross into C
                return False

        self._abort_callback = llama_cpp.ggml_abort_callback(abort)

    def _set_abort(self, ctx: Any, on: bool) -> None:
        import llama_cpp

        callback = self._abort_callback if on else llama_cpp.ggml_abort_callback()  # NULL
        llama_cpp.llama_set_abort_callback(ctx, callback, None)

    async def status(self) -> EngineStatus:
        try:
            path = resolve_model(self.settings["model"])
            check_gguf_header(path)
        except TedchatError as exc:
            # The hint says how to get the model (`models pull` ...): `tedchat engines` shows it.
            return EngineStatus(False, exc.message + (f"; {exc.hint}" if exc.hint else ""))
        return EngineStatus(True, str(path))

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "model": self.model,
            **self.settings,
            "threads": self.threads(),
            "prompt_format_used": self._format,
        }

    async def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
                self._abort_callback = None
            if self._draft_llm is not None:
                self._draft_llm.close()
                self._draft_llm = None

    async def reset_cache(self) -> None:
        """Forget the evaluated prompt, so the next request is not served from the KV cache.

        llama-cpp-python reuses the longest prefix the new prompt shares with the last one;
        ``tedchat bench`` calls this before every run so repeated prompts are timed cold.
        (Declared by ``capabilities.cache_reset``; see the bench section of the README.)
        """
        # In a thread: the lock may be held by a generation that is just finishing.
        await asyncio.to_thread(self._reset_sync)

    def _reset_sync(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.reset()
            if self._draft_llm is not None:
                self._draft_llm.reset()

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        await self.load()
        async for event in stream_from_thread(
            lambda should_stop: self._generate(messages, params, should_stop), name=self.name
        ):
            yield event

    # --- prompts -------------------------------------------------------------------------

    async def count_prompt_tokens(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> int | None:
        """The prompt tokens of this request as :meth:`stream` renders it, untrimmed."""
        await self.load()
        return await asyncio.to_thread(self._count_prompt_sync, messages, params)

    def _count_prompt_sync(self, messages: Sequence[Message], params: GenerationParams) -> int:
        messages, params = apply_model_defaults(self.settings["model"], messages, params)
        with self._lock:
            if self._llm is None:
                raise EngineError(f"{self.name} was closed")
            plan = plan_for(params, self._template_tools)
            return len(self._render(self._llm, messages, plan)[0])

    def _render(
        self, llm: Any, messages: Sequence[Message], plan: ToolPlan = NO_TOOLS
    ) -> tuple[list[int], list[str], Any]:
        """Prompt token ids, stop strings and stopping criteria for ``messages``.

        A template that knows tools gets them (when the plan uses any) and the calls and
        results as structured messages; any other prompt gets calls and results as plain
        turns and, when a call is forced, the tools as a note in the system text."""
        if self._formatter is not None:
            if self._template_tools:
                tools = tools_json(plan.tools) if plan.mode != OFF else None
                result = self._formatter(messages=template_messages(messages), tools=tools)
            else:
                plain = [
                    {"role": m.role, "content": m.content} for m in tool_turns_as_text(messages)
                ]
                result = self._formatter(messages=with_note(plain, tools_note(plan)))
            ids = llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
            stop = result.stop if isinstance(result.stop, list) else [result.stop]
            return ids, [s for s in stop if s], result.stopping_criteria
        fmt = PLAIN_FORMATS[self._format or "plain"]
        # special=False: text a user types cannot become a control token. add_bos=True adds
        # BOS where the model asks for it (tokenizer.ggml.add_bos_token).
        text = fmt.render(messages, note=tools_note(plan))
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return ids, list(fmt.stops()), None

    def _fit(
        self,
        llm: Any,
        messages: Sequence[Message],
        params: GenerationParams,
        plan: ToolPlan = NO_TOOLS,
    ) -> tuple[list[int], list[str], Any]:
        """Render ``messages``, leaving out the oldest exchanges if they do not fit the context.

        The answer keeps room for ``max_tokens`` (at most a quarter of the context). The system
        message and the newest user message always stay.
        """
        n_ctx = llm.n_ctx()
        room = n_ctx - min(params.max_tokens, n_ctx // 4)
        system = [m for m in messages if m.role == "system"]
        turns = [m for m in messages if m.role != "system"]
        users = [i for i, m in enumerate(turns) if m.role == "user"]
        last_user = users[-1] if users else 0
        # Keep cutting where the last request cut while the rest fits (a stable prefix).
        kept = len(self._dropped)
        cut = kept if 0 < kept <= last_user and tuple(turns[:kept]) == self._dropped else 0
        ids, stop, criteria = self._render(llm, system + turns[cut:], plan)
        if len(ids) > room:
            goal = int(room * TRIM_TARGET)
            while len(ids) > goal and cut < last_user:
                # A whole exchange at a time: up to the next user message.
                cut = next(i for i in users if i > cut)
                ids, stop, criteria = self._render(llm, system + turns[cut:], plan)
        self._dropped = tuple(turns[:cut])
        if len(ids) >= n_ctx:
            raise EngineError(
                f"{self.name}: the message is {len(ids)} tokens, more than the {n_ctx}-token "
                "context window",
                hint=f"raise n_ctx in [engines.{self.name}], or send a shorter message",
            )
        self.last_trim = None
        if cut:
            full = len(self._render(llm, messages, plan)[0])
            self.last_trim = ContextTrimmed(cut, full - len(ids), len(ids), n_ctx)
            log.info("%s: %s", self.name, self.last_trim.text())
        return ids, stop, criteria

    # --- work in the worker thread -------------------------------------------------------

    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, should_stop: StopCheck
    ) -> Iterator[Event]:
        import llama_cpp

        messages, params = apply_model_defaults(self.settings["model"], messages, params)
        with self._lock:
            llm = self._llm
            plan = plan_for(params, self._template_tools)
            ctx = llm._ctx.ctx
            threads = self.threads()
            llama_cpp.llama_set_n_threads(ctx, threads, threads)
            llama_cpp.llama_perf_context_reset(ctx)
            prompt, stops, criteria = self._fit(llm, messages, params, plan)
            if self.last_trim is not None:
                yield Notice(self.last_trim.text())
            sampled = 0  # sampling steps so far (the end-of-text step included)
            shown = 0  # sampling steps that gave text (the answer's tokens)
            # A plain-format prompt ends at "Assistant:"; the answer's leading space goes.
            # A forced call's JSON starts where the grammar says.
            strip_leading = self._formatter is None or plan.forced
            grammar = make_grammar(plan) if plan.forced else None
            spotter = CallSpotter({t.name for t in plan.tools}) if plan.mode == TEMPLATE else None
            call_id = f"call_{secrets.token_hex(4)}"
            held: list[str] = []  # a REQUIRED answer, read whole at the end
            calls = 0

            # Called once per sampling step: an exact count of generated tokens, so each text
            # delta can say how many tokens it carries (a chunk can hold several when a
            # character spans tokens, as Japanese often does).
            prompt_perf: Any = None  # llama.cpp's counters once the prompt is evaluated

            def count(ids: Any, scores: Any) -> Any:
                nonlocal sampled, prompt_perf
                if sampled == 0:  # the prompt is processed: the token loop checks from here
                    self._set_abort(ctx, False)
                    prompt_perf = llama_cpp.llama_perf_context(ctx)
                    if counter is not None:
                        llm._logits_all = True  # drafts are verified from here on
                sampled += 1
                return scores

            counter = self._counter
            if counter is not None:
                counter.start()
                # Speculation needs the logits of every drafted position, not of every prompt
                # position: the prompt's output layer would cost about a fifth more on SmolLM2
                # (49,152-token vocabulary). llama-cpp-python asks for logits per batch
                # (Llama.eval), so the prompt is evaluated without and `count` turns them on.
                llm._logits_all = False

            self._should_stop = should_stop
            self._set_abort(ctx, True)
            finish = "stop"
            try:
                chunks = llm.create_completion(
                    prompt=prompt,
                    stream=True,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    # llama-cpp-python's own default seed is fixed: every regeneration would
                    # repeat the same sampled answer. Unset means a fresh draw.
                    seed=params.seed if params.seed is not None else random.getrandbits(31),
                    stop=[*stops, *params.stop] or None,
                    stopping_criteria=criteria,
                    logits_processor=llama_cpp.LogitsProcessorList([count]),
                    grammar=grammar,
                )
                for chunk in chunks:
                    if should_stop():
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = choice.get("text")
                    if text and strip_leading:
                        text = text.lstrip()
                        strip_leading = not text
                    if text:
                        tokens, shown = sampled - shown, sampled
                        if plan.mode == NAMED and plan.tool is not None:
                            first = calls == 0
                            calls = 1
                            yield ToolCallDelta(
                                0,
                                call_id if first else None,
                                plan.tool.name if first else None,
                                text,
                            )
                        elif plan.mode == REQUIRED:
                            held.append(text)
                        elif spotter is not None:
                            visible = spotter.feed(text)
                            if visible:
                                yield TextDelta(visible, tokens=tokens)
                        else:
                            yield TextDelta(text, tokens=tokens)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            except RuntimeError as exc:
                if not should_stop():
                    raise EngineError(f"{self.name}: llama.cpp failed: {exc}") from exc
                finish = "cancelled"  # the abort callback stopped the prompt's decode
            except ValueError as exc:  # llama-cpp-python's way of saying the prompt is too long
                raise EngineError(f"{self.name}: {exc}") from exc
            finally:
                self._set_abort(ctx, False)
                self._should_stop = _never
                if counter is not None:
                    llm._logits_all = True
            if finish != "cancelled":
                if held:
                    name, arguments = read_required("".join(held).strip())
                    if name is not None:
                        calls = 1
                        yield ToolCallDelta(0, call_id, name, arguments)
                if spotter is not None:
                    rest, found = spotter.end()
                    if rest:
                        yield TextDelta(rest, tokens=0)
                    for index, (name, arguments) in enumerate(found):
                        calls += 1
                        yield ToolCallDelta(index, f"{call_id}_{index}", name, arguments)
            perf = llama_cpp.llama_perf_context(ctx)
            stats = counter.finish(len(prompt) + sampled) if counter is not None else None
            yield Usage(prompt_tokens=len(prompt), output_tokens=shown, source="engine")
            yield Timings(
                perf_figures(perf, prompt_perf, len(prompt), threads, stats), source="llama.cpp"
            )
            if finish == "cancelled":
                yield Done("cancelled")
            elif finish == "length":
                yield Done("length")
            else:
                yield Done("tool_calls" if calls else "stop")


def _counts(perf: Any) -> tuple[int, float, int, float]:
    """llama.cpp's batch and single-token counters (it reports a count of 0 as 1: a count
    without time is no count)."""
    n_p = int(perf.n_p_eval) if perf.t_p_eval_ms > 0 else 0
    n_e = int(perf.n_eval) if perf.t_eval_ms > 0 else 0
    return n_p, float(perf.t_p_eval_ms), n_e, float(perf.t_eval_ms)


def perf_figures(
    perf: Any, prompt_perf: Any, prompt_tokens: int, threads: int, stats: DraftStats | None
) -> dict[str, float]:
    """One reply's figures from llama.cpp's perf counters (reset before the reply).

    llama.cpp files a decode by its batch size, not by its purpose: a batch of more than one
    token counts as prompt, a single token as generation. So the prompt's figures are read when
    the first token is sampled (``prompt_perf``), and everything after is decoding, whatever
    the batch: speculative decoding verifies its drafts in batches. The prompt tokens not
    evaluated were served from the KV cache (llama-cpp-python reuses the longest prefix of
    the previous prompt). ``eval_tokens`` counts the tokens decoded after the prompt, drafts
    included.
    """
    end_p, end_pt, end_e, end_et = _counts(perf)
    # prompt_perf is None when the reply was cancelled during the prompt.
    first = (end_p, end_pt, end_e, end_et) if prompt_perf is None else _counts(prompt_perf)
    p_tokens = first[0] + first[2]
    p_s = (first[1] + first[3]) / 1000.0
    e_tokens = end_p + end_e - p_tokens
    e_s = max(0.0, (end_pt + end_et) / 1000.0 - p_s)
    figures = {
        "prompt_eval_tokens": float(p_tokens),
        "prompt_eval_s": p_s,
        "cached_prompt_tokens": float(max(0, prompt_tokens - p_tokens)),
        "eval_tokens": float(max(0, e_tokens)),
        "eval_s": e_s,
        "eval_tokens_per_s": e_tokens / e_s if e_s > 0 and e_tokens > 0 else 0.0,
        "threads": float(threads),
    }
    if p_s >= 0.001:  # llama.cpp files the first decode after a load under load time
        figures["prompt_eval_tokens_per_s"] = p_tokens / p_s
    if stats is not None:
        figures["draft_tokens"] = float(stats.drafted)
        figures["draft_accepted_tokens"] = float(stats.accepted)
        figures["draft_acceptance"] = stats.acceptance
    return figures

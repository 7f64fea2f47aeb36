"""The ``llamacpp`` engine: a GGUF run by llama.cpp in a worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from tedchat.engine import (
    Done,
    EngineStatus,
    Event,
    GenerationParams,
    LoadProgress,
    Message,
    ProgressCallback,
    Runtime,
    StopCheck,
    TextDelta,
    Timings,
    Usage,
    stream_from_thread,
)
from tedchat.errors import EngineError, ModelFormatError, TedchatError
from tedchat.models import apply_model_defaults, model_label, resolve_model

GGUF_MAGIC = b"GGUF"


def check_gguf_header(path: Path) -> None:
    """Refuse a file that is not GGUF before llama.cpp opens it (it may crash on some)."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from exc
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelFormatError(f"not a GGUF model file: {path}")


class LlamaCppEngine:
    """llama.cpp on this machine. One ``Llama`` per engine, used under one lock."""

    type = "llamacpp"
    local = True

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime
        self.model = model_label(settings["model"])
        self._llm: Any = None
        # llama-cpp-python's Llama is not thread-safe: every use of it holds this lock.
        self._lock = threading.Lock()

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
            check_gguf_header(path)
            if progress:
                progress(LoadProgress(f"loading {path.name}", None))
            try:
                from llama_cpp import Llama
            except ImportError as exc:  # pragma: no cover - a broken install
                raise EngineError(f"llama-cpp-python is not installed: {exc}") from exc
            threads = self.threads()
            try:
                self._llm = Llama(
                    model_path=str(path),
                    n_ctx=self.settings["n_ctx"],
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=self.settings["n_gpu_layers"],
                    flash_attn=self.settings["flash_attn"],
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelFormatError(f"llama.cpp could not load {path}: {exc}") from exc
            if progress:
                progress(LoadProgress("ready", 1.0))

    async def status(self) -> EngineStatus:
        try:
            path = resolve_model(self.settings["model"])
            check_gguf_header(path)
        except TedchatError as exc:
            return EngineStatus(False, exc.message)
        return EngineStatus(True, str(path))

    def describe(self) -> dict[str, Any]:
        return {"type": self.type, "model": self.model, **self.settings, "threads": self.threads()}

    async def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncIterator[Event]:
        await self.load()
        async for event in stream_from_thread(
            lambda should_stop: self._generate(messages, params, should_stop), name=self.name
        ):
            yield event

    # --- work in the worker thread -------------------------------------------------------

    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, should_stop: StopCheck
    ) -> Iterator[Event]:
        import llama_cpp

        messages, params = apply_model_defaults(self.settings["model"], messages, params)
        with self._lock:
            llm = self._llm
            ctx = llm._ctx.ctx
            threads = self.threads()
            llama_cpp.llama_set_n_threads(ctx, threads, threads)
            llama_cpp.llama_perf_context_reset(ctx)
            sampled = 0
            shown = 0
            prompt_tokens: int | None = None

            # Called once per sampling step: an exact count of generated tokens, so each text
            # delta can say how many tokens it carries (a chunk can hold several when a
            # character spans tokens, as Japanese often does). At the first step the ids seen
            # are exactly the prompt.
            def count(ids: Any, scores: Any) -> Any:
                nonlocal sampled, prompt_tokens
                if prompt_tokens is None:
                    prompt_tokens = len(ids)
                sampled += 1
                return scores

            try:
                chunks = llm.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    seed=params.seed,
                    stop=list(params.stop) or None,
                    logits_processor=llama_cpp.LogitsProcessorList([count]),
                )
                finish = "stop"
                for chunk in chunks:
                    if should_stop():
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = choice.get("delta", {}).get("content")
                    if text:
                        yield TextDelta(text, tokens=sampled - shown)
                        shown = sampled
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            except ValueError as exc:  # llama-cpp-python's way of saying the prompt is too long
                raise EngineError(f"{self.name}: {exc}") from exc
            perf = llama_cpp.llama_perf_context(ctx)
            yield Usage(prompt_tokens=prompt_tokens, output_tokens=shown, source="engine")
            yield Timings(
                {
                    "prompt_eval_tokens": float(perf.n_p_eval),
                    "prompt_eval_s": perf.t_p_eval_ms / 1000.0,
                    "eval_tokens": float(perf.n_eval),
                    "eval_s": perf.t_eval_ms / 1000.0,
                    "eval_tokens_per_s": perf.n_eval / (perf.t_eval_ms / 1000.0)
                    if perf.t_eval_ms > 0
                    else 0.0,
                    "threads": float(threads),
                },
                source="llama.cpp",
            )
            yield Done(finish if finish in ("stop", "length", "cancelled") else "stop")

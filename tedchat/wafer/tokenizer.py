"""Tokenizer and chat template of a GGUF model, for the wafer engine.

llama.cpp (through llama-cpp-python, loaded with ``vocab_only=True``: no weights, no decoding)
turns text into token ids and ids into bytes, so the wafer engine tokenizes exactly as llama.cpp
does on the same file. The chat template is the file's ``tokenizer.chat_template``, rendered
with Jinja2 the way Hugging Face renders it.

Detokenizing is byte-level: one token may carry half of a UTF-8 character (SmolLM2 spells most
Japanese characters as two or three byte tokens). :class:`StreamDecoder` emits only complete
characters, so a stream never shows a broken character.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tedchat.errors import WaferModelError
from tedchat.llama_streams import LLAMA_PROCESS_LOCK

# Known end-of-turn spellings, checked in addition to what llama.cpp marks end-of-generation.
_END_OF_TURN_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>")

_silent_log_callback: Any = None


def _silent_llama_logs() -> Any:
    """A llama.cpp log callback that drops everything (kept alive at module level)."""
    global _silent_log_callback
    if _silent_log_callback is None:
        import llama_cpp

        @llama_cpp.llama_log_callback
        def _drop(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            return None

        _silent_log_callback = _drop
    return _silent_log_callback


class quiet_llama_logs:
    """Silence llama.cpp's log output inside the block; the previous callback is restored.

    llama-cpp-python maps llama.cpp's log levels off by one, so warnings (e.g. "n_ctx_seq >
    n_ctx_train", which a ``vocab_only`` load always triggers) reach stderr even with
    ``verbose=False`` - a stray line across a full-screen TUI. The callback is process-wide:
    keep the block short.
    """

    def __enter__(self) -> None:
        import llama_cpp

        self._cb = llama_cpp.llama_log_callback()
        self._ud = ctypes.c_void_p()
        llama_cpp.llama_log_get(ctypes.byref(self._cb), ctypes.byref(self._ud))
        llama_cpp.llama_log_set(_silent_llama_logs(), ctypes.c_void_p(0))

    def __exit__(self, *exc: object) -> None:
        import llama_cpp

        llama_cpp.llama_log_set(self._cb, self._ud)


def _role_content(message: Any) -> tuple[str, str]:
    if isinstance(message, (tuple, list)) and len(message) == 2:
        return str(message[0]), str(message[1])
    if isinstance(message, dict):
        return str(message["role"]), str(message["content"])
    return str(message.role), str(message.content)


class StreamDecoder:
    """Incremental detokenizer: feed token ids, get back only complete UTF-8 text.

    Bytes of a character split across tokens are held until the character is complete;
    invalid bytes become U+FFFD. Call :meth:`flush` at the end of the stream.
    """

    def __init__(self, tokenizer: Tokenizer, special: bool = False) -> None:
        self._tok = tokenizer
        self._special = special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Text completed by ``token_id`` (possibly empty)."""
        return self._utf8.decode(self._tok.token_bytes(token_id, special=self._special))

    def flush(self) -> str:
        """Whatever is left; an unfinished character becomes U+FFFD."""
        return self._utf8.decode(b"", final=True)


class Tokenizer:
    """Tokenizer, special tokens and chat template of one GGUF file.

    ``chat_template`` overrides the file's template (needed for base models that have none).
    Raises :class:`WaferModelError` if llama.cpp cannot read the vocabulary.
    """

    def __init__(self, path: Path, *, chat_template: str | None = None) -> None:
        import llama_cpp

        self.path = Path(path)
        if not self.path.is_file():
            raise WaferModelError(f"model file not found: {self.path}")
        try:
            # One thread at a time: the quiet load swaps process-wide fds and the log callback.
            with LLAMA_PROCESS_LOCK, quiet_llama_logs():
                self._llm = llama_cpp.Llama(str(self.path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise WaferModelError(
                f"llama.cpp cannot read the vocabulary of {self.path}: {e}"
            ) from e
        self._lock = threading.Lock()
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.vocab_size: int = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.bos_id: int = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos_id: int = int(llama_cpp.llama_vocab_eos(self._vocab))
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._spm = int(llama_cpp.llama_vocab_type(self._vocab)) == llama_cpp.LLAMA_VOCAB_TYPE_SPM
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self._buf = ctypes.create_string_buffer(256)

        self.metadata: dict[str, str] = dict(self._llm.metadata)
        self.chat_template: str | None = chat_template or self.metadata.get(
            "tokenizer.chat_template"
        )
        self._template: Any = None
        self.eot_ids: frozenset[int] = self._find_end_of_turn()

    # ------------------------------------------------------------------ tokens

    def encode(self, text: str, add_bos: bool | None = None, special: bool = True) -> list[int]:
        """Token ids of ``text``.

        ``add_bos`` defaults to the model's own setting; ``special`` parses control tokens
        such as ``<|im_start|>`` written in the text (chat prompts need it).
        """
        bos = self.add_bos if add_bos is None else add_bos
        with self._lock:
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special))

    def token_bytes(self, token_id: int, special: bool = False) -> bytes:
        """The bytes token ``token_id`` spells (control tokens are empty unless ``special``)."""
        key = (int(token_id), special)
        piece = self._pieces.get(key)
        if piece is None:
            piece = self._piece(*key)
            self._pieces[key] = piece
        return piece

    def _piece(self, token_id: int, special: bool) -> bytes:
        import llama_cpp

        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token id {token_id} is outside the vocabulary of {self.vocab_size}")
        with self._lock:
            n = llama_cpp.llama_token_to_piece(
                self._vocab, token_id, self._buf, len(self._buf), 0, special
            )
            if n < 0:  # buffer too small: -n is the size needed
                self._buf = ctypes.create_string_buffer(-n + 16)
                n = llama_cpp.llama_token_to_piece(
                    self._vocab, token_id, self._buf, len(self._buf), 0, special
                )
            return self._buf.raw[:n]

    def decode(self, token_ids: Sequence[int], special: bool = False) -> str:
        """Text of a whole token sequence (incomplete characters become U+FFFD)."""
        data = b"".join(self.token_bytes(t, special) for t in token_ids)
        if self._spm and token_ids and token_ids[0] == self.bos_id and data[:1] == b" ":
            data = data[1:]  # SentencePiece's prefix space after BOS, as llama.cpp drops it
        return data.decode("utf-8", errors="replace")

    def stream(self, special: bool = False) -> StreamDecoder:
        """A fresh :class:`StreamDecoder` for one generated reply."""
        return StreamDecoder(self, special)

    def is_end_of_turn(self, token_id: int) -> bool:
        return token_id in self.eot_ids

    def _find_end_of_turn(self) -> frozenset[int]:
        import llama_cpp

        ids = {self.eos_id} if self.eos_id >= 0 else set()
        eot = int(llama_cpp.llama_vocab_eot(self._vocab))
        if eot >= 0:
            ids.add(eot)
        for i in range(self.vocab_size):
            if llama_cpp.llama_vocab_is_eog(self._vocab, i):
                ids.add(i)
        for text in _END_OF_TURN_TEXTS:
            toks = self.encode(text, add_bos=False, special=True)
            if len(toks) == 1 and llama_cpp.llama_vocab_is_control(self._vocab, toks[0]):
                ids.add(toks[0])
        return frozenset(ids)

    # ------------------------------------------------------------------ chat template

    def _compiled_template(self) -> Any:
        if self._template is None:
            if not self.chat_template:
                raise WaferModelError(
                    f"{self.path.name} has no chat template (tokenizer.chat_template): it is "
                    "probably a base model; give the engine an explicit chat_template"
                )
            import json

            import jinja2
            import jinja2.ext
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(
                loader=jinja2.BaseLoader(),
                trim_blocks=True,
                lstrip_blocks=True,
                extensions=[jinja2.ext.loopcontrols],
            )
            env.filters["tojson"] = lambda x, indent=None: json.dumps(
                x, ensure_ascii=False, indent=indent
            )
            try:
                self._template = env.from_string(self.chat_template)
            except jinja2.TemplateError as e:
                raise WaferModelError(f"chat template of {self.path.name} is invalid: {e}") from e
        return self._template

    def apply_chat_template(
        self, messages: Sequence[Any], add_generation_prompt: bool = True
    ) -> str:
        """The prompt text for ``messages`` (``(role, content)`` pairs, dicts or Message objects).

        With ``add_generation_prompt`` the text ends where the assistant's reply begins.
        """
        import jinja2

        def raise_exception(message: str) -> None:
            raise WaferModelError(f"chat template of {self.path.name} refused the chat: {message}")

        msgs = [dict(zip(("role", "content"), _role_content(m), strict=True)) for m in messages]
        try:
            return self._compiled_template().render(
                messages=msgs,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.token_bytes(self.bos_id, True).decode("utf-8", "replace")
                if self.bos_id >= 0
                else "",
                eos_token=self.token_bytes(self.eos_id, True).decode("utf-8", "replace")
                if self.eos_id >= 0
                else "",
                raise_exception=raise_exception,
                strftime_now=lambda fmt: datetime.now().strftime(fmt),
            )
        except jinja2.TemplateError as e:
            raise WaferModelError(f"chat template of {self.path.name} failed to render: {e}") from e

    def encode_chat(self, messages: Sequence[Any], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat prompt, with BOS added once (templates may spell it already)."""
        text = self.apply_chat_template(messages, add_generation_prompt)
        ids = self.encode(text, add_bos=False, special=True)
        if self.add_bos and self.bos_id >= 0 and (not ids or ids[0] != self.bos_id):
            ids.insert(0, self.bos_id)
        return ids

    def close(self) -> None:
        """Free llama.cpp's vocabulary."""
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            del self._llm  # so a second close() finds none

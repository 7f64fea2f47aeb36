"""Teacher-forced verification of the wafer numerics against llama.cpp.

For each prompt both run the same tokens; at every position we compare the logits: top-1
agreement (do both predict the same next token?), and the largest and mean absolute logit
difference. Then both continue greedily for a few tokens and we count how long they agree.
llama.cpp is the reference, so this module (and only this one in the wafer engine) runs
llama.cpp's decoder.

Two references, because llama.cpp does not compute with the weights alone:

* ``"file"`` - llama.cpp on the GGUF itself, with its default settings (float16 KV cache,
  flash attention off). For a quantized file llama.cpp rounds the *activations* to 8 bits
  before each matrix product (Q8_0/Q8_1/Q8_K) and keeps K and V in float16; an ulp of
  difference anywhere then moves values across those rounding boundaries, and 30 layers
  amplify the flips: the plain float32 numerics agree with it on only 93% of top-1 tokens
  (SmolLM2-135M Q4_1), and llama.cpp itself agrees with its own token-by-token decode on only
  96%. So against this reference our side runs with
  :class:`~tedchat.wafer.llamacpp_rounding.LlamaCppRounding`, which reproduces llama.cpp's CPU
  rounding bit for bit where it is known (32-weight block types and float16 KV): on the
  bundled model the logits come out identical.
* ``"float32"`` - llama.cpp on a float32 copy of the same weights (dequantized by the `gguf`
  package, as the wafer engine does) and a float32 KV cache, against the plain float32
  numerics the engine runs: no rounding on either side, so this checks the forward pass
  itself (RoPE, attention, norms, FFN); expect top-1 agreement of 1.0 and logit errors around
  1e-4 (summation order).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tedchat.errors import WaferModelError
from tedchat.wafer.gguf_weights import open_gguf
from tedchat.wafer.kernels import blas_threads
from tedchat.wafer.llamacpp_rounding import LlamaCppRounding, with_rounding
from tedchat.wafer.numerics import Model
from tedchat.wafer.tokenizer import Tokenizer, quiet_llama_logs

CORPUS_PATH = Path(__file__).with_name("corpus.txt")

_patch_lock = threading.Lock()


def load_corpus(path: Path | None = None) -> list[str]:
    """Prompts of a corpus file: one a line, blank lines skipped, leading spaces kept."""
    p = CORPUS_PATH if path is None else Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise WaferModelError(f"cannot read corpus {p}: {e.strerror or e}") from e
    return [line for line in lines if line.strip()]


@contextlib.contextmanager
def plain_cpu_buffers() -> Iterator[None]:
    """Make llama.cpp keep weights in plain CPU buffers while a model loads.

    llama.cpp otherwise repacks some weight types into "extra" buffer types (interleaved
    Q4_0/Q4_K/IQ4_NL layouts; AMX tiles in builds for the build machine's CPU), whose kernels
    sum the same quantized products in another order. The plain path is the one
    :class:`~tedchat.wafer.llamacpp_rounding.LlamaCppRounding` reproduces bit for bit. (It
    also avoided a SIGILL: a natively built wheel on a virtual machine that advertises AMX
    without enabling it dies in the AMX kernels; the current AVX2-baseline wheel has no AMX
    kernels.)
    """
    import llama_cpp.llama as llama_mod

    module = llama_mod.llama_cpp
    original = module.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    with _patch_lock:
        module.llama_model_default_params = params
        try:
            yield
        finally:
            module.llama_model_default_params = original


def write_float32_gguf(
    src: Path, dst: Path, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Copy GGUF ``src`` to ``dst`` with every tensor dequantized to float32.

    Metadata (vocabulary, chat template, hyperparameters) is copied as is. Tensors are written
    one at a time, so memory stays bounded whatever the model size.
    """
    import gguf
    from gguf.quants import dequantize

    reader = open_gguf(Path(src))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(Path(dst), arch)
    for key, fld in reader.fields.items():
        # The writer lays out data with its own alignment, so the source's must not be copied.
        if key.startswith("GGUF.") or key in ("general.architecture", "general.alignment"):
            continue
        if key == "general.file_type":
            writer.add_uint32(key, int(gguf.LlamaFileType.ALL_F32))
            continue
        vtype = fld.types[0]
        sub = fld.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, fld.contents(), vtype, sub_type=sub)
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        writer.add_tensor_info(t.name, shape, np.dtype(np.float32), 4 * t.n_elements)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for i, t in enumerate(reader.tensors):
        data = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        writer.write_tensor_data(np.ascontiguousarray(data).reshape(-1))
        if progress is not None:
            progress(i + 1, len(reader.tensors))
    writer.close()
    return Path(dst)


def reference_llama(
    model_path: Path, n_ctx: int, n_threads: int = 1, *, float32_kv: bool = False
) -> Any:
    """A llama.cpp model on ``model_path`` that keeps logits for every position.

    ``float32_kv`` keeps llama.cpp's KV cache in float32 instead of its default float16.
    """
    import llama_cpp

    kv_type = llama_cpp.GGML_TYPE_F32 if float32_kv else None  # None: llama.cpp's default
    from tedchat.llama_streams import LLAMA_PROCESS_LOCK

    with LLAMA_PROCESS_LOCK, plain_cpu_buffers(), quiet_llama_logs():
        return llama_cpp.Llama(
            str(model_path),
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=True,
            verbose=False,
            type_k=kv_type,
            type_v=kv_type,
        )


REFERENCES = {
    "file": "llama.cpp on the GGUF",
    "float32": "llama.cpp on float32 weights",  # and a float32 KV cache
}

NUMERICS = {
    "file": "with llama.cpp's rounding",
    "float32": "in float32",
}
"""How the wafer side computes against each reference."""


@dataclass
class PromptReport:
    """Agreement on one prompt."""

    text: str
    positions: int
    top1_matches: int
    max_abs_error: float
    mean_abs_error: float
    greedy_match: int
    """Leading greedy tokens both produced identically after the prompt."""
    greedy_tokens: int

    @property
    def top1_agreement(self) -> float:
        return self.top1_matches / self.positions if self.positions else 1.0


@dataclass
class VerifyReport:
    """Agreement with one reference over a set of prompts (every position weighs the same)."""

    model_path: Path
    reference: str
    """A key of :data:`REFERENCES`."""
    prompts: list[PromptReport] = field(default_factory=list)
    seconds_ours: float = 0.0
    seconds_reference: float = 0.0

    @property
    def positions(self) -> int:
        return sum(p.positions for p in self.prompts)

    @property
    def top1_agreement(self) -> float:
        n = self.positions
        return sum(p.top1_matches for p in self.prompts) / n if n else 1.0

    @property
    def max_abs_error(self) -> float:
        return max((p.max_abs_error for p in self.prompts), default=0.0)

    @property
    def mean_abs_error(self) -> float:
        n = self.positions
        return sum(p.mean_abs_error * p.positions for p in self.prompts) / n if n else 0.0

    @property
    def greedy_match(self) -> float:
        """Fraction of greedy continuation tokens inside the agreeing prefixes."""
        total = sum(p.greedy_tokens for p in self.prompts)
        return sum(p.greedy_match for p in self.prompts) / total if total else 1.0

    def passed(self, min_top1: float = 0.98) -> bool:
        return self.top1_agreement >= min_top1

    def summary(self) -> str:
        """One line: the totals."""
        return (
            f"wafer {NUMERICS[self.reference]} vs {REFERENCES[self.reference]}: top-1 "
            f"{self.top1_agreement:.3f} over "
            f"{self.positions} positions, max |dlogit| {self.max_abs_error:.3g}, "
            f"mean {self.mean_abs_error:.3g}, greedy prefix {self.greedy_match:.2f}"
        )

    def format(self) -> str:
        """A plain-text table: one row a prompt, then the totals."""
        rows = [
            f"{self.model_path.name}: wafer {NUMERICS[self.reference]} vs "
            f"{REFERENCES[self.reference]}",
            f"{'pos':>5} {'top-1':>7} {'max|d|':>8} {'mean|d|':>8} {'greedy':>7}  prompt",
        ]
        for p in self.prompts:
            text = p.text.replace("\n", " ")
            text = text if len(text) <= 40 else text[:39] + "…"
            rows.append(
                f"{p.positions:5d} {p.top1_agreement:7.3f} {p.max_abs_error:8.4f} "
                f"{p.mean_abs_error:8.4f} {p.greedy_match:3d}/{p.greedy_tokens:<3d}  {text}"
            )
        rows.append(
            f"{self.positions:5d} {self.top1_agreement:7.3f} {self.max_abs_error:8.4f} "
            f"{self.mean_abs_error:8.4f} {self.greedy_match:7.2f}  total "
            f"(wafer {self.seconds_ours:.1f} s, llama.cpp {self.seconds_reference:.1f} s)"
        )
        return "\n".join(rows)


def _greedy_reference(llm: Any, n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def _greedy_ours(model: Model, cache: Any, logits: np.ndarray, n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        tok = int(np.argmax(logits))
        out.append(tok)
        logits = model.decode(tok, cache)
    return out


def _prefix_match(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def verify(
    model_path: Path,
    prompts: Sequence[str] | None = None,
    *,
    references: Sequence[str] = ("file", "float32"),
    greedy_tokens: int = 16,
    n_threads: int = 1,
    model: Model | None = None,
    tokenizer: Tokenizer | None = None,
    workdir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[VerifyReport]:
    """Compare the wafer numerics with llama.cpp on ``prompts`` (default: the bundled corpus).

    Returns one report per entry of ``references`` (keys of :data:`REFERENCES`). Against
    ``"file"`` the wafer side runs with :class:`LlamaCppRounding` (about 15x slower than the
    plain numerics), against ``"float32"`` in plain float32; both share the loaded weights.
    The ``"float32"`` reference writes a float32 copy of the model into ``workdir`` (default:
    a temporary directory, removed afterwards). Prompts are tokenized as plain text (BOS as
    the model wants it). ``model`` and ``tokenizer`` may be passed in to reuse loaded ones.
    ``progress(done, total)`` counts prompts.
    """
    import tempfile

    model_path = Path(model_path)
    for ref in references:
        if ref not in REFERENCES:
            raise ValueError(f"unknown reference {ref!r}: choose from {', '.join(REFERENCES)}")
    texts = list(load_corpus() if prompts is None else prompts)
    with contextlib.ExitStack() as stack:
        stack.enter_context(blas_threads(n_threads))
        tok = tokenizer or Tokenizer(model_path)
        encoded = [tok.encode(t, special=False) for t in texts]
        pairs = [(t, ids) for t, ids in zip(texts, encoded, strict=True) if ids]
        longest = max((len(ids) for _, ids in pairs), default=1)
        n_ctx = longest + greedy_tokens + 8
        model = model or Model.load(model_path, context=max(n_ctx, 64))
        if model.context < n_ctx:
            raise WaferModelError(
                f"the model was loaded with a context of {model.context}; verifying these "
                f"prompts needs {n_ctx}"
            )

        # The wafer numerics each reference is compared with (weights shared, not copied).
        numerics = {
            ref: with_rounding(model, LlamaCppRounding() if ref == "file" else None)
            for ref in references
        }
        llms: list[Any] = []
        for ref in references:
            path = model_path
            if ref == "float32":
                tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
                path = write_float32_gguf(model_path, Path(tmp) / (model_path.stem + ".f32.gguf"))
            llm = reference_llama(
                path, n_ctx=n_ctx, n_threads=n_threads, float32_kv=ref == "float32"
            )
            stack.callback(llm.close)
            llms.append(llm)
        reports = [VerifyReport(model_path=model_path, reference=ref) for ref in references]

        for i, (text, ids) in enumerate(pairs):
            for ref, llm, report in zip(references, llms, reports, strict=True):
                ours_model = numerics[ref]
                t0 = time.perf_counter()
                cache = ours_model.new_cache(context=n_ctx)
                ours = ours_model.forward(ids, cache, all_logits=True)
                ours_greedy = _greedy_ours(ours_model, cache, ours[-1], greedy_tokens)
                report.seconds_ours += time.perf_counter() - t0
                ours_top1 = ours.argmax(-1)
                t1 = time.perf_counter()
                llm.reset()
                llm.eval(ids)
                ref_logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
                ref_greedy = _greedy_reference(llm, greedy_tokens)
                report.seconds_reference += time.perf_counter() - t1
                diff = np.abs(ours - ref_logits)
                report.prompts.append(
                    PromptReport(
                        text=text,
                        positions=len(ids),
                        top1_matches=int(np.sum(ours_top1 == ref_logits.argmax(-1))),
                        max_abs_error=float(diff.max()),
                        mean_abs_error=float(diff.mean()),
                        greedy_match=_prefix_match(ours_greedy, ref_greedy),
                        greedy_tokens=greedy_tokens,
                    )
                )
            if progress is not None:
                progress(i + 1, len(pairs))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tedchat.wafer.verify MODEL.gguf [CORPUS]``: print the report."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("model", type=Path)
    ap.add_argument("corpus", type=Path, nargs="?")
    ap.add_argument("--greedy", type=int, default=16, help="greedy tokens per prompt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--min-top1", type=float, default=0.98, help="required top-1 agreement, every reference"
    )
    args = ap.parse_args(argv)
    prompts = load_corpus(args.corpus) if args.corpus else None
    try:
        reports = verify(args.model, prompts, greedy_tokens=args.greedy, n_threads=args.threads)
    except WaferModelError as e:
        print(f"error: {e}")
        return 1
    for report in reports:
        print(report.format(), end="\n\n")
    for report in reports:
        print(report.summary())
    return 0 if all(r.passed(args.min_top1) for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())

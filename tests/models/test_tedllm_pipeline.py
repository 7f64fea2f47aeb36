"""TEDLLM end to end on a synthetic checkpoint: pull -> convert -> llama.cpp -> tedchat ask.

Acceptance 1 of the TEDLLM issue: the pull is interrupted once and resumed; the F16 GGUF loads
in llama.cpp; its tokenizer gives the same ids as Hugging Face ``tokenizers``; its logits agree
with a Hugging Face-convention reference forward over the original safetensors; Q8_0 and
Q4_K_M load and generate; ``tedchat ask`` streams from the ``tedllm`` engine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tedchat.models.registry import PULL_MARKER
from tests.conftest import one_error_line, run_cli
from tests.models.conftest import FIRST_SHARD, ONE_THREAD, Pulled
from tests.models.reference import forward
from tests.models.synthetic import SPECIAL_TOKENS, TEXT_CODE, TEXT_EN, TEXT_JA

TEXTS = {"english": TEXT_EN, "japanese": TEXT_JA, "code": TEXT_CODE}


def llama(path: Path, **kwargs: object) -> object:
    import llama_cpp

    return llama_cpp.Llama(str(path), n_threads=1, n_threads_batch=1, verbose=False, **kwargs)


def test_pull_resumes_a_dropped_connection_and_verifies_every_file(
    pulled: Pulled, tiny_ckpt: Path
) -> None:
    assert pulled.pull.returncode == 0, pulled.pull.stderr
    assert "Llama 3 Community License" in pulled.pull.stderr
    assert "next: tedchat models convert tedllm" in pulled.pull.stderr
    gets = [r for r in pulled.hub.requests if r.method == "GET" and r.path.endswith(FIRST_SHARD)]
    # The first GET was cut after 60% of the shard; the next one asked for the rest only.
    assert len(gets) == 2 and gets[0].range is None
    assert gets[1].range is not None and gets[1].range.startswith("bytes=")
    assert int(gets[1].range[6:].rstrip("-")) > 0 and gets[1].status == 206
    for source in tiny_ckpt.iterdir():
        copy = pulled.snapshot / source.name
        assert (
            hashlib.sha256(copy.read_bytes()).digest()
            == hashlib.sha256(source.read_bytes()).digest()
        ), source.name
    marker = json.loads((pulled.snapshot / PULL_MARKER).read_text())
    assert marker["repo_id"] == "tokyo-electron-device-ai/llama3-tedllm-8b-v0"
    # Nothing half-written anywhere: no staging folder, no temporary files.
    models = pulled.home / "data" / "models"
    leftovers = [p for p in models.rglob("*") if "partial" in p.name or "incomplete" in p.name]
    assert leftovers == []


def test_pull_again_fetches_nothing(pulled: Pulled) -> None:
    before = len(pulled.hub.requests)
    again = run_cli(pulled.home, "models", "pull", "tedllm", **pulled.env)
    assert again.returncode == 0, again.stderr
    assert "already downloaded" in again.stderr
    assert not [r for r in pulled.hub.requests[before:] if "/resolve/" in r.path]


def test_convert_writes_the_registry_gguf(pulled: Pulled) -> None:
    assert pulled.convert.returncode == 0, pulled.convert.stderr
    assert pulled.convert.stdout.strip() == str(pulled.gguf)
    # The synthetic checkpoint is not TEDLLM's size: the registry's figures are checked.
    assert "vocab size is 768, the registry says 141056" in pulled.convert.stderr
    path = run_cli(pulled.home, "models", "path", "tedllm")
    assert path.stdout.strip() == str(pulled.gguf)


def test_tokenizer_ids_match_hugging_face(pulled: Pulled, tiny_ckpt: Path) -> None:
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(tiny_ckpt / "tokenizer.json"))
    llm = llama(pulled.gguf, vocab_only=True)
    for kind, text in TEXTS.items():
        expected = hf.encode(text, add_special_tokens=False).ids
        got = llm.tokenize(text.encode(), add_bos=False, special=False)
        assert got == expected, kind
        assert llm.detokenize(got).decode() == text, kind
    # Added tokens (Japanese, non-special) are matched whole, as Hugging Face does.
    for word in ("東京エレクトロン", "半導体"):
        assert llm.tokenize(word.encode(), add_bos=False) == [hf.token_to_id(word)]
    # BOS and EOS as config.json says, BOS added by default (Llama-3's post-processor).
    bos, eos = hf.token_to_id(SPECIAL_TOKENS[0]), hf.token_to_id(SPECIAL_TOKENS[1])
    assert llm.token_bos() == bos and llm.token_eos() == eos
    assert llm.tokenize(b"hi", add_bos=True)[0] == bos
    # Control tokens are parsed only when asked to.
    marked = f"{SPECIAL_TOKENS[0]}hello".encode()
    assert llm.tokenize(marked, add_bos=False, special=True)[0] == bos
    assert bos not in llm.tokenize(marked, add_bos=False, special=False)


def test_logits_agree_with_a_hugging_face_reference(pulled: Pulled, tiny_ckpt: Path) -> None:
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(tiny_ckpt / "tokenizer.json"))
    llm = llama(pulled.gguf, n_ctx=512, logits_all=True)
    agree = total = 0
    worst = 0.0
    for text in TEXTS.values():
        ids = hf.encode(text).ids  # with BOS
        reference = forward(tiny_ckpt, ids)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
        agree += int((reference.argmax(-1) == got.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, float(np.abs(reference - got).max() / reference.std()))
    assert total >= 90
    assert agree / total >= 0.99, (agree, total)
    assert worst < 0.05, worst  # F16 weights: small relative error, not a layout mistake


def test_logit_check_fails_without_the_rope_permutation(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: skip the Q/K permutation and agreement collapses."""
    from tokenizers import Tokenizer

    import tedchat.models.convert as convert

    monkeypatch.setattr(convert, "permute_rope_rows", lambda block, head_dim: block)
    out = tmp_path / "wrong.gguf"
    convert.convert_checkpoint(tiny_ckpt, out, "F16", progress=False, log=lambda _: None)
    ids = Tokenizer.from_file(str(tiny_ckpt / "tokenizer.json")).encode(TEXT_EN).ids
    llm = llama(out, n_ctx=256, logits_all=True)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)])
    assert (forward(tiny_ckpt, ids).argmax(-1) == got.argmax(-1)).mean() < 0.9


@pytest.mark.parametrize(("quant", "ftype"), [("Q8_0", 7), ("Q4_K_M", 15)])
def test_quantised_conversions_load_and_generate(pulled: Pulled, quant: str, ftype: int) -> None:
    import llama_cpp

    done = run_cli(pulled.home, "models", "convert", "tedllm", "--quant", quant, "--threads", "1")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == f"llama3-tedllm-8b-v0.{quant}.gguf"
    assert path.stat().st_size < pulled.gguf.stat().st_size
    llm = llama(path, n_ctx=256)
    assert llama_cpp.llama_model_ftype(llm._model.model) == ftype
    out = llm.create_completion("東京エレクトロン", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    assert not list(path.parent.glob("*.partial"))


def test_ask_streams_from_the_tedllm_engine(pulled: Pulled) -> None:
    config = pulled.home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[engines.tedllm]\ntype = "llamacpp"\nmodel = "tedllm"\nn_ctx = 512\n')
    args = ("ask", "--engine", "tedllm", "--temperature", "0", "--max-tokens", "12")
    result = run_cli(pulled.home, *args, "--json", "こんにちは", **ONE_THREAD)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["engine"] == "tedllm" and record["model"] == "tedllm"
    assert record["output_tokens"] >= 1 and record["output_tokens_source"] == "engine"
    assert record["finish_reason"] in ("stop", "length")
    # The prompt is the plain-ja completion format (tedllm is a base model), not llama-2's.
    assert record["prompt_tokens"] > 10
    streamed = run_cli(pulled.home, *args, "hello", **ONE_THREAD)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stderr.strip().splitlines()[-1].startswith("[tedllm · tedllm] TTFT ")


def test_models_list_shows_registry_fields(pulled: Pulled) -> None:
    result = run_cli(pulled.home, "models", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    ted = rows["tedllm"]
    assert ted["present"] and ted["downloaded"] and ted["size_bytes"] > 0
    assert ted["license"] == "Llama 3 Community License"
    assert ted["source"] == "hf:tokyo-electron-device-ai/llama3-tedllm-8b-v0"
    assert ted["prompt_format"] == "plain-ja" and ted["base_model"] is True
    assert ted["context_length"] == 8192
    assert rows["smollm2"]["source"] == "bundled"


def test_engines_says_how_to_get_tedllm(tedchat_home: Path) -> None:
    result = run_cli(tedchat_home, "engines", "--json")
    assert result.returncode == 0, result.stderr
    row = {r["name"]: r for r in json.loads(result.stdout)}["tedllm"]
    assert row["status"] == "unavailable"
    assert "tedchat models pull tedllm && tedchat models convert tedllm" in row["detail"]
    ask = run_cli(tedchat_home, "ask", "--engine", "tedllm", "hi")
    assert ask.returncode == 1
    assert "not downloaded yet" in one_error_line(ask.stderr)
    assert "hint: get it with: tedchat models pull tedllm" in ask.stderr

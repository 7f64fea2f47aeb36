"""llama.cpp's CPU rounding reproduced on the wafer numerics, against llama.cpp itself.

The tiny synthetic GGUFs of tests/wafer/tiny_llama.py, in every 32-weight block type and with
both KV cache types: the rounded numerics must give llama.cpp's logits bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tedchat.wafer.gguf_weights import load_weights
from tedchat.wafer.llamacpp_rounding import (
    GgmlRope,
    LlamaCppRounding,
    RoundedLayer,
    RoundedModel,
    ggml_expf,
    round_activations,
    with_rounding,
)
from tedchat.wafer.numerics import Layer, Model, Rope
from tests.wafer.tiny_llama import (
    TOKENS,
    Q,
    llama_cpp_logits,
    quantize_with_llama_cpp,
    write_tiny_llama,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def prompt_then_decode(model: Model, tokens: list[int], batch: int) -> np.ndarray:
    cache = model.new_cache()
    logits = [model.forward(tokens[:batch], cache, all_logits=True)]
    logits += [model.decode(t, cache)[None] for t in tokens[batch:]]
    return np.concatenate(logits)


@pytest.mark.parametrize("float32_kv", [False, True], ids=["f16kv", "f32kv"])
@pytest.mark.parametrize(
    "qtype", [Q.F32, Q.F16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1], ids=lambda q: q.name
)
def test_llamacpp_rounding_reproduces_llama_cpp_bit_for_bit(
    tmp_path: Path, qtype: Q, float32_kv: bool
) -> None:
    # A prompt batch (llama.cpp's tiled products) then single tokens (its dot products),
    # against llama.cpp's default float16 KV cache and a float32 one.
    path = write_tiny_llama(tmp_path / "m.gguf", qtype=qtype, seed=7)
    ref = llama_cpp_logits(path, TOKENS, float32_kv=float32_kv, batch=5)
    model = RoundedModel.load(path, rounding=LlamaCppRounding(kv_f16=not float32_kv))
    np.testing.assert_array_equal(prompt_then_decode(model, TOKENS, 5), ref)
    # Not vacuous: the plain float32 numerics differ (well above float32 noise once llama.cpp
    # rounds activations or KV).
    plain = np.abs(prompt_then_decode(with_rounding(model, None), TOKENS, 5) - ref).max()
    assert plain > (1e-6 if qtype == Q.F32 and float32_kv else 1e-3)


def test_llamacpp_rounding_narrows_k_quant_differences(tmp_path: Path) -> None:
    # K-quant dot products are summed in an order not reproduced here, so not bit for bit,
    # but rounding activations to Q8_K and the rest still close most of the gap.
    path = quantize_with_llama_cpp(tmp_path, "Q6_K")
    ref = llama_cpp_logits(path, TOKENS, float32_kv=False)
    model = RoundedModel.load(path)
    rounded = model.forward(TOKENS, model.new_cache(), all_logits=True)
    plain = with_rounding(model, None).forward(TOKENS, model.new_cache(), all_logits=True)
    assert np.abs(rounded - ref).mean() < 0.2 * np.abs(plain - ref).mean()


def test_default_numerics_take_no_rounding_path(tiny: Path) -> None:
    weights = load_weights(tiny)
    assert all(s.blocks is None for s in weights.layers[0].sources.values())  # not loaded
    model = Model(weights)
    assert with_rounding(model, None) is model
    assert type(model.rope) is Rope and all(type(layer) is Layer for layer in model.layers)
    rounded = with_rounding(model, LlamaCppRounding())
    assert isinstance(rounded, RoundedModel) and rounded.rounding == LlamaCppRounding()
    assert with_rounding(rounded, LlamaCppRounding()) is rounded
    assert isinstance(rounded.rope, GgmlRope)
    assert all(isinstance(layer, RoundedLayer) for layer in rounded.layers)
    assert np.shares_memory(rounded.layers[1].w_down.data, model.layers[1].w_down.data)
    # Back to the plain numerics: the same weights, none of the rounded pieces.
    plain = with_rounding(rounded, None)
    assert type(plain) is Model and type(plain.layers[0]) is Layer
    assert plain.weights is weights
    np.testing.assert_array_equal(
        plain.forward(TOKENS, plain.new_cache(), all_logits=True),
        model.forward(TOKENS, model.new_cache(), all_logits=True),
    )


def test_ggml_expf_is_a_faithful_exp() -> None:
    x = np.linspace(-103.0, 88.0, 400_001, dtype=np.float32)
    got = ggml_expf(x).astype(np.float64)
    exact = np.exp(x.astype(np.float64))
    normal = exact > np.finfo(np.float32).tiny
    ulp = np.spacing(exact[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[normal] - exact[normal]) / ulp) < 2.0
    assert np.max(np.abs(got[~normal] - exact[~normal])) < 2e-45 * 4
    edges = ggml_expf(np.array([0.0, -np.inf, -200.0, 1.0], dtype=np.float32))
    assert edges[0] == 1.0 and edges[1] == 0.0 and edges[2] == 0.0
    assert edges[3] == pytest.approx(np.e, rel=3e-7)


def test_q8_activation_rounding() -> None:
    x = np.zeros((1, 64), dtype=np.float32)
    x[0, 0] = 127.0  # scale 1: q = round_half_even(x)
    x[0, 1:5] = [2.5, 3.5, -2.5, 0.4]
    x[0, 32:] = np.linspace(-1, 1, 32, dtype=np.float32)
    q8_0, none = round_activations(x, "q8_0")
    assert none is None
    np.testing.assert_array_equal(q8_0[0, :5], [127.0, 2.0, 4.0, -2.0, 0.0])
    d = np.float32(np.float16(np.float32(1) / np.float32(127)))  # stored as float16
    np.testing.assert_array_equal(q8_0[0, 32:], np.rint(x[0, 32:] * 127) * d)
    q8_1, sum_err = round_activations(x, "q8_1")
    np.testing.assert_array_equal(q8_1, q8_0)
    assert sum_err is not None and sum_err.shape == (1, 2) and sum_err[0, 0] == 0.0
    q8_k, _ = round_activations(np.tile(x, 4), "q8_K")  # one block of 256
    assert np.abs(q8_k - np.tile(x, 4)).max() <= 0.5 + 1e-6

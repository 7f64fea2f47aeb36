"""Row invariance of the wafer numerics: a row's logits do not depend on the rows beside it.

A decode step (one row), a speculative verify (k+1 rows continuing a cache) and a batched
decode (one row of each of B sequences) must give each row bit-identical logits
(``np.array_equal``), at one thread and at two. Real shapes matter, so the main checks run the
bundled SmolLM2-135M; Hypothesis explores the products (any row count, thread count, shape,
and a row's place in the call) and random tiny models.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tedchat.wafer.kernels import PANEL, Panels, compute_threads
from tedchat.wafer.numerics import ROW_INVARIANT_ROWS, KVCache, Model, product
from tests.wafer.test_verify import bundled_model
from tests.wafer.tiny_llama import write_tiny_llama

PROMPT = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 28, 1489, 9399, 30]
THREADS = [1, 2]
MAX_ROWS = 8


@pytest.fixture(scope="module")
def model() -> Model:
    with compute_threads(1):
        return Model.load(bundled_model(), context=128)


@pytest.fixture(params=THREADS, ids=lambda n: f"{n}-thread")
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    with compute_threads(request.param):
        yield request.param


def _prefilled(model: Model, prompt: list[int]) -> KVCache:
    cache = model.new_cache()
    model.prefill(prompt, cache)
    return cache


def _alone(model: Model, prompt: list[int], tokens: list[int]) -> list[np.ndarray]:
    """Each token's logits decoded one at a time after ``prompt``."""
    cache = _prefilled(model, prompt)
    return [model.decode(t, cache) for t in tokens]


def test_verify_rows_equal_the_rows_decoded_alone(model: Model, threads: int) -> None:
    tokens = [int(t) for t in np.random.default_rng(threads).integers(1000, 40000, MAX_ROWS)]
    alone = _alone(model, PROMPT, tokens)
    for n in range(1, MAX_ROWS + 1):
        cache = _prefilled(model, PROMPT)
        rows = model.forward(tokens[:n], cache, all_logits=True)
        assert cache.length == len(PROMPT) + n
        for i in range(n):
            assert np.array_equal(rows[i], alone[i]), f"{n}-row verify, row {i}"


def test_batched_rows_equal_the_rows_decoded_alone(model: Model, threads: int) -> None:
    rng = np.random.default_rng(10 + threads)
    prompts = [PROMPT[: 3 + b] for b in range(MAX_ROWS)]  # different lengths and contents
    tokens = [int(t) for t in rng.integers(1000, 40000, MAX_ROWS)]
    alone = [_alone(model, p, [t])[0] for p, t in zip(prompts, tokens, strict=True)]
    for b_count in range(1, MAX_ROWS + 1):
        # Rotate so every sequence also sits at other row positions of the batch.
        order = [(j + b_count) % MAX_ROWS for j in range(b_count)]
        caches = [_prefilled(model, prompts[j]) for j in order]
        rows = model.decode_batch([tokens[j] for j in order], caches)
        for row, j in enumerate(order):
            assert np.array_equal(rows[row], alone[j]), f"batch of {b_count}, row {row}"


def test_layer_forward_batch_rows_equal_forward_alone(model: Model, threads: int) -> None:
    layer = model.layers[3]
    h = np.random.default_rng(3).standard_normal((MAX_ROWS, model.config.hidden), dtype=np.float32)
    caches = [model.new_cache(layers=[3]) for _ in range(MAX_ROWS)]
    alone = [layer.forward(h[b : b + 1].copy(), c, 0)[0] for b, c in enumerate(caches)]
    for b_count in range(1, MAX_ROWS + 1):
        fresh = [model.new_cache(layers=[3]) for _ in range(b_count)]
        out = layer.forward_batch(h[:b_count].copy(), fresh, [0] * b_count)
        for b in range(b_count):
            assert np.array_equal(out[b], alone[b]), f"batch of {b_count}, row {b}"


def test_rejected_verify_rows_roll_back_to_the_decode_path(model: Model, threads: int) -> None:
    # A verify of 5 rows, 2 kept: the cache truncated there continues exactly like decode.
    tokens = [4000, 5000, 6000, 7000, 8000]
    alone = _alone(model, PROMPT, [4000, 5000, 111, 222])
    cache = _prefilled(model, PROMPT)
    model.forward(tokens, cache, all_logits=True)
    cache.truncate(len(PROMPT) + 2)
    rows = model.forward([111, 222], cache, all_logits=True)
    assert np.array_equal(rows[0], alone[2]) and np.array_equal(rows[1], alone[3])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, ROW_INVARIANT_ROWS),
    n_in=st.sampled_from([1, 7, 8, 9, 64, 576, 1536]),
    n_out=st.sampled_from([1, 7, PANEL - 1, PANEL, PANEL + 1, 960, 3072]),
    seed=st.integers(0, 2**16),
    thread_count=st.sampled_from(THREADS),
)
def test_product_rows_do_not_depend_on_the_other_rows(
    rows: int, n_in: int, n_out: int, seed: int, thread_count: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_in), dtype=np.float32)
    dense = rng.standard_normal((n_in, n_out), dtype=np.float32)
    w = Panels.pack(dense)
    with compute_threads(1):
        alone = [product(x[i : i + 1], w)[0] for i in range(rows)]
    with compute_threads(thread_count):
        together = product(x, w)
        backwards = product(x[::-1].copy(), w)[::-1]
    for i in range(rows):
        assert np.array_equal(together[i], alone[i]), f"row {i} of {rows}"
        assert np.array_equal(backwards[i], alone[i]), f"row {i} of {rows}, reversed"
    # The product itself: the kernel's fixed order is still x @ w to float32 accuracy.
    scale = np.abs(x) @ np.abs(dense) + 1.0
    assert np.all(np.abs(together - x.astype(np.float64) @ dense) <= 1e-5 * scale)


@settings(max_examples=40, deadline=None)
@given(
    n_in=st.integers(1, 200),
    n_out=st.integers(1, 300),
    start=st.integers(0, 299),
    seed=st.integers(0, 2**16),
)
def test_panels_hold_the_matrix(n_in: int, n_out: int, start: int, seed: int) -> None:
    w = np.random.default_rng(seed).standard_normal((n_in, n_out), dtype=np.float32)
    p = Panels.pack(w)
    assert p.shape == (n_in, n_out) and p.nbytes == w.nbytes
    assert np.array_equal(p.dense(), w)
    a = min(start, n_out - 1)
    assert np.array_equal(p.dense(a, n_out), w[:, a:])
    ids = np.random.default_rng(seed).integers(0, n_out, 5)
    assert np.array_equal(p.columns(ids), w[:, ids].T)
    x = np.random.default_rng(seed + 1).standard_normal((20, n_in), dtype=np.float32)
    np.testing.assert_allclose(p.matmul(x), x @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(p.matmul(x, a, n_out), x @ w[:, a:], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Model]:
    base = tmp_path_factory.mktemp("rows")
    shapes = [
        {"hidden": 64, "n_heads": 4, "n_kv_heads": 2, "ffn": 96},
        {"hidden": 128, "n_heads": 8, "n_kv_heads": 1, "ffn": 320, "n_layers": 3},
    ]
    return [
        Model.load(write_tiny_llama(Path(base) / f"m{i}.gguf", seed=i, **kw))
        for i, kw in enumerate(shapes)
    ]


@settings(max_examples=40, deadline=None)
@given(
    which=st.integers(0, 1),
    prompt=st.lists(st.integers(0, 127), min_size=1, max_size=20),
    tokens=st.lists(st.integers(0, 127), min_size=1, max_size=ROW_INVARIANT_ROWS),
)
def test_tiny_models_verify_rows_equal_decode(
    tiny_models: list[Model], which: int, prompt: list[int], tokens: list[int]
) -> None:
    model = tiny_models[which]
    alone = _alone(model, prompt, tokens)
    rows = model.forward(tokens, _prefilled(model, prompt), all_logits=True)
    for i, row in enumerate(rows):
        assert np.array_equal(row, alone[i])

"""The plain float32 wafer numerics on tiny synthetic Llama GGUFs written in tmp_path.

llama.cpp runs the same files (with no vocabulary) as the reference. llama.cpp's own rounding
(:mod:`tedchat.wafer.llamacpp_rounding`) is tested in test_llamacpp_rounding.py.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize

from tedchat.errors import ContextFullError, WaferModelError
from tedchat.wafer.gguf_weights import BLOCK_QUANT_TYPES, LlamaConfig, load_weights, read_config
from tedchat.wafer.numerics import KVCache, Model, Rope
from tedchat.wafer.sampling import Sampler
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


@pytest.fixture(scope="module")
def tiny_model(tiny: Path) -> Model:
    return Model.load(tiny)


# ----------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("tied", [True, False])
def test_forward_matches_llama_cpp_on_float32_weights(tmp_path: Path, tied: bool) -> None:
    # llama.cpp does no activation rounding on F32 weights: any RoPE layout, GQA grouping,
    # norm or FFN mistake shows up far above float32 noise.
    path = write_tiny_llama(tmp_path / "m.gguf", tied=tied, seed=3)
    model = Model.load(path)
    ours = model.forward(TOKENS, model.new_cache(), all_logits=True)
    ref = llama_cpp_logits(path, TOKENS)
    assert ours.shape == ref.shape == (len(TOKENS), 128)
    assert np.abs(ours - ref).max() < 2e-4 * max(1.0, np.abs(ref).max())
    assert (ours.argmax(-1) == ref.argmax(-1)).all()


def test_rope_is_llama_cpp_normal_mode_not_neox(tmp_path: Path, tiny: Path) -> None:
    # The same check fails loudly if RoPE rotated (x[i], x[i + d/2]) pairs instead.
    model = Model.load(tiny)

    def neox(x: np.ndarray, positions: np.ndarray) -> None:
        half = x.shape[-1] // 2
        c = model.rope.cos[positions][:, None, :]
        s = model.rope.sin[positions][:, None, :]
        a, b = x[..., :half].copy(), x[..., half:].copy()
        x[..., :half] = a * c - b * s
        x[..., half:] = a * s + b * c

    ref = llama_cpp_logits(tiny, TOKENS)
    model.rope.apply = neox  # type: ignore[method-assign]
    wrong = model.forward(TOKENS, model.new_cache(), all_logits=True)
    assert np.abs(wrong - ref).max() > 1e-2


def test_kv_cached_decode_equals_full_prefill(tiny_model: Model) -> None:
    full = tiny_model.forward(TOKENS, tiny_model.new_cache(), all_logits=True)
    cache = tiny_model.new_cache()
    first = tiny_model.prefill(TOKENS[:5], cache)
    np.testing.assert_allclose(first, full[4], atol=1e-4)
    for i in range(5, len(TOKENS)):
        logits = tiny_model.decode(TOKENS[i], cache)
        np.testing.assert_allclose(logits, full[i], atol=1e-4)
    assert cache.length == len(TOKENS)


def test_chunked_prefill_equals_one_chunk(tiny_model: Model) -> None:
    one = tiny_model.forward(TOKENS, tiny_model.new_cache(), all_logits=True)
    chunked = tiny_model.forward(TOKENS, tiny_model.new_cache(), all_logits=True, chunk=3)
    np.testing.assert_allclose(chunked, one, atol=1e-4)


def test_decode_batch_equals_separate_sequences(tiny_model: Model) -> None:
    a, b = tiny_model.new_cache(), tiny_model.new_cache()
    tiny_model.prefill(TOKENS[:3], a)
    tiny_model.prefill(TOKENS[:7], b)
    a2, b2 = tiny_model.new_cache(), tiny_model.new_cache()
    tiny_model.prefill(TOKENS[:3], a2)
    tiny_model.prefill(TOKENS[:7], b2)
    batch = tiny_model.decode_batch([11, 22], [a, b])
    np.testing.assert_allclose(batch[0], tiny_model.decode(11, a2), atol=1e-4)
    np.testing.assert_allclose(batch[1], tiny_model.decode(22, b2), atol=1e-4)
    assert (a.length, b.length) == (4, 8)


def test_layers_run_on_stage_owned_caches(tiny_model: Model) -> None:
    # A pipeline gives each stage the caches of its own layers only.
    full = tiny_model.forward(TOKENS, tiny_model.new_cache(), all_logits=True)
    stage_caches = [tiny_model.new_cache(layers=[0]), tiny_model.new_cache(layers=[1])]
    h = tiny_model.embed(TOKENS)
    for layer, cache in zip(tiny_model.layers, stage_caches, strict=True):
        h = layer.forward(h, cache, np.arange(len(TOKENS)))
    np.testing.assert_allclose(tiny_model.final_norm_and_logits(h), full, atol=1e-4)
    assert stage_caches[0].layers == [0] and stage_caches[0].length == len(TOKENS)
    with pytest.raises(ValueError, match="no entries for layer 1"):
        tiny_model.layers[1].forward(h[:1], stage_caches[0], len(TOKENS))


def test_truncate_and_reset_reuse_the_cache(tiny_model: Model) -> None:
    cache = tiny_model.new_cache()
    full = tiny_model.forward(TOKENS, cache, all_logits=True)
    cache.truncate(6)
    assert cache.length == 6
    np.testing.assert_allclose(tiny_model.decode(TOKENS[6], cache), full[6], atol=1e-4)
    cache.reset()
    assert cache.length == 0
    np.testing.assert_allclose(tiny_model.prefill(TOKENS[:3], cache), full[2], atol=1e-4)


def test_context_full_and_position_gaps_are_refused(tiny_model: Model) -> None:
    cache = tiny_model.new_cache(context=8)
    tiny_model.prefill(TOKENS[:8], cache)
    with pytest.raises(ContextFullError, match="context full"):
        tiny_model.decode(1, cache)
    cache = tiny_model.new_cache()
    h = tiny_model.embed([1])
    with pytest.raises(ValueError, match="gap"):
        tiny_model.layers[0].forward(h, cache, 3)
    with pytest.raises(ValueError, match="out of range"):
        tiny_model.embed([128])


def test_numerics_never_import_llama_cpp(tiny: Path) -> None:
    # The wafer path computes with NumPy alone; only the tokenizer and verify use llama.cpp.
    code = (
        "import sys; from pathlib import Path\n"
        "from tedchat.wafer.numerics import Model\n"
        "from tedchat.wafer.sampling import Sampler\n"
        f"m = Model.load(Path({str(tiny)!r}))\n"
        "assert Sampler()(m.prefill([1, 2, 3], m.new_cache())) >= 0\n"
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- shapes, dtypes


def test_everything_is_float32_and_contiguous(tiny_model: Model) -> None:
    for layer in tiny_model.layers:
        for a in (layer.wqkv.data, layer.wo.data, layer.w_gate_up.data, layer.w_down.data):
            assert a.dtype == np.float32 and a.flags.c_contiguous
        assert layer.attn_norm.dtype == np.float32 and layer.attn_norm.flags.c_contiguous
    cfg = tiny_model.config
    assert tiny_model.layers[0].wqkv.shape == (cfg.hidden, cfg.q_dim + 2 * cfg.kv_dim)
    assert tiny_model.layers[0].w_gate_up.shape == (cfg.hidden, 2 * cfg.ffn)
    assert tiny_model.output.shape == (cfg.hidden, cfg.vocab)
    assert tiny_model.rope.cos.dtype == tiny_model.rope.sin.dtype == np.float32
    cache = tiny_model.new_cache()
    assert cache.k[0].dtype == np.float32
    assert cache.k[0].shape == (tiny_model.context, cfg.n_kv_heads, cfg.head_dim)
    h = tiny_model.embed(TOKENS[:4])
    assert h.dtype == np.float32 and h.shape == (4, cfg.hidden)
    out = tiny_model.layers[0].forward(h, cache, 0)
    assert out.dtype == np.float32 and out.shape == h.shape
    assert tiny_model.final_norm_and_logits(out).dtype == np.float32
    assert tiny_model.decode(3, tiny_model.new_cache()).dtype == np.float32
    with pytest.raises(TypeError, match="float32"):
        tiny_model.layers[0].forward(h.astype(np.float64), tiny_model.new_cache(), 0)


def test_rope_rotates_adjacent_pairs_by_relative_position(tiny_model: Model) -> None:
    cfg = tiny_model.config
    rope = Rope(cfg, 32)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 1, cfg.head_dim)).astype(np.float32)
    k = rng.standard_normal((1, 1, cfg.head_dim)).astype(np.float32)

    def rotated(x: np.ndarray, pos: int) -> np.ndarray:
        y = np.repeat(x, 1, axis=0).copy()
        rope.apply(y, np.array([pos]))
        return y

    np.testing.assert_array_equal(rotated(q, 0), q)
    pairs = rotated(q, 7).reshape(-1, 2)
    np.testing.assert_allclose(
        np.linalg.norm(pairs, axis=1), np.linalg.norm(q.reshape(-1, 2), axis=1), rtol=1e-5
    )
    # Attention scores depend on the distance only.
    d1 = float(np.sum(rotated(q, 9) * rotated(k, 4)))
    d2 = float(np.sum(rotated(q, 15) * rotated(k, 10)))
    assert d1 == pytest.approx(d2, rel=1e-4)


def test_config_and_sizes(tiny: Path) -> None:
    cfg = read_config(tiny)
    assert isinstance(cfg, LlamaConfig)
    assert (cfg.n_layers, cfg.hidden, cfg.n_heads, cfg.n_kv_heads) == (2, 64, 4, 2)
    assert (cfg.ffn, cfg.vocab, cfg.head_dim, cfg.context_length) == (96, 128, 16, 64)
    assert cfg.tied_output and cfg.rope_scaling == "none"
    w = load_weights(tiny)
    assert w.nbytes == cfg.float32_bytes
    model = Model(w)
    assert model.bytes_per_token == cfg.bytes_per_token
    cache = KVCache(cfg, 10)
    assert cache.nbytes == 10 * cfg.kv_bytes_per_position()


# ----------------------------------------------------------------------------- quant types


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1])
def test_quantized_weights_dequantize_into_the_fused_layout(tmp_path: Path, qtype: Q) -> None:
    path = write_tiny_llama(tmp_path / "q.gguf", qtype=qtype, seed=5)
    check_layout(path)


@pytest.mark.parametrize("ftype", ["Q4_K_M", "Q6_K"])
def test_k_quants_from_llama_cpp_quantizer(tmp_path: Path, ftype: str) -> None:
    dst = quantize_with_llama_cpp(tmp_path, ftype)
    types = {t.tensor_type for t in gguf.GGUFReader(dst).tensors}
    assert Q.Q6_K in types and (ftype != "Q4_K_M" or Q.Q4_K in types)
    check_layout(dst)


def check_layout(path: Path) -> None:
    """Our fused (in, out) matrices hold exactly what gguf's dequantize gives, transposed."""
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    w = load_weights(path)
    cfg = w.config

    def deq(name: str) -> np.ndarray:
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).reshape(int(t.shape[1]), int(t.shape[0]))

    layer = w.layers[1]
    q, kv = cfg.q_dim, cfg.kv_dim
    np.testing.assert_array_equal(layer.wqkv.dense(0, q), deq("blk.1.attn_q.weight").T)
    np.testing.assert_array_equal(layer.wqkv.dense(q + kv), deq("blk.1.attn_v.weight").T)
    np.testing.assert_array_equal(layer.w_gate_up.dense(cfg.ffn), deq("blk.1.ffn_up.weight").T)
    np.testing.assert_array_equal(layer.w_down.dense(), deq("blk.1.ffn_down.weight").T)
    np.testing.assert_array_equal(w.output.dense(), deq("token_embd.weight").T)
    model = Model(w)
    logits = model.forward(TOKENS, model.new_cache(), all_logits=True)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()

    # The integer form of 32-weight blocks (for llama.cpp's rounding) gives the same weights.
    wb = load_weights(path, quant_blocks=True)
    for layer in (wb.layers[0], wb.layers[1]):
        for name, src in layer.sources.items():
            assert src.has_blocks == (src.slices[0].qtype in BLOCK_QUANT_TYPES)
            if src.blocks is None:
                continue
            b = src.blocks
            n_in = b.ints.shape[0] * 32
            rebuilt = b.scales[:, None, :] * b.ints.astype(np.float32)
            if b.mins is not None:
                rebuilt += b.mins[:, None, :]
            np.testing.assert_array_equal(rebuilt.reshape(n_in, -1), getattr(layer, name).dense())


# ----------------------------------------------------------------------------- bad files


def test_truncated_gguf_gives_a_clear_error_at_any_cut(tmp_path: Path, tiny: Path) -> None:
    data = tiny.read_bytes()
    data_offset = gguf.GGUFReader(tiny).data_offset
    cuts = sorted(
        {4, 10, 24, 60, 200, data_offset - 7, data_offset + 100, len(data) - 1}
        | set(range(0, len(data), max(1, len(data) // 40)))
    )
    bad = tmp_path / "cut.gguf"
    for cut in cuts:
        bad.write_bytes(data[:cut])
        with pytest.raises(WaferModelError) as err:
            load_weights(bad)
        msg = str(err.value)
        assert str(bad) in msg and "\n" not in msg
        assert "truncated or corrupt" in msg or "not a GGUF" in msg, (cut, msg)


def test_non_llama_architecture_is_refused(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "gpt2.gguf", arch="gpt2")
    with pytest.raises(WaferModelError, match=r"unsupported architecture 'gpt2'.*Llama"):
        load_weights(path)
    with pytest.raises(WaferModelError, match="unsupported architecture 'gpt2'"):
        read_config(path)


def test_missing_and_non_gguf_files(tmp_path: Path) -> None:
    with pytest.raises(WaferModelError, match="model file not found"):
        load_weights(tmp_path / "nope.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 definitely a zip file")
    with pytest.raises(WaferModelError, match="not a GGUF"):
        load_weights(junk)


def test_missing_metadata_is_named(tmp_path: Path, tiny: Path) -> None:
    reader = gguf.GGUFReader(tiny)
    w = gguf.GGUFWriter(str(tmp_path / "nometa.gguf"), "llama")
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "llama.block_count"):
            continue
        w.add_key_value(key, fld.contents(), fld.types[0], sub_type=fld.types[-1])
    for t in reader.tensors:
        w.add_tensor(t.name, np.array(t.data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(WaferModelError, match=r"'llama\.block_count'"):
        load_weights(tmp_path / "nometa.gguf")


def test_model_too_big_for_memory_is_refused_before_loading(tiny: Path) -> None:
    need = read_config(tiny).float32_bytes
    with pytest.raises(WaferModelError) as err:
        load_weights(tiny, mem_available=need // 2)
    msg = str(err.value)
    assert "GB" in msg and "timing_target" in msg and "stand-in" in msg
    load_weights(tiny, mem_available=1 << 40)


def test_load_reports_progress(tiny: Path) -> None:
    seen: list[tuple[int, int]] = []
    load_weights(tiny, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] == read_config(tiny).float32_bytes
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


# ----------------------------------------------------------------------------- sampling


def test_greedy_is_argmax() -> None:
    logits = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert Sampler(temperature=0).sample(logits) == 1


def test_seeded_sampling_is_reproducible_and_respects_filters() -> None:
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal(5000) * 2).astype(np.float32)
    a = [Sampler(temperature=0.9, top_p=0.9, seed=7).sample(logits) for _ in range(3)]
    s1, s2 = Sampler(temperature=0.9, seed=42), Sampler(temperature=0.9, seed=42)
    assert [s1(logits) for _ in range(50)] == [s2(logits) for _ in range(50)]
    assert len(set(a)) == 1

    top_k = set(np.argsort(logits)[-5:].tolist())
    s = Sampler(temperature=1.0, top_k=5, seed=1)
    assert {s(logits) for _ in range(200)} <= top_k

    ids, probs = Sampler(temperature=1.0, top_p=0.5).distribution(logits)
    full = np.exp(logits - logits.max())
    full /= full.sum()
    order = np.argsort(full)[::-1]
    need = int(np.searchsorted(np.cumsum(full[order]), 0.5)) + 1
    assert ids.tolist() == order[:need].tolist()
    assert probs.dtype == np.float32 and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_top_p_falls_back_beyond_the_probe_for_flat_distributions() -> None:
    logits = np.zeros(2000, dtype=np.float32)
    ids, _ = Sampler(temperature=1.0, top_p=0.9).distribution(logits)
    assert len(ids) == pytest.approx(1800, abs=2)


def test_sampling_frequencies_follow_the_softmax() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    s = Sampler(temperature=1.0, seed=3)
    counts = np.bincount([s(logits) for _ in range(4000)], minlength=3) / 4000
    np.testing.assert_allclose(counts, [0.5, 0.3, 0.2], atol=0.03)


def test_bad_sampling_parameters() -> None:
    with pytest.raises(ValueError):
        Sampler(temperature=-1)
    with pytest.raises(ValueError):
        Sampler(top_p=0)

"""``models info`` reads a GGUF's header only, and a model too big for memory is refused
before llama.cpp loads it."""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any

import pytest

from tedchat.errors import ModelTooLargeError
from tedchat.models.gguf_header import FILE_TYPES, GGML_TYPES, read_gguf_header
from tedchat.models.registry import resolve_model
from tests.conftest import ONE_THREAD, one_error_line, run_cli
from tests.models.gguf_files import write_huge_sparse_gguf

MIB = 1 << 20


def test_the_type_tables_match_the_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES, LlamaFileType

    assert {int(t): (t.name, *size) for t, size in GGML_QUANT_SIZES.items()} == GGML_TYPES
    names = {
        int(t): t.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        for t in LlamaFileType
        if t.name != "GUESSED"
    }
    assert names == FILE_TYPES


def test_info_on_the_bundled_model_reads_under_one_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of the file is counted at the system call (``os.pread``); nothing is mapped."""
    path = resolve_model("smollm2")
    read: list[int] = []
    pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        data = pread(fd, n, offset)
        read.append(len(data))
        return data

    def no_mmap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the header reader mapped the file")

    monkeypatch.setattr(os, "pread", counting_pread)
    monkeypatch.setattr(mmap, "mmap", no_mmap)
    info = read_gguf_header(path)
    monkeypatch.undo()
    assert sum(read) == info.bytes_read
    assert info.bytes_read < MIB
    # ... of a header that is longer than that (the vocabulary and merges are stepped over).
    assert info.data_start > 1.5 * MIB
    assert info.data_end == info.file_size == path.stat().st_size
    assert info.architecture == "llama"
    assert info.parameter_count == 134_515_008  # SmolLM2-135M's tensors, summed
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.vocab_size == 49_152 and info.layers == 30
    assert info.has_chat_template and not info.template_supports_tools


def test_models_info_prints_the_header_facts(tedchat_home: Path) -> None:
    text = run_cli(tedchat_home, "models", "info", "smollm2")
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines() if "  " in line)
    assert lines["architecture"] == "llama"
    assert lines["parameters"] == "135M (134,515,008)"
    assert lines["quantization"] == "Q4_1"
    assert lines["context"] == "8,192 tokens"
    assert "chat template" in text.stdout and "yes, no tools" in text.stdout
    as_json = run_cli(tedchat_home, "models", "info", "smollm2", "--json")
    facts = json.loads(as_json.stdout)
    assert facts["architecture"] == "llama" and facts["parameters"] == 134_515_008
    assert facts["quantization"] == "Q4_1" and facts["context_length"] == 8192
    assert facts["chat_template"] is True and facts["template_supports_tools"] is False
    assert facts["header_bytes_read"] < MIB
    by_path = run_cli(tedchat_home, "models", "info", str(resolve_model("smollm2")), "--json")
    assert json.loads(by_path.stdout)["parameters"] == facts["parameters"]
    missing = run_cli(tedchat_home, "models", "info", "qwen2.5-1.5b")
    assert missing.returncode == 2
    assert "not downloaded yet" in one_error_line(missing.stderr)
    assert "hint: get it with: tedchat models pull qwen2.5-1.5b" in missing.stderr


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    """A GGUF declaring 1 TiB of weights in a sparse file (a few kB on disk)."""
    path = write_huge_sparse_gguf(tmp_path / "huge.gguf", 1 << 40)
    assert path.stat().st_size > 1 << 40 and path.stat().st_blocks * 512 < MIB
    return path


def test_a_model_too_big_for_memory_is_refused_before_loading(
    tedchat_home: Path, huge: Path
) -> None:
    config = tedchat_home / "config.toml"
    config.write_text(
        f'[engines.big]\ntype = "llamacpp"\nmodel = "{huge}"\nn_ctx = 2048\n'
        f'[engines.forced]\ntype = "llamacpp"\nmodel = "{huge}"\nforce = true\n',
        encoding="utf-8",
    )
    refused = run_cli(
        tedchat_home, "--config", str(config), "ask", "--engine", "big", "hi", **ONE_THREAD
    )
    assert refused.returncode == 1
    line = one_error_line(refused.stderr)
    assert line.startswith("error: huge.gguf needs about ")
    assert "1099.5 GB weights" in line and "2048-token context" in line
    assert "is available (MemAvailable): not loaded" in line
    assert "set force = true in [engines.big]" in refused.stderr
    # force = true gets past the check: llama.cpp itself then refuses this tensor-less file.
    forced = run_cli(
        tedchat_home, "--config", str(config), "ask", "--engine", "forced", "hi", **ONE_THREAD
    )
    assert forced.returncode == 1
    assert "MemAvailable" not in forced.stderr
    assert "llama.cpp could not load" in one_error_line(forced.stderr)


def test_the_memory_check_counts_weights_and_context(huge: Path) -> None:
    from tedchat.models.memory import check_fits, memory_need

    info = read_gguf_header(huge)
    small = memory_need([info], 1024)
    large = memory_need([info], 8192)
    assert small.weights == large.weights == 1 << 40
    assert large.kv_cache == 8 * small.kv_cache > 0
    # 1 layer, 8 KV heads of 128 (4096 / 32), K and V in 16 bits:
    assert small.kv_cache == 1024 * 8 * (128 + 128) * 2
    with pytest.raises(ModelTooLargeError):
        check_fits([info], 1024, setting="engines.x", mem_available=1 << 39)
    assert check_fits([info], 1024, setting="engines.x", mem_available=1 << 41) == small

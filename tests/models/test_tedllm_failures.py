"""What goes wrong in pull and convert gets one line that says what to do, and leaves no
half-written file under a final name."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

import tedchat.models.convert as convert
from tedchat.errors import ModelFormatError, TedchatError
from tests.conftest import one_error_line, run_cli
from tests.models.conftest import TEDLLM_REPO, hub_env
from tests.models.fake_hub import FakeHub, FakeHubServer, Repo

Usage = namedtuple("Usage", "total used free")


def test_pull_checks_free_disk_space_before_the_weights(
    tiny_ckpt: Path, tedchat_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tedchat.models import hub as hub_module

    free = 10_000_000  # the configs fit, the weights and their conversion do not
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda _: Usage(10**12, 0, free))
    server = FakeHub(repos={TEDLLM_REPO: Repo(tiny_ckpt)})
    with FakeHubServer(server) as url:
        for key, value in hub_env(url, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        with pytest.raises(TedchatError) as caught:
            hub_module.pull("tedllm", progress=False, log=lambda _: None)
    message = caught.value.message
    assert message.startswith("not enough disk space in ")
    assert "pulling tedllm needs" in message and "to download +" in message
    assert "to convert to Q4_K_M" in message and "0.0 GB free" in message
    assert "TEDCHAT_HOME" in (caught.value.hint or "")
    fetched = [r.path for r in server.requests if r.method == "GET" and "/resolve/" in r.path]
    assert fetched and not [p for p in fetched if p.endswith(".safetensors")]
    assert not list((tedchat_home / "data").rglob("*.safetensors"))


@pytest.mark.parametrize(
    ("name", "token", "expected", "hint"),
    [
        ("nobody/nothing", None, r"repository nobody/nothing not found on http", "HF_TOKEN"),
        ("tedllm", "secret", r"tokyo-electron-device-ai/llama3-tedllm-8b-v0 not found", "HF_TOKEN"),
        ("not a repo", None, r"unknown model 'not a repo': not a registry name \(tedllm\)", None),
    ],
)
def test_pull_errors_are_one_line(
    tiny_ckpt: Path,
    tedchat_home: Path,
    tmp_path: Path,
    name: str,
    token: str | None,
    expected: str,
    hint: str | None,
) -> None:
    import re

    server = FakeHub(repos={TEDLLM_REPO: Repo(tiny_ckpt, token=token)})
    with FakeHubServer(server) as url:
        result = run_cli(tedchat_home, "models", "pull", name, **hub_env(url, tmp_path / "hf"))
    assert result.returncode == 1, result.stderr
    assert re.search(expected, one_error_line(result.stderr)), result.stderr
    if hint:
        assert hint in result.stderr


def test_pull_with_hf_token_reaches_a_private_repo(
    tiny_ckpt: Path, tedchat_home: Path, tmp_path: Path
) -> None:
    server = FakeHub(repos={"org/private-llama": Repo(tiny_ckpt, token="secret")})
    with FakeHubServer(server) as url:
        env = {**hub_env(url, tmp_path / "hf"), "HF_TOKEN": "secret"}
        result = run_cli(tedchat_home, "models", "pull", "org/private-llama", **env)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.name == "org--private-llama" and (folder / "tokenizer.json").is_file()


def test_convert_needs_a_finished_pull(tedchat_home: Path) -> None:
    result = run_cli(tedchat_home, "models", "convert", "tedllm")
    assert result.returncode == 1
    assert "tedllm is not downloaded" in one_error_line(result.stderr)
    assert "hint: run: tedchat models pull tedllm" in result.stderr


def edited_copy(src: Path, dest: Path, config: dict | None = None) -> Path:
    shutil.copytree(src, dest)
    if config is not None:
        (dest / "config.json").write_text(json.dumps(config))
    return dest


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "not a Llama checkpoint"),
        (
            {"intermediate_size": 1024},
            r"has shape \[1536, 512\], config.json implies \[1024, 512\]",
        ),
        ({"num_hidden_layers": 5}, "tensor model.layers.4.input_layernorm.weight is missing"),
        ({"num_hidden_layers": 3}, "unexpected tensor model.layers.3"),
        ({"vocab_size": 600}, "beyond the model's vocab_size 600|implies"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling type 'yarn'"),
    ],
)
def test_convert_refuses_what_it_cannot_convert(
    tiny_ckpt: Path, tmp_path: Path, change: dict, expected: str
) -> None:
    config = {**json.loads((tiny_ckpt / "config.json").read_text()), **change}
    folder = edited_copy(tiny_ckpt, tmp_path / "ckpt", config)
    out = tmp_path / "out.gguf"
    with pytest.raises(ModelFormatError, match=expected):
        convert.convert_checkpoint(folder, out, "F16", progress=False, log=lambda _: None)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_convert_refuses_a_tokenizer_that_is_not_llama3s(tiny_ckpt: Path, tmp_path: Path) -> None:
    folder = edited_copy(tiny_ckpt, tmp_path / "ckpt")
    tok = json.loads((folder / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ModelFormatError, match="pre-tokenizer is not Llama-3's"):
        convert.read_checkpoint(folder)


def test_a_failed_conversion_leaves_nothing_behind(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = convert._row_blocks

    def failing(plan: convert.TensorPlan):  # fail halfway through the tensors
        if plan.gguf_name == "blk.2.attn_q.weight":
            raise KeyboardInterrupt
        return blocks(plan)

    monkeypatch.setattr(convert, "_row_blocks", failing)
    out = tmp_path / "out.Q8_0.gguf"
    with pytest.raises(KeyboardInterrupt):
        convert.convert_checkpoint(tiny_ckpt, out, "Q8_0", progress=False, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_convert_checks_free_disk_space(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda _: Usage(10**12, 0, 1000))
    with pytest.raises(TedchatError, match=r"converting to Q4_K_M needs 0\.\d GB, 0\.0 GB free"):
        convert.convert_checkpoint(
            tiny_ckpt, tmp_path / "x.gguf", "Q4_K_M", progress=False, log=lambda _: None
        )

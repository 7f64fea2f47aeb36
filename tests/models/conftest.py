"""Fixtures for the TEDLLM path: a synthetic checkpoint, a local Hub, a pulled-and-converted home.

The expensive steps run once per session: building the tokenizer and weights, and the
``models pull`` + ``models convert`` that most tests start from.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.models.fake_hub import FakeHub, FakeHubServer, Repo
from tests.models.synthetic import write_tiny_checkpoint

TEDLLM_REPO = "tokyo-electron-device-ai/llama3-tedllm-8b-v0"
FIRST_SHARD = "model-00001-of-00002.safetensors"
ONE_THREAD = {"TEDCHAT_THREADS": "1"}


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic Llama-3-style checkpoint (two F32 shards, index, tokenizer, config)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-llama3")


def hub_env(url: str, hf_home: Path) -> dict[str, str]:
    """Environment that points huggingface_hub at the local Hub, isolated from the user's."""
    return {
        "HF_ENDPOINT": url,
        "HF_HOME": str(hf_home),
        "HF_TOKEN": "",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        **ONE_THREAD,
    }


@dataclass
class Pulled:
    """A tedchat home where ``models pull tedllm`` and ``models convert tedllm`` have run."""

    home: Path
    env: dict[str, str]
    hub: FakeHub
    pull: subprocess.CompletedProcess[str]
    convert: subprocess.CompletedProcess[str]
    snapshot: Path
    gguf: Path


@pytest.fixture(scope="session")
def pulled(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Iterator[Pulled]:
    """Serve the checkpoint as TEDLLM's repo, pull it (the connection drops once, halfway
    through the first shard) and convert it to F16, all through the real CLI."""
    root = tmp_path_factory.mktemp("pulled")
    home = root / "home"
    home.mkdir()
    hub = FakeHub(repos={TEDLLM_REPO: Repo(tiny_ckpt)}, drop_once={FIRST_SHARD: 0.6})
    with FakeHubServer(hub) as url:
        env = hub_env(url, root / "hf")
        pull = run_cli(home, "models", "pull", "tedllm", timeout=120, **env)
        convert = run_cli(
            home, "models", "convert", "tedllm", "--quant", "F16", "--threads", "1", **env
        )
        snapshot = home / "data" / "models" / "hf" / TEDLLM_REPO.replace("/", "--")
        gguf = home / "data" / "models" / "llama3-tedllm-8b-v0.F16.gguf"
        yield Pulled(home, env, hub, pull, convert, snapshot, gguf)

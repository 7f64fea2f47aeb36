"""``models pull`` when the disk fills up mid-download (ENOSPC from a write): one clear line,
and no partial file under a final name."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from tedchat.errors import TedchatError
from tedchat.models.registry import PULL_MARKER
from tests.models.conftest import FIRST_SHARD, TEDLLM_REPO, hub_env
from tests.models.fake_hub import FakeHub, FakeHubServer, Repo


class FillsUp:
    """A download's file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, inner: Any, room: int) -> None:
        self._inner = inner
        self._room = room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            self._inner.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_full_disk_during_pull_is_one_line_and_leaves_no_partial_file(
    tiny_ckpt: Path, tedchat_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import file_download

    from tedchat.models import hub as hub_module

    http_get = file_download.http_get
    written: list[str] = []

    def http_get_on_a_full_disk(url: str, temp_file: Any, *args: Any, **kwargs: Any) -> Any:
        if url.endswith(FIRST_SHARD):  # the disk fills halfway through the first shard
            written.append(temp_file.name)
            size = (tiny_ckpt / FIRST_SHARD).stat().st_size
            return http_get(url, FillsUp(temp_file, size // 2), *args, **kwargs)
        return http_get(url, temp_file, *args, **kwargs)

    monkeypatch.setattr(file_download, "http_get", http_get_on_a_full_disk)
    server = FakeHub(repos={TEDLLM_REPO: Repo(tiny_ckpt)})
    with FakeHubServer(server) as url:
        for key, value in hub_env(url, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        with pytest.raises(TedchatError) as caught:
            hub_module.pull("tedllm", progress=False, log=lambda _: None)
    assert written, "the patched write was never reached"
    snapshot = tedchat_home / "data" / "models" / "hf" / TEDLLM_REPO.replace("/", "--")
    assert caught.value.message == (
        f"no space left on the disk while downloading {FIRST_SHARD} into {snapshot}"
    )
    assert "free disk space" in (caught.value.hint or "")
    assert "run the same command again" in (caught.value.hint or "")
    # Nothing half-written under a final name: not the shard, not its staging copy, no marker.
    assert not (snapshot / FIRST_SHARD).exists()
    assert not (snapshot / PULL_MARKER).exists()
    staged = snapshot.with_name(snapshot.name + ".partial")
    if staged.exists():
        assert not list(staged.rglob(FIRST_SHARD))
    assert not Path(written[0]).exists()  # the temporary file was removed too
    # The small files that did arrive whole are kept for the next run.
    assert (snapshot / "config.json").is_file()

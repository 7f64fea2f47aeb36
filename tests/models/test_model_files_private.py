"""``models pull`` and ``models convert`` leave only private files (0600) and folders (0700).

huggingface_hub, gguf and llama.cpp write these files themselves: tedchat narrows the umask
around them. Checked on the session's pulled-and-converted home (see ``conftest.py``).
"""

from __future__ import annotations

import os
import stat

import pytest

from tests.models.conftest import Pulled


def test_pulled_and_converted_files_are_private(pulled: Pulled) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    if umask & 0o077 == 0o077:
        pytest.skip("this process's umask already makes every file private: nothing to check")
    assert pulled.pull.returncode == 0 and pulled.convert.returncode == 0, pulled.convert.stderr
    data = pulled.home / "data"
    tree = [data, *data.rglob("*")]
    assert pulled.gguf in tree and pulled.snapshot in tree
    modes = {p.relative_to(pulled.home).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tree}
    loose = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if (pulled.home / name).is_dir() else 0o600)
    }
    assert not loose, loose

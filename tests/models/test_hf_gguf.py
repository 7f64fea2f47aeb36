"""``models pull hf:ORG/REPO[:QUANT|:FILE]`` against a local Hub on 127.0.0.1, and what uses a
pulled GGUF: ``models list``/``info``/``rm`` and an engine's ``model = "hf:..."``.

Nothing here talks to the real Hub: ``HF_ENDPOINT`` points at :mod:`tests.models.fake_hub`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tedchat.errors import TedchatError
from tedchat.models.registry import resolve_model
from tests.conftest import ONE_THREAD, one_error_line, run_cli
from tests.models.conftest import hub_env
from tests.models.fake_hub import FakeHub, FakeHubServer, Repo
from tests.models.gguf_files import PLAIN_TEMPLATE, write_small_gguf, write_split_part
from tests.models.test_pull_enospc import FillsUp

REPO = "test-org/Tiny-GGUF"
QUANTS = ("Q4_K_M", "Q4_K_S", "Q8_0", "IQ4_XS")
SPLIT = [f"F16/Tiny-F16-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
SECRET = "hf_s3cretTokenValue1234567890"
# Q4_K_M carries 24 MiB of zeros: huggingface_hub writes in 10 MiB chunks, so a connection cut
# past the first chunk leaves something to resume with a Range request.
BIG = 6 << 20
Q4_K_M_PARAMS = 40 * 8 * 64 + BIG


@pytest.fixture(scope="module")
def repo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo of several quantisations, a vision projector, a README and a split F16."""
    folder = tmp_path_factory.mktemp("hub") / "Tiny-GGUF"
    for i, quant in enumerate(QUANTS):
        write_small_gguf(
            folder / f"Tiny-{quant}.gguf",
            quant,
            seed=i,
            n_tensors=40 - 10 * i,
            big=BIG if quant == "Q4_K_M" else 0,
        )
    write_small_gguf(folder / "mmproj-Tiny.gguf", "F16", template=None)
    (folder / "README.md").write_text("a tiny test repo\n", encoding="utf-8")
    for i, name in enumerate(SPLIT, start=1):
        write_split_part(folder / name, i, 3, seed=10 + i)
    return folder


def serve(folder: Path, **faults: Any) -> tuple[FakeHub, FakeHubServer]:
    hub = FakeHub(repos={REPO: Repo(folder)}, **faults)
    return hub, FakeHubServer(hub)


def gets(hub: FakeHub) -> list[str]:
    """The repo files the client downloaded (GET .../resolve/...)."""
    return [
        r.path.split("/resolve/", 1)[1].split("/", 1)[1]
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path
    ]


def error_line(stderr: str) -> str:
    """The one error line of a failed pull (progress lines may come before it)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def snapshot(home: Path) -> Path:
    return home / "data" / "models" / "hf" / REPO.replace("/", "--")


def no_partial_files(home: Path) -> None:
    """No model data outside final names: no GGUF in a staging folder, no .incomplete file."""
    models = home / "data" / "models"
    staged = [p for p in models.rglob("*.gguf") if ".partial" in p.as_posix()]
    assert staged == [], staged
    assert not list(models.rglob("*.incomplete"))


def test_pull_picks_the_named_quant_among_several(tedchat_home: Path, repo_folder: Path) -> None:
    hub, server = serve(repo_folder)
    with server as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        done = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:q4_k_s", **env)
    assert done.returncode == 0, done.stderr
    target = snapshot(tedchat_home) / "Tiny-Q4_K_S.gguf"
    assert done.stdout.strip() == str(target)
    assert target.read_bytes() == (repo_folder / "Tiny-Q4_K_S.gguf").read_bytes()
    assert gets(hub) == ["Tiny-Q4_K_S.gguf"]  # exactly one file fetched
    assert sorted(p.name for p in snapshot(tedchat_home).rglob("*") if p.is_file()) == [
        "Tiny-Q4_K_S.gguf"
    ]
    assert f'model = "hf:{REPO}:Tiny-Q4_K_S.gguf"' in done.stderr
    assert target.stat().st_mode & 0o077 == 0  # the user's alone, like every tedchat file
    no_partial_files(tedchat_home)


def test_pull_without_a_quant_takes_q4_k_m_and_an_exact_file_by_name(
    tedchat_home: Path, repo_folder: Path
) -> None:
    hub, server = serve(repo_folder)
    with server as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        default = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}", **env)
        exact = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Tiny-IQ4_XS.gguf", **env)
        again = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Q4_K_M", **env)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip().endswith("Tiny-Q4_K_M.gguf")
    assert exact.returncode == 0, exact.stderr
    assert exact.stdout.strip().endswith("Tiny-IQ4_XS.gguf")
    assert again.returncode == 0 and "already downloaded" in again.stderr
    assert gets(hub) == ["Tiny-Q4_K_M.gguf", "Tiny-IQ4_XS.gguf"]  # nothing fetched twice


def test_a_name_that_picks_no_single_file_lists_the_choices_and_exits_2(
    tedchat_home: Path, tmp_path: Path, repo_folder: Path
) -> None:
    no_default = tmp_path / "no-default"
    write_small_gguf(no_default / "Other-Q8_0.gguf", "Q8_0")
    write_small_gguf(no_default / "Other-Q6_K.gguf", "Q8_0")
    hub = FakeHub(repos={REPO: Repo(repo_folder), "test-org/Other-GGUF": Repo(no_default)})
    with FakeHubServer(hub) as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        ambiguous = run_cli(tedchat_home, "models", "pull", "hf:test-org/Other-GGUF", **env)
        absent = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Q2_K", **env)
        prefix = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Q4_K", **env)
        malformed = run_cli(tedchat_home, "models", "pull", "hf:no-slash", **env)
    for result in (ambiguous, absent, prefix, malformed):
        assert result.returncode == 2, result.stderr
        one_error_line(result.stderr)
    assert "Other-Q6_K.gguf, Other-Q8_0.gguf" in ambiguous.stderr
    assert "Tiny-Q4_K_M.gguf" in absent.stderr and "no Q2_K GGUF" in absent.stderr
    # Q4_K is a whole word: it does not pick Q4_K_M or Q4_K_S.
    assert "no Q4_K GGUF" in prefix.stderr
    assert gets(hub) == []


def test_pull_resumes_a_cut_connection(tedchat_home: Path, repo_folder: Path) -> None:
    hub, server = serve(repo_folder, drop_once={"Tiny-Q4_K_M.gguf": 0.6})
    with server as url:
        done = run_cli(
            tedchat_home,
            "models",
            "pull",
            f"hf:{REPO}:Q4_K_M",
            **hub_env(url, tedchat_home / "hf-cache"),
        )
    assert done.returncode == 0, done.stderr
    fetched = [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert len(fetched) == 2 and fetched[0].range is None
    assert fetched[1].range is not None and int(fetched[1].range[6:].rstrip("-")) > 0
    assert fetched[1].status == 206
    target = snapshot(tedchat_home) / "Tiny-Q4_K_M.gguf"
    assert target.read_bytes() == (repo_folder / "Tiny-Q4_K_M.gguf").read_bytes()
    no_partial_files(tedchat_home)


def test_a_corrupted_download_is_refused_and_the_next_pull_fetches_it_anew(
    tedchat_home: Path, repo_folder: Path
) -> None:
    hub, server = serve(repo_folder, corrupt_once={"Tiny-Q8_0.gguf"})
    with server as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        bad = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Q8_0", **env)
        good = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:Q8_0", **env)
    assert bad.returncode == 1
    assert "does not match the Hub's hash" in error_line(bad.stderr)
    assert good.returncode == 0, good.stderr
    target = snapshot(tedchat_home) / "Tiny-Q8_0.gguf"
    assert target.read_bytes() == (repo_folder / "Tiny-Q8_0.gguf").read_bytes()
    assert gets(hub) == ["Tiny-Q8_0.gguf", "Tiny-Q8_0.gguf"]
    no_partial_files(tedchat_home)


def test_a_full_disk_is_one_line_and_leaves_no_file_under_its_name(
    tedchat_home: Path, tmp_path: Path, repo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import file_download

    from tedchat.models.hf_ref import parse_ref
    from tedchat.models.hub import pull_gguf

    http_get = file_download.http_get

    def http_get_on_a_full_disk(url: str, temp_file: Any, *args: Any, **kwargs: Any) -> Any:
        return http_get(url, FillsUp(temp_file, 1000), *args, **kwargs)

    monkeypatch.setattr(file_download, "http_get", http_get_on_a_full_disk)
    _, server = serve(repo_folder)
    with server as url:
        for key, value in hub_env(url, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        with pytest.raises(TedchatError) as caught:
            pull_gguf(parse_ref(f"hf:{REPO}:Q4_K_M"), progress=False, log=lambda _: None)
    folder = snapshot(tedchat_home)
    assert caught.value.message == (
        f"no space left on the disk while downloading Tiny-Q4_K_M.gguf into {folder}"
    )
    assert not (folder / "Tiny-Q4_K_M.gguf").exists()
    no_partial_files(tedchat_home)


def test_not_enough_free_space_is_refused_before_downloading(
    tedchat_home: Path, tmp_path: Path, repo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from types import SimpleNamespace

    from tedchat.models.hf_ref import parse_ref
    from tedchat.models.hub import pull_gguf

    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(total=10, used=0, free=10))
    hub, server = serve(repo_folder)
    with server as url:
        for key, value in hub_env(url, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        with pytest.raises(TedchatError, match="not enough disk space"):
            pull_gguf(parse_ref(f"hf:{REPO}:Q4_K_M"), progress=False, log=lambda _: None)
    assert gets(hub) == []


def test_a_split_gguf_arrives_whole_and_is_one_model(tedchat_home: Path, repo_folder: Path) -> None:
    hub, server = serve(repo_folder, drop_once={SPLIT[1]: 0.3})
    with server as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        done = run_cli(tedchat_home, "models", "pull", f"hf:{REPO}:F16", **env)
    assert done.returncode == 0, done.stderr
    assert sorted(set(gets(hub))) == SPLIT
    for name in SPLIT:
        assert (snapshot(tedchat_home) / name).read_bytes() == (repo_folder / name).read_bytes()
    info = run_cli(tedchat_home, "models", "info", f"hf:{REPO}:F16", "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["parts"] == 3
    assert facts["parameters"] == 3 * 8 * 64 + 2 * 16 * 64  # every part's tensors
    listed = json.loads(run_cli(tedchat_home, "models", "list", "--json").stdout)
    names = [r["name"] for r in listed if r["name"].startswith("hf:")]
    assert names == [f"hf:{REPO}:{SPLIT[0]}"]
    removed = run_cli(tedchat_home, "models", "rm", f"hf:{REPO}:F16")
    assert removed.returncode == 0, removed.stderr
    assert not snapshot(tedchat_home).exists()


def test_list_info_and_rm_of_a_pulled_model(tedchat_home: Path, repo_folder: Path) -> None:
    plain = repo_folder.parent / "Plain-GGUF"
    write_small_gguf(plain / "Plain-Q4_K_M.gguf", template=PLAIN_TEMPLATE, context=1024)
    hub = FakeHub(repos={REPO: Repo(repo_folder), "test-org/Plain-GGUF": Repo(plain)})
    with FakeHubServer(hub) as url:
        env = hub_env(url, tedchat_home / "hf-cache")
        for name in (f"hf:{REPO}:Q4_K_M", "hf:test-org/Plain-GGUF"):
            assert run_cli(tedchat_home, "models", "pull", name, **env).returncode == 0
    rows = {
        r["name"]: r for r in json.loads(run_cli(tedchat_home, "models", "list", "--json").stdout)
    }
    tiny = rows[f"hf:{REPO}:Tiny-Q4_K_M.gguf"]
    assert tiny["present"] and tiny["architecture"] == "llama"
    assert tiny["quantization"] == "Q4_K_M" and tiny["context_length"] == 2048
    assert tiny["parameters"] == Q4_K_M_PARAMS and tiny["tools"] is True
    other = rows["hf:test-org/Plain-GGUF:Plain-Q4_K_M.gguf"]
    assert other["tools"] is False and other["context_length"] == 1024
    assert rows["qwen2.5-1.5b"]["present"] is False
    assert rows["qwen2.5-1.5b"]["pull"] == "tedchat models pull qwen2.5-1.5b"
    table = run_cli(tedchat_home, "models", "list")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert header == ["NAME", "SIZE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TOOLS", "LICENSE"]
    assert "tedchat models pull qwen2.5-1.5b" in table.stdout
    # The same model by its three names: hf: with a quant, hf: with the file, and the path.
    path = snapshot(tedchat_home) / "Tiny-Q4_K_M.gguf"
    for name in (f"hf:{REPO}:Q4_K_M", f"hf:{REPO}:Tiny-Q4_K_M.gguf", str(path)):
        info = run_cli(tedchat_home, "models", "info", name, "--json")
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["path"] == str(path)
    removed = run_cli(tedchat_home, "models", "rm", str(path))
    assert removed.returncode == 0 and removed.stdout.strip() == f"removed {path}"
    assert not path.exists()
    gone = run_cli(tedchat_home, "models", "info", f"hf:{REPO}:Q4_K_M")
    assert gone.returncode == 2
    assert one_error_line(gone.stderr)
    assert f"hint: get it with: tedchat models pull hf:{REPO}:Q4_K_M" in gone.stderr
    bundled = run_cli(tedchat_home, "models", "rm", "smollm2")
    assert bundled.returncode == 2 and "bundled" in one_error_line(bundled.stderr)
    assert resolve_model("smollm2").is_file()


def test_hf_token_never_shows(tedchat_home: Path, repo_folder: Path) -> None:
    """A wrong and a right HF_TOKEN: neither appears in output, errors or the debug log."""
    hub = FakeHub(repos={REPO: Repo(repo_folder, token=SECRET)})
    with FakeHubServer(hub) as url:
        env = {**hub_env(url, tedchat_home / "hf-cache")}
        wrong = run_cli(
            tedchat_home,
            "--debug",
            "models",
            "pull",
            f"hf:{REPO}:Q4_K_S",
            **{**env, "HF_TOKEN": SECRET[::-1]},
        )
        right = run_cli(
            tedchat_home,
            "--debug",
            "models",
            "pull",
            f"hf:{REPO}:Q4_K_S",
            **{**env, "HF_TOKEN": SECRET},
        )
    assert wrong.returncode == 1 and "HF_TOKEN" in wrong.stderr  # the hint; never its value
    assert right.returncode == 0, right.stderr
    logs = "".join(p.read_text(encoding="utf-8") for p in tedchat_home.rglob("tedchat.log"))
    assert logs, "the debug log was not written"
    for text in (wrong.stdout, wrong.stderr, right.stdout, right.stderr, logs):
        assert SECRET not in text and SECRET[::-1] not in text


def test_an_engine_names_a_pulled_model_and_runs_it(tedchat_home: Path, tmp_path: Path) -> None:
    """The bundled SmolLM2 served as a repo's Q4_K_M: not pulled, the engine exits 2 with the
    pull command and nothing is downloaded; pulled, it answers."""
    repo = tmp_path / "SmolLM2-GGUF"
    repo.mkdir()
    (repo / "SmolLM2-135M-Instruct-Q4_K_M.gguf").symlink_to(resolve_model("smollm2"))
    write_small_gguf(repo / "SmolLM2-135M-Instruct-Q8_0.gguf", "Q8_0")
    name = "hf:test-org/SmolLM2-GGUF:Q4_K_M"
    config = tedchat_home / "config.toml"
    config.write_text(f'[engines.pulled]\ntype = "llamacpp"\nmodel = "{name}"\n', encoding="utf-8")
    args = ("--config", str(config), "ask", "--engine", "pulled", "--max-tokens", "8")
    hub = FakeHub(repos={"test-org/SmolLM2-GGUF": Repo(repo)})
    with FakeHubServer(hub) as url:
        env = {**hub_env(url, tedchat_home / "hf-cache"), **ONE_THREAD}
        before = run_cli(tedchat_home, *args, "What is the capital of France?", **env)
        assert gets(hub) == []  # no implicit download
        pulled = run_cli(tedchat_home, "models", "pull", name, **env)
        after = run_cli(tedchat_home, *args, "What is the capital of France?", **env)
    assert before.returncode == 2
    assert "not downloaded" in one_error_line(before.stderr)
    assert f"hint: get it with: tedchat models pull {name}" in before.stderr
    assert pulled.returncode == 0, pulled.stderr
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip()


def test_pull_of_a_registry_gguf_fetches_its_exact_file(
    tedchat_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registry entry names one file of a repo: pull fetches that one, under that name."""
    from tedchat.models.hf_ref import parse_ref
    from tedchat.models.hub import gguf_ref, pull_gguf
    from tedchat.models.registry import REGISTRY, entry_path

    entry = REGISTRY["qwen2.5-1.5b"]
    ref = parse_ref(entry.gguf or "")
    folder = tmp_path / "qwen"
    write_small_gguf(folder / (ref.file or ""), "Q4_K_M")
    write_small_gguf(folder / "Qwen2.5-1.5B-Instruct-Q8_0.gguf", "Q8_0")
    assert gguf_ref("qwen2.5-1.5b") == (ref, entry)
    hub = FakeHub(repos={ref.repo_id: Repo(folder)})
    with FakeHubServer(hub) as url:
        for key, value in hub_env(url, tmp_path / "hf").items():
            monkeypatch.setenv(key, value)
        got = pull_gguf(ref, entry=entry, progress=False, log=lambda _: None)
    assert got.paths == (entry_path(entry),)
    assert resolve_model("qwen2.5-1.5b") == entry_path(entry)
    assert gets(hub) == [ref.file]


def test_registry_gguf_entries_cite_their_claims() -> None:
    from tedchat.models.hf_ref import parse_ref
    from tedchat.models.registry import REGISTRY

    ggufs = [e for e in REGISTRY.values() if e.gguf]
    assert len(ggufs) >= 3
    assert any(e.tools for e in ggufs)
    assert any("Japanese" in e.why or "jpn" in e.name for e in ggufs)
    for entry in ggufs:
        ref = parse_ref(entry.gguf or "")
        assert ref.file == entry.filename, entry.name
        assert entry.size_bytes and entry.license and entry.license_url and entry.why
        assert entry.sources and all(url.startswith("https://") for _, url in entry.sources)

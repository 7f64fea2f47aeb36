"""``tedchat models pull``: fetch a model from the Hugging Face Hub: one published GGUF
(:func:`pull_gguf`, ``hf:ORG/REPO[:QUANT|:FILE]`` or a registry name with a ``gguf``), or a
checkpoint's safetensors to convert (:func:`pull`).

Downloads go through ``huggingface_hub`` (``hf_hub_download``), which brings what a 33 GB
download needs: ``HF_TOKEN`` for gated or private repos, ``HF_ENDPOINT`` for mirrors, retries
that resume a broken transfer with a Range request, and a progress bar per file. On top of it:

- The repo's file list is fetched first (sizes, LFS sha256, git blob ids), so the free disk
  space is checked before anything is written: the download plus the room the conversion will
  need (the 16-bit GGUF and the quantised one), and the message says how much that is.
- Files land in a staging folder ``<snapshot>.partial/`` and move into the snapshot folder only
  after their hash matched the Hub's (sha256 for LFS files, the git blob id for small ones).
  ``huggingface_hub`` itself writes each file under a temporary name first, so neither folder
  ever holds a half-written file under its final name.
- A marker file (:data:`tedchat.models.PULL_MARKER`) is written last: a snapshot without it is
  unfinished, and ``models convert`` refuses it.

Interrupted pulls are resumed by running the same command: finished files are kept (and not
fetched again). ``huggingface_hub`` 2.x discards a file's *partial* data when the process ends
(it downloads into a process-unique temporary file), so a file cut by Ctrl-C restarts from its
beginning; a connection that breaks while the process runs resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tedchat.errors import (
    AuthError,
    EngineConnectionError,
    ModelFormatError,
    ModelNotFoundError,
    ServerError,
    TedchatError,
    UsageError,
)
from tedchat.models.convert import DTYPE_BYTES, Log, check_free_space, conversion_bytes, gb
from tedchat.models.hf_ref import HfRef, choose, is_ref, parse_ref
from tedchat.models.registry import (
    PULL_IGNORE,
    PULL_MARKER,
    PULL_PATTERNS,
    REGISTRY,
    ModelEntry,
    snapshot_dir,
)
from tedchat.paths import private_umask

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Files from this size up get a progress bar while their hash is checked.
BIG_FILE = 64 << 20


def is_weights(path: str) -> bool:
    """Weight files are fetched after the disk-space check; the rest (configs, tokenizer,
    license) before it, because config.json tells the weights' dtype, which sizes the
    conversion the check makes room for."""
    return path.endswith(".safetensors")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RemoteFile:
    """A file of the repo as the Hub lists it."""

    path: str
    size: int
    git_oid: str
    sha256: str | None  # LFS files only


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull` left on disk."""

    repo_id: str
    commit: str
    folder: Path
    files: tuple[str, ...]
    downloaded_bytes: int
    seconds: float


@dataclass(frozen=True)
class Source:
    """Where a name's weights come from."""

    repo_id: str
    revision: str
    entry: ModelEntry | None


def resolve_source(name: str, revision: str | None = None) -> Source:
    """A registry name with a Hugging Face repo, or a repo id ``org/name``."""
    entry = REGISTRY.get(name)
    if entry is not None:
        if entry.gguf:
            raise UsageError(
                f"model {name!r} is published as a GGUF: nothing to convert",
                hint=f"get it with: tedchat models pull {name}",
            )
        if entry.hf_repo is None:
            raise UsageError(
                f"model {name!r} comes as a GGUF, not from the Hub: nothing to pull or convert"
            )
        return Source(entry.hf_repo, revision or entry.hf_revision, entry)
    if REPO_ID.fullmatch(name):
        return Source(name, revision or "main", None)
    pullable = ", ".join(n for n, e in REGISTRY.items() if e.hf_repo)
    raise ModelNotFoundError(
        f"unknown model {name!r}: not a registry name ({pullable}) nor a Hugging Face repo id "
        "(org/name)"
    )


def endpoint() -> str:
    """The Hub to talk to: ``$HF_ENDPOINT`` (a mirror, or a test server) or huggingface.co.

    Read at each call, not at import as ``huggingface_hub.constants`` does.
    """
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def wanted(path: str) -> bool:
    """Whether ``models pull`` fetches this repo file (see ``PULL_PATTERNS``)."""
    if any(fnmatch.fnmatch(path, p) for p in PULL_IGNORE):
        return False
    return any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in PULL_PATTERNS)


@contextlib.contextmanager
def hub_errors(repo_id: str, url: str, doing: str) -> Iterator[None]:
    """Turn ``huggingface_hub`` and network exceptions into one line a person can act on."""
    import httpx2
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError:
        raise AuthError(
            f"{repo_id} is gated on {url}: {doing} needs access",
            hint="accept the model's license on its Hub page, then set HF_TOKEN",
        ) from None
    except hf.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"repository {repo_id} not found on {url}",
            hint="check the name; a private repo also needs HF_TOKEN",
        ) from None
    except hf.RevisionNotFoundError:
        raise ModelNotFoundError(f"revision not found in {repo_id} on {url}") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise AuthError(f"{status} from {url} while {doing}", hint="check HF_TOKEN") from None
        raise ServerError(f"{status or 'error'} from {url} while {doing}") from None
    except (httpx2.TransportError, hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled) as exc:
        raise EngineConnectionError(
            f"cannot reach {url} while {doing}: {_first_line(exc)}",
            hint="check the network (HF_ENDPOINT selects a mirror); running the same command "
            "again resumes",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def list_files(
    repo_id: str,
    revision: str,
    token: str | None = None,
    keep: Callable[[str], bool] = wanted,
) -> tuple[str, list[RemoteFile]]:
    """The commit ``revision`` resolves to, and the repo files ``keep`` accepts (by default
    the ones a safetensors pull fetches)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    from tedchat import __version__

    url = endpoint()
    api = HfApi(endpoint=url, token=token, library_name="tedchat", library_version=__version__)
    with hub_errors(repo_id, url, "listing the repository"):
        commit = api.model_info(repo_id, revision=revision).sha
        if commit is None:
            raise ServerError(f"{url} gave no commit for {repo_id}@{revision}")
        entries = api.list_repo_tree(repo_id, revision=commit, recursive=True)
        files = [
            RemoteFile(e.path, e.size, e.blob_id, e.lfs.sha256 if e.lfs else None)
            for e in entries
            if isinstance(e, RepoFile) and keep(e.path)
        ]
    return commit, files


def verify(path: Path, remote: RemoteFile, progress: bool = True) -> bool:
    """Whether a downloaded file matches the Hub's hash (LFS sha256, else the git blob id)."""
    from tqdm import tqdm

    if path.stat().st_size != remote.size:
        return False
    if remote.sha256:
        digest = hashlib.sha256()
        expected = remote.sha256
    else:  # git's blob id: sha1 over a "blob <size>\0" header and the content
        digest = hashlib.sha1(f"blob {remote.size}\0".encode())
        expected = remote.git_oid
    with (
        path.open("rb") as f,
        tqdm(
            total=remote.size,
            unit="B",
            unit_scale=True,
            desc=f"verifying {remote.path}",
            disable=not progress or remote.size < BIG_FILE,
            file=sys.stderr,
        ) as bar,
    ):
        while chunk := f.read(8 << 20):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest() == expected


def weights_dtype(folder: Path, default: str) -> str:
    """The checkpoint's dtype from config.json (``torch_dtype``), for sizing its conversion."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default
    names = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
    return names.get(str(config.get("torch_dtype") or config.get("dtype")), default)


def download(
    repo_id: str,
    commit: str,
    f: RemoteFile,
    staging: Path,
    final: Path,
    *,
    token: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch one repo file into ``staging``, check it against the Hub's hash, and only then
    move it to ``final / f.path``: a file under its final name is always whole and verified.

    ``huggingface_hub`` resumes a connection that breaks mid-file with a Range request; a full
    disk, a failed transfer and a hash mismatch are one line each (the hint: run it again).
    """
    from huggingface_hub import hf_hub_download

    from tedchat import __version__

    url = endpoint()
    with hub_errors(repo_id, url, f"downloading {f.path}"):
        try:
            local = hf_hub_download(
                repo_id,
                f.path,
                revision=commit,
                local_dir=staging,
                endpoint=url,
                token=token,
                library_name="tedchat",
                library_version=__version__,
            )
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | ConnectionError) or hasattr(exc, "response"):
                raise
            if exc.errno == errno.ENOSPC:
                raise TedchatError(
                    f"no space left on the disk while downloading {f.path} into {final}",
                    hint="free disk space (or point TEDCHAT_HOME elsewhere), then run the "
                    "same command again: finished files are kept",
                ) from None
            raise TedchatError(
                f"download of {f.path} failed: {_first_line(exc)}",
                hint="run the same command again: finished files are kept",
            ) from None
    if not verify(Path(local), f, progress):
        Path(local).unlink(missing_ok=True)
        raise TedchatError(
            f"{f.path} from {url} does not match the Hub's hash (corrupted in transit?)",
            hint="run the same command again to fetch it anew",
        )
    target = final / f.path
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(local, target)
    return target


@private_umask()  # the snapshot, and what huggingface_hub writes in it, are the user's alone
def pull(
    name: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    progress: bool = True,
    log: Log = _stderr,
) -> PullResult:
    """Download ``name``'s repo files into :func:`tedchat.models.snapshot_dir`."""
    started = time.perf_counter()
    source = resolve_source(name, revision)
    repo_id, entry, url = source.repo_id, source.entry, endpoint()
    commit, files = list_files(repo_id, source.revision, token)
    if not any(is_weights(f.path) for f in files):
        raise ModelFormatError(
            f"{repo_id} has no safetensors weights: tedchat converts safetensors checkpoints"
        )
    final = snapshot_dir(repo_id)
    staging = final.with_name(final.name + ".partial")
    marker = final / PULL_MARKER
    if marker.is_file() and _marker_commit(marker) == commit and _all_present(final, files):
        log(f"{repo_id} is already downloaded ({commit[:12]}): {final}")
        return PullResult(repo_id, commit, final, tuple(f.path for f in files), 0, 0.0)
    marker.unlink(missing_ok=True)  # from here on the snapshot is unfinished
    todo = [f for f in files if not _present(final / f.path, f)]
    total = sum(f.size for f in todo)
    if entry is not None:
        log(f"{entry.name}: {repo_id} — license: {entry.license} {entry.license_url}".rstrip())
    log(f"downloading {len(todo)} files, {gb(total)}, from {url}/{repo_id} into {final}")

    def fetch(f: RemoteFile) -> None:
        download(repo_id, commit, f, staging, final, token=token, progress=progress)

    for f in todo:
        if not is_weights(f.path):
            fetch(f)
    large = [f for f in todo if is_weights(f.path)]
    weights = sum(f.size for f in files if is_weights(f.path))
    dtype = weights_dtype(final, entry.source_dtype if entry else "F32")
    quant = entry.quants[0] if entry and entry.quants else "Q4_K_M"
    convert_room = conversion_bytes(weights // DTYPE_BYTES.get(dtype, 4), quant)
    remaining = sum(f.size for f in large)
    check_free_space(
        final.parent,
        remaining + convert_room,
        f"pulling {name}",
        f"{gb(remaining)} to download + {gb(convert_room)} to convert to {quant}",
    )
    for f in large:
        fetch(f)
    marker.write_text(
        json.dumps(
            {
                "repo_id": repo_id,
                "revision": source.revision,
                "commit": commit,
                "endpoint": url,
                "files": [f.path for f in files],
                "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    shutil.rmtree(staging, ignore_errors=True)
    return PullResult(
        repo_id,
        commit,
        final,
        tuple(f.path for f in files),
        total,
        time.perf_counter() - started,
    )


def _present(path: Path, remote: RemoteFile) -> bool:
    # Only verified files are moved into the snapshot folder, so the size is enough here.
    return path.is_file() and path.stat().st_size == remote.size


def _all_present(folder: Path, files: list[RemoteFile]) -> bool:
    return all(_present(folder / f.path, f) for f in files)


def _marker_commit(marker: Path) -> str | None:
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("commit")
    except (OSError, ValueError):
        return None


def pulled_folder(name: str) -> Path:
    """The finished snapshot folder of a registry name or repo id, or a clear error."""
    source = resolve_source(name)
    folder = snapshot_dir(source.repo_id)
    if not (folder / PULL_MARKER).is_file():
        raise ModelNotFoundError(
            f"{name} is not downloaded (or its download did not finish): {folder}",
            hint=f"run: tedchat models pull {name}",
        )
    return folder


@dataclass(frozen=True)
class GGUFPullResult:
    """What :func:`pull_gguf` left on disk."""

    name: str  # hf:ORG/REPO:FILE, the exact name of what was pulled
    repo_id: str
    commit: str
    paths: tuple[Path, ...]  # every part, the first one first
    downloaded_bytes: int
    seconds: float


def gguf_ref(name: str) -> tuple[HfRef, ModelEntry | None] | None:
    """The GGUF a name pulls: an ``hf:`` name, or a registry entry with a published GGUF."""
    entry = REGISTRY.get(name)
    if entry is not None and entry.gguf:
        return parse_ref(entry.gguf), entry
    if is_ref(name):
        return parse_ref(name), None
    return None


def is_gguf_file(path: str) -> bool:
    return path.lower().endswith(".gguf")


def _safe_path(path: str) -> bool:
    """A repo path that stays inside the folder it is written to (no ``..``, not absolute)."""
    return not path.startswith("/") and all(p not in ("", ".", "..") for p in path.split("/"))


@private_umask()  # the files are the user's alone
def pull_gguf(
    ref: HfRef,
    *,
    entry: ModelEntry | None = None,
    revision: str | None = None,
    token: str | None = None,
    progress: bool = True,
    log: Log = _stderr,
) -> GGUFPullResult:
    """Fetch the one GGUF ``ref`` names (every part of a split one) into
    :func:`tedchat.models.registry.snapshot_dir`, each file checked against the Hub's sha256.

    The file is chosen from the repo's list (:func:`tedchat.models.hf_ref.choose`); the free
    disk space is checked before anything is written; parts already there are kept.
    """
    started = time.perf_counter()
    url = endpoint()
    commit, files = list_files(ref.repo_id, revision or "main", token, keep=is_gguf_file)
    by_path = {f.path: f for f in files if _safe_path(f.path)}
    parts = choose(ref, by_path, f"{ref.repo_id} on {url}")
    chosen = [by_path[p] for p in parts]
    final = snapshot_dir(ref.repo_id)
    staging = final.with_name(final.name + ".partial")
    name = f"hf:{ref.repo_id}:{parts[0]}"
    paths = tuple(final / p for p in parts)
    todo = [f for f in chosen if not _present(final / f.path, f)]
    if not todo:
        log(f"{name} is already downloaded: {paths[0]}")
        return GGUFPullResult(name, ref.repo_id, commit, paths, 0, 0.0)
    if entry is not None:
        log(f"{entry.name}: {name} — license: {entry.license} {entry.license_url}".rstrip())
    total = sum(f.size for f in todo)
    count = f" ({len(todo)} of {len(chosen)} parts)" if len(chosen) > 1 else ""
    size = gb(total) if total >= 1e8 else f"{total / 1e6:.1f} MB"
    log(f"downloading {parts[0]}{count}, {size}, from {url}/{ref.repo_id} into {final}")
    check_free_space(final.parent, total, f"pulling {name}", f"{gb(total)} to download")
    for f in todo:
        download(ref.repo_id, commit, f, staging, final, token=token, progress=progress)
    shutil.rmtree(staging, ignore_errors=True)
    return GGUFPullResult(name, ref.repo_id, commit, paths, total, time.perf_counter() - started)

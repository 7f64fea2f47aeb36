"""A local stand-in for the Hugging Face Hub, serving repos from folders on 127.0.0.1.

It answers exactly the requests ``huggingface_hub`` 2.x makes for ``model_info``,
``list_repo_tree`` and ``hf_hub_download`` (see its ``hf_api.py`` and ``file_download.py``):

- ``GET /api/models/{repo}/revision/{rev}``: repo info with the commit ``sha``;
- ``GET /api/models/{repo}/tree/{rev}?recursive=...``: files with size, git ``oid`` and, for
  LFS files (safetensors), ``lfs.oid`` = sha256;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (the sha256 for
  LFS files, like the Hub's ``X-Linked-Etag``), ``Content-Length``, ``Accept-Ranges``; ``Range:
  bytes=N-`` answers 206 with ``Content-Range``;
- unknown repos: 404 with ``X-Error-Code: RepoNotFound``; a repo that needs a token answers
  401 without ``Authorization: Bearer <token>``.

Faults for tests: ``drop_once[path] = fraction`` makes the first GET of that file send only
that fraction of its bytes and then close the connection; ``corrupt_once`` (a set of paths)
makes the first GET of each send the file with one byte changed (same length, same ETag: what
the Hub's sha256 catches). Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    """A repo served from a folder."""

    folder: Path
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    token: str | None = None  # required bearer token, if any

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()
        )


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int


@dataclass
class FakeHub:
    """The server's state: repos, faults, and the requests it saw."""

    repos: dict[str, Repo] = field(default_factory=dict)
    drop_once: dict[str, float] = field(default_factory=dict)
    corrupt_once: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    _hashes: dict[Path, tuple[str, str]] = field(default_factory=dict)
    url: str = ""

    def hashes(self, path: Path) -> tuple[str, str]:
        """(git blob sha1, sha256) of a file."""
        if path not in self._hashes:
            data = path.read_bytes()
            git = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
            self._hashes[path] = (git, hashlib.sha256(data).hexdigest())
        return self._hashes[path]


def is_lfs(path: str) -> bool:
    return path.endswith((".safetensors", ".gguf", ".bin"))


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            hub.requests.append(Request(self.command, self.path, self.headers.get("Range"), status))
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client hung up (a failed download)

        def _json(self, data: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(data).encode()
            self._send(200, body, {"Content-Type": "application/json", **(headers or {})})

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._send(
                    404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}
                )
                return None
            if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
                self._send(
                    401,
                    b'{"error":"Invalid username or password."}',
                    {"X-Error-Code": "RepoNotFound"},
                )
                return None
            return repo

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if (
                parts[:2] == ["api", "models"]
                and len(parts) >= 6
                and parts[4] in ("revision", "tree")
            ):
                repo_id = f"{parts[2]}/{parts[3]}"
                repo = self._repo(repo_id)
                if repo is None:
                    return
                if parts[4] == "revision":
                    self._json(
                        {
                            "id": repo_id,
                            "modelId": repo_id,
                            "sha": repo.commit,
                            "private": False,
                            "disabled": False,
                            "gated": False,
                            "siblings": [{"rfilename": f} for f in repo.files()],
                            "tags": [],
                        }
                    )
                    return
                entries = []
                for name in repo.files():
                    path = repo.folder / name
                    git, sha = hub.hashes(path)
                    size = path.stat().st_size
                    entry: dict[str, Any] = {"type": "file", "oid": git, "size": size, "path": name}
                    if is_lfs(name):
                        entry["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
                    entries.append(entry)
                self._json(entries)
                return
            if len(parts) >= 5 and parts[2] == "resolve":
                repo_id = f"{parts[0]}/{parts[1]}"
                repo = self._repo(repo_id)
                if repo is None:
                    return
                name = "/".join(parts[4:])
                path = repo.folder / name
                if not path.is_file():
                    self._send(
                        404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.commit}
                    )
                    return
                git, sha = hub.hashes(path)
                data = path.read_bytes()
                headers = {
                    "X-Repo-Commit": repo.commit,
                    "ETag": f'"{sha if is_lfs(name) else git}"',
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/octet-stream",
                }
                if is_lfs(name):
                    headers["X-Linked-Etag"] = f'"{sha}"'
                    headers["X-Linked-Size"] = str(len(data))
                start = 0
                status = 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and self.command == "GET":
                    start = int(rng[6:].split("-")[0])
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                if self.command == "GET" and name in hub.corrupt_once and body:
                    hub.corrupt_once.discard(name)
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                fraction = hub.drop_once.pop(name, None) if self.command == "GET" else None
                if fraction is not None:
                    # Promise the whole body, send part of it, hang up.
                    hub.requests.append(Request(self.command, self.path, rng, status))
                    self.send_response(status)
                    for k, v in {**headers, "Content-Length": str(len(body))}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body[: int(len(body) * fraction)])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(status, body, {**headers, "Content-Length": str(len(body))})
                return
            self._send(404, b"not found")

    return Handler


class FakeHubServer:
    """``with FakeHubServer(hub) as url:`` serves ``hub`` on 127.0.0.1 in a thread."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.hub.url = f"http://{host}:{port}"
        return self.hub.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

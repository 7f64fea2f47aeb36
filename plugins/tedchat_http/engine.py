"""The ``http`` engine: an OpenAI-compatible ``/v1/chat/completions`` server, streamed over SSE.

Life of a request (:meth:`HttpEngine.stream`):

1. *Before the first byte* (:meth:`HttpEngine._open`): connection refused, connect timeouts,
   429 and 503 are retried up to ``max_retries`` times, honouring ``Retry-After`` up to
   :data:`RETRY_WAIT_CAP`. A 4xx that complains about ``stream_options`` is retried once
   without it (some servers reject the field), and the engine stops sending it.
2. *Streaming*: SSE events (parsed by :class:`tedchat_http.sse.SSEParser`, as WHATWG
   specifies; it replaced httpx-sse for speed, see that module) become tedchat events
   through :class:`tedchat_http.chunks.ChunkReader`. Nothing is retried once the answer has
   started: a retry would repeat text the person has already seen.
3. *The end*: held-back text, server usage and timings, then ``Done``. When the server
   reported no usage and a ``tokenizer`` is configured, it counts the answer's tokens.

Closing the stream (the consumer breaks, cancels or calls ``aclose``) closes the response and
with it the connection, so the server stops generating at once.

TLS: the server's certificate is checked against ``ca_bundle`` when set, else the CA file or
folder in ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else httpx's default store (certifi). A
certificate that fails the check is one error line naming those settings, never retried;
``verify_tls = false`` turns the check off and warns once.

The API key goes only into the ``Authorization`` header; error messages, ``describe()`` and
logs never carry it, nor URL userinfo or secret query values (all shown through
:mod:`tedchat.redact`; server messages that echo a credential are scrubbed).

``base_url`` may carry a query (Azure's ``?api-version=...``): every request URL keeps it as
its query, after the endpoint's path.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import email.utils
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx

from tedchat import redact
from tedchat.engine import (
    Capabilities,
    Done,
    EngineStatus,
    Event,
    GenerationParams,
    Message,
    ProgressCallback,
    Runtime,
    ToolSpec,
    Usage,
)
from tedchat.errors import (
    AuthError,
    ConfigError,
    EngineConnectionError,
    EngineError,
    ServerError,
    TedchatError,
)
from tedchat_http.chunks import ChunkReader, error_text
from tedchat_http.sse import SSEParser

log = logging.getLogger("tedchat.http")

STATUS_TIMEOUT_S = 1.5  # `tedchat engines` checks many engines; a dead server must not stall it
RETRY_WAIT_CAP = 30.0  # longest Retry-After honoured; a longer one fails at once, saying so
BACKOFF_BASE_S = 0.25  # first wait after a refused connection; doubles per retry
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error response read for its message
RETRY_STATUSES = (429, 503)


def display_url(url: str) -> str:
    """``url`` as messages show it: userinfo and secret query values hidden."""
    return redact.redact_url(url).rstrip("/")


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` with ``path`` appended to its path; its query stays the query
    (``https://h/v1?api-version=1`` + ``chat/completions`` -> ``https://h/v1/chat/completions?api-version=1``)."""
    parts = urlsplit(base_url)
    joined = f"{parts.path.rstrip('/')}/{path.lstrip('/')}"
    return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, parts.fragment))


def is_loopback(host: str) -> bool:
    """True for this machine's addresses, where plain http exposes nothing."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def connect_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words (walks the exception chain to the OS error)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        if "name or service not known" in str(seen).lower() or "nodename" in str(seen).lower():
            return "host not found"
        seen = seen.__cause__ or seen.__context__
    return str(exc).strip() or type(exc).__name__


def tls_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that made a connection fail, if that is why it failed."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def model_display(model_id: str) -> str:
    """A short name for a server's model id (llama_cpp.server uses the GGUF's full path)."""
    if model_id.lower().endswith(".gguf"):
        return Path(model_id).stem
    return model_id


def message_json(message: Message) -> dict[str, Any]:
    """One message as the OpenAI chat API takes it, tool calls and results included.

    An assistant message with tool calls and no text has ``content: ""``, not ``null``:
    OpenAI takes both, but llama_cpp.server refuses ``null`` (a 500 naming the field) and
    templates that concatenate ``message['content']`` fail on a missing one."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    if message.images:
        return {"role": message.role, "content": content_parts(message)}
    return {"role": message.role, "content": message.content}


def content_parts(message: Message) -> list[dict[str, Any]]:
    """A message with images as OpenAI content parts: its text, then each image as an
    ``image_url`` data URL."""
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in message.images:
        encoded = base64.b64encode(image.data).decode("ascii")
        parts.append(
            {"type": "image_url", "image_url": {"url": f"data:{image.mime};base64,{encoded}"}}
        )
    return parts


def tool_json(tool: ToolSpec) -> dict[str, Any]:
    """A tool as the OpenAI ``tools`` list holds it."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def tool_choice_json(params: GenerationParams) -> str | dict[str, Any]:
    """``tool_choice`` for the request: ``auto``/``required``/``none``, or the named tool."""
    choice = params.tool_choice
    if choice in ("auto", "required", "none"):
        return choice
    if choice not in {t.name for t in params.tools}:
        offered = ", ".join(t.name for t in params.tools)
        raise EngineError(f"tool choice {choice!r} is not one of the tools offered ({offered})")
    return {"type": "function", "function": {"name": choice}}


class HttpEngine:
    """A remote OpenAI-compatible server. Cheap to build; ``load`` only prepares a client."""

    type = "http"
    local = False

    def __init__(self, name: str, settings: dict[str, Any], runtime: Runtime) -> None:
        self.name = name
        self.settings = settings
        self.runtime = runtime
        self.base_url = str(settings["base_url"]).rstrip("/")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(
                f"[engines.{name}] base_url must start with http:// or https://, "
                f"got {display_url(self.base_url)!r}"
            )
        self.url = display_url(self.base_url)
        self.chat_url = endpoint_url(self.base_url, "chat/completions")
        self.models_url = endpoint_url(self.base_url, "models")
        # What error messages name: the request URLs without their secrets.
        self.chat_url_shown = display_url(self.chat_url)
        self.models_url_shown = display_url(self.models_url)
        self._model_id: str | None = settings["model"] or None
        self.model = model_display(self._model_id) if self._model_id else "(server default)"
        # The server's context window is not part of the OpenAI API: unknown here.
        # prompt_tokens: counted with the ``tokenizer`` setting's GGUF (None without one).
        self.capabilities = Capabilities(
            list_models=True,
            tools=True,
            prompt_tokens=True,
            vision=bool(settings.get("vision", False)),
        )
        self._discovery_tried = False
        self._include_usage = True  # cleared when the server rejects stream_options
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._warned_plain_http = False
        self._warned_no_tls_check = False
        # Built now, not with the client: a bad CA path is a config error before anything
        # (a history entry, a request) has started.
        self._verify = self._tls_verify()
        self._tokenizer: Any = None
        self._formatter: Any = None  # the tokenizer GGUF's chat template, built once
        self._tokenizer_lock = threading.Lock()  # a llama.cpp vocab is not thread-safe

    # --- settings --------------------------------------------------------------------------

    def api_key(self) -> str:
        """The key from ``api_key``, else from the environment variable ``api_key_env``."""
        if self.settings["api_key"]:
            return str(self.settings["api_key"])
        env = self.settings["api_key_env"]
        return os.environ.get(env, "") if env else ""

    def _key_hint(self) -> str:
        env = self.settings["api_key_env"]
        if env:
            return f"check {env}" if os.environ.get(env) else f"{env} is not set"
        if self.settings["api_key"]:
            return "check api_key"
        return "no API key configured (set api_key_env)"

    def _headers(self) -> dict[str, str]:
        headers = {str(k): str(v) for k, v in self.settings["headers"].items()}
        key = self.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _scrub(self, text: str) -> str:
        """``text`` with every credential this engine sends replaced (servers may echo them,
        raw or as the base64 of Basic auth)."""
        secrets = [self.api_key(), *redact.secrets_in(self.settings, os.environ)]
        return redact.redact_text(text, secrets)

    def _warn_plain_http(self) -> None:
        if self._warned_plain_http or not self.api_key():
            return
        parts = urlsplit(self.base_url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            self._warned_plain_http = True
            log.warning(
                "warning: engine %r sends its API key over plain http to %s; use https",
                self.name,
                parts.hostname,
            )

    def _warn_no_tls_check(self) -> None:
        if self._warned_no_tls_check or self.settings["verify_tls"]:
            return
        parts = urlsplit(self.base_url)
        if parts.scheme == "https":
            self._warned_no_tls_check = True
            log.warning(
                "warning: engine %r does not check the TLS certificate of %s (verify_tls = "
                "false): anyone on the way can read and change the traffic",
                self.name,
                parts.hostname,
            )

    def _tls_verify(self) -> ssl.SSLContext | bool:
        """What the server's certificate is checked against (see the module docstring).

        The context is built here rather than left to httpx so that ``SSL_CERT_FILE`` counts
        whatever httpx version is installed, and a bad path is one clear error."""
        if not self.settings["verify_tls"]:
            return False
        ca_bundle = str(self.settings["ca_bundle"] or "")
        if ca_bundle:
            origin, path = f"[engines.{self.name}] ca_bundle", ca_bundle
        elif os.environ.get("SSL_CERT_FILE"):
            origin, path = "SSL_CERT_FILE", os.environ["SSL_CERT_FILE"]
        elif os.environ.get("SSL_CERT_DIR"):
            origin, path = "SSL_CERT_DIR", os.environ["SSL_CERT_DIR"]
        else:
            return True  # httpx's default store (certifi), built by httpx with the client
        where = Path(path).expanduser()
        try:
            if where.is_dir():
                return ssl.create_default_context(capath=str(where))
            return ssl.create_default_context(cafile=str(where))
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{origin}: {where} holds no usable PEM certificate ({exc.reason or exc})"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read {where}: {exc.strerror or exc}") from exc

    def _tls_error(self, failure: ssl.SSLCertVerificationError) -> EngineConnectionError:
        """The one line for a certificate the check refused."""
        reason = failure.verify_message or failure.reason or str(failure)
        if failure.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH: trusted, other host
            host = urlsplit(self.base_url).hostname
            return EngineConnectionError(
                f"TLS certificate of {self.url} is not valid for {host} ({reason})"
            )
        if self.settings["ca_bundle"]:
            fix = f"ca_bundle {self.settings['ca_bundle']} does not hold the CA that signed it"
        else:
            fix = f'set ca_bundle = "PATH" in [engines.{self.name}] or SSL_CERT_FILE'
        return EngineConnectionError(
            f"TLS certificate not trusted for {self.url} ({reason}): {fix}"
        )

    def _client_here(self) -> httpx.AsyncClient:
        """The HTTP client for the running event loop (a client cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            s = self.settings
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=float(s["connect_timeout"]),
                    read=float(s["read_timeout"]),
                    write=float(s["connect_timeout"]),
                    pool=float(s["connect_timeout"]),
                ),
                verify=self._verify,
                headers=self._headers(),
                follow_redirects=False,
            )
            self._client_loop = loop
        return self._client

    # --- contract --------------------------------------------------------------------------

    async def load(self, progress: ProgressCallback | None = None) -> None:
        """Prepare the client and the optional tokenizer, and learn the model if none is set.

        Done here, not in ``stream``, so that none of it counts in the answer's TTFT.
        """
        self._warn_plain_http()
        self._warn_no_tls_check()
        client = self._client_here()
        if self._model_id is None and not self._discovery_tried:
            self._discovery_tried = True  # once: a retry per request would add to every TTFT
            await self._discover_model(client)
        if self.settings["tokenizer"] and self._tokenizer is None:
            await asyncio.to_thread(self._load_tokenizer)

    async def status(self) -> EngineStatus:
        """Whether the server answers ``GET /models`` within :data:`STATUS_TIMEOUT_S`."""
        try:
            response = await self._client_here().get(self.models_url, timeout=STATUS_TIMEOUT_S)
        except httpx.TimeoutException:
            return EngineStatus(False, f"no answer from {self.url} within {STATUS_TIMEOUT_S} s")
        except httpx.TransportError as exc:
            failure = tls_failure(exc)
            if failure is not None:
                return EngineStatus(False, self._tls_error(failure).message)
            return EngineStatus(False, f"cannot connect to {self.url}: {connect_reason(exc)}")
        if response.status_code in (401, 403):
            message = self._scrub(error_text(_json_or_text(response.content)))
            return EngineStatus(
                False, f"{response.status_code} from {self.url}: {message}; {self._key_hint()}"
            )
        if response.status_code in (404, 405):
            # Some proxies and gateways serve chat completions but no model list.
            return EngineStatus(True, f"{self.url} (reachable; it lists no models)")
        if response.status_code >= 400:
            return EngineStatus(False, f"{response.status_code} from {self.models_url_shown}")
        try:
            ids = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, AttributeError, KeyError, TypeError):
            ids = []
        if self._model_id is None and ids:
            self._set_model(ids[0])
        return EngineStatus(True, f"{self.url} ({len(ids)} model{'s' * (len(ids) != 1)})")

    def describe(self) -> dict[str, Any]:
        """Settings for display and records: the key, secret headers and URL userinfo hidden."""
        s = self.settings
        return {
            "type": self.type,
            "model": self.model,
            "base_url": self.url,
            "api_key_env": s["api_key_env"],
            "api_key": "***" if s["api_key"] else "",
            "headers": redact.redact_settings(dict(s["headers"])),
            "connect_timeout": s["connect_timeout"],
            "read_timeout": s["read_timeout"],
            "verify_tls": s["verify_tls"],
            "ca_bundle": s["ca_bundle"],
            "max_retries": s["max_retries"],
            "tokenizer": s["tokenizer"],
        }

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()
        with self._tokenizer_lock:
            if self._tokenizer is not None:
                self._tokenizer.close()
                self._tokenizer = None

    async def list_models(self) -> list[dict[str, Any]]:
        """What the server offers (``GET /models``), for ``tedchat models list --engine``."""
        client = self._client_here()
        try:
            response = await client.get(self.models_url)
        except httpx.ConnectTimeout as exc:
            limit = f"{self.settings['connect_timeout']:g} s (connect_timeout)"
            raise EngineConnectionError(f"cannot connect to {self.url} within {limit}") from exc
        except httpx.TimeoutException as exc:
            raise self._read_timeout_error(started=False) from exc
        except httpx.TransportError as exc:
            failure = tls_failure(exc)
            if failure is not None:
                raise self._tls_error(failure) from exc
            raise EngineConnectionError(
                f"cannot connect to {self.url}: {connect_reason(exc)}"
            ) from exc
        if response.status_code != 200:
            self._raise_status(response.status_code, response.content, self.models_url_shown)
        try:
            data = response.json()["data"]
            return [dict(m) for m in data if isinstance(m, dict) and "id" in m]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerError(f"unexpected answer to GET {self.models_url_shown}") from exc

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Event, None]:
        await self.load()
        response = await self._open(self._client_here(), messages, params)
        reader = ChunkReader(self.url, keep_answer=bool(self.settings["tokenizer"]))
        try:
            if "text/event-stream" in response.headers.get("content-type", ""):
                # The read loop lives here, not in a helper generator: at tens of thousands
                # of chunks a second each generator layer costs a measurable share.
                parser = SSEParser()
                decoder = codecs.getincrementaldecoder("utf-8")("replace")  # SSE is UTF-8
                feed = reader.feed
                started = finished = False
                try:
                    async for raw in response.aiter_bytes():
                        started = True
                        for kind, data in parser.feed(decoder.decode(raw)):
                            if data == "[DONE]":
                                finished = True
                                break
                            for event in feed(data, kind):
                                yield event
                        if finished:
                            break
                    else:
                        for kind, data in parser.feed(decoder.decode(b"", True)) + parser.close():
                            if data == "[DONE]":
                                finished = True
                                break
                            for event in feed(data, kind):
                                yield event
                except httpx.TransportError as exc:
                    raise self._broken(exc, started=started) from exc
                self._check_end(started=started, finished=finished, reader=reader)
            else:
                for event in await self._read_whole(response, reader):
                    yield event
        finally:
            # Also reached when the consumer closes or cancels us: closing an unfinished
            # streaming response drops the connection, which stops the server generating.
            await response.aclose()
        for event in reader.end():
            yield event
        if reader.output_tokens is None and "eval_tokens" not in reader.figures:
            count = await self._count_tokens(reader.answer_text())
            if count is not None:
                yield Usage(output_tokens=count, source="tokenizer")
        yield Done(reader.finish())  # type: ignore[arg-type]

    # --- the request -----------------------------------------------------------------------

    def _body(self, messages: Sequence[Message], params: GenerationParams) -> bytes:
        body: dict[str, Any] = {
            "messages": [message_json(m) for m in messages],
            "stream": True,
            "max_tokens": params.max_tokens,
        }
        if params.tools:
            body["tools"] = [tool_json(t) for t in params.tools]
            body["tool_choice"] = tool_choice_json(params)
        # Unset sampling is left to the server: it knows its model's recommended values.
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if self._model_id:
            body["model"] = self._model_id
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self._include_usage:
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body).encode()

    async def _open(
        self, client: httpx.AsyncClient, messages: Sequence[Message], params: GenerationParams
    ) -> httpx.Response:
        """Send the request; retry what may be retried before the answer starts."""
        retries = max(0, int(self.settings["max_retries"]))
        attempt = 0
        while True:
            request = client.build_request(
                "POST",
                self.chat_url,
                content=self._body(messages, params),
                headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectTimeout as exc:
                if attempt < retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise EngineConnectionError(
                    f"cannot connect to {self.url}: no answer within "
                    f"{self.settings['connect_timeout']:g} s (connect_timeout)"
                ) from exc
            except httpx.ConnectError as exc:
                failure = tls_failure(exc)
                if failure is not None:  # the same certificate again: no use retrying
                    raise self._tls_error(failure) from exc
                if attempt < retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise EngineConnectionError(
                    f"cannot connect to {self.url}: {connect_reason(exc)}"
                ) from exc
            except httpx.ReadTimeout as exc:
                raise self._read_timeout_error(started=False) from exc
            except httpx.TimeoutException as exc:  # writing the request, or waiting for the pool
                raise EngineConnectionError(
                    f"request to {self.url} timed out ({type(exc).__name__})"
                ) from exc
            except httpx.TransportError as exc:
                raise EngineConnectionError(
                    f"connection to {self.url} failed before the answer: {_transport_reason(exc)}"
                ) from exc
            if response.status_code == 200:
                return response
            content = await _read_limited(response)
            status = response.status_code
            if 400 <= status < 500 and self._include_usage and b"stream_options" in content.lower():
                # The server does not know stream_options: ask again without it (for good).
                self._include_usage = False
                continue
            if status in RETRY_STATUSES and attempt < retries:
                wait = parse_retry_after(response.headers.get("retry-after"))
                if wait is not None and wait > RETRY_WAIT_CAP:
                    raise ServerError(
                        f"{status} from {self.chat_url_shown}: {self._message(content)} "
                        f"(the server asks to wait {wait:.0f} s; tedchat waits at most "
                        f"{RETRY_WAIT_CAP:.0f} s)"
                    )
                attempt += 1
                await asyncio.sleep(wait if wait is not None else self._backoff(attempt))
                continue
            suffix = f" (after {attempt} retries)" if status in RETRY_STATUSES and attempt else ""
            self._raise_status(status, content, self.chat_url_shown, suffix)

    def _backoff(self, attempt: int) -> float:
        return min(RETRY_WAIT_CAP, BACKOFF_BASE_S * 2 ** (attempt - 1))

    def _message(self, content: bytes) -> str:
        return self._scrub(error_text(_json_or_text(content)))

    def _raise_status(self, status: int, content: bytes, url: str, suffix: str = "") -> NoReturn:
        message = self._message(content) or "no message"
        if status in (401, 403):
            raise AuthError(f"{status} from {url}: {message}; {self._key_hint()}")
        hint = None
        if status == 404:
            hint = "is base_url right? OpenAI-compatible servers usually serve under /v1"
        raise ServerError(f"{status} from {url}: {message}{suffix}", hint=hint)

    def _read_timeout_error(self, *, started: bool) -> EngineConnectionError:
        limit = f"{self.settings['read_timeout']:g} s (read_timeout)"
        if started:
            return EngineConnectionError(
                f"connection to {self.url} broke mid-answer: no data for {limit}"
            )
        return EngineConnectionError(f"no answer from {self.url} within {limit}")

    async def _discover_model(self, client: httpx.AsyncClient) -> None:
        """Use the first model the server lists. On any failure send no model at all: the
        chat request then reports what is wrong (after its retries), through the session,
        which keeps one error path for every failure."""
        try:
            response = await client.get(self.models_url)
            if response.status_code == 200:
                data = response.json().get("data") or []
                if data and isinstance(data[0], dict) and data[0].get("id"):
                    self._set_model(str(data[0]["id"]))
        except (httpx.HTTPError, ValueError, AttributeError):
            pass

    def _set_model(self, model_id: str) -> None:
        self._model_id = model_id
        self.model = model_display(model_id)

    # --- the stream ------------------------------------------------------------------------

    async def _read_whole(self, response: httpx.Response, reader: ChunkReader) -> list[Event]:
        """A server that ignored ``stream: true`` and answered with one JSON completion."""
        try:
            content = await response.aread()
        except httpx.TransportError as exc:
            raise self._broken(exc, started=False) from exc
        if "json" not in response.headers.get("content-type", ""):
            snippet = content[:80].decode("utf-8", "replace")
            raise ServerError(f"unparseable stream data from {self.url}: {snippet}")
        return reader.feed(content.decode("utf-8", "replace"))

    def _broken(self, exc: httpx.TransportError, *, started: bool) -> EngineConnectionError:
        """The error for a connection that failed after the server said 200."""
        if isinstance(exc, httpx.ReadTimeout):
            return self._read_timeout_error(started=started)
        when = "mid-answer" if started else "before the answer"
        return EngineConnectionError(
            f"connection to {self.url} broke {when}: {_transport_reason(exc)}"
        )

    def _check_end(self, *, started: bool, finished: bool, reader: ChunkReader) -> None:
        """A stream that ended without [DONE] or a finish reason did not end well."""
        if not started:
            # llama_cpp.server does this when generation fails (e.g. the prompt is longer
            # than its context): 200, then an empty stream; the reason is in its log only.
            raise ServerError(
                f"{self.url} ended the stream without sending anything "
                "(no answer, no error; the server's log may say why)"
            )
        if not finished and reader.finish_reason is None:
            raise EngineConnectionError(
                f"connection to {self.url} broke mid-answer: the stream ended without "
                "a finish reason or [DONE]"
            )

    # --- tokenizer -------------------------------------------------------------------------

    def _load_tokenizer(self) -> None:
        from tedchat.models.registry import resolve_model

        path = resolve_model(str(self.settings["tokenizer"]))
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = load_vocab(path)

    async def _count_tokens(self, text: str) -> int | None:
        """Tokens in ``text`` by the configured tokenizer; None without one."""
        if not self.settings["tokenizer"]:
            return None
        if not text:
            return 0
        try:
            if self._tokenizer is None:
                await asyncio.to_thread(self._load_tokenizer)
            return await asyncio.to_thread(self._tokenize_count, text)
        except TedchatError as exc:
            log.warning("warning: %s: %s (token count left approximate)", self.name, exc.message)
            return None

    async def count_prompt_tokens(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> int | None:
        """The request's prompt tokens as a llama.cpp-style server renders it: the tokenizer
        GGUF's chat template over the messages sent; None without a ``tokenizer`` (or when
        it has no chat template)."""
        if not self.settings["tokenizer"]:
            return None
        if self._tokenizer is None:
            await asyncio.to_thread(self._load_tokenizer)
        return await asyncio.to_thread(self._count_prompt_sync, messages, params)

    def _count_prompt_sync(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> int | None:
        with self._tokenizer_lock:
            vocab = self._tokenizer
            if vocab is None:
                return None
            if self._formatter is None:
                self._formatter = chat_formatter(vocab) or False
            if self._formatter is False:
                return None
            tools = [tool_json(t) for t in params.tools] or None
            try:
                result = self._formatter(messages=[message_json(m) for m in messages], tools=tools)
            except Exception:  # a template that cannot take these messages (image parts)
                return None
            ids = vocab.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
            return len(ids)

    def _tokenize_count(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self._tokenizer.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def load_vocab(path: Path) -> Any:
    """A GGUF's tokenizer alone (no weights), with ``tokenize(text, add_bos, special)``.

    llama-cpp-python's model wrapper is used when it is there: ``Llama(vocab_only=True)`` also
    builds a context, and llama.cpp then prints a context-size warning to stderr that
    llama-cpp-python (0.3.x maps ggml's log levels off by one) does not silence, which would
    spoil ``ask``'s one-line stderr.
    """
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - a broken install
        raise EngineError(f"the tokenizer setting needs llama-cpp-python: {exc}") from exc
    try:
        try:
            from llama_cpp._internals import LlamaModel

            params = llama_cpp.llama_model_default_params()
            params.vocab_only = True
            return LlamaModel(path_model=str(path), params=params, verbose=False)
        except (ImportError, AttributeError, TypeError):  # a llama-cpp-python without it
            return llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot load the tokenizer from {path}: {exc}") from exc


def chat_formatter(vocab: Any) -> Any:
    """The GGUF's chat template as llama-cpp-python's server renders it (None: it has none)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = vocab.metadata().get("tokenizer.chat_template")
    if not template:
        return None

    def piece(token: int) -> str:
        return (
            vocab.detokenize([token], special=True).decode("utf-8", "replace")
            if token != -1
            else ""
        )

    eos, bos = vocab.token_eos(), vocab.token_bos()
    return Jinja2ChatFormatter(
        template=template, eos_token=piece(eos), bos_token=piece(bos), stop_token_ids=[eos]
    )


def _json_or_text(content: bytes) -> Any:
    text = content.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _read_limited(response: httpx.Response) -> bytes:
    """At most :data:`ERROR_BODY_LIMIT` bytes of an error response, then close it."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass  # the status line says enough
    finally:
        await response.aclose()
    return b"".join(chunks)[:ERROR_BODY_LIMIT]


def _transport_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "incomplete chunked read" in text or "peer closed connection" in text:
        return "the server closed the connection"
    return text or type(exc).__name__

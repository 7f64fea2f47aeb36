"""A scripted OpenAI-compatible server for tests: every fault a real server can throw, on demand.

It is a raw asyncio HTTP/1.1 server (no framework) so a test can do what frameworks prevent:
drop the connection mid-chunk, stall before the first byte, send garbage or CR-only line ends.
It listens on 127.0.0.1 only, in a daemon thread of the test process (so the test can see what
it received and when a client hung up) and serves any number of scenarios at once: the first
path segment picks one, ``http://127.0.0.1:PORT/<scenario>[~tag]/v1``. The ``~tag`` gives a
test its own state (e.g. its own 429 counter) and its own request log.

Given an ``ssl.SSLContext`` (``FaultServer(ssl=...)``) it serves the same scenarios over TLS,
``https://127.0.0.1:PORT/...``, for the engine's certificate checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl as ssl_module
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

ANSWER = ["The", " capital", " of", " France", " is", " Paris", "."]
USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
MODEL_ID = "fault-model"


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Exchange:
    """What a scenario works with: the request, the connection, per-scenario state."""

    request: Request
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: dict[str, Any]
    newline: str = "\n"

    # --- plain responses -----------------------------------------------------------------

    async def json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        await self.head(status, {**head, **(headers or {})})
        self.writer.write(body)
        await self.writer.drain()

    async def head(self, status: int, headers: dict[str, str]) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}
        lines = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in {**headers, "Connection": "close"}.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    # --- SSE over chunked transfer encoding ----------------------------------------------

    async def start_sse(self) -> None:
        await self.head(200, {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked"})

    async def raw(self, text: str) -> None:
        data = text.encode()
        self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await self.writer.drain()

    async def data(self, obj: Any) -> None:
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        await self.raw(f"data: {payload}{self.newline}{self.newline}")

    async def end_sse(self, done: bool = True) -> None:
        if done:
            await self.data("[DONE]")
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    def wants_usage(self) -> bool:
        body = self.request.body if isinstance(self.request.body, dict) else {}
        return bool((body.get("stream_options") or {}).get("include_usage"))


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    role: str | None = None,
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` the way OpenAI-compatible servers shape it."""
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def call_piece(
    index: int | None,
    id: str | None = None,
    name: str | None = None,
    arguments: str | None = None,
) -> dict[str, Any]:
    """One item of ``delta.tool_calls``: only the fields given (OpenAI sends ``id``, ``type``
    and ``name`` in a call's first piece, then ``arguments`` pieces alone)."""
    piece: dict[str, Any] = {} if index is None else {"index": index}
    function: dict[str, Any] = {}
    if id is not None:
        piece["id"] = id
        piece["type"] = "function"
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    piece["function"] = function
    return piece


def tool_chunk(pieces: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    """A chunk carrying tool-call pieces (``content`` null, as OpenAI sends it)."""
    out = chunk(finish=finish)
    out["choices"][0]["delta"] = {"content": None, "tool_calls": pieces}
    return out


async def answer(ex: Exchange, words: list[str] = ANSWER, *, usage: bool | None = None) -> None:
    """A well-behaved stream: role chunk, a comment, words, finish, usage if asked, [DONE]."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    await ex.raw(f": keep-alive comment{ex.newline}")
    for word in words:
        await ex.data(chunk(word))
    await ex.data(chunk(finish="stop"))
    if ex.wants_usage() if usage is None else usage:
        await ex.data({**chunk(), "choices": [], "usage": USAGE})
    await ex.end_sse()


# --- scenarios -----------------------------------------------------------------------------


async def s_ok(ex: Exchange) -> None:
    """A well-behaved server; asked for a named tool (``tool_choice`` an object), it calls it
    with arguments made from the tool's schema (the first ``enum`` value of each required
    property), as a server honouring a forced tool choice does."""
    forced = forced_tool(ex)
    if forced is None:
        await answer(ex)
        return
    name, arguments = forced
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=None))
    await ex.data(tool_chunk([call_piece(0, "call_ok0", name, "")]))
    await ex.data(tool_chunk([call_piece(0, arguments=json.dumps(arguments))]))
    await ex.data(chunk(finish="tool_calls"))
    if ex.wants_usage():
        await ex.data({**chunk(), "choices": [], "usage": USAGE})
    await ex.end_sse()


def forced_tool(ex: Exchange) -> tuple[str, dict[str, Any]] | None:
    """The tool a request forces (``tool_choice: {"function": {"name": ...}}``) and arguments
    for it from its schema; None when none is forced."""
    body = ex.request.body if isinstance(ex.request.body, dict) else {}
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return None
    name = choice["function"]["name"]
    (tool,) = [t for t in body["tools"] if t["function"]["name"] == name]
    schema = tool["function"]["parameters"]
    arguments = {
        key: schema["properties"][key].get("enum", ["x"])[0] for key in schema.get("required", [])
    }
    return name, arguments


async def s_nousage(ex: Exchange) -> None:
    """Like llama_cpp.server: ignores include_usage and reports no counts; sends the answer in
    two chunks of several tokens each, so counting chunks would be wrong."""
    await answer(ex, ["The capital of", " France is Paris."], usage=False)


async def s_crlf(ex: Exchange) -> None:
    ex.newline = "\r\n"
    await answer(ex)


async def s_cr(ex: Exchange) -> None:
    ex.newline = "\r"
    await answer(ex)


async def s_multiline(ex: Exchange) -> None:
    """Multi-line data, event: and id: fields, a retry-only event: all legal SSE."""
    await ex.start_sse()
    body = json.dumps(chunk("Paris"), indent=1).splitlines()
    await ex.raw("".join(f"data: {line}\n" for line in body) + "\n")
    await ex.raw('event: message\nid: 7\ndata: {"choices": [{"index": 0, "delta": ')
    await ex.raw('{"content": " it is"}, "finish_reason": null}]}\n\n')  # split mid-event
    await ex.raw("retry: 1000\n\n")
    await ex.data(chunk(".", finish="stop"))
    await ex.end_sse()


async def s_auth(ex: Exchange) -> None:
    """401 whose message echoes the credential, as careless servers do."""
    sent = ex.request.headers.get("authorization", "").removeprefix("Bearer ")
    await ex.json(
        401,
        {"error": {"message": f"Incorrect API key provided: {sent}", "type": "invalid_key"}},
    )


async def s_ratelimit(ex: Exchange) -> None:
    """429 with Retry-After on the first request, then an answer."""
    ex.state["n"] = ex.state.get("n", 0) + 1
    if ex.state["n"] == 1:
        await ex.json(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "1"})
    else:
        await answer(ex)


async def s_busy(ex: Exchange) -> None:
    """503 every time (retries run out)."""
    await ex.json(503, {"error": {"message": "server overloaded"}}, {"Retry-After": "0"})


async def s_busylong(ex: Exchange) -> None:
    """429 asking for a wait longer than tedchat is willing to give."""
    await ex.json(429, {"error": {"message": "quota exceeded"}}, {"Retry-After": "3600"})


async def s_error500(ex: Exchange) -> None:
    await ex.json(500, {"error": {"message": "model crashed: out of memory", "type": "server"}})


async def s_stall(ex: Exchange) -> None:
    """Never answers: waits (at most 30 s) until the client gives up."""
    await _wait_for_hangup(ex, 30.0)


async def s_stallmid(ex: Exchange) -> None:
    """The first word, then nothing, the connection held open (at most 30 s)."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    await ex.data(chunk(ANSWER[0]))
    await _wait_for_hangup(ex, 30.0)


async def s_stallbody(ex: Exchange) -> None:
    """Sends the headers, then nothing."""
    await ex.start_sse()
    await _wait_for_hangup(ex, 30.0)


async def s_drop(ex: Exchange) -> None:
    """Three words, then the connection is cut (no terminating chunk, no [DONE])."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    for word in ANSWER[:3]:
        await ex.data(chunk(word))
    await asyncio.sleep(0.05)
    ex.writer.transport.abort()


async def s_nofinish(ex: Exchange) -> None:
    """Words, then a clean end of the body without finish_reason or [DONE]."""
    await ex.start_sse()
    for word in ANSWER[:3]:
        await ex.data(chunk(word))
    await ex.end_sse(done=False)


async def s_empty(ex: Exchange) -> None:
    """200 and an empty stream: what llama_cpp.server does when generation fails."""
    await ex.start_sse()
    await ex.end_sse(done=False)


async def s_garbage(ex: Exchange) -> None:
    await ex.start_sse()
    for word in ANSWER[:2]:
        await ex.data(chunk(word))
    await ex.raw("data: <html><body>502 Bad Gateway from the proxy in front</body></html>\n\n")
    await ex.end_sse()


async def s_midstream_error(ex: Exchange) -> None:
    await ex.start_sse()
    for word in ANSWER[:2]:
        await ex.data(chunk(word))
    await ex.data({"error": {"message": "upstream model overloaded", "code": 503}})
    await ex.end_sse()


async def s_reasoning(ex: Exchange) -> None:
    """reasoning_content first (quickly), then after a pause the answer."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    for word in ["The user", " asks about", " France."]:
        await ex.data(chunk(reasoning=word))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.4)
    for word in ["Paris", " is", " the", " capital", "."]:
        await ex.data(chunk(word))
        await asyncio.sleep(0.01)
    await ex.data(chunk(finish="stop"))
    await ex.end_sse()


async def s_think(ex: Exchange) -> None:
    """<think> blocks in the content, the tags split across chunk boundaries."""
    await ex.start_sse()
    for piece in ["<thi", "nk>The user asks", " about France.</th", "ink>", "\n\n"]:
        await ex.data(chunk(piece))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.4)
    for piece in ["Paris", " is <b>the</b> capital", ".", "<"]:  # a lone '<' at the very end
        await ex.data(chunk(piece))
    await ex.data(chunk(finish="stop"))
    await ex.end_sse()


async def s_llamaserver(ex: Exchange) -> None:
    """llama-server: no usage, but timings in the last chunk."""
    await ex.start_sse()
    for word in ANSWER:
        await ex.data(chunk(word))
    timings = {
        "cache_n": 0,
        "prompt_n": 12,
        "prompt_ms": 30.0,
        "prompt_per_second": 400.0,
        "predicted_n": 7,
        "predicted_ms": 70.0,
        "predicted_per_second": 100.0,
    }
    await ex.data(chunk(finish="stop", timings=timings))
    await ex.end_sse()


async def s_llamaserverdraft(ex: Exchange) -> None:
    """llama-server with a warm prompt cache and speculative decoding: its final chunk's
    ``timings``, field names as llama-server writes them (server_slot_stats::to_json,
    tools/server/server-common.cpp lines 84-104 of the llama.cpp vendored in the
    llama-cpp-python 0.3.36 sdist; draft_n and draft_n_accepted only when it drafted)."""
    await ex.start_sse()
    for word in ANSWER:
        await ex.data(chunk(word))
    timings = {
        "cache_n": 20,
        "prompt_n": 12,
        "prompt_ms": 30.0,
        "prompt_per_token_ms": 2.5,
        "prompt_per_second": 400.0,
        "predicted_n": 7,
        "predicted_ms": 70.0,
        "predicted_per_token_ms": 10.0,
        "predicted_per_second": 100.0,
        "draft_n": 10,
        "draft_n_accepted": 7,
    }
    await ex.data(chunk(finish="stop", timings=timings))
    await ex.end_sse()


async def s_cerebras(ex: Exchange) -> None:
    """Cerebras Cloud: usage and time_info in the final chunk, finish_reason 'length'."""
    await ex.start_sse()
    for word in ANSWER:
        await ex.data(chunk(word))
    time_info = {
        "queue_time": 0.0001,
        "prompt_time": 0.002,
        "completion_time": 0.004,
        "total_time": 0.0065,
        "created": 1700000000,
    }
    await ex.data(chunk(finish="length", usage=USAGE, time_info=time_info))
    await ex.end_sse()


async def s_no_stream_options(ex: Exchange) -> None:
    """A server that rejects the stream_options field with a 400."""
    if isinstance(ex.request.body, dict) and "stream_options" in ex.request.body:
        message = "Unrecognized request argument supplied: stream_options"
        await ex.json(400, {"error": {"message": message, "type": "invalid_request_error"}})
    else:
        await answer(ex)


async def s_json(ex: Exchange) -> None:
    """A server that ignores stream=true and answers with one JSON completion."""
    message = {"role": "assistant", "content": "Paris."}
    await ex.json(
        200,
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
        },
    )


# --- tool calls, as servers really stream them ---------------------------------------------

WEATHER_ARGS = '{"city": "Tokyo", "unit": "celsius"}'
TIME_ARGS = '{"timezone": "Asia/Tokyo"}'


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def s_tools_split(ex: Exchange) -> None:
    """OpenAI's shape: a role chunk, text first, then one call whose arguments come in
    pieces of a few characters; finish_reason tool_calls; usage after."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    await ex.data(chunk("Let me check."))
    await ex.data(tool_chunk([call_piece(0, "call_w1", "get_weather", "")]))
    for piece in pieces_of(WEATHER_ARGS, 5):
        await ex.data(tool_chunk([call_piece(0, arguments=piece)]))
    await ex.data(chunk(finish="tool_calls"))
    if ex.wants_usage():
        await ex.data({**chunk(), "choices": [], "usage": USAGE})
    await ex.end_sse()


async def s_tools_interleaved(ex: Exchange) -> None:
    """Two calls (parallel tool calls) whose pieces alternate, told apart by index."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=None))
    await ex.data(tool_chunk([call_piece(0, "call_a", "get_weather", "")]))
    await ex.data(tool_chunk([call_piece(1, "call_b", "get_time", "")]))
    weather, time_ = pieces_of(WEATHER_ARGS, 7), pieces_of(TIME_ARGS, 4)
    for i in range(max(len(weather), len(time_))):
        if i < len(time_):
            await ex.data(tool_chunk([call_piece(1, arguments=time_[i])]))
        if i < len(weather):
            await ex.data(tool_chunk([call_piece(0, arguments=weather[i])]))
    await ex.data(chunk(finish="tool_calls"))
    await ex.end_sse()


async def s_tools_whole(ex: Exchange) -> None:
    """Each call whole in one chunk (vLLM, Ollama); both calls in one chunk's list too."""
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    await ex.data(
        tool_chunk(
            [
                call_piece(0, "call_w", "get_weather", WEATHER_ARGS),
                call_piece(1, "call_t", "get_time", TIME_ARGS),
            ],
            finish="tool_calls",
        )
    )
    await ex.end_sse()


async def s_time_agent(ex: Exchange) -> None:
    """An agent turn against ``mcp-server-time``: without a tool result in the request it
    asks for ``convert_time`` (12:00 Asia/Tokyo -> Asia/Kolkata, arguments in pieces); with
    one, it waits a second (a test watches the MCP child meanwhile) and answers with the
    result's text."""
    body = ex.request.body if isinstance(ex.request.body, dict) else {}
    results = [m for m in body.get("messages", []) if m.get("role") == "tool"]
    await ex.start_sse()
    await ex.data(chunk(role="assistant", content=""))
    if not results:
        arguments = json.dumps(
            {"source_timezone": "Asia/Tokyo", "time": "12:00", "target_timezone": "Asia/Kolkata"}
        )
        await ex.data(tool_chunk([call_piece(0, "call_time", "convert_time", "")]))
        for i in range(0, len(arguments), 16):
            await ex.data(tool_chunk([call_piece(0, arguments=arguments[i : i + 16])]))
        await ex.data(chunk(finish="tool_calls"))
    else:
        await asyncio.sleep(1.0)
        await ex.data(chunk("In Kolkata it is "))
        await ex.data(chunk(str(results[-1].get("content"))))
        await ex.data(chunk(finish="stop"))
    await ex.end_sse()


async def s_tools_noindex(ex: Exchange) -> None:
    """No ``index`` anywhere (some servers): a new id starts a call, pieces without an id
    continue the last one; and finish_reason "stop" although calls were made."""
    await ex.start_sse()
    await ex.data(tool_chunk([call_piece(None, "call_1", "get_weather", WEATHER_ARGS[:10])]))
    await ex.data(tool_chunk([call_piece(None, arguments=WEATHER_ARGS[10:])]))
    await ex.data(tool_chunk([call_piece(None, "call_2", "get_time", TIME_ARGS)]))
    await ex.data(chunk(finish="stop"))
    await ex.end_sse()


async def s_tools_repeat(ex: Exchange) -> None:
    """llama_cpp.server's shape: id, type and name repeated in every piece, a legacy
    ``function_call`` beside ``tool_calls``, null fields, a last chunk with tool_calls null."""
    await ex.start_sse()
    role = {"role": "assistant", "content": None, "function_call": None, "tool_calls": None}
    first = chunk()
    first["choices"][0]["delta"] = role
    await ex.data(first)
    for piece in pieces_of(WEATHER_ARGS, 6):
        out = tool_chunk([call_piece(0, "call__0_get_weather_cmpl-1", "get_weather", piece)])
        out["choices"][0]["delta"].update(
            role=None, function_call={"name": "get_weather", "arguments": piece}
        )
        await ex.data(out)
    last = chunk(finish="tool_calls")
    last["choices"][0]["delta"] = {**role, "role": None}
    await ex.data(last)
    await ex.end_sse()


async def s_tools_json(ex: Exchange) -> None:
    """A server that ignores stream=true: one JSON completion holding two whole calls
    (no index, as the non-streamed API has none)."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_j1", "type": "function",
             "function": {"name": "get_weather", "arguments": WEATHER_ARGS}},
            {"id": "call_j2", "type": "function",
             "function": {"name": "get_time", "arguments": TIME_ARGS}},
        ],
    }  # fmt: skip
    await ex.json(
        200,
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": USAGE,
        },
    )


async def s_tools_bad(ex: Exchange) -> None:
    """A call piece that is not an object: a broken server or proxy."""
    await ex.start_sse()
    await ex.data(tool_chunk([call_piece(0, "call_x", "get_weather", "")]))
    bad = chunk()
    bad["choices"][0]["delta"] = {"tool_calls": ["get_weather(city=Tokyo)"]}
    await ex.data(bad)
    await ex.data(chunk(finish="tool_calls"))
    await ex.end_sse()


async def s_slow(ex: Exchange) -> None:
    """One word every 50 ms for up to 10 s; records when the client hung up."""
    await ex.start_sse()
    hangup = asyncio.ensure_future(ex.reader.read())
    try:
        for i in range(200):
            if hangup.done():
                break
            await ex.data(chunk(f" w{i}"))
            await asyncio.wait({hangup}, timeout=0.05)
        if not hangup.done():
            await ex.data(chunk(finish="stop"))
            await ex.end_sse()
    except ConnectionError:
        pass
    finally:
        hangup.cancel()


async def _wait_for_hangup(ex: Exchange, limit: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        await asyncio.wait_for(ex.reader.read(), limit)


SCENARIOS: dict[str, Callable[[Exchange], Awaitable[None]]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("s_") and callable(fn)
}


@dataclass
class FaultServer:
    """The server, its thread and its log. Use as a context manager (stops on exit)."""

    port: int = 0
    ssl: ssl_module.SSLContext | None = None  # serve over TLS with this server context
    requests: dict[str, list[Request]] = field(default_factory=dict)
    hangups: dict[str, float] = field(default_factory=dict)  # scenario key -> monotonic time
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None

    def url(self, scenario: str, tag: str = "") -> str:
        """The base_url (ending in /v1) that plays ``scenario``."""
        assert scenario in SCENARIOS, scenario
        key = f"{scenario}~{tag}" if tag else scenario
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{key}/v1"

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = ""
        try:
            request = await _read_request(reader)
            if request is None:
                return
            key = request.path.strip("/").split("/", 1)[0]
            self.requests.setdefault(key, []).append(request)
            ex = Exchange(request, reader, writer, self.states.setdefault(key, {}))
            scenario = SCENARIOS.get(key.split("~", 1)[0])
            if scenario is None:
                await ex.json(404, {"error": {"message": f"no scenario {key!r}"}})
            elif request.path.partition("?")[0].endswith("/models"):
                if scenario in (s_auth, s_stall):
                    await scenario(ex)
                else:
                    await ex.json(200, {"object": "list", "data": [{"id": MODEL_ID}]})
            else:
                await scenario(ex)
        except ConnectionError:
            pass
        finally:
            self.hangups[key] = time.monotonic()
            if not writer.transport.is_closing():
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    return Request(method, path, headers, body)

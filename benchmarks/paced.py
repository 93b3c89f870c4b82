"""Hundreds of paced streams at once: client CPU per chunk and peak memory, against aiohttp.

A fast asyncio server in its own process (on uvloop when it is installed, so that it leaves
the client as much of a small machine as it can, and at a raised priority when it may, so
that it keeps its pace on a busy one) answers every request with a reply whose chunks it
sends one at a time, each stream paced by a timer of its own, as a model sends tokens: the
reply to ``paced N GAP`` is the response head, then N chunks GAP microseconds apart on a
fixed schedule, then the end of the reply GAP later. The text is the same on both wires,
token-sized pieces with multi-byte UTF-8 and JSON escapes among them (those of
``events.py``):

- **plain** (``POST /api/chat``): a chunked body with no content type, one HTTP chunk of text
  per write, cut at byte offsets (inside characters, often);
- **openai** (``POST /v1/chat/completions``): a ``text/event-stream`` of
  ``chat.completion.chunk`` events, one event per token per write, after a role event; the
  finish-reason event, the usage event and ``data: [DONE]`` go in the last write.

Each client opens S concurrent streams (500 by default) the way a user of that client would
(aura_anyio: ``client.stream()`` in a task per stream, ``max_connections`` at S), and checks
each reply's exact text (and on the OpenAI wire its finish reason and completion-token
count). Every measurement runs in a fresh process of its own: it first warms S connections
with a short paced round, then measures the S paced streams. The figure is that process's CPU
time over the streams divided by the S * N chunks, the median of interleaved rounds, as a
ratio to aiohttp measured in the same run. A fresh process per measurement also gives each
client's peak RSS on its own (``ru_maxrss`` counts the whole life of a process: in a shared
process the first client's peak would hide every later one's), and keeps one client's
imports, heap and garbage away from another's CPU figure.

A client that falls behind reads several of the server's writes at once, and its cost per
chunk falls: the table says how far each run kept the pace, with the writes per read (the
child process counts its sockets' reads; not on uvloop, which reads in C), the client's CPU
load and how late the server wrote.

Replies of 500 server-sent events one at a time are ``events.py``'s (``nox -s bench --
events``).

    nox -s bench -- paced --rounds 3
"""

from __future__ import annotations

import argparse
import codecs
import functools
import http.client
import itertools
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio

from events import MODEL, expected, reply_events

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aura_anyio import AuraClient

    # run_all(count, chunks, gap_us) streams ``count`` replies at once and checks each of them
    RunAll = Callable[[int, int, int], Awaitable[None]]
    # one(chunks, gap_us) streams one reply: (text, finish reason, completion tokens)
    Reply = tuple[str, str | None, int | None]
    One = Callable[[int, int], Awaitable[Reply]]
    # a session opens a client, then runs ``job(run_all)``
    Job = Callable[[RunAll], Awaitable[None]]
    # a connection made by hand: receive(), send(data), close()
    Connection = tuple[
        Callable[[], Awaitable[bytes]],
        Callable[[bytes], Awaitable[object]],
        Callable[[], Awaitable[None]],
    ]

PLAIN_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"
WARM_SECONDS = 0.5  # how long the warm-up replies last, so that all S connections open


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def plain_writes(chunks: int) -> list[bytes]:
    """Each write of a plain reply of ``chunks`` chunks: the head, the chunks, the end."""
    raw = expected(chunks).encode()
    cuts = [len(raw) * n // chunks for n in range(chunks + 1)]  # never empty: a token >= 1 byte
    return [PLAIN_HEAD, *(_frame(raw[a:b]) for a, b in itertools.pairwise(cuts)), END]


def openai_writes(chunks: int) -> list[bytes]:
    """Each write of an OpenAI reply: head and role event, one event per token, the rest."""
    role, *tokens, stop, usage, done = reply_events(chunks)
    closing = _frame(stop) + _frame(usage) + _frame(done) + END
    return [SSE_HEAD + _frame(role), *map(_frame, tokens), closing]


SERVER = r"""
import asyncio, json, os, sys
sys.path.insert(0, sys.argv[1])
from paced import openai_writes, plain_writes, raise_file_limit

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
REPLIES = {
    b"/api/chat": plain_writes,
    b"/v1/chat/completions": openai_writes,
    b"/chat/completions": openai_writes,
}
cache = {}
late = []  # how late each paced write went out, in seconds, since the last GET /stats

def stats():
    # The pace the server kept since the last call: for the benchmark's table, then reset.
    late.sort()
    n = len(late)
    body = json.dumps(
        {"writes": n, **{f"late_{q}": late[(n - 1) * q // 100] if n else 0.0 for q in (50, 99)}}
    ).encode()
    late.clear()
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

class Paced(asyncio.Protocol):
    # One request at a time per connection; a stream's writes follow its own timer.
    def connection_made(self, transport):
        self.transport, self.buffer, self.writes, self.timer = transport, bytearray(), None, None

    def data_received(self, data):
        self.buffer += data
        self.next_request()

    def next_request(self):
        while self.writes is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            target = lines[0].split(b" ")[1]
            if target == b"/stats":
                self.transport.write(stats())
                continue
            if target not in REPLIES:
                self.transport.write(NOT_FOUND)
                continue
            # Only the last message is read: any other field of the request is ignored.
            words = json.loads(body)["messages"][-1]["content"].split()
            chunks, gap = int(words[1]), int(words[2])
            if (target, chunks) not in cache:
                cache[target, chunks] = REPLIES[target](chunks)
            self.writes, self.sent, self.gap = cache[target, chunks], 0, gap / 1e6
            self.due = loop.time()
            self.transport.write(self.writes[0])  # the head, at once
            self.send()

    def send(self):
        self.sent += 1
        if self.sent < len(self.writes):
            # On a fixed schedule, so that a late write does not delay the rest of the reply.
            self.due += self.gap
            self.timer = loop.call_at(self.due, self.write)
        else:
            self.writes = self.timer = None
            self.next_request()  # a pipelined request

    def write(self):
        late.append(loop.time() - self.due)
        self.transport.write(self.writes[self.sent])
        self.send()

    def connection_lost(self, exc):
        if self.timer is not None:
            self.timer.cancel()

async def main():
    global loop
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Paced, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

raise_file_limit()
# The server stands for the world outside: on a busy machine it should keep its pace, and the
# client be the one that waits for a core. Without the right to raise its priority, the
# table's "server late" column says how well it kept the pace.
try:
    os.nice(-10)
except OSError:
    pass
try:
    import uvloop
except ImportError:
    asyncio.run(main())
else:
    uvloop.run(main())
"""


def raise_file_limit() -> None:
    """Allow a few thousand sockets: 500 streams are 500 connections on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def prompt(chunks: int, gap_us: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"paced {chunks} {gap_us}"}]


def check(wire: str, chunks: int, reply: Reply) -> None:
    text, finish_reason, tokens = reply
    if text != expected(chunks):
        raise AssertionError(f"wrong reply: {text[:60]!r}")
    if wire == "openai" and (finish_reason, tokens) != ("stop", chunks):
        raise AssertionError(f"wrong end of reply: {finish_reason!r}, {tokens!r} tokens")


def each_at_once(wire: str, one: One) -> RunAll:
    """``run_all`` for a client whose ``one()`` streams a reply: one task per stream."""

    async def run_all(count: int, chunks: int, gap_us: int) -> None:
        async def stream() -> None:
            check(wire, chunks, await one(chunks, gap_us))

        async with anyio.create_task_group() as tasks:
            for _ in range(count):
                tasks.start_soon(stream)

    return run_all


def _aura_client(port: int, wire: str, streams: int) -> AuraClient:
    from aura_anyio import AuraClient

    name = "aura" if wire == "plain" else "openai"
    return AuraClient(f"http://127.0.0.1:{port}", wire=name, max_connections=streams)


async def _aura(port: int, wire: str, streams: int, job: Job) -> None:
    # /api/chat serves the models of aura_anyio.MODELS; an OpenAI server takes any name.
    model = {} if wire == "plain" else {"model": MODEL}
    async with _aura_client(port, wire, streams) as client:

        async def one(chunks: int, gap_us: int) -> Reply:
            async with client.stream(prompt(chunks, gap_us), **model) as reply:
                parts = [text async for text in reply]
            tokens = (reply.usage or {}).get("completion_tokens")
            return "".join(parts), reply.finish_reason, tokens

        await job(each_at_once(wire, one))


async def _aura_json(port: int, wire: str, streams: int, job: Job) -> None:
    """aura_anyio reading each event's JSON with the standard library's json, not msgspec."""
    from aura_anyio._wire import fastjson

    fastjson._chosen = json.loads
    await _aura(port, wire, streams, job)


async def _aura_fan_out(port: int, wire: str, streams: int, job: Job) -> None:
    """aura_anyio's fan_out(), for a batch that wants whole replies rather than each token."""
    from aura_anyio import ChatRequest

    model = {} if wire == "plain" else {"model": MODEL}
    async with _aura_client(port, wire, streams) as client:

        async def run_all(count: int, chunks: int, gap_us: int) -> None:
            requests = (ChatRequest(prompt(chunks, gap_us), **model) for _ in range(count))
            async with client.fan_out(requests, max_concurrency=count) as results:
                async for result in results:
                    tokens = (result.usage or {}).get("completion_tokens")
                    check(wire, chunks, (result.text, result.finish_reason, tokens))

        await job(run_all)


def _events(sse: bytearray, parts: list[str], end: list[object]) -> None:
    """Split whole events off ``sse`` and read them: the text into ``parts``, the end into ``end``.

    An event ends at a blank line; ``\\n`` never occurs inside a UTF-8 character.
    """
    while (cut := sse.find(b"\n\n")) >= 0:
        data = sse[6:cut]  # after "data: "
        del sse[: cut + 2]
        if data == b"[DONE]":
            continue
        chunk = json.loads(data)
        if chunk["choices"]:
            choice = chunk["choices"][0]
            if content := choice["delta"].get("content"):
                parts.append(content)
            end[0] = choice["finish_reason"] or end[0]
        if chunk["usage"]:
            end[1] = chunk["usage"]["completion_tokens"]


def _body(wire: str, chunks: int, gap_us: int) -> bytes:
    if wire == "plain":
        return json.dumps({"messages": prompt(chunks, gap_us)}).encode()
    return json.dumps(
        {
            "model": MODEL,
            "messages": prompt(chunks, gap_us),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()


async def _aiohttp(port: int, wire: str, streams: int, job: Job) -> None:
    import aiohttp

    path = "/api/chat" if wire == "plain" else "/v1/chat/completions"
    url = f"http://127.0.0.1:{port}{path}"
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one(chunks: int, gap_us: int) -> Reply:
            parts: list[str] = []
            async with session.post(url, data=_body(wire, chunks, gap_us)) as response:
                if wire == "plain":
                    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                    async for data in response.content.iter_any():
                        parts.append(decoder.decode(data))
                    return "".join(parts) + decoder.decode(b"", final=True), None, None
                sse, end = bytearray(), [None, None]
                async for data in response.content.iter_any():
                    sse += data
                    _events(sse, parts, end)
                return "".join(parts), end[0], end[1]

        await job(each_at_once(wire, one))


async def _openai(port: int, wire: str, streams: int, job: Job) -> None:
    import openai

    try:  # the HTTP library openai-python is built on: httpx2 in recent releases
        import httpx2 as httpx
    except ImportError:
        import httpx

    # openai-python keeps 100 idle connections by default: keep all S, as the others do.
    http = openai.DefaultAsyncHttpxClient(
        limits=httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    )
    base = f"http://127.0.0.1:{port}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key="none", http_client=http) as client:

        async def one(chunks: int, gap_us: int) -> Reply:
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=prompt(chunks, gap_us),
                stream=True,
                stream_options={"include_usage": True},
            )
            parts = []
            finish_reason = tokens = None
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    if choice.delta.content:
                        parts.append(choice.delta.content)
                    finish_reason = choice.finish_reason or finish_reason
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            return "".join(parts), finish_reason, tokens

        await job(each_at_once(wire, one))


async def _anyio_connection(port: int) -> Connection:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    return stream.receive, stream.send, stream.aclose


async def _trio_connection(port: int) -> Connection:
    """Trio's own socket, no AnyIO: the least a Trio client can do per read."""
    import trio

    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))

    async def send(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await sock.send(view) :]

    async def close() -> None:
        sock.close()

    return functools.partial(sock.recv, 65536), send, close


async def _by_hand(port: int, wire: str, streams: int, job: Job) -> None:
    """Keep-alive connections on AnyIO streams, with the least work that reads the replies."""
    await _by_hand_on(_anyio_connection, port, wire, job)


async def _by_hand_trio(port: int, wire: str, streams: int, job: Job) -> None:
    """The same on Trio's own sockets: Trio's floor, below AnyIO."""
    await _by_hand_on(_trio_connection, port, wire, job)


async def _by_hand_on(
    connect: Callable[[int], Awaitable[Connection]], port: int, wire: str, job: Job
) -> None:
    idle: list[tuple[Connection, bytearray]] = []
    path = b"/api/chat" if wire == "plain" else b"/v1/chat/completions"

    async def one(chunks: int, gap_us: int) -> Reply:
        if idle:
            connection, buffer = idle.pop()
        else:
            connection, buffer = await connect(port), bytearray()
        receive, send, _ = connection

        async def more() -> None:
            buffer.extend(await receive())

        body = _body(wire, chunks, gap_us)
        await send(
            b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (path, len(body), body)
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parts: list[str] = []
        sse, end = bytearray(), [None, None]  # the body not yet split into events; its end
        while (cut := buffer.find(b"\r\n\r\n")) < 0:
            await more()
        del buffer[: cut + 4]
        while True:
            while (cut := buffer.find(b"\r\n")) < 0:
                await more()
            size = int(buffer[:cut], 16)
            while len(buffer) < cut + 2 + size + 2:
                await more()
            data = buffer[cut + 2 : cut + 2 + size]
            del buffer[: cut + 2 + size + 2]
            if not size:
                break
            if wire == "plain":
                parts.append(decoder.decode(data))
            else:
                sse += data
                _events(sse, parts, end)
        idle.append((connection, buffer))
        if wire == "plain":
            return "".join(parts) + decoder.decode(b"", final=True), None, None
        return "".join(parts), end[0], end[1]

    try:
        await job(each_at_once(wire, one))
    finally:
        for (_, _, close), _ in idle:
            await close()


# name: (label, session, backend, backend options, wires)
UVLOOP = {"use_uvloop": True}
BOTH = ("plain", "openai")
CLIENTS: dict[
    str, tuple[str, Callable[..., Awaitable[None]], str, dict[str, object], tuple[str, ...]]
] = {
    "aura-asyncio": ("aura_anyio stream() (asyncio)", _aura, "asyncio", {}, BOTH),
    "aura-uvloop": ("aura_anyio stream() (uvloop)", _aura, "asyncio", UVLOOP, BOTH),
    "aura-trio": ("aura_anyio stream() (trio)", _aura, "trio", {}, BOTH),
    "aura-asyncio-json": (
        "aura_anyio stream(), json (asyncio)",
        _aura_json,
        "asyncio",
        {},
        ("openai",),
    ),
    "fanout-asyncio": ("aura_anyio fan_out() (asyncio)", _aura_fan_out, "asyncio", {}, BOTH),
    "fanout-uvloop": ("aura_anyio fan_out() (uvloop)", _aura_fan_out, "asyncio", UVLOOP, BOTH),
    "fanout-trio": ("aura_anyio fan_out() (trio)", _aura_fan_out, "trio", {}, BOTH),
    "aiohttp": ("aiohttp", _aiohttp, "asyncio", {}, BOTH),
    "openai": ("openai-python (asyncio)", _openai, "asyncio", {}, ("openai",)),
    "byhand-asyncio": ("by hand on anyio (asyncio)", _by_hand, "asyncio", {}, BOTH),
    "byhand-trio": ("by hand on anyio (trio)", _by_hand, "trio", {}, BOTH),
    "byhand-rawtrio": ("by hand on Trio's sockets", _by_hand_trio, "trio", {}, BOTH),
}
DEFAULT_CLIENTS = "aura-asyncio,aura-uvloop,aura-trio,aiohttp,openai,byhand-asyncio,byhand-trio"
BASELINE = "aiohttp"


class _CountingSocket(socket.socket):
    """A socket that counts the reads that return data, to tell how often chunks coalesced.

    uvloop reads in C, past any Python socket, so its reads go uncounted.
    """

    reads = 0

    def recv(self, *args: Any) -> bytes:
        data = super().recv(*args)
        _CountingSocket.reads += 1
        return data

    def recv_into(self, *args: Any) -> int:
        size = super().recv_into(*args)
        _CountingSocket.reads += 1
        return size


def child(name: str, wire: str, port: int, streams: int, chunks: int, gap_us: int) -> None:
    """Measure one client in this (fresh) process; print its figures as one JSON line."""
    raise_file_limit()
    socket.socket = _CountingSocket  # type: ignore[misc]  # every socket made from here on
    _, session, backend, options, _ = CLIENTS[name]
    figures: dict[str, float] = {}

    async def job(run_all: RunAll) -> None:
        figures["idle_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await run_all(streams, max(2, round(WARM_SECONDS * 1e6 / max(gap_us, 1))), gap_us)
        _CountingSocket.reads = 0
        started, cpu = time.perf_counter(), time.process_time()
        await run_all(streams, chunks, gap_us)
        figures["cpu"] = time.process_time() - cpu
        figures["wall"] = time.perf_counter() - started
        figures["reads"] = _CountingSocket.reads

    anyio.run(session, port, wire, streams, job, backend=backend, backend_options=options)
    figures["peak_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(figures))


def server_stats(port: int) -> dict[str, float]:
    """How late the server's paced writes were since the last call (and reset the count)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/stats")
        return json.loads(connection.getresponse().read())  # type: ignore[no-any-return]
    finally:
        connection.close()


def measure(name: str, wire: str, port: int, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", name, "--wire", wire, "--port", str(port)]
    command += ["--streams", str(args.streams), "--chunks", str(args.chunks)]
    command += ["--gap-ms", str(args.gap_ms)]
    server_stats(port)  # reset
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{name} on the {wire} wire failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    figures.update(server_stats(port))  # warm-up included: it is short
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams")
    parser.add_argument("--chunks", type=int, default=200, help="chunks (tokens) per stream")
    parser.add_argument("--gap-ms", type=float, default=20.0, help="between a stream's chunks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--openai-rounds",
        type=int,
        default=1,
        help="rounds that measure openai-python (it cannot keep pace: a round takes it 40 s)",
    )
    parser.add_argument("--wires", default="plain,openai", help="plain, openai or both")
    parser.add_argument(
        "--clients",
        default=DEFAULT_CLIENTS,
        help=f"comma-separated, of: {', '.join(CLIENTS)} (aiohttp is always measured)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--wire", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gap_us = round(args.gap_ms * 1000)
    if args.child:
        child(args.child, args.wire, args.port, args.streams, args.chunks, gap_us)
        return
    wires = [wire for wire in ("plain", "openai") if wire in args.wires.split(",")]
    names = args.clients.split(",")
    if not wires or not set(names) <= set(CLIENTS):
        parser.error("--wires must name plain, openai or both; --clients known clients")
    names = [BASELINE, *(name for name in names if name != BASELINE)]

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, sys.path[0]], stdout=subprocess.PIPE, text=True
    )
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    started = time.monotonic()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for round_ in range(args.rounds):
            for wire in wires:
                for name in names:
                    if name == "openai" and round_ >= args.openai_rounds:
                        continue
                    if wire in CLIENTS[name][4]:
                        figures.setdefault((wire, name), []).append(measure(name, wire, port, args))
    finally:
        server.terminate()
        server.wait()

    def median(wire: str, name: str, key: str) -> float:
        return statistics.median(run[key] for run in figures[wire, name])

    total = args.streams * args.chunks
    writes = args.streams * (args.chunks + 2)  # the head, the chunks, the end
    pace = (args.chunks + 1) * args.gap_ms / 1000
    print(
        f"## {args.streams} paced streams at once ({args.chunks} chunks each, {args.gap_ms:g} ms "
        f"apart; median of {args.rounds} interleaved rounds, {time.monotonic() - started:.0f} s)"
        f"\n\nClient CPU per chunk over the {args.streams} streams on warm connections, and the "
        f"client process's peak RSS, each as a ratio to {BASELINE}. A stream lasts {pace:.2f} s "
        "at the server's pace. Writes per read is 1 when the client reads each of the server's "
        "writes as it comes, more when they wait for it and coalesce (uncounted on uvloop, "
        "which reads in C); CPU load is "
        "the client's CPU time over its wall time; server late is how far behind its "
        "schedule the server wrote (p50 / p99): both say whether the pace was the one asked for."
    )
    for wire in wires:
        print(f"\n### {wire} wire\n")
        print(
            "| client | CPU per chunk (µs) | ratio | writes per read | peak RSS (MiB) | ratio "
            "| RSS growth (MiB) | wall (s) | CPU load | server late (ms) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            if (wire, name) not in figures:
                continue
            runs = figures[wire, name]
            cpu, wall = median(wire, name, "cpu"), median(wire, name, "wall")
            peak = median(wire, name, "peak_kib")
            growth = statistics.median(run["peak_kib"] - run["idle_kib"] for run in runs)
            reads = median(wire, name, "reads")
            per_read = f"{writes / reads:.2f}" if reads else "n/a"
            late = " / ".join(
                f"{max(0.0, median(wire, name, f'late_{q}')) * 1e3:.0f}" for q in (50, 99)
            )
            label = CLIENTS[name][0]
            if len(runs) != args.rounds:
                label += f" ({len(runs)} of {args.rounds} rounds)"
            print(
                f"| {label} | {cpu / total * 1e6:.1f} | {cpu / median(wire, BASELINE, 'cpu'):.2f} "
                f"| {per_read} | {peak / 1024:.1f} "
                f"| {peak / median(wire, BASELINE, 'peak_kib'):.2f} | {growth / 1024:.1f} "
                f"| {wall:.2f} | {cpu / wall:.0%} | {late} |"
            )
        behind = [
            CLIENTS[name][0]
            for name in names
            if (wire, name) in figures and writes > 1.5 * median(wire, name, "reads") > 0
        ]
        if behind:
            print(
                f"\nMore than 1.5 writes per read: {', '.join(behind)}. Each of their reads "
                "carried several chunks, which then shared its cost: their CPU per chunk is "
                "what this load costs them, not what a chunk read on its own would cost "
                "(fewer --streams measure that)."
            )
        saturated = [
            CLIENTS[name][0]
            for name in names
            if (wire, name) in figures
            and median(wire, name, "cpu") >= 0.9 * median(wire, name, "wall")
        ]
        if saturated:
            print(
                f"\nA CPU load of 90 % or more: {', '.join(saturated)}. They used all the "
                "CPU they were given and read as many chunks at a time as it took to keep up, "
                "so their CPU per chunk is about their wall time over the chunks, whatever "
                "the client: compare their writes per read instead, or use fewer --streams."
            )


if __name__ == "__main__":
    main()

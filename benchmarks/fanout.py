"""Fan-out benchmark: N prompts at concurrency C through aura_anyio and its peers, in one run.

A fast local server runs in its own process and answers every request with the same reply in
50 HTTP chunks (multi-byte text cut at byte offsets); ``/v1/chat/completions`` sends it as
server-sent events, for openai-python, for a vLLM-style aiohttp client (the OpenAI wire's
baseline) and for aura_anyio's OpenAI wire. Every client checks
the exact text of every reply. Each measurement is a fresh process that warms up, then fans
out; the figure is its CPU time per request, the median of interleaved rounds, and each is
reported as a ratio against aiohttp measured in the same run.

    nox -s bench -- fanout --requests 2000 --concurrency 100 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio

from run import fan  # the same worker pool as the other benchmark

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TEXT = ("naïve café, 日本語のテキスト, emoji 😀👋 and plain words to fill the line. " * 6).strip()
PROMPT = [{"role": "user", "content": "benchmark"}]
CHUNKS = 50


def _reply_bodies() -> tuple[bytes, bytes]:
    """The /api/chat body and the SSE body, each framed as 50 HTTP chunks."""
    raw = TEXT.encode()
    cuts = [len(raw) * n // CHUNKS for n in range(CHUNKS + 1)]  # most cut inside a character
    pieces = [raw[a:b] for a, b in itertools.pairwise(cuts)]
    plain = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    words = TEXT.split(" ")
    step = max(1, len(words) // CHUNKS)
    deltas = [" ".join(words[i : i + step]) + " " for i in range(0, len(words), step)]
    deltas[-1] = deltas[-1][:-1]
    events = []
    for delta in deltas:
        event = {
            "id": "b",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}],
        }
        events.append(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
    # A reply that ends without a finish_reason is a cut one (a [DONE] alone passes for
    # whole only on servers that interrupt requests, such as llama.cpp's): say it ended.
    last = {**event, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    events.append(b"data: " + json.dumps(last).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    sse = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    return plain, sse


SERVER = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from fanout import _reply_bodies
plain, sse = _reply_bodies()
PLAIN = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + plain
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
SSE = SSE_HEAD + b"transfer-encoding: chunked\r\n\r\n" + sse

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            writer.write(SSE if b" /v1/" in head[:40] else PLAIN)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def _check(text: str) -> None:
    if text != TEXT:
        raise AssertionError(f"wrong reply: {text[:80]!r}")


async def aura(port: int, requests: int, concurrency: int, wire: str = "aura") -> None:
    from aura_anyio import AuraClient

    base = f"http://127.0.0.1:{port}"
    connections = max(100, concurrency)
    async with AuraClient(base, max_connections=connections, wire=wire) as client:
        prompts = (PROMPT for _ in range(requests))
        async with client.fan_out(prompts, max_concurrency=concurrency) as results:
            async for result in results:
                if result.error is not None:  # a retried or failed request is no measure
                    raise AssertionError(f"request failed: {result.error!r}")
                _check(result.text)


async def aura_openai(port: int, requests: int, concurrency: int) -> None:
    """aura_anyio on the OpenAI wire, against the same SSE endpoint as openai-python."""
    await aura(port, requests, concurrency, wire="openai")


async def raw_httpx(port: int, requests: int, concurrency: int, module: str = "httpx") -> None:
    import codecs
    import importlib

    httpx = importlib.import_module(module)
    body = json.dumps({"messages": PROMPT}).encode()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:

        async def one() -> None:
            decoder = codecs.getincrementaldecoder("utf-8")()
            parts = []
            async with http.stream("POST", "/api/chat", content=body) as response:
                async for chunk in response.aiter_raw():
                    parts.append(decoder.decode(chunk))
            _check("".join(parts) + decoder.decode(b"", final=True))

        await fan(requests, concurrency, one)


async def httpx2(port: int, requests: int, concurrency: int) -> None:
    await raw_httpx(port, requests, concurrency, module="httpx2")


async def aiohttp_client(port: int, requests: int, concurrency: int) -> None:
    import codecs

    import aiohttp

    body = json.dumps({"messages": PROMPT}).encode()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            decoder = codecs.getincrementaldecoder("utf-8")()
            parts = []
            async with session.post(f"http://127.0.0.1:{port}/api/chat", data=body) as response:
                async for chunk in response.content.iter_any():
                    parts.append(decoder.decode(chunk))
            _check("".join(parts) + decoder.decode(b"", final=True))

        await fan(requests, concurrency, one)


async def aiohttp_sse(port: int, requests: int, concurrency: int) -> None:
    """A vLLM-style client of the OpenAI wire (``bench serve``'s): aiohttp, the body split
    into server-sent events as it comes, ``json.loads`` per event."""
    import aiohttp

    body = json.dumps({"model": "m", "messages": PROMPT, "stream": True}).encode()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one() -> None:
            parts = []
            buffer = b""
            async with session.post(url, data=body) as response:
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *events, buffer = buffer.split(b"\n\n")
                    for event in events:
                        data = event.removeprefix(b"data: ")
                        if data == b"[DONE]":
                            continue
                        choices = json.loads(data)["choices"]
                        if choices and (content := choices[0]["delta"].get("content")):
                            parts.append(content)
            _check("".join(parts))

        await fan(requests, concurrency, one)


async def openai_client(port: int, requests: int, concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
    async with client:

        async def one() -> None:
            stream = await client.chat.completions.create(
                model="m",
                messages=PROMPT,
                stream=True,  # type: ignore[arg-type]
            )
            parts = [c.choices[0].delta.content or "" async for c in stream]
            _check("".join(parts))

        await fan(requests, concurrency, one)


async def by_hand(port: int, requests: int, concurrency: int) -> None:
    """A hand-written keep-alive client on AnyIO streams: one connection per worker."""
    import codecs

    body = json.dumps({"messages": PROMPT}).encode()
    request = (
        b"POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            buffer = b""
            while remaining > 0:
                remaining -= 1
                await stream.send(request)
                decoder = codecs.getincrementaldecoder("utf-8")()
                parts = []
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                buffer = buffer.split(b"\r\n\r\n", 1)[1]
                while True:
                    while b"\r\n" not in buffer:
                        buffer += await stream.receive()
                    size_line, buffer = buffer.split(b"\r\n", 1)
                    size = int(size_line, 16)
                    while len(buffer) < size + 2:
                        buffer += await stream.receive()
                    if size == 0:
                        buffer = buffer[2:]
                        break
                    parts.append(decoder.decode(buffer[:size]))
                    buffer = buffer[size + 2 :]
                _check("".join(parts) + decoder.decode(b"", final=True))

    async with anyio.create_task_group() as tasks:
        for _ in range(concurrency):
            tasks.start_soon(worker)


# (label, runner, backend, backend options)
CLIENTS = [
    ("aura_anyio (asyncio)", aura, "asyncio", {}),
    ("aura_anyio (uvloop)", aura, "asyncio", {"use_uvloop": True}),
    ("aura_anyio (trio)", aura, "trio", {}),
    ("raw httpx", raw_httpx, "asyncio", {}),
    ("httpx2", httpx2, "asyncio", {}),
    ("aiohttp", aiohttp_client, "asyncio", {}),
    ("aiohttp, SSE + json.loads (vLLM-style)", aiohttp_sse, "asyncio", {}),
    ("openai-python (SSE)", openai_client, "asyncio", {}),
    ("aura_anyio, OpenAI wire (asyncio)", aura_openai, "asyncio", {}),
    ("aura_anyio, OpenAI wire (trio)", aura_openai, "trio", {}),
    ("by hand on anyio (asyncio)", by_hand, "asyncio", {}),
    ("by hand on anyio (trio)", by_hand, "trio", {}),
]


def cpu_per_request(
    runner: Callable[[int, int, int], Awaitable[None]],
    backend: str,
    options: dict[str, object],
    port: int,
    requests: int,
    concurrency: int,
) -> float:
    started = time.process_time()
    anyio.run(runner, port, requests, concurrency, backend=backend, backend_options=options)
    return (time.process_time() - started) / requests


# A fresh process per measurement: a warm-up fan-out of C (imports, connections), then the
# measured one. In one process, each client would run on the heap and the garbage that the
# clients before it left (openai-python's and httpx's among them).
CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import fanout
port, requests, concurrency = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
runner, backend, options = getattr(fanout, sys.argv[2]), sys.argv[6], json.loads(sys.argv[7])
fanout.cpu_per_request(runner, backend, options, port, concurrency, concurrency)
print(fanout.cpu_per_request(runner, backend, options, port, requests, concurrency))
"""


def measure(
    runner: str,
    backend: str,
    options: dict[str, object],
    port: int,
    requests: int,
    concurrency: int,
    src: str | None = None,
) -> float:
    """CPU seconds per request of the fan-out of ``runner`` (a function of this module, by
    name) in a fresh process, importing aura_anyio from ``src`` if given."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.path.abspath(src)
    command = [sys.executable, "-c", CHILD, sys.path[0], runner, str(port), str(requests)]
    command += [str(concurrency), backend, json.dumps(options)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"{runner} on {backend} from {src} failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def peak_memory_kib(port: int, requests: int, concurrency: int) -> int:
    """Peak RSS of a fresh process that fans out ``requests`` prompts through aura_anyio."""
    code = (
        "import sys, resource, anyio; sys.path.insert(0, sys.argv[1]); import fanout; "
        "anyio.run(fanout.aura, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sys.path[0], str(port), str(requests), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def profile(label: str, port: int, requests: int, concurrency: int) -> None:
    """Run one client, warmed up, under cProfile; print the functions that cost it most."""
    import cProfile
    import pstats

    [(runner, backend, options)] = [(r, b, o) for name, r, b, o in CLIENTS if name == label]
    cpu_per_request(runner, backend, options, port, concurrency, concurrency)
    profiler = cProfile.Profile()
    profiler.enable()
    cpu_per_request(runner, backend, options, port, requests, concurrency)
    profiler.disable()
    print(f"## {label}: cProfile of a fan-out of {requests} at concurrency {concurrency}\n")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile",
        metavar="LABEL",
        help="instead: run the client with this label once under cProfile, print its top entries",
    )
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, sys.path[0]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if args.profile:
            profile(args.profile, port, args.requests, args.concurrency)
            return
        costs: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for label, runner, backend, options in CLIENTS:
                cost = measure(
                    runner.__name__, backend, options, port, args.requests, args.concurrency
                )
                costs.setdefault(label, []).append(cost)
        small = peak_memory_kib(port, args.requests, args.concurrency)
        large = peak_memory_kib(port, args.requests * 10, args.concurrency)
    finally:
        server.terminate()
        server.wait()

    baseline = statistics.median(costs["aiohttp"])
    print(
        f"## Fan-out: client CPU per request (N={args.requests}, C={args.concurrency}, "
        f"{CHUNKS} chunks per reply, median of {args.rounds} interleaved rounds)\n"
    )
    print("| client | ms per request | ratio to aiohttp |")
    print("|---|---|---|")
    for label, *_ in CLIENTS:
        cost = statistics.median(costs[label])
        print(f"| {label} | {cost * 1000:.3f} | {cost / baseline:.2f} |")
    print(f"\n## Peak memory of an aura_anyio fan-out (C={args.concurrency}, asyncio)\n")
    print(f"| N={args.requests} (MiB) | N={args.requests * 10} (MiB) | ratio |")
    print("|---|---|---|")
    print(f"| {small / 1024:.1f} | {large / 1024:.1f} | {large / small:.2f} |")


if __name__ == "__main__":
    main()

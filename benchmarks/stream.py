"""One stream at a time: time to first chunk, and client cost per chunk of a long stream.

A fast asyncio server in its own process answers ``/api/chat`` with the reply the prompt asks
for: ``stream N GAP`` is N HTTP chunks of multi-byte text, each written on its own with GAP
microseconds between them (0: all in one write). Every client checks the exact text.

- **Time to first chunk**: wall time from sending a request on a warm connection to holding
  the first text, median over many sequential requests of a 50-chunk reply.
- **Cost per chunk, paced**: client CPU per chunk of one stream whose chunks arrive one by one
  (a token at a time, as a model sends them).
- **Cost per chunk, burst**: client CPU per chunk of one stream sent as fast as the server can.

Each figure is reported as a ratio against aiohttp measured in the same run.

    nox -s bench -- stream --rounds 3
"""

from __future__ import annotations

import argparse
import codecs
import json
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

PIECE = "naïve 日本 😀 "
PIECE_BYTES = PIECE.encode()

SERVER = r"""
import asyncio, re
PIECE = "naïve 日本 😀 ".encode()
# Cut where the piece repeats, so that chunks split characters in every way.
def chunks(n):
    data = PIECE * (n // 3 + 1)
    step = len(data) / n
    cuts = [round(i * step) for i in range(n + 1)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:])]

async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            n, gap = map(int, re.search(rb"stream (\d+) (\d+)", body).groups())
            framed = [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks(n)]
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            if gap == 0:
                writer.write(b"".join(framed))
            else:
                for piece in framed:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(gap / 1e6)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def expected(chunks: int) -> str:
    """The text of a ``stream N GAP`` reply, as the server cuts it."""
    return (PIECE_BYTES * (chunks // 3 + 1)).decode()


def prompt(chunks: int, gap: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"stream {chunks} {gap}"}]


# Each session runs ``job(one)``, where ``one(chunks, gap, first)`` streams one reply, calls
# ``first()`` as each text arrives, and returns the whole text.


async def _aura(port: int, job: Callable[..., Awaitable[None]]) -> None:
    from aura_anyio import AuraClient

    async with AuraClient(f"http://127.0.0.1:{port}") as client:

        async def one(chunks: int, gap: int, first: Callable[[], None]) -> str:
            async with client.stream(prompt(chunks, gap)) as reply:
                async for _ in reply:
                    first()
                return reply.text

        await job(one)


async def _aiohttp(port: int, job: Callable[..., Awaitable[None]]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def one(chunks: int, gap: int, first: Callable[[], None]) -> str:
            body = json.dumps({"messages": prompt(chunks, gap)}).encode()
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            parts = []
            url = f"http://127.0.0.1:{port}/api/chat"
            async with session.post(url, data=body) as response:
                async for data in response.content.iter_any():
                    first()
                    parts.append(decoder.decode(data))
            return "".join(parts) + decoder.decode(b"", final=True)

        await job(one)


async def _by_hand(port: int, job: Callable[..., Awaitable[None]]) -> None:
    """A keep-alive client on AnyIO streams, with the least work that checks the framing."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        buffer = bytearray()

        async def more() -> None:
            buffer.extend(await stream.receive())

        async def one(chunks: int, gap: int, first: Callable[[], None]) -> str:
            body = json.dumps({"messages": prompt(chunks, gap)}).encode()
            await stream.send(
                b"POST /api/chat HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            parts = []
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                await more()
            del buffer[: end + 4]
            while True:
                while (end := buffer.find(b"\r\n")) < 0:
                    await more()
                size = int(buffer[:end], 16)
                while len(buffer) < end + 2 + size + 2:
                    await more()
                data = bytes(buffer[end + 2 : end + 2 + size])
                del buffer[: end + 2 + size + 2]
                if not size:
                    break
                first()
                parts.append(decoder.decode(data))
            return "".join(parts) + decoder.decode(b"", final=True)

        await job(one)


# (label, session, backend, backend options)
CLIENTS = [
    ("aura_anyio (asyncio)", _aura, "asyncio", {}),
    ("aura_anyio (uvloop)", _aura, "asyncio", {"use_uvloop": True}),
    ("aura_anyio (trio)", _aura, "trio", {}),
    ("aiohttp", _aiohttp, "asyncio", {}),
    ("by hand on anyio (asyncio)", _by_hand, "asyncio", {}),
    ("by hand on anyio (trio)", _by_hand, "trio", {}),
]


def _check(text: str, chunks: int) -> None:
    if text != expected(chunks):
        raise AssertionError(f"wrong reply: {text[:60]!r}")


def time_to_first_chunk(
    session: Callable[..., Awaitable[None]],
    backend: str,
    options: dict[str, object],
    port: int,
    requests: int,
) -> float:
    """Median seconds from sending to holding the first text, on a warm connection."""
    waits: list[float] = []

    arrived: list[float] = []

    def first() -> None:
        if not arrived:
            arrived.append(time.perf_counter())

    async def job(one: Callable[..., Awaitable[str]]) -> None:
        _check(await one(50, 0, lambda: None), 50)  # warm the connection
        for _ in range(requests):
            arrived.clear()
            started = time.perf_counter()
            _check(await one(50, 0, first), 50)
            waits.append(arrived[0] - started)

    anyio.run(session, port, job, backend=backend, backend_options=options)
    return statistics.median(waits)


def cpu_per_chunk(
    session: Callable[..., Awaitable[None]],
    backend: str,
    options: dict[str, object],
    port: int,
    chunks: int,
    gap: int,
) -> float:
    """Client CPU seconds per chunk of one stream of ``chunks`` chunks."""
    cost: list[float] = []

    async def job(one: Callable[..., Awaitable[str]]) -> None:
        _check(await one(50, 0, lambda: None), 50)  # warm the connection
        started = time.process_time()
        _check(await one(chunks, gap, lambda: None), chunks)
        cost.append((time.process_time() - started) / chunks)

    anyio.run(session, port, job, backend=backend, backend_options=options)
    return cost[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="for time to first chunk")
    parser.add_argument("--paced", type=int, default=2000, help="chunks of the paced stream")
    parser.add_argument("--gap-us", type=int, default=200, help="between paced chunks")
    parser.add_argument("--burst", type=int, default=100_000, help="chunks of the burst stream")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    figures: dict[tuple[str, str], list[float]] = {}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for _ in range(args.rounds):
            for label, session, backend, options in CLIENTS:
                measured = {
                    "first": time_to_first_chunk(session, backend, options, port, args.requests),
                    "paced": cpu_per_chunk(
                        session, backend, options, port, args.paced, args.gap_us
                    ),
                    "burst": cpu_per_chunk(session, backend, options, port, args.burst, 0),
                }
                for name, value in measured.items():
                    figures.setdefault((label, name), []).append(value)
    finally:
        server.terminate()
        server.wait()

    def median(label: str, name: str) -> float:
        return statistics.median(figures[label, name])

    print(
        f"## One stream at a time (median of {args.rounds} interleaved rounds)\n\n"
        f"Time to first chunk: {args.requests} sequential 50-chunk replies on a warm "
        f"connection. Paced: one stream of {args.paced} chunks, {args.gap_us} µs apart. "
        f"Burst: one stream of {args.burst} chunks in one write.\n"
    )
    print(
        "| client | first chunk (µs) | ratio | paced, CPU per chunk (µs) | ratio "
        "| burst, CPU per chunk (µs) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, *_ in CLIENTS:
        cells = []
        for name in ("first", "paced", "burst"):
            value = median(label, name)
            cells.append(f"{value * 1e6:.1f} | {value / median('aiohttp', name):.2f}")
        print(f"| {label} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

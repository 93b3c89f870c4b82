"""What the response cache costs: a lookup against a round trip on loopback, on each backend.

The reference server runs in its own process. Each round, on each backend, sends the same
N distinct prompts four ways, one after another (concurrency 1, so wall time per request is
the latency a caller sees), then as a fan-out:

- no cache: every request goes to the server (the loopback round trip, the baseline);
- cold cache: a new cache file, so every request misses, is sent, and its reply stored;
- warm cache: the same prompts again, every one a hit;
- warm fan-out: the same, through ``fan_out`` at concurrency 16, against the same fan-out
  without a cache;
- and, for scale, a worker-thread round trip that does nothing (``anyio.to_thread``), which
  every lookup and store takes once.

Each figure is a median over interleaved rounds, reported as a ratio to the round trip (or to
the fan-out without a cache) measured in the same run.

    nox -s bench -- cache --requests 300 --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from aura_anyio import AuraClient, ResponseCache

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

SERVER = """
import anyio
from aura_anyio.testing import ReferenceServer
async def main():
    async with ReferenceServer() as server:
        print(server.base_url, flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""
BACKENDS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}
FAN_OUT_CONCURRENCY = 16


def prompts(count: int) -> list[str]:
    return [f"Benchmark prompt {n}: naïve café, 日本語, emoji 😀" for n in range(count)]


async def client_for(
    stack: contextlib.AsyncExitStack, base_url: str, cache_path: Path | None
) -> AuraClient:
    """A client, with a cache at ``cache_path`` if there is one."""
    cache = None
    if cache_path is not None:
        cache = await stack.enter_async_context(ResponseCache(cache_path))
    return await stack.enter_async_context(AuraClient(base_url, cache=cache))


async def one_by_one(base_url: str, cache_path: Path | None, count: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await client_for(stack, base_url, cache_path)
        for prompt in prompts(count):
            _check(await client.complete([{"role": "user", "content": prompt}]), prompt)


async def fanned(base_url: str, cache_path: Path | None, count: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await client_for(stack, base_url, cache_path)
        async with client.fan_out(prompts(count), max_concurrency=FAN_OUT_CONCURRENCY) as results:
            async for result in results:
                if result.error is not None:  # a failed request is no measure
                    raise AssertionError(f"request failed: {result.error!r}")
                _check(result.text, result.request.messages[-1]["content"])


async def hops(base_url: str, cache_path: Path | None, count: int) -> None:
    """Worker-thread round trips that do nothing: the floor under every lookup and store."""
    for _ in range(count):
        await anyio.to_thread.run_sync(int)


def _check(text: str, prompt: object) -> None:
    if f"«{prompt}»" not in text:
        raise AssertionError(f"wrong reply {text!r} to {prompt!r}")


def measure(
    job: Callable[[str, Path | None, int], Awaitable[None]],
    backend: str,
    base_url: str,
    cache_path: Path | None,
    count: int,
) -> tuple[float, float]:
    """Wall and CPU seconds per request of ``job``."""
    name, options = BACKENDS[backend]
    wall, cpu = time.perf_counter(), time.process_time()
    anyio.run(job, base_url, cache_path, count, backend=name, backend_options=options)
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = args.requests
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as folder:
            for round_ in range(args.rounds):
                for backend in BACKENDS:
                    path = Path(folder) / f"{backend}-{round_}.db"
                    for label, job, cache_path in (
                        ("no cache", one_by_one, None),
                        ("cold cache", one_by_one, path),
                        ("warm cache", one_by_one, path),
                        ("fan-out, no cache", fanned, None),
                        ("fan-out, warm cache", fanned, path),
                        ("thread hop", hops, None),
                    ):
                        figures.setdefault((backend, label), []).append(
                            measure(job, backend, base_url, cache_path, count)
                        )
    finally:
        server.terminate()
        server.wait()

    def median(backend: str, label: str, which: int) -> float:
        return statistics.median(figure[which] for figure in figures[backend, label])

    print(
        f"## The response cache against a loopback round trip ({count} distinct prompts, "
        f"median of {args.rounds} interleaved rounds)\n"
    )
    print(
        "| backend | round trip (µs) | hit (µs) | **hit / round trip** | miss + store (µs) "
        "| **miss / round trip** | hit CPU / round trip CPU | fan-out of hits / fan-out sent "
        "| no-op thread hop (µs) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backend in BACKENDS:
        trip = median(backend, "no cache", 0)
        hit = median(backend, "warm cache", 0)
        miss = median(backend, "cold cache", 0)
        cpu = median(backend, "warm cache", 1) / median(backend, "no cache", 1)
        fan = median(backend, "fan-out, warm cache", 0) / median(backend, "fan-out, no cache", 0)
        print(
            f"| {backend} | {trip * 1e6:.0f} | {hit * 1e6:.0f} | **{hit / trip:.2f}** "
            f"| {miss * 1e6:.0f} | **{miss / trip:.2f}** | {cpu:.2f} | {fan:.2f} "
            f"| {median(backend, 'thread hop', 0) * 1e6:.0f} |"
        )


if __name__ == "__main__":
    main()

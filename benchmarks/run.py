"""Client overhead benchmarks: aura_anyio against raw httpx, on each backend, in one run.

The reference server runs in its own process, so the client process's CPU time is the client's
alone. Rounds interleave the clients, and every figure is reported as a ratio against raw httpx
measured in the same run, since the machines here are shared and noisy.

    nox -s bench -- overhead --requests 300 --rounds 11
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio
import httpx

from aura_anyio import AuraClient, build_payload
from aura_anyio._wire.text import TextDecoder

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

SERVER = """
import anyio, sys
from aura_anyio.testing import ReferenceServer
async def main():
    async with ReferenceServer() as server:
        print(server.base_url, flush=True)
        await anyio.sleep_forever()
anyio.run(main)
"""
MESSAGES = [{"role": "user", "content": "Benchmark: naïve café, 日本語, emoji 😀 " * 4}]
BACKENDS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


async def run_aura(base_url: str, requests: int, concurrency: int, expected: str) -> None:
    async with AuraClient(base_url) as client:
        await fan(requests, concurrency, lambda: _check(client.complete(MESSAGES), expected))


async def run_fan_out(base_url: str, requests: int, concurrency: int, expected: str) -> None:
    async with AuraClient(base_url, max_connections=max(100, concurrency)) as client:
        prompts = itertools.repeat(MESSAGES, requests)
        async with client.fan_out(prompts, max_concurrency=concurrency) as results:
            async for result in results:
                if result.text != expected or result.error is not None:
                    raise AssertionError(f"wrong reply: {result.text!r} ({result.error})")


async def run_httpx(base_url: str, requests: int, concurrency: int, expected: str) -> None:
    body = httpx.Request("POST", "/", json=dict(build_payload(MESSAGES))).content

    async def one(http: httpx.AsyncClient) -> str:
        decoder = TextDecoder()
        parts: list[str] = []
        async with http.stream("POST", "/api/chat", content=body) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                parts.append(decoder.decode(chunk))
        return "".join(parts) + decoder.flush()

    async with httpx.AsyncClient(base_url=base_url) as http:
        await fan(requests, concurrency, lambda: _check(one(http), expected))


RUNNERS = {"aura_anyio": run_aura, "fan_out": run_fan_out, "httpx": run_httpx}


async def _check(reply: Awaitable[str], expected: str) -> None:
    text = await reply
    if text != expected:
        raise AssertionError(f"wrong reply: {text!r}")


async def fan(requests: int, concurrency: int, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` ``requests`` times over ``concurrency`` workers."""
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await job()

    async with anyio.create_task_group() as task_group:
        for _ in range(concurrency):
            task_group.start_soon(worker)


def measure(
    runner: Callable[[str, int, int, str], Awaitable[None]],
    backend: str,
    base_url: str,
    requests: int,
    concurrency: int,
    expected: str,
) -> float:
    """Return the client's CPU seconds per request."""
    name, options = BACKENDS[backend]
    started = time.process_time()
    anyio.run(
        runner, base_url, requests, concurrency, expected, backend=name, backend_options=options
    )
    return (time.process_time() - started) / requests


def bench_decoder(rounds: int) -> tuple[float, float]:
    """Seconds to decode a 50-chunk reply cut inside characters: ours, and chunk by chunk.

    The baseline decodes each chunk on its own, as the seed provider did: it is what streaming
    costs without an incremental decoder, and it garbles every character cut in two.
    """
    raw = ("naïve café 日本語 😀 " * 40).encode()
    cuts = [len(raw) * n // 50 for n in range(51)]  # 50 chunks, most cut inside a character
    chunks = [raw[a:b] for a, b in itertools.pairwise(cuts)]
    loops = 2000
    ours, baseline = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(loops):
            decoder = TextDecoder()
            "".join([decoder.decode(chunk) for chunk in chunks]) + decoder.flush()
        ours.append((time.perf_counter() - started) / loops)
        started = time.perf_counter()
        for _ in range(loops):
            "".join([chunk.decode(errors="replace") for chunk in chunks])
        baseline.append((time.perf_counter() - started) / loops)
    return statistics.median(ours), statistics.median(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        expected = anyio.run(_expected, base_url)
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for backend in BACKENDS:
                for label, runner in RUNNERS.items():
                    cost = measure(
                        runner, backend, base_url, args.requests, args.concurrency, expected
                    )
                    results.setdefault((backend, label), []).append(cost)
    finally:
        server.terminate()
        server.wait()

    print(
        f"## Client CPU per request ({args.requests} requests, concurrency "
        f"{args.concurrency}, median of {args.rounds} interleaved rounds)\n"
    )
    print(
        "| backend | aura_anyio complete() (ms) | aura_anyio fan_out() (ms) | raw httpx (ms) "
        "| ratio complete() | ratio fan_out() |"
    )
    print("|---|---|---|---|---|---|")
    for backend in BACKENDS:
        ours = statistics.median(results[backend, "aura_anyio"]) * 1000
        fan = statistics.median(results[backend, "fan_out"]) * 1000
        raw = statistics.median(results[backend, "httpx"]) * 1000
        print(
            f"| {backend} | {ours:.3f} | {fan:.3f} | {raw:.3f} | {ours / raw:.2f} "
            f"| {fan / raw:.2f} |"
        )
    ours_s, base_s = bench_decoder(args.rounds)
    print("\n## Decoding a 50-chunk reply cut inside characters\n")
    print("| TextDecoder (µs) | chunk-by-chunk bytes.decode (µs) | ratio |")
    print("|---|---|---|")
    print(f"| {ours_s * 1e6:.1f} | {base_s * 1e6:.1f} | {ours_s / base_s:.2f} |")


async def _expected(base_url: str) -> str:
    async with AuraClient(base_url) as client:
        text = await client.complete(MESSAGES)
    if "reference server" not in text:
        raise AssertionError(f"unexpected reference reply {text!r}")
    return text


if __name__ == "__main__":
    main()

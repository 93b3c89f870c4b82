"""One client over 1, 2 and 4 servers: does throughput grow with the servers?

Each server stands for a model replica that serves ``--slots`` replies at once (as vLLM's
``max_num_seqs``) and takes ``--delay-ms`` between chunks, so the servers, not the client,
are the bottleneck: the client's ``max_connections`` (per server) is the replica's slots,
and the fan-out keeps every slot of every server busy. The servers run in a process of their
own. Each round measures 1, 2 and 4 servers, interleaved; the figures are medians, and each is
reported as a ratio to one server in the same run (requests a second), with the client's CPU
per request beside it.

    nox -s bench -- endpoints --requests 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import anyio

from aura_anyio import AuraClient

SERVERS = """
import sys, anyio
from aura_anyio.testing import ReferenceServer
async def main():
    count, delay = int(sys.argv[1]), float(sys.argv[2])
    async with anyio.create_task_group() as tasks:
        for _ in range(count):
            server = ReferenceServer(delay=delay)
            await tasks.start(server.serve_forever)
            print(server.base_url, flush=True)
anyio.run(main)
"""
COUNTS = (1, 2, 4)


async def run(urls: list[str], requests: int, slots: int) -> None:
    async with AuraClient(urls, max_connections=slots) as client:
        prompts = [f"prompt {n}" for n in range(requests)]
        async with client.fan_out(prompts, max_concurrency=slots * len(urls)) as results:
            async for result in results:
                if result.error is not None:  # a failed request is no measure
                    raise AssertionError(f"request failed: {result.error!r}")
        spread = [endpoint.done for endpoint in client.endpoints]
    if min(spread) < requests / len(urls) * 0.5:
        raise AssertionError(f"uneven spread over the servers: {spread}")


def measure(urls: list[str], requests: int, slots: int) -> tuple[float, float]:
    """Requests a second, and CPU milliseconds per request."""
    wall, cpu = time.perf_counter(), time.process_time()
    anyio.run(run, urls, requests, slots)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return requests / wall, cpu / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=16, help="replies a server serves at once")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="between two chunks")
    args = parser.parse_args()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVERS, str(max(COUNTS)), str(args.delay_ms / 1000)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = [process.stdout.readline().strip() for _ in range(max(COUNTS))]
        figures: dict[int, list[tuple[float, float]]] = {count: [] for count in COUNTS}
        for _ in range(args.rounds):
            for count in COUNTS:
                figures[count].append(measure(urls[:count], args.requests, args.slots))
    finally:
        process.terminate()
        process.wait()
    print(
        f"## Throughput over 1, 2 and 4 servers (N={args.requests}, {args.slots} slots a "
        f"server, {args.delay_ms:g} ms between chunks, median of {args.rounds} rounds)\n"
    )
    print("| servers | requests/s | ratio to 1 server | client CPU per request (ms) |")
    print("|---|---|---|---|")
    base = statistics.median(rate for rate, _ in figures[1])
    for count in COUNTS:
        rate = statistics.median(rate for rate, _ in figures[count])
        cpu = statistics.median(cpu for _, cpu in figures[count])
        print(f"| {count} | {rate:.0f} | {rate / base:.2f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()

"""``aura demo``: the whole library offline, against the reference server in this process."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import anyio
import click

from .._client import AuraClient
from ..testing import Fault, ReferenceServer
from .batch import run_batch
from .jsonl import percentile
from .progress import BatchProgress

__all__ = ["DEMO_PROMPTS", "run_demo"]

DEMO_PROMPTS = 1000
DEMO_CONCURRENCY = 100
# Every 50th prompt gets a 503 the first time: the client retries it, and nothing is lost.
FLAKY_EVERY = 50
CHUNK_DELAY = 0.01


def _write_prompts(path: Path) -> None:
    flaky = Fault(status=503, reason="Overloaded, try again", times=1).marker()
    with path.open("w", encoding="utf-8") as file:
        for number in range(1, DEMO_PROMPTS + 1):
            prompt = f"Prompt {number}: say something naïve ☕"
            if number % FLAKY_EVERY == 0:
                prompt += " " + flaky
            file.write(json.dumps({"id": f"p{number}", "prompt": prompt}) + "\n")


async def run_demo() -> None:
    """Stream one reply, then run a batch of :data:`DEMO_PROMPTS` prompts, and summarise."""
    async with ReferenceServer(delay=CHUNK_DELAY) as server:
        click.echo(f"Reference server on {server.base_url} (in this process, offline)\n")
        async with AuraClient(server.base_url) as client:
            click.echo("One reply, streamed as it arrives:\n")
            async with client.stream([{"role": "user", "content": "Hello, aura!"}]) as reply:
                async for piece in reply:
                    click.echo(piece, nl=False)
            click.echo("\n")
            with tempfile.TemporaryDirectory() as directory:
                source, output = Path(directory) / "in.jsonl", Path(directory) / "out.jsonl"
                await anyio.to_thread.run_sync(_write_prompts, source)
                click.echo(
                    f"A batch of {DEMO_PROMPTS} prompts at concurrency {DEMO_CONCURRENCY}; "
                    f"every {FLAKY_EVERY}th gets a 503 first:"
                )
                started = time.perf_counter()
                with BatchProgress(enabled=True) as progress:
                    stats = await run_batch(
                        client,
                        source,
                        output,
                        concurrency=DEMO_CONCURRENCY,
                        on_result=progress.update,
                    )
                wall = time.perf_counter() - started
    latencies = stats.latencies
    click.echo(
        f"\n{stats.done} requests in {wall:.2f} s: {stats.done / wall:.0f} requests/s\n"
        f"latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms\n"
        f"{stats.failed} failed, {stats.retried} retried"
    )

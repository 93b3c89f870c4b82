"""How truly ``aura bench`` measures a server, against a vLLM-style aiohttp client.

The paced reference server (``ReferenceServer``: 100 ms to the first token, 20 ms between
tokens, 64 tokens a reply) runs in a process of its own, on uvloop when it is installed, and
records when it received each request and when it handed each token's chunk to its socket
(``record_times``): that record is the truth. Its own drift under load is in the truth, so a
server that falls behind is not charged to the client.

Each tool first opens its S connections with S requests at once (``--num-warmups S``: a
server that is slow to accept hundreds of connections at once would otherwise charge the
first TTFTs with its backlog, before its record begins), then keeps S streams busy for a few
seconds (a closed loop: a request is sent when one ends), in a process of its own, against a
fresh server; the truth leaves out the warm-up's requests too:

- **aura bench**: the ``aura bench`` command itself (``--duration D --request-rate inf
  --max-concurrency S --output-tokens 64``), on asyncio, and on uvloop with ``--backend
  uvloop``;
- **aiohttp (vLLM-style)**: a client written as vLLM's ``bench serve`` measures, sending
  ``aura bench``'s synthetic prompts (128 words): aiohttp with a connector of S connections,
  the body read as it comes (``iter_any``), split into server-sent events, ``json.loads``
  per event, and a ``perf_counter`` reading per event that carries text.

For TTFT and ITL, the table gives each tool's median and p99, less the truth's (the server's
record of the same run, through the same statistics): how far the tool's figure is from what
the server did. A tool that is late to read an event sees a longer gap before it and a
shorter one after (reads that bring several events make gaps of nought): its median ITL moves
little, its p99 more. The tool's CPU is its process's CPU time over the run, as a share of one
core.

    nox -s bench -- fidelity [--streams 50,200,500] [--seconds 6] [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from aura_anyio._bench.stats import summary
from aura_anyio._cli.bench import synthetic_prompts
from aura_anyio.testing import Fault, ReferenceServer

TTFT_S, ITL_S, TOKENS = 0.1, 0.02, 64
TOOLS = ("aura bench", "aura bench --backend uvloop", "aiohttp (vLLM-style)")
HERE = Path(__file__).resolve().parent
PIECES = [f"t{index} " for index in range(TOKENS)]


# --- the server -------------------------------------------------------------------------------


async def serve() -> list[tuple[float, ...]]:
    """Serve paced replies until SIGTERM; return the server's record."""
    server = ReferenceServer(
        delay=ITL_S,
        fault=Fault(first_chunk_after=TTFT_S),
        reply=lambda _request: PIECES,
        record_times=True,
    )
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with server:
            print(server.base_url, flush=True)
            async for _ in signals:
                break
    return server.sent_times


def start_server(record: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the server in a process of its own; return it and its URL."""
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", str(record)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop_server(process: subprocess.Popen[str], record: Path) -> list[list[float]]:
    """Stop the server; return its record."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    times: list[list[float]] = json.loads(record.read_text())
    return times


# --- the vLLM-style client --------------------------------------------------------------------


async def aiohttp_client(url: str, streams: int, seconds: float) -> dict[str, Any]:
    """Keep ``streams`` requests in flight for ``seconds``, timing each event as vLLM's
    ``bench serve`` does; return the TTFTs, the gaps and the CPU share."""
    import aiohttp

    ttfts: list[float] = []
    itls: list[float] = []
    failed = 0
    prompts = synthetic_prompts(128, 0)  # aura bench's default prompts: the server's work alike
    connector = aiohttp.TCPConnector(limit=streams, limit_per_host=streams, force_close=False)
    timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(counted: bool = True) -> None:
            nonlocal failed
            started = time.perf_counter()
            latest = started
            first = True
            gaps: list[float] = []
            buffer = ""
            body = {
                "model": "m",
                "messages": next(prompts).messages,
                "max_tokens": TOKENS,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                if response.status != 200:
                    failed += 1
                    return
                async for data in response.content.iter_any():
                    buffer += data.decode("utf-8")
                    *messages, buffer = buffer.split("\n\n")
                    for message in messages:
                        payload = message.removeprefix("data: ")
                        if payload == "[DONE]" or not payload:
                            continue
                        chunk = json.loads(payload)
                        choices = chunk.get("choices")
                        if choices and choices[0].get("delta", {}).get("content"):
                            now = time.perf_counter()
                            if first:
                                if counted:
                                    ttfts.append(now - started)
                                first = False
                            else:
                                gaps.append(now - latest)
                            latest = now
            if counted:
                itls.extend(gaps)

        async def worker(ends: float) -> None:
            while time.perf_counter() < ends:
                await one()

        async with anyio.create_task_group() as warm:  # as aura bench --num-warmups S
            for _ in range(streams):
                warm.start_soon(one, False)
        cpu, wall = time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as workers:
            for _ in range(streams):
                workers.start_soon(worker, wall + seconds)
        took = time.perf_counter() - wall
        share = 100 * (time.process_time() - cpu) / took
    return {"ttft": ttfts, "itl": itls, "cpu": share, "failed": failed}


def run_tool(tool: str, url: str, streams: int, seconds: float) -> dict[str, Any]:
    """Run ``tool`` in a process of its own; return its TTFT and ITL figures (ms) and CPU."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        if tool.startswith("aura bench"):
            command = [
                sys.executable, "-m", "aura_anyio", "bench", "--base-url", url,
                "--wire", "openai", "--model", "m", "--duration", str(seconds),
                "--request-rate", "inf", "--max-concurrency", str(streams),
                "--output-tokens", str(TOKENS), "--percentiles", "50,99",
                "--output", str(out), "--no-progress", "--num-warmups", str(streams),
                *tool.split()[2:],
            ]  # fmt: skip
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
            run = json.loads(out.read_text())
            return {
                "ttft": (run["median_ttft_ms"], run["p99_ttft_ms"]),
                "itl": (run["median_itl_ms"], run["p99_itl_ms"]),
                "cpu": run["client_cpu_percent"],
                "failed": run["failed"],
                "requests": run["completed"],
            }
        command = [sys.executable, __file__, "aiohttp", url, str(streams), str(seconds), str(out)]
        subprocess.run(command, check=True)
        run = json.loads(out.read_text())
        return {
            "ttft": figures_ms(run["ttft"]),
            "itl": figures_ms(run["itl"]),
            "cpu": run["cpu"],
            "failed": run["failed"],
            "requests": len(run["ttft"]),
        }


def figures_ms(seconds: list[float]) -> tuple[float, float]:
    """The median and p99 of ``seconds``, in ms, by the statistics ``aura bench`` uses."""
    figures = summary([value * 1000 for value in seconds], [99])
    return figures["median"], figures["p99"]


def truth(times: list[list[float]]) -> dict[str, tuple[float, float]]:
    """The server's record as TTFT and ITL figures (ms)."""
    ttfts = [sent[0] - received for received, *sent in times if sent]
    gaps = [later - earlier for _, *sent in times for earlier, later in itertools.pairwise(sent)]
    return {"ttft": figures_ms(ttfts), "itl": figures_ms(gaps)}


def measure(streams: int, seconds: float, rounds: int, tools: list[str]) -> list[dict[str, Any]]:
    """Each tool's error against the truth at ``streams`` streams, the median of ``rounds``."""
    rows: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for _ in range(rounds):
        for tool in tools:  # interleaved: the machine's load falls on every tool alike
            with tempfile.TemporaryDirectory() as folder:
                record = Path(folder) / "record.json"
                server, url = start_server(record)
                try:
                    run = run_tool(tool, url, streams, seconds)
                finally:
                    # The warm-up's requests came first, and all ended before the run's.
                    times = stop_server(server, record)[streams:]
            real = truth(times)
            rows[tool].append(
                {
                    "ttft": [run["ttft"][i] - real["ttft"][i] for i in (0, 1)],
                    "itl": [run["itl"][i] - real["itl"][i] for i in (0, 1)],
                    "true": real,
                    "cpu": run["cpu"],
                    "failed": run["failed"],
                    "requests": run["requests"],
                    "served": len(times),
                }
            )
    results = []
    for tool, runs in rows.items():
        row = dict(runs[-1])  # the counts of the last round
        row.update({key: median_of(runs, key) for key in ("ttft", "itl", "cpu")}, tool=tool)
        results.append(row)
    return results


def median_of(runs: list[dict[str, Any]], key: str) -> Any:
    """The median of ``key`` over ``runs``, part by part for a list."""
    values = [run[key] for run in runs]
    if isinstance(values[0], list):
        return [statistics.median(parts) for parts in zip(*values, strict=True)]
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="50,200,500")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated, of: {', '.join(TOOLS)}"
    )
    options = parser.parse_args()
    tools = options.tools.split(",")
    if not set(tools) <= set(TOOLS):
        parser.error(f"--tools: each of {', '.join(TOOLS)}")
    print(
        "| streams | tool | TTFT median error (ms) | TTFT p99 error (ms) | ITL median error (ms) "
        "| ITL p99 error (ms) | client CPU (% of a core) | requests | true TTFT / ITL median "
        "(ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for streams in (int(part) for part in options.streams.split(",")):
        for row in measure(streams, options.seconds, options.rounds, tools):
            true = row["true"]
            failed = f" ({row['failed']} failed)" if row["failed"] else ""
            print(
                f"| {streams} | {row['tool']} | {row['ttft'][0]:+.2f} | {row['ttft'][1]:+.2f} "
                f"| {row['itl'][0]:+.3f} | {row['itl'][1]:+.2f} | {row['cpu']:.0f} "
                f"| {row['requests']}{failed} | {true['ttft'][0]:.1f} / {true['itl'][0]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        backend = {"use_uvloop": True} if os.name != "nt" else {}
        record = anyio.run(serve, backend="asyncio", backend_options=backend)
        Path(sys.argv[2]).write_text(json.dumps(record))
    elif sys.argv[1:2] == ["aiohttp"]:
        url, streams, seconds, out = sys.argv[2:6]
        figures = anyio.run(aiohttp_client, url, int(streams), float(seconds))
        Path(out).write_text(json.dumps(figures))
    else:
        main()

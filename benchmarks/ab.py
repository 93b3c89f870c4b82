"""Before and after: fan-out CPU per request of two source trees of aura_anyio, in one run.

Runs after runs on this shared machine differ by more than most changes (aiohttp's own cost
per request moved from 0.38 to 0.52 ms between two runs of ``fanout.py`` minutes apart), so a
change is measured here against the code before it in the same run: ``fanout.py``'s server in
its own process, and each measurement a fresh process that imports aura_anyio from one tree
(``PYTHONPATH``), warms up, then fans out N prompts at concurrency C. The trees alternate
measurement by measurement (A B A B ...), with aiohttp measured in the same rounds as the
baseline; medians of the rounds.

    git worktree add /tmp/before <commit>
    python benchmarks/ab.py /tmp/before/src src --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import fanout

HERE = Path(__file__).parent
# The baselines, in fanout.py: aiohttp on /api/chat, and a vLLM-style client of the OpenAI
# wire (SSE split and json.loads per event), for the OpenAI wire's rows.
PEERS = ("aiohttp_client", "aiohttp_sse")
# (label, runner in fanout.py, backend, backend options)
RUNS = [
    ("asyncio", "aura", "asyncio", {}),
    ("uvloop", "aura", "asyncio", {"use_uvloop": True}),
    ("trio", "aura", "trio", {}),
    ("OpenAI wire, asyncio", "aura_openai", "asyncio", {}),
    ("OpenAI wire, trio", "aura_openai", "trio", {}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the src directory of the code before (A)")
    parser.add_argument("after", help="the src directory of the code after (B)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", fanout.SERVER, str(HERE)], stdout=subprocess.PIPE, text=True
    )
    costs: dict[tuple[str, str], list[float]] = {}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        for _ in range(args.rounds):
            for peer in PEERS:
                costs.setdefault((peer, ""), []).append(
                    fanout.measure(peer, "asyncio", {}, port, args.requests, args.concurrency)
                )
            for label, runner, backend, options in RUNS:
                for tree in ("before", "after"):
                    src = getattr(args, tree)
                    cost = fanout.measure(
                        runner, backend, options, port, args.requests, args.concurrency, src
                    )
                    costs.setdefault((label, tree), []).append(cost)
    finally:
        server.terminate()
        server.wait()
    plain, sse = (statistics.median(costs[peer, ""]) for peer in PEERS)
    print(
        f"## Fan-out before and after (N={args.requests}, C={args.concurrency}, median of "
        f"{args.rounds} interleaved rounds; aiohttp {plain * 1000:.3f} ms per request, "
        f"and {sse * 1000:.3f} reading events vLLM's way, the OpenAI wire's baseline)\n"
    )
    print(
        "| aura_anyio | before (ms) | ratio to aiohttp | after (ms) | ratio to aiohttp "
        "| after / before |"
    )
    print("|---|---|---|---|---|---|")
    for label, runner, *_ in RUNS:
        baseline = sse if runner == "aura_openai" else plain
        before = statistics.median(costs[label, "before"])
        after = statistics.median(costs[label, "after"])
        print(
            f"| {label} | {before * 1000:.3f} | {before / baseline:.2f} | {after * 1000:.3f} "
            f"| {after / baseline:.2f} | {after / before:.2f} |"
        )


if __name__ == "__main__":
    main()

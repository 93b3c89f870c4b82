"""What Ray costs: the same rows through the Ray Data stage and through one ``aura batch``.

A reference server runs in a process of its own. Each round sends the same ``--rows``
prompts twice, one job after the other: as ``aura batch`` (one process, one client) and as
``examples/ray_batch.py`` (a local Ray cluster started for the job, ``--actors`` actors each
with one client, JSON lines in and out). Both are timed whole, as a user would time them,
Ray's start-up included; the figure is Ray's wall time as a ratio to ``aura batch``'s in the
same round (median over the rounds). Needs the ray extra.

    nox -s bench -- ray --rows 20000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The same reference server in a process of its own as the cache benchmark (a sibling script).
from cache import SERVER

EXAMPLE = Path(__file__).parent.parent / "examples" / "ray_batch.py"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def count_ok(paths: list[Path]) -> int:
    return sum(
        json.loads(line)["ok"]
        for path in paths
        for line in path.read_text(encoding="utf-8").splitlines()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32, help="requests per process")
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    figures: dict[str, list[float]] = {"aura batch": [], "Ray": []}
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "prompts.jsonl"
            source.write_text(
                "".join(json.dumps({"id": n, "prompt": f"p{n}"}) + "\n" for n in range(args.rows)),
                encoding="utf-8",
            )
            for round_ in range(args.rounds):
                batch_out = Path(folder) / f"batch-{round_}.jsonl"
                ray_out = Path(folder) / f"ray-{round_}"
                figures["aura batch"].append(
                    timed(
                        [
                            *(sys.executable, "-m", "aura_anyio", "batch", str(source)),
                            *("-o", str(batch_out), "--base-url", url, "--no-progress"),
                            *("--concurrency", str(args.concurrency)),
                        ]
                    )
                )
                figures["Ray"].append(
                    timed(
                        [
                            *(sys.executable, str(EXAMPLE), str(source), str(ray_out)),
                            *("--base-url", url, "--actors", str(args.actors)),
                            *("--concurrency", str(args.concurrency), "--batch-size", "1000"),
                        ]
                    )
                )
                for label, paths in (
                    ("aura batch", [batch_out]),
                    ("Ray", sorted(ray_out.glob("*.json*"))),
                ):
                    if count_ok(paths) != args.rows:  # a failed request is no measure
                        raise AssertionError(f"{label}: not every row came back ok")
    finally:
        server.terminate()
        server.wait()
    batch = statistics.median(figures["aura batch"])
    ray_wall = statistics.median(figures["Ray"])
    print(
        f"## Ray Data against one aura batch ({args.rows} rows, {args.actors} actors, "
        f"concurrency {args.concurrency} a process, median of {args.rounds} rounds)\n"
    )
    print("| job | wall (s) | rows/s | ratio to aura batch |")
    print("|---|---|---|---|")
    for label, wall in (("aura batch", batch), ("Ray Data stage", ray_wall)):
        print(f"| {label} | {wall:.1f} | {args.rows / wall:.0f} | {wall / batch:.2f} |")


if __name__ == "__main__":
    main()

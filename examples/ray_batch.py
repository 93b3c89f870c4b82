"""A batch of prompts on Ray Data: read JSON lines, ask for each reply, write Parquet or JSONL.

Needs the ray extra (``pip install 'aura_anyio[ray]'``). Each input line is a row:
``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [...]}``, with optional
``system``, ``model``, ``temperature`` and ``max_tokens``. The output is a directory of
files, one row per line of the input plus ``text``, ``ok``, ``error``, ``attempts``,
``endpoint``...; a bad row or a failed request is an error row, never a failed job.

Offline, against a reference server started here (a local Ray cluster of 2 CPUs)::

    python examples/ray_batch.py prompts.jsonl replies --actors 2

Against real servers, on a real cluster (``ray start --head`` on one machine, ``ray start
--address HEAD:6379`` on the others)::

    python examples/ray_batch.py prompts.jsonl s3://bucket/replies --address auto \\
        --base-url http://gpu1:8000 --base-url http://gpu2:8000 --wire openai \\
        --actors 8 --rps 200 --format parquet
"""

from __future__ import annotations

import argparse
import contextlib
import typing

import anyio.from_thread
import ray
import ray.data

from aura_anyio.ray import Chat
from aura_anyio.testing import ReferenceServer

if typing.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a JSON-lines file (or directory) of prompts")
    parser.add_argument("output", help="the directory to write the replies to")
    parser.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    parser.add_argument(
        "--base-url", action="append", help="a server (again for several); none: a local one"
    )
    parser.add_argument("--wire", choices=["aura", "openai"], default="aura")
    parser.add_argument("--address", help="a Ray cluster to join (auto, or HOST:PORT)")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors, each one client")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16, help="requests per actor")
    parser.add_argument("--rps", type=float, help="requests a second for the whole job")
    args = parser.parse_args(argv)

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)
    with server_urls(args.base_url) as urls:
        replies = ray.data.read_json(args.source).map_batches(
            Chat,
            fn_constructor_kwargs={
                "base_url": urls,
                "wire": args.wire,
                "max_concurrency": args.concurrency,
                "requests_per_second": args.rps,
            },
            compute=ray.data.ActorPoolStrategy(size=args.actors),
            batch_size=args.batch_size,
            # An actor mostly waits for replies: a whole core each would leave none for
            # reading and writing (on 2 cores, 2 actors would wait for the reader forever).
            num_cpus=0.25,
        )
        # The dataset is lazy: writing it runs the job, once; the counts are read back.
        if args.format == "parquet":
            replies.write_parquet(args.output)
            written = ray.data.read_parquet(args.output)
        else:
            replies.write_json(args.output)
            written = ray.data.read_json(args.output)
    rows = written.count()
    failed = rows - int(written.sum("ok") or 0)
    print(f"wrote {rows} rows to {args.output}, {failed} of them failed")


@contextlib.contextmanager
def server_urls(given: list[str] | None) -> Iterator[list[str]]:
    """The servers given, or else a reference server in this process, for the job's length."""
    if given:
        yield given
        return
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(ReferenceServer()) as server,
    ):
        print(f"reference server on {server.base_url} (in this process, offline)")
        yield [server.base_url]


if __name__ == "__main__":
    main()

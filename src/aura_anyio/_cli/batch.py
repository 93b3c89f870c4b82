"""Running a JSONL batch through a fan-out: rows written as results arrive, resumable.

Every result is appended to the output file, and flushed, the moment its request ends, so
an interrupted batch loses only the requests still in flight. ``resume=True`` skips the ids
that already have an ``ok`` row, so interrupting and resuming any number of times leaves
exactly one ``ok`` row per request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
import typing

import anyio

from .jsonl import BadLine, id_key, line_error_row, ok_ids, parse_line, percentile, result_row

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Mapping
    from pathlib import Path
    from typing import TextIO

    from anyio.abc import TaskStatus

    from .._client import AuraClient
    from .._models import ChatRequest
    from .jsonl import Row

__all__ = [
    "BatchStats",
    "count_lines",
    "run_batch",
    "summary_line",
    "summary_of",
    "until_signalled",
]


@dataclasses.dataclass(slots=True)
class BatchStats:
    """How a batch is going: ``total`` requests to send this run, and how many ended.

    ``truncated`` counts the replies that ended because they reached ``max_tokens``
    (``finish_reason`` ``"length"``): whole as far as the server is concerned, and ``ok``;
    ``cached`` the replies the cache answered. The token counts are the sums of what the
    replies sent reported (``usage``); the latencies and times to first text (``ttfts``)
    are those of the requests sent.
    """

    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    truncated: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list[float])
    ttfts: list[float] = dataclasses.field(default_factory=list[float])
    started: float = dataclasses.field(default_factory=time.monotonic)


def summary_of(stats: BatchStats, elapsed: float) -> dict[str, object]:
    """How a batch went, as ``--summary-json`` writes it: counts, tokens, rates, latencies and
    times to first text.

    ``done`` counts the requests that finished, ``ok`` those of them that got their reply,
    ``failed`` the others. Times are in seconds; a latency (or time to first text) is
    ``None`` when no request gave one, and the output tokens a second when no reply reported
    its tokens.
    """

    def rank(values: list[float], fraction: float) -> float | None:
        value = percentile(values, fraction)
        return None if math.isnan(value) else round(value, 6)

    completion = stats.completion_tokens
    return {
        "ok": stats.done - stats.failed,
        "done": stats.done,
        "failed": stats.failed,
        "retried": stats.retried,
        "skipped": stats.skipped,
        "truncated": stats.truncated,
        "cached": stats.cached,
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "cached_tokens": stats.cached_tokens,
        "reasoning_tokens": stats.reasoning_tokens,
        "elapsed": round(elapsed, 6),
        "requests_per_second": round(stats.done / elapsed, 3) if elapsed > 0 else None,
        "output_tokens_per_second": (
            round(completion / elapsed, 3) if completion and elapsed > 0 else None
        ),
        "latency_p50": rank(stats.latencies, 0.5),
        "latency_p95": rank(stats.latencies, 0.95),
        "ttft_p50": rank(stats.ttfts, 0.5),
        "ttft_p95": rank(stats.ttfts, 0.95),
    }


def summary_line(summary: dict[str, object]) -> str:
    """The summary as one line for a person: ``aura: 9 ok, 1 failed, ...``."""
    parts = [f"{summary['ok']} ok", f"{summary['failed']} failed"]
    parts.append(f"{summary['retried']} retries")
    if summary["skipped"]:
        parts.append(f"{summary['skipped']} skipped (done before)")
    if summary["cached"]:
        parts.append(f"{summary['cached']} from the cache")
    if summary["truncated"]:
        parts.append(f"{summary['truncated']} cut short by max_tokens (finish_reason length)")
    if summary["prompt_tokens"] or summary["completion_tokens"]:
        tokens = f"{summary['prompt_tokens']:,} tokens in"
        if summary["cached_tokens"]:
            tokens += f" ({summary['cached_tokens']:,} cached)"
        tokens += f", {summary['completion_tokens']:,} out"
        if summary["reasoning_tokens"]:
            tokens += f" ({summary['reasoning_tokens']:,} reasoning)"
        parts.append(tokens)
    rate = summary["requests_per_second"]
    if summary["done"] and rate is not None:
        parts.append(f"{rate:.1f} requests/s")
    output_rate = summary["output_tokens_per_second"]
    if isinstance(output_rate, float):
        parts.append(f"{output_rate:,.1f} output tokens/s")
    for name, label in (("latency", "latency"), ("ttft", "first text")):
        p50, p95 = summary[f"{name}_p50"], summary[f"{name}_p95"]
        if isinstance(p50, float) and isinstance(p95, float):
            parts.append(f"{label} p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    return ", ".join(parts)


def count_lines(path: Path) -> int:
    """The number of non-blank lines of a file (read in binary blocks: a batch can be big)."""
    count = 0
    with path.open("rb") as file:
        for line in file:
            count += bool(line.strip())
    return count


async def run_batch(
    client: AuraClient,
    source: Path,
    output: Path,
    *,
    concurrency: int,
    requests_per_second: float | None = None,
    request_timeout: float | None = None,
    tokens_per_minute: float | None = None,
    resume: bool = False,
    extra_body: Mapping[str, object] | None = None,
    stats: BatchStats | None = None,
    on_result: Callable[[BatchStats], None] | None = None,
) -> BatchStats:
    """Send every request of ``source`` and append a row per result to ``output``.

    The counts go to ``stats`` (a new one by default) as the batch goes, so a caller that
    interrupts it still has them; ``on_result`` is called after each row is written. A line
    that is not a request gets an error row at once. ``extra_body`` holds body fields for
    every request, under each line's own.

    Raises:
        InvalidRequestError: ``concurrency``, ``requests_per_second``, ``request_timeout``
            or ``tokens_per_minute`` is invalid (before anything is sent).
    """
    # Reading what is done and counting the input can take a while for a big batch.
    finished, total, out = await anyio.to_thread.run_sync(_prepare, source, output, resume)
    stats = BatchStats() if stats is None else stats
    stats.total = total

    def write(row: Row) -> None:
        out.write(row.to_json() + "\n")
        out.flush()
        stats.done += 1
        stats.failed += not row.ok
        stats.truncated += row.ok and row.finish_reason == "length"
        if on_result is not None:
            on_result(stats)

    lines: dict[int, int] = {}  # fan-out index -> input line, while the request runs
    requests = _requests(source, finished, lines, stats, write, extra_body)
    with contextlib.closing(requests), out:
        several = len(client.endpoints) > 1
        async with client.fan_out(
            requests,
            max_concurrency=concurrency,
            requests_per_second=requests_per_second,
            request_timeout=request_timeout,
            tokens_per_minute=tokens_per_minute,
        ) as results:
            async for result in results:
                stats.retried += max(0, result.attempts - 1)
                stats.cached += result.cached
                if not result.cached:  # the server's latency, not the disk's
                    stats.latencies.append(result.elapsed)
                if result.ttft is not None:
                    stats.ttfts.append(result.ttft)
                progress = results.progress  # the fan-out totals the reported tokens
                stats.prompt_tokens = progress.prompt_tokens
                stats.completion_tokens = progress.completion_tokens
                stats.cached_tokens = progress.cached_tokens
                stats.reasoning_tokens = progress.reasoning_tokens
                write(result_row(result, lines.pop(result.index), name_server=several))
    return stats


def _requests(
    source: Path,
    finished: set[str],
    lines: dict[int, int],
    stats: BatchStats,
    write: Callable[[Row], None],
    extra_body: Mapping[str, object] | None,
) -> Generator[ChatRequest, None, None]:
    """The input's requests, lazily; bad lines are written as error rows on the way."""
    first_line: dict[str, int] = {}  # id -> the line that used it first
    index = 0
    with source.open(encoding="utf-8", errors="replace") as file:
        for number, text in enumerate(file, start=1):
            item = parse_line(text, number, extra_body)
            if item is None:
                continue
            if isinstance(item, BadLine):
                write(line_error_row(item))
                continue
            assert item.id is not None
            key = id_key(item.id)
            if key in finished:
                stats.skipped += 1
                continue
            if key in first_line:
                first = first_line[key]
                reason = f"line {number}: id {item.id!r} was used already, on line {first}"
                write(line_error_row(BadLine(number, item.id, reason)))
                continue
            first_line[key] = number
            lines[index] = number
            index += 1
            yield item


def _prepare(source: Path, output: Path, resume: bool) -> tuple[set[str], int, TextIO]:
    """The ids done already, the count of requests left, and the output opened to append."""
    finished: set[str] = set()
    if resume and output.exists():
        with output.open(encoding="utf-8", errors="replace") as rows:
            finished = ok_ids(rows)
    total = max(0, count_lines(source) - len(finished))
    # A row's text is checked already; should anything still not be UTF-8, it is escaped
    # rather than lose the row (and stop the batch).
    out = output.open("a", encoding="utf-8", errors="backslashreplace")
    if out.tell():
        with output.open("rb") as raw:
            raw.seek(-1, 2)
            if raw.read(1) != b"\n":
                out.write("\n")  # a row cut by a kill: the next starts on a line of its own
    return finished, total, out


async def until_signalled(job: Callable[[], Awaitable[None]]) -> bool:
    """Run ``job`` until it ends or SIGINT or SIGTERM arrives, which cancels it.

    An exception from ``job`` comes out as itself.

    Returns:
        Whether a signal stopped it.
    """
    stopped = False
    failure: list[Exception] = []
    async with anyio.create_task_group() as tasks:

        async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            nonlocal stopped
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()  # the job starts only once a signal cannot kill it
                async for _ in signals:
                    stopped = True
                    tasks.cancel_scope.cancel()

        async def run() -> None:
            try:
                await job()
            except Exception as exc:  # raised below as itself, not in an exception group
                failure.append(exc)
            tasks.cancel_scope.cancel()  # and stop watching

        await tasks.start(watch)
        tasks.start_soon(run)
    if failure:
        raise failure[0]
    return stopped

"""The progress of a batch and of a benchmark run on stderr (rich), shown only on a terminal."""

from __future__ import annotations

import collections
import statistics
import time
import typing

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if typing.TYPE_CHECKING:
    from types import TracebackType

    from .._bench.report import Outcome
    from .batch import BatchStats

__all__ = ["BatchProgress", "BenchProgress", "failures", "rates"]

# The live TTFT is the median of the latest requests: all of them would cost a sort of every
# result on every refresh.
_RECENT = 1000
# Seconds between two refreshes of the live figures.
_REFRESH = 0.25


@typing.final
class BatchProgress:
    """``with BatchProgress(enabled=...) as bar: ... bar.update(stats)``.

    Shows done of total, failures, cache hits, requests and tokens a second (one decimal: a
    slow batch is not "0/s"), the time elapsed and left, on stderr, if ``enabled`` and
    stderr is a terminal; otherwise does nothing.
    """

    def __init__(self, *, enabled: bool) -> None:
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._progress = _live(
            enabled,
            TextColumn("{task.fields[failed]}"),
            TextColumn("{task.fields[cached]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )

    def __enter__(self) -> BatchProgress:
        self._started = time.monotonic()
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                "batch", total=None, failed=failures(0), cached="", rate=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, stats: BatchStats) -> None:
        """Show ``stats``."""
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            completed=stats.done,
            total=max(stats.total, stats.done),
            failed=failures(stats.failed),
            cached=f"{stats.cached} cached" if stats.cached else "",
            rate=rates(stats, time.monotonic() - self._started),
        )


def _live(enabled: bool, *columns: ProgressColumn) -> Progress | None:
    """A live display on stderr of a description, a bar, done of total and ``columns``, if
    ``enabled`` and stderr is a terminal; else ``None``."""
    console = Console(stderr=True)
    if not (enabled and console.is_terminal):
        return None
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        console=console,
    )


def failures(count: int) -> str:
    """The failures so far, in red once there is one: a batch going wrong shows at once."""
    return f"[bold red]{count} failed[/]" if count else "0 failed"


def rates(stats: BatchStats, elapsed: float) -> str:
    """Requests a second, and tokens a second once replies report them, with one decimal."""
    if elapsed <= 0:
        return ""
    text = f"{stats.done / elapsed:.1f} req/s"
    tokens = stats.prompt_tokens + stats.completion_tokens
    if tokens:
        text += f", {tokens / elapsed:.1f} tok/s"
    return text


@typing.final
class BenchProgress:
    """``with BenchProgress(label, total, enabled=...) as live:``, told of each request by
    :meth:`sent` and :meth:`ended`.

    Shows done (of ``total``, if known), in flight, failures and the median TTFT of the latest
    requests, on stderr, if ``enabled`` and stderr is a terminal; otherwise does nothing. The
    figures are redrawn a few times a second, not for every request: the benchmark's client
    must stay cheap.
    """

    def __init__(self, label: str, total: int | None, *, enabled: bool) -> None:
        self._label = label
        self._total = total
        self._task: TaskID | None = None
        self._done = self._failed = self._in_flight = 0
        self._ttfts: collections.deque[float] = collections.deque(maxlen=_RECENT)
        self._shown = 0.0
        self._progress = _live(
            enabled,
            TextColumn("{task.fields[in_flight]} in flight"),
            TextColumn("{task.fields[failed]}"),
            TextColumn("{task.fields[ttft]}"),
            TimeElapsedColumn(),
        )

    def __enter__(self) -> BenchProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(
                self._label, total=self._total, in_flight=0, failed=failures(0), ttft=""
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._show()
            self._progress.stop()

    def sent(self) -> None:
        """A request was sent."""
        self._in_flight += 1
        self._maybe_show()

    def ended(self, outcome: Outcome) -> None:
        """A request ended, as ``outcome`` says."""
        self._in_flight -= 1
        self._done += 1
        if outcome.error is not None:
            self._failed += 1
        elif (ttft := outcome.ttft) is not None:
            self._ttfts.append(ttft)
        self._maybe_show()

    def _maybe_show(self) -> None:
        if self._progress is not None and time.monotonic() - self._shown >= _REFRESH:
            self._show()

    def _show(self) -> None:
        assert self._progress is not None
        assert self._task is not None
        self._shown = time.monotonic()
        ttfts = self._ttfts
        self._progress.update(
            self._task,
            completed=self._done,
            in_flight=self._in_flight,
            failed=failures(self._failed),
            ttft=f"ttft p50 {statistics.median(ttfts) * 1000:.0f} ms" if ttfts else "",
        )

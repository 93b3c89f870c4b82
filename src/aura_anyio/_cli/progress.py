"""The batch progress bar on stderr (rich), shown only on a terminal."""

from __future__ import annotations

import time
import typing

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if typing.TYPE_CHECKING:
    from types import TracebackType

    from .batch import BatchStats

__all__ = ["BatchProgress", "failures", "rates"]


@typing.final
class BatchProgress:
    """``with BatchProgress(enabled=...) as bar: ... bar.update(stats)``.

    Shows done of total, failures, cache hits, requests and tokens a second (one decimal: a
    slow batch is not "0/s"), the time elapsed and left, on stderr, if ``enabled`` and
    stderr is a terminal; otherwise does nothing.
    """

    def __init__(self, *, enabled: bool) -> None:
        console = Console(stderr=True)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.monotonic()
        if enabled and console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]}"),
                TextColumn("{task.fields[cached]}"),
                TextColumn("{task.fields[rate]}"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=console,
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

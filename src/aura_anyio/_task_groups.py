"""A task group held by an async context manager around its caller's block."""

from __future__ import annotations

import contextlib
import typing

import anyio

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from anyio.abc import TaskGroup

__all__ = ["hosted_task_group"]


@contextlib.asynccontextmanager
async def hosted_task_group() -> AsyncGenerator[TaskGroup, None]:
    """Run a task group around the caller's block; leaving it cancels and awaits the tasks.

    For objects whose tasks serve the caller's block (a fan-out's workers, a server's
    connections): the block runs inside the group's scope, so an exception raised there
    would come out of the group wrapped in an exception group; it leaves as itself instead.
    The group's own tasks must raise nothing.
    """
    caller_error: Exception | None = None
    async with anyio.create_task_group() as task_group:
        try:
            yield task_group
        except Exception as exc:
            caller_error = exc
        finally:
            task_group.cancel_scope.cancel()
    if caller_error is not None:
        raise caller_error

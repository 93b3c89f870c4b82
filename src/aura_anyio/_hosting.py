"""Task groups hosted by async context managers: leaving them the same way everywhere."""

from __future__ import annotations

import typing

import anyio

if typing.TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup

__all__ = ["leave_task_group"]


async def leave_task_group(
    task_group: TaskGroup,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback: TracebackType | None,
) -> bool | None:
    """Cancel a task group entered in ``__aenter__`` and wait for its tasks, from ``__aexit__``.

    The caller's block runs inside the group's scope, so an exception raised there would come
    out of a Trio nursery wrapped in an exception group; it leaves as itself instead. The
    group's tasks must raise nothing of their own.
    """
    task_group.cancel_scope.cancel()
    if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
        await task_group.__aexit__(None, None, None)
        return None
    return await task_group.__aexit__(exc_type, exc, traceback)

"""Deadlines that cost nothing when there is none, and closing that cancellation cannot stop.

Most calls have no deadline (``Timeouts`` defaults to none for the first chunk and the
whole reply, and a fan-out to no ``request_timeout``); entering a cancel scope for them
would be a cost on every request and every read, so :func:`run_until` enters one only for
a finite deadline. This is the one place that choice is made.
"""

from __future__ import annotations

import math
import typing

import anyio

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["CLOSE_TIMEOUT", "DeadlineExpired", "close_shielded", "deadline_after", "run_until"]

_T = typing.TypeVar("_T")
_P = typing.ParamSpec("_P")

# Closing is shielded from cancellation, so that nothing leaks, but must not hang on a
# dead peer.
CLOSE_TIMEOUT = 5.0


class DeadlineExpired(Exception):
    """The deadline passed before the call finished; the caller says what that means."""


def deadline_after(seconds: float | None) -> float:
    """The deadline ``seconds`` from now, on AnyIO's clock; ``math.inf`` for ``None``."""
    return math.inf if seconds is None else anyio.current_time() + seconds


def run_until(
    deadline: float, func: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
) -> Awaitable[_T]:
    """Return an awaitable of ``func(*args, **kwargs)``, cancelled if ``deadline`` passes first.

    Awaiting it raises :class:`DeadlineExpired` if the deadline passed (``func`` was then
    cancelled). Without a deadline it is ``func``'s own awaitable: no scope, no extra frame,
    for a call made once per chunk of a reply.
    """
    if deadline == math.inf:
        return func(*args, **kwargs)
    return _within(deadline, func(*args, **kwargs))


async def _within(deadline: float, awaitable: Awaitable[_T]) -> _T:
    with anyio.CancelScope(deadline=deadline):
        return await awaitable
    raise DeadlineExpired


async def close_shielded(
    func: Callable[_P, Awaitable[object]], /, *args: _P.args, **kwargs: _P.kwargs
) -> None:
    """Await ``func(*args, **kwargs)`` shielded from cancellation, for at most
    :data:`CLOSE_TIMEOUT` seconds."""
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + CLOSE_TIMEOUT):
        await func(*args, **kwargs)

"""Admitting the attempts of a fan-out: a token bucket, and a pause all requests share."""

from __future__ import annotations

import typing

import anyio
import anyio.lowlevel

__all__ = ["Gate"]


@typing.final
class Gate:
    """Let attempts go at most ``rate`` a second, and none while the server asked to wait.

    The bucket holds one second's worth of tokens (at least one) and starts full, so a burst
    is never more than a second's worth. A 429 or a ``Retry-After`` seen by any request
    pauses all of them (:meth:`pause`): the server's limit is the client's, not one
    request's.
    """

    __slots__ = ("_capacity", "_lock", "_rate", "_resume_at", "_tokens", "_updated")

    def __init__(self, rate: float | None = None) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate or 0.0)
        self._tokens = self._capacity
        self._updated: float | None = None
        self._resume_at = 0.0
        # Waiting for a token holds the lock, so waiters take tokens in arrival order.
        self._lock = anyio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every attempt not yet admitted until ``seconds`` from now (or later)."""
        self._resume_at = max(self._resume_at, anyio.current_time() + seconds)

    async def _resumed(self) -> None:
        # A sleep to a deadline that another request may push back meanwhile.
        while (wait := self._resume_at - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)

    async def admit(self) -> None:
        """Wait until one more attempt may go; always a checkpoint."""
        await anyio.lowlevel.checkpoint()
        await self._resumed()
        if self._rate is None:
            return
        async with self._lock:
            while True:
                now = anyio.current_time()
                if self._updated is not None:
                    elapsed = now - self._updated
                    self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    break
                await anyio.sleep((1 - self._tokens) / self._rate)
        # A pause may have begun while this attempt waited for its token.
        await self._resumed()

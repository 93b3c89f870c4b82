"""Admitting the attempts of a fan-out: a bucket of requests, a bucket of tokens, and a pause
all requests share."""

from __future__ import annotations

import typing

import anyio
import anyio.lowlevel

__all__ = ["Admission", "Gate"]


@typing.final
class _Bucket:
    """A token bucket: ``capacity`` at most, refilled at ``per_second``, starting full.

    Waiting holds a lock, so waiters take in arrival order; :meth:`give` may leave the level
    below zero (a debt the refill pays off before anyone else takes).
    """

    __slots__ = ("_capacity", "_level", "_lock", "_per_second", "_updated")

    def __init__(self, capacity: float, per_second: float) -> None:
        self._capacity = capacity
        self._per_second = per_second
        self._level = capacity
        self._updated: float | None = None
        self._lock = anyio.Lock()

    def _refill(self) -> None:
        now = anyio.current_time()
        if self._updated is not None:
            elapsed = now - self._updated
            self._level = min(self._capacity, self._level + elapsed * self._per_second)
        self._updated = now

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` is in the bucket, and take it."""
        async with self._lock:
            while True:
                self._refill()
                if self._level >= amount:
                    self._level -= amount
                    return
                await anyio.sleep((amount - self._level) / self._per_second)

    def give(self, amount: float) -> None:
        """Put ``amount`` back (or, if negative, take it without waiting), up to the capacity."""
        self._refill()
        self._level = min(self._capacity, self._level + amount)


class Admission(typing.Protocol):
    """What a fan-out's attempts go through: :class:`Gate` in one process; a job-wide limit
    shared by many (``aura_anyio.ray``) is another."""

    tokens_per_minute: float | None

    async def admit(self, tokens: int = 0) -> None:
        """Wait until one more attempt, of about ``tokens`` tokens, may go."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every attempt not yet admitted for ``seconds``: the server asked to wait."""
        ...

    def correct(self, estimated: int, used: int) -> None:
        """Settle an attempt that took ``estimated`` tokens and used ``used``."""
        ...


@typing.final
class Gate:
    """Let attempts go at most ``rate`` a second, within ``tokens_per_minute``, and none while
    the server asked to wait.

    The request bucket holds one second's worth (at least one) and starts full, so a burst
    is never more than a second's worth; the token bucket holds one minute's worth, and each
    attempt takes its estimated tokens from it (:meth:`admit`), which the reply's count later
    corrects (:meth:`correct`). A 429 or a ``Retry-After`` seen by any request pauses all of
    them (:meth:`pause`): the server's limit is the client's, not one request's.
    """

    __slots__ = ("_budget", "_requests", "_resume_at", "tokens_per_minute")

    def __init__(self, rate: float | None = None, tokens_per_minute: float | None = None) -> None:
        self._requests = None if rate is None else _Bucket(max(1.0, rate), rate)
        self.tokens_per_minute: float | None = tokens_per_minute
        self._budget = (
            None
            if tokens_per_minute is None
            else _Bucket(float(tokens_per_minute), tokens_per_minute / 60)
        )
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every attempt not yet admitted until ``seconds`` from now (or later)."""
        self._resume_at = max(self._resume_at, anyio.current_time() + seconds)

    async def _resumed(self) -> None:
        # A sleep to a deadline that another request may push back meanwhile.
        while (wait := self._resume_at - anyio.current_time()) > 0:  # noqa: ASYNC110
            await anyio.sleep(wait)

    async def admit(self, tokens: int = 0) -> None:
        """Wait until one more attempt, of about ``tokens`` tokens, may go; always a checkpoint."""
        await anyio.lowlevel.checkpoint()
        await self._resumed()
        if self._budget is not None and tokens:
            await self._budget.take(tokens)
        if self._requests is not None:
            await self._requests.take(1)
        # A pause may have begun while this attempt waited for its turn.
        await self._resumed()

    def correct(self, estimated: int, used: int) -> None:
        """Settle an attempt that took ``estimated`` tokens and, the server says, used ``used``
        (nothing to settle without a token budget)."""
        if self._budget is not None:
            self._budget.give(estimated - used)

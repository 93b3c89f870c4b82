"""Admitting the attempts of a fan-out: a bucket of requests, a bucket of tokens, and a pause
all requests share."""

from __future__ import annotations

import typing

import anyio
import anyio.lowlevel

__all__ = ["Gate"]


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

    __slots__ = (
        "_budget",
        "_budget_lock",
        "_budget_updated",
        "_capacity",
        "_level",
        "_lock",
        "_rate",
        "_resume_at",
        "_tokens",
        "_updated",
        "tokens_per_minute",
    )

    def __init__(self, rate: float | None = None, tokens_per_minute: float | None = None) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate or 0.0)
        self._tokens = self._capacity
        self._updated: float | None = None
        self._resume_at = 0.0
        # Waiting for a token holds the lock, so waiters take tokens in arrival order.
        self._lock = anyio.Lock()
        self.tokens_per_minute: float | None = tokens_per_minute
        self._budget = 0.0 if tokens_per_minute is None else float(tokens_per_minute)
        self._level = self._budget  # the token bucket starts full; it may go below 0
        self._budget_updated: float | None = None
        self._budget_lock = anyio.Lock()

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
        if self.tokens_per_minute is not None and tokens:
            await self._take_budget(tokens)
        if self._rate is not None:
            await self._take_request()
        # A pause may have begun while this attempt waited for its turn.
        await self._resumed()

    async def _take_request(self) -> None:
        assert self._rate is not None
        async with self._lock:
            while True:
                now = anyio.current_time()
                if self._updated is not None:
                    elapsed = now - self._updated
                    self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await anyio.sleep((1 - self._tokens) / self._rate)

    def _refill(self) -> None:
        now = anyio.current_time()
        if self._budget_updated is not None:
            per_second = self._budget / 60
            self._level = min(self._budget, self._level + (now - self._budget_updated) * per_second)
        self._budget_updated = now

    async def _take_budget(self, tokens: int) -> None:
        async with self._budget_lock:  # in arrival order, like the request bucket
            while True:
                self._refill()
                if self._level >= tokens:
                    self._level -= tokens
                    return
                await anyio.sleep((tokens - self._level) / (self._budget / 60))

    def correct(self, estimated: int, used: int) -> None:
        """Settle an attempt that took ``estimated`` tokens and, the server says, used ``used``."""
        self._refill()
        self._level = min(self._budget, self._level + estimated - used)

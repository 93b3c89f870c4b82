"""A rate limit that attempts reserve from: a fan-out's own (``_ratelimit.RateLimiter``), or a whole
job's that many processes share (``aura_anyio.ray``); pure, no I/O.

Each attempt asks once, and is told how long to wait before it goes; across processes the
limit holds without their clocks agreeing, since only the keeper's clock is read. There are
two buckets: a second's worth of requests (at least one) and a minute's worth of tokens,
each starting full; a reservation that finds a bucket short takes what it needs anyway, and
waits until the bucket would have refilled, so later ones queue behind it. A pause (a 429
seen anywhere) holds every attempt until it ends.
"""

from __future__ import annotations

import math
import typing

__all__ = ["Bucket", "Reservations"]


@typing.final
class Bucket:
    """A token bucket that may go below empty: the debt is the time the next taker waits.

    ``capacity`` at most, refilled at ``per_second``, starting full; the clock is the
    caller's (``now``), so it is the same arithmetic on any clock, in any process.
    """

    __slots__ = ("_at", "_capacity", "_level", "_per_second")

    def __init__(self, capacity: float, per_second: float) -> None:
        self._capacity = capacity
        self._per_second = per_second
        self._level = capacity
        self._at: float | None = None

    def take(self, now: float, amount: float) -> float:
        """Take ``amount`` at ``now``; return how long the taker waits for it."""
        self.give(now, -amount)
        return max(0.0, -self._level / self._per_second)

    def give(self, now: float, amount: float) -> None:
        """Put ``amount`` back at ``now`` (or take it, if negative), up to the capacity."""
        if self._at is not None and now > self._at:
            self._level = min(self._capacity, self._level + (now - self._at) * self._per_second)
        self._at = now if self._at is None else max(self._at, now)
        self._level = min(self._capacity, self._level + amount)


@typing.final
class Reservations:
    """The limits of a whole job, kept in one place.

    Args:
        requests_per_second: Attempts a second, every process together; ``None``: no limit.
        tokens_per_minute: Tokens a minute (each attempt's estimate, settled by the count
            its reply reports); ``None``: no limit.
    """

    __slots__ = ("_requests", "_resume_at", "_tokens", "limited")

    def __init__(
        self, requests_per_second: float | None = None, tokens_per_minute: float | None = None
    ) -> None:
        self._requests = (
            None
            if requests_per_second is None
            else Bucket(max(1.0, requests_per_second), requests_per_second)
        )
        self._tokens = (
            None
            if tokens_per_minute is None
            else Bucket(float(tokens_per_minute), tokens_per_minute / 60)
        )
        self._resume_at = -math.inf
        self.limited = self._requests is not None or self._tokens is not None

    def reserve(self, now: float, tokens: int = 0) -> float:
        """Reserve one attempt of about ``tokens`` tokens; return how long it waits first."""
        wait = self.paused_for(now)
        if self._requests is not None:
            wait = max(wait, self._requests.take(now, 1))
        if self._tokens is not None and tokens:
            wait = max(wait, self._tokens.take(now, tokens))
        return wait

    def pause(self, now: float, seconds: float) -> None:
        """Hold every attempt for ``seconds`` from ``now`` (or longer, if held already)."""
        self._resume_at = max(self._resume_at, now + seconds)

    def paused_for(self, now: float) -> float:
        """How long attempts are still held by a pause."""
        return max(0.0, self._resume_at - now)

    def correct(self, now: float, estimated: int, used: int) -> None:
        """Settle an attempt that reserved ``estimated`` tokens and used ``used``."""
        if self._tokens is not None:
            self._tokens.give(now, estimated - used)

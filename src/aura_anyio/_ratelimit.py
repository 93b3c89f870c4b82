"""Admitting the attempts of fan-outs: a bucket of requests, a bucket of tokens, and a pause
all requests share, kept by ``_reservations`` (pure) and waited for here."""

from __future__ import annotations

import typing

import anyio
import anyio.lowlevel

from ._numbers import check_positive
from ._reservations import Reservations

__all__ = ["Limiter", "RateLimiter"]


@typing.runtime_checkable
class Limiter(typing.Protocol):
    """What the attempts of a fan-out go through, to keep a rate, a token budget and the
    pauses servers ask for: a :class:`RateLimiter` keeps them in one event loop; the Ray
    stage keeps a whole job's in a Ray actor. Implement it to keep them elsewhere.

    Attributes:
        tokens_per_minute: The token budget, which decides whether attempts estimate their
            tokens; ``None`` for none.
    """

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
class RateLimiter:
    """Limits that fan-outs share: at most ``requests_per_second`` attempts a second and
    ``tokens_per_minute`` tokens a minute for all of them together, and none while a server
    asked any of them to wait.

    A fan-out given no limiter makes one of its own from its ``requests_per_second`` and
    ``tokens_per_minute``. Give one to several (``client.fan_out(requests, limiter=shared)``)
    when they spend one budget: two models on one account, say, or a fan-out started while
    another runs. It keeps its time on the event loop's clock, so it serves the fan-outs of
    one event loop; the Ray stage shares its limits across processes.

    The request bucket holds one second's worth (at least one) and starts full, so a burst
    is never more than a second's worth; the token bucket holds one minute's worth, and each
    attempt takes its estimated tokens from it (:meth:`admit`), which the reply's count later
    corrects (:meth:`correct`). A 429 or a ``Retry-After`` seen by any request pauses all of
    them (:meth:`pause`): the server's limit is the client's, not one request's.

    Args:
        requests_per_second: Attempts a second, retries included; ``None`` for no limit.
        tokens_per_minute: A budget of tokens a minute (see :meth:`AuraClient.fan_out`);
            ``None`` for no limit.

    Raises:
        InvalidRequestError: A limit is not ``None`` or a positive number.
    """

    __slots__ = ("_reservations", "tokens_per_minute")

    def __init__(
        self, requests_per_second: float | None = None, tokens_per_minute: float | None = None
    ) -> None:
        check_positive("requests_per_second", requests_per_second)
        check_positive("tokens_per_minute", tokens_per_minute)
        # The arithmetic is that of a whole job's limit (pure), on this loop's clock: an
        # attempt reserves its place and sleeps until it comes.
        self._reservations = Reservations(requests_per_second, tokens_per_minute)
        #: The token budget, read to estimate each attempt's tokens; ``None``: no budget.
        self.tokens_per_minute: float | None = tokens_per_minute

    def pause(self, seconds: float) -> None:
        """Hold every attempt not yet admitted until ``seconds`` from now (or later)."""
        self._reservations.pause(anyio.current_time(), seconds)

    async def admit(self, tokens: int = 0) -> None:
        """Wait until one more attempt, of about ``tokens`` tokens, may go; always a checkpoint."""
        await anyio.lowlevel.checkpoint()
        reservations = self._reservations
        wait = reservations.reserve(anyio.current_time(), tokens)
        # A sleep to a deadline that a pause begun meanwhile may push back.
        while wait > 0:
            await anyio.sleep(wait)
            wait = reservations.paused_for(anyio.current_time())

    def correct(self, estimated: int, used: int) -> None:
        """Settle an attempt that took ``estimated`` tokens and, the server says, used ``used``
        (nothing to settle without a token budget)."""
        self._reservations.correct(anyio.current_time(), estimated, used)

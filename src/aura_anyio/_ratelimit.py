"""Admitting the attempts of a fan-out: a bucket of requests, a bucket of tokens, and a pause
all requests share, kept by ``_reservations`` (pure) and waited for here."""

from __future__ import annotations

import typing

import anyio
import anyio.lowlevel

from ._reservations import Reservations

__all__ = ["Admission", "Gate"]


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
    them (:meth:`pause`): the server's limit is the client's, not one request's. The
    arithmetic is that of a whole job's limit (``_reservations``), on this loop's clock: an
    attempt reserves its place and sleeps until it comes.
    """

    __slots__ = ("_reservations", "tokens_per_minute")

    def __init__(self, rate: float | None = None, tokens_per_minute: float | None = None) -> None:
        self._reservations = Reservations(rate, tokens_per_minute)
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

"""The endpoints of one client, shared by its requests: an attempt waits here for one.

``_routing`` decides (pure, on a clock it is given); this module gives it AnyIO's clock and
does the waiting: when no endpoint can take an attempt, the attempt sleeps until one's pause
or bench ends, or until an attempt in flight ends, whichever comes first, and never spins.
"""

from __future__ import annotations

import math
import typing

import anyio

from ._routing import Endpoint, Router, Ticket

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Endpoints"]


@typing.final
class Endpoints:
    """Several servers of one model, each taking at most ``max_in_flight`` attempts at once.

    Every attempt takes a :class:`Ticket` with :meth:`take` and gives it back with exactly one
    of :meth:`succeeded`, :meth:`failed` or :meth:`ended` (and :meth:`pause` before, for a
    429).
    """

    __slots__ = ("_changed", "_router", "_waiting")

    def __init__(self, urls: Sequence[str], max_in_flight: int) -> None:
        self._router = Router(urls, max_in_flight)
        self._changed: anyio.Event | None = None  # made only while an attempt waits
        self._waiting = 0

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Each endpoint's figures, in the order the URLs were given."""
        return self._router.endpoints

    async def take(self, avoid: Endpoint | None = None) -> Ticket:
        """Wait until an endpoint can take an attempt; the attempt is then in flight there.

        ``avoid``: the endpoint of the attempt before, which a retry leaves to the others.
        Cancelling the wait takes nothing.
        """
        await anyio.lowlevel.checkpoint()
        router = self._router
        while True:
            now = anyio.current_time()
            ticket = router.choose(now, avoid)
            if ticket is not None:
                return ticket
            ready = router.ready_at(now)
            if self._changed is None:
                self._changed = anyio.Event()
            changed = self._changed
            self._waiting += 1
            try:
                with anyio.move_on_after(math.inf if ready is None else ready - now):
                    await changed.wait()
            finally:
                self._waiting -= 1

    def succeeded(self, ticket: Ticket) -> None:
        """The attempt ended well."""
        self._router.succeeded(ticket)
        self._wake()

    def failed(self, ticket: Ticket) -> None:
        """The attempt failed the server's way (a connection error, a timeout, a 5xx)."""
        self._router.failed(ticket, anyio.current_time())
        self._wake()

    def ended(self, ticket: Ticket) -> None:
        """The attempt ended with no verdict on the server (cancelled, or its own fault)."""
        self._router.ended(ticket)
        self._wake()

    def pause(self, ticket: Ticket, seconds: float) -> None:
        """Hold the attempt's endpoint back for ``seconds`` (a 429 or ``Retry-After``)."""
        self._router.pause(ticket, anyio.current_time() + seconds)

    def _wake(self) -> None:
        """Let the waiting attempts look again: a slot or a probe's verdict came."""
        if self._waiting and self._changed is not None:
            self._changed.set()
            self._changed = None

"""The endpoints of one client, shared by its requests: an attempt waits here for one.

``_routing`` decides (pure, on a clock it is given); this module gives it AnyIO's clock and
does the waiting. When no endpoint can take an attempt, the attempt queues, first come first
served as with a semaphore, and sleeps until an attempt in flight ends (which wakes the first
in the queue) or until a pause or bench ends, whichever comes first; it never spins.
"""

from __future__ import annotations

import collections
import math
import typing

import anyio

from ._exceptions import RequestInfo
from ._routing import Endpoint, Router, Ticket

if typing.TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Endpoints", "Target"]


@typing.final
class Target(typing.NamedTuple):
    """Where an attempt at one endpoint is sent, and how its errors name it."""

    url: str
    info: RequestInfo


@typing.final
class _Waiter:
    __slots__ = ("event", "gone")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.gone = False  # left the queue: a wake-up skips it


@typing.final
class Endpoints:
    """Several servers of one model, each taking at most ``max_in_flight`` attempts at once.

    Every attempt takes a :class:`Ticket` with :meth:`take` and gives it back with exactly one
    of :meth:`succeeded`, :meth:`failed` or :meth:`ended` (and :meth:`pause` before, for a
    429). Failures bench an endpoint only when there are several: one endpoint has nowhere
    else to send.

    Args:
        urls: The servers' root URLs.
        max_in_flight: The most attempts in flight at one endpoint.
        path: The URL a request to a server goes to, from its root URL.
    """

    __slots__ = ("_queue", "_router", "_targets", "several")

    def __init__(
        self, urls: Sequence[str], max_in_flight: int, path: Callable[[str], str] = str
    ) -> None:
        self.several: bool = len(urls) > 1
        self._router = Router(urls, max_in_flight, bench=self.several)
        self._targets = {
            endpoint: Target(url := path(endpoint.url), RequestInfo("POST", url))
            for endpoint in self._router.endpoints
        }
        self._queue: collections.deque[_Waiter] = collections.deque()

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Each endpoint's figures, in the order the URLs were given."""
        return self._router.endpoints

    def target(self, endpoint: Endpoint) -> Target:
        """Where an attempt at ``endpoint`` is sent."""
        return self._targets[endpoint]

    async def take(
        self, avoid: Endpoint | None = None, patience: float = math.inf
    ) -> Ticket | None:
        """Wait until an endpoint can take an attempt; the attempt is then in flight there.

        ``avoid``: the endpoint of the attempt before, which a retry leaves to the others.
        Returns ``None`` when every endpoint stayed full (each at its ``max_in_flight``) for
        ``patience`` seconds; a wait for a pause or a bench to end is bounded by the caller's
        own deadline instead. Cancelling the wait takes nothing.
        """
        queue = self._queue
        while queue and queue[0].gone:
            queue.popleft()
        if not queue:  # no one waits before this attempt: the common case, at no cost
            ticket = self._router.choose(anyio.current_time(), avoid)
            if ticket is not None:
                return ticket
        return await self._wait(avoid, patience)

    async def _wait(self, avoid: Endpoint | None, patience: float) -> Ticket | None:
        router = self._router
        waiter = _Waiter()
        self._queue.append(waiter)
        full_since: float | None = None
        try:
            while True:
                now = anyio.current_time()
                ready = router.ready_at(now)
                if ready is None:  # held back by the attempts in flight: one's end wakes us
                    if full_since is None:
                        full_since = now
                    wait = full_since + patience - now
                    if wait <= 0:
                        return None
                else:
                    full_since = None
                    wait = ready - now
                with anyio.move_on_after(wait):
                    await waiter.event.wait()
                ticket = router.choose(anyio.current_time(), avoid)
                if ticket is not None:
                    return ticket
                if waiter.event.is_set():  # woken, and beaten to it: first in line again
                    waiter.event = anyio.Event()
                    self._queue.appendleft(waiter)
        finally:
            waiter.gone = True
            # Whatever this attempt took or left, an endpoint may be free for the next.
            if self._queue and router.free(anyio.current_time()):
                self._wake()

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
        """Let the first attempt in the queue look again: a slot or a probe's verdict came."""
        queue = self._queue
        while queue:
            waiter = queue.popleft()
            if not waiter.gone:
                waiter.event.set()
                return

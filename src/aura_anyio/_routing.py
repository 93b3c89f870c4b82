"""Which of several servers of one model takes the next attempt; pure, no I/O.

DESIGN section 8. Each attempt goes to the endpoint with the fewest attempts in flight, ties
taken in turn; an endpoint at its ``max_connections`` takes no more. Three failed attempts in
a row (a connection error, a timeout, a 5xx) bench an endpoint for a cool-down that doubles
from 1 s to 60 s; when it is over, a single probe decides: its success brings the endpoint
back, its failure benches it again for twice as long. A 429 or ``Retry-After`` pauses that
endpoint alone. The client owns the clock and the waiting: every method takes ``now``, and
:meth:`Router.ready_at` says when to look again when no endpoint can take an attempt.
"""

from __future__ import annotations

import dataclasses
import math
import typing

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    EmptyReplyError,
    IncompleteStreamError,
)

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "FAILURES_TO_BENCH",
    "FIRST_COOL_DOWN",
    "LONGEST_COOL_DOWN",
    "Endpoint",
    "Router",
    "Ticket",
    "counts_against",
]

FAILURES_TO_BENCH = 3
FIRST_COOL_DOWN = 1.0
LONGEST_COOL_DOWN = 60.0


def counts_against(error: APIError) -> bool:
    """Whether ``error`` is the endpoint's failure, toward benching it: a connection error or
    a timeout (a reply cut short among them), an empty reply, or a 5xx status. A 4xx is the
    request's own fault, a 429 a pause, an error reported inside a reply the model's: none of
    them is.
    """
    if isinstance(error, IncompleteStreamError):  # what broke the reply decides
        cause = error.__cause__
        return isinstance(cause, APIError) and counts_against(cause)
    if isinstance(error, APIStatusError):
        return error.status_code >= 500
    return isinstance(error, (APIConnectionError, EmptyReplyError))


@typing.final
@dataclasses.dataclass(eq=False)
class Endpoint:
    """One server and its figures (``client.endpoints``)."""

    url: str
    in_flight: int = 0
    """Attempts sent to it and not yet ended."""
    done: int = 0
    """Attempts it finished well."""
    failed: int = 0
    """Attempts that failed there (connection errors, timeouts, 5xx)."""
    benched_until: float | None = None
    """While benched, the monotonic time its cool-down ends (a probe then decides), else ``None``.
    """


@typing.final
class _Route:
    """The router's own state of one endpoint, beside the figures it shows."""

    __slots__ = ("cool_down", "endpoint", "paused_until", "probing", "streak")

    def __init__(self, url: str) -> None:
        self.endpoint: Endpoint = Endpoint(url)
        self.streak: int = 0  # failed attempts in a row
        self.cool_down: float = 0.0  # the last bench's length
        self.probing: bool = False  # its probe is in flight
        self.paused_until: float = 0.0  # a 429 or Retry-After holds it back until then

    def free(self, now: float, limit: int) -> bool:
        """Whether it can take an attempt now."""
        endpoint = self.endpoint
        if self.paused_until > now or endpoint.in_flight >= limit:
            return False
        if endpoint.benched_until is None:
            return True
        return endpoint.benched_until <= now and not self.probing  # the one probe

    def ready_at(self) -> float:
        """When it could take an attempt, capacity aside: the end of its pause or bench."""
        benched_until = self.endpoint.benched_until
        return max(self.paused_until, -math.inf if benched_until is None else benched_until)


@typing.final
@dataclasses.dataclass(frozen=True, eq=False)
class Ticket:
    """One attempt at one endpoint, from :meth:`Router.choose` to its end."""

    route: _Route
    probe: bool  # the one attempt that decides whether a benched endpoint is back

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint the attempt went to."""
        return self.route.endpoint


@typing.final
class Router:
    """The endpoints of one client and the rules that pick one per attempt.

    Args:
        urls: The endpoints, at least one, no repeats.
        max_in_flight: The most attempts in flight at one endpoint (its ``max_connections``).
        bench: Whether failures bench an endpoint; off, they are only counted (a client
            with one endpoint has nowhere else to send, and behaves as it always did).
    """

    __slots__ = ("_bench", "_limit", "_next", "_routes", "endpoints")

    def __init__(self, urls: Sequence[str], max_in_flight: int, *, bench: bool = True) -> None:
        if not urls:
            raise ValueError("base_url: give at least one URL")
        if len(set(urls)) != len(urls):
            raise ValueError("base_url: a URL is given twice")
        self._routes = tuple(_Route(url) for url in urls)
        self.endpoints: tuple[Endpoint, ...] = tuple(route.endpoint for route in self._routes)
        self._limit = max_in_flight
        self._bench = bench
        self._next = 0  # where the search for the least busy starts: ties rotate

    def choose(self, now: float, avoid: Endpoint | None = None) -> Ticket | None:
        """An attempt at the endpoint to take it now, counted in flight; ``None`` if none can.

        ``avoid`` (the endpoint of the failed attempt before, for a retry) is taken only when
        no other can take the attempt.
        """
        routes = self._routes
        count = len(routes)
        best: _Route | None = None
        fallback: _Route | None = None
        for step in range(count):
            route = routes[(self._next + step) % count]
            if not route.free(now, self._limit):
                continue
            if route.endpoint is avoid:
                fallback = route
            elif best is None or route.endpoint.in_flight < best.endpoint.in_flight:
                best = route
        chosen = best if best is not None else fallback
        if chosen is None:
            return None
        self._next = (routes.index(chosen) + 1) % count
        chosen.endpoint.in_flight += 1
        probe = chosen.endpoint.benched_until is not None
        chosen.probing = chosen.probing or probe
        return Ticket(chosen, probe)

    def free(self, now: float) -> bool:
        """Whether an endpoint can take an attempt now."""
        return any(route.free(now, self._limit) for route in self._routes)

    def ready_at(self, now: float) -> float | None:
        """When an endpoint that is paused or benched (and not probing) can take an attempt.

        ``None`` if one is free now, or if what holds them all back is their attempts in
        flight (one ending frees a slot: wait for that, not for a time).
        """
        if self.free(now):
            return None
        times = [
            route.ready_at()
            for route in self._routes
            if route.endpoint.in_flight < self._limit and not route.probing
        ]
        return min(times) if times else None

    def succeeded(self, ticket: Ticket) -> None:
        """The attempt ended well: the endpoint's failure streak ends, and so does any bench."""
        route = self._end(ticket)
        route.endpoint.done += 1
        route.endpoint.benched_until = None
        route.streak = 0
        route.cool_down = 0.0

    def failed(self, ticket: Ticket, now: float) -> None:
        """The attempt failed the server's way (a connection error, a timeout, a 5xx)."""
        route = self._end(ticket)
        endpoint = route.endpoint
        endpoint.failed += 1
        route.streak += 1
        if endpoint.benched_until is not None:
            if ticket.probe:  # not back: benched again, twice as long
                route.cool_down = min(LONGEST_COOL_DOWN, route.cool_down * 2)
                endpoint.benched_until = now + route.cool_down
        elif route.streak >= FAILURES_TO_BENCH and self._bench:
            route.cool_down = FIRST_COOL_DOWN
            endpoint.benched_until = now + FIRST_COOL_DOWN

    def ended(self, ticket: Ticket) -> None:
        """The attempt ended with no verdict on the server (cancelled, the request's own
        fault, or a 429): a probe may go again."""
        self._end(ticket)

    def pause(self, ticket: Ticket, until: float) -> None:
        """Hold the attempt's endpoint back until ``until`` (or later): a 429 or
        ``Retry-After`` it was answered with."""
        ticket.route.paused_until = max(ticket.route.paused_until, until)

    @staticmethod
    def _end(ticket: Ticket) -> _Route:
        route = ticket.route
        route.endpoint.in_flight -= 1
        if ticket.probe:
            route.probing = False
        return route

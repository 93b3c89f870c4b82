"""The choice of endpoint per attempt (``_routing``): Hypothesis runs it against a model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    EmptyReplyError,
    IncompleteStreamError,
    RateLimitError,
    ServerError,
)
from aura_anyio._routing import (
    FAILURES_TO_BENCH,
    FIRST_COOL_DOWN,
    LONGEST_COOL_DOWN,
    Endpoint,
    Router,
    Ticket,
    counts_against,
)

URLS = ["http://a:1", "http://b:2", "http://c:3", "http://d:4"]


def test_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Router([], 1)
    with pytest.raises(ValueError, match="twice"):
        Router(["http://a", "http://a"], 1)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 60))
def test_healthy_endpoints_share_the_attempts_evenly(count: int, limit: int, attempts: int) -> None:
    router = Router(URLS[:count], limit)
    for _ in range(min(attempts, count * limit)):
        chosen = router.choose(0.0)
        assert chosen is not None
    loads = [endpoint.in_flight for endpoint in router.endpoints]
    assert max(loads) - min(loads) <= 1
    assert sum(loads) == min(attempts, count * limit)


def test_ties_rotate_and_a_retry_goes_elsewhere() -> None:
    router = Router(URLS[:3], 10)
    order = []
    for _ in range(6):
        chosen = router.choose(0.0)
        assert chosen is not None
        order.append(chosen.endpoint.url)
        router.succeeded(chosen)
    assert order == URLS[:3] * 2
    first = router.choose(0.0)
    assert first is not None
    router.failed(first, 0.0)
    retry = router.choose(0.0, avoid=first.endpoint)
    assert retry is not None
    assert retry.endpoint is not first.endpoint
    lone = Router(URLS[:1], 10)
    only = lone.choose(0.0)
    assert only is not None
    lone.failed(only, 0.0)
    again = lone.choose(0.0, avoid=only.endpoint)
    assert again is not None
    assert again.endpoint is only.endpoint  # no other: the same one


def fail_in_a_row(router: Router, now: float) -> Endpoint:
    """Fail attempts at the router's first endpoint until it is benched."""
    for _ in range(FAILURES_TO_BENCH):
        ticket = router.choose(now)
        assert ticket is not None
        assert not ticket.probe
        router.failed(ticket, now)
    return router.endpoints[0]


def test_the_cool_down_doubles_to_a_minute_and_a_success_resets_it() -> None:
    router = Router(URLS[:1], 10)
    now = 0.0
    endpoint = fail_in_a_row(router, now)
    lengths: list[float] = []
    while len(lengths) < 9:
        assert endpoint.benched_until is not None
        lengths.append(endpoint.benched_until - now)
        assert router.choose(now) is None
        assert router.ready_at(now) == endpoint.benched_until
        now = endpoint.benched_until
        probe = router.choose(now)
        assert probe is not None
        assert probe.probe
        assert router.choose(now) is None  # one probe at a time
        assert router.ready_at(now) is None  # waiting on the probe, not on a time
        router.failed(probe, now)
    assert lengths == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert endpoint.benched_until is not None
    now = endpoint.benched_until
    probe = router.choose(now)
    assert probe is not None
    router.succeeded(probe)
    endpoint = router.endpoints[0]  # (for mypy, which thinks it still benched)
    assert endpoint.benched_until is None
    fail_in_a_row(router, now)
    assert endpoint.benched_until == now + FIRST_COOL_DOWN


def test_only_the_probe_decides() -> None:
    router = Router(URLS[:1], 10)
    early = router.choose(0.0)  # sent before the bench, ends during it
    assert early is not None
    endpoint = fail_in_a_row(router, 0.0)
    probe = router.choose(FIRST_COOL_DOWN)
    assert probe is not None
    router.failed(early, FIRST_COOL_DOWN)  # not the probe: the bench stands as it is
    assert endpoint.benched_until == FIRST_COOL_DOWN
    assert router.choose(FIRST_COOL_DOWN) is None  # the probe is still out
    router.succeeded(probe)
    assert endpoint.benched_until is None


def test_a_probe_with_no_verdict_lets_another_probe_go() -> None:
    router = Router(URLS[:1], 10)
    fail_in_a_row(router, 0.0)
    probe = router.choose(FIRST_COOL_DOWN)
    assert probe is not None
    router.ended(probe)  # cancelled
    again = router.choose(FIRST_COOL_DOWN)
    assert again is not None
    assert again.probe


def test_a_pause_holds_back_that_endpoint_only() -> None:
    router = Router(URLS[:2], 10)
    first, second = router.endpoints
    answered = router.choose(0.0)  # answered with a 429
    assert answered is not None
    assert answered.endpoint is first
    router.pause(answered, 5.0)
    router.pause(answered, 2.0)  # never shortened
    router.ended(answered)
    for _ in range(4):
        chosen = router.choose(1.0)
        assert chosen is not None
        assert chosen.endpoint is second
        last = chosen
    router.pause(last, 3.0)
    assert router.choose(1.0) is None
    assert router.ready_at(1.0) == 3.0
    later = router.choose(3.0)
    assert later is not None
    assert later.endpoint is second
    latest = router.choose(5.0)
    assert latest is not None
    assert latest.endpoint is first


def test_when_every_endpoint_is_full_the_wait_is_for_an_attempt_to_end() -> None:
    router = Router(URLS[:2], 1)
    tickets = [router.choose(0.0), router.choose(0.0)]
    assert router.choose(0.0) is None
    assert router.ready_at(0.0) is None  # no time would help: an end will
    assert tickets[0] is not None
    router.succeeded(tickets[0])
    assert router.free(0.0)


class RoutingMachine(RuleBasedStateMachine):
    """Attempts chosen, ended in every way, pauses and the clock moving, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.router = Router(URLS[:1], 1)
        self.now = 0.0
        self.flying: list[Ticket] = []
        self.limit = 1

    @initialize(count=st.integers(1, 4), limit=st.integers(1, 3))
    def start(self, count: int, limit: int) -> None:
        self.router = Router(URLS[:count], limit)
        self.limit = limit

    @rule(avoid=st.booleans())
    def choose(self, avoid: bool) -> None:
        previous = self.flying[-1].endpoint if avoid and self.flying else None
        free = [r.endpoint for r in self.router._routes if r.free(self.now, self.limit)]
        loads = {id(e): e.in_flight for e in free}
        chosen = self.router.choose(self.now, avoid=previous)
        if not free:
            assert chosen is None
            return
        assert chosen is not None
        assert id(chosen.endpoint) in loads
        assert chosen.probe == (chosen.endpoint.benched_until is not None)
        others = [e for e in free if e is not previous]
        if others:
            assert chosen.endpoint is not previous
            assert loads[id(chosen.endpoint)] == min(loads[id(e)] for e in others)
        self.flying.append(chosen)

    @precondition(lambda self: self.flying)
    @rule(data=st.data(), outcome=st.sampled_from(["ok", "failed", "ended"]))
    def end(self, data: st.DataObject, outcome: str) -> None:
        ticket = self.flying.pop(data.draw(st.integers(0, len(self.flying) - 1)))
        if outcome == "ok":
            self.router.succeeded(ticket)
            assert ticket.endpoint.benched_until is None
        elif outcome == "failed":
            self.router.failed(ticket, self.now)
        else:
            self.router.ended(ticket)

    @rule(index=st.integers(0, 3), seconds=st.floats(0, 90))
    def pause(self, index: int, seconds: float) -> None:
        routes = self.router._routes
        self.router.pause(Ticket(routes[index % len(routes)], False), self.now + seconds)

    @rule(seconds=st.floats(0, 90))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def wait_until_ready(self) -> None:
        ready = self.router.ready_at(self.now)
        if ready is not None:
            assert ready > self.now
            self.now = ready
            assert self.router.free(self.now)

    @invariant()
    def counts_hold(self) -> None:
        for route in self.router._routes:
            endpoint = route.endpoint
            flying = sum(ticket.endpoint is endpoint for ticket in self.flying)
            assert endpoint.in_flight == flying
            assert 0 <= endpoint.in_flight <= self.limit
            if endpoint.benched_until is not None:
                assert 0 < route.cool_down <= LONGEST_COOL_DOWN
            probes = sum(t.endpoint is endpoint and t.probe for t in self.flying)
            assert probes <= 1
            assert route.probing == (probes == 1)


TestRouting = RoutingMachine.TestCase
TestRouting.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


def cut_by(cause: BaseException | None) -> IncompleteStreamError:
    error = IncompleteStreamError("the reply broke", partial_text="par")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "against"),
    [
        (APIConnectionError("refused"), True),
        (APITimeoutError("read timeout"), True),
        (EmptyReplyError("a 200 with no text"), True),
        (APIConnectionError("bad certificate", retryable=False), True),
        (ServerError("down", status_code=503), True),
        (APIStatusError("not implemented", status_code=501), True),
        (RateLimitError("slow down"), False),
        (APIStatusError("no such model", status_code=404), False),
        (APIStatusError("bad request", status_code=400), False),
        (APIError("the server reported an error: overloaded model"), False),
        (cut_by(APIConnectionError("reset")), True),
        (cut_by(APIError("the server reported an error")), False),
        (cut_by(None), False),
    ],
)
def test_what_counts_against_an_endpoint(error: APIError, against: bool) -> None:
    assert counts_against(error) is against

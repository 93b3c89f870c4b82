"""Waiting for an endpoint (``_endpoints``): woken by an end, a pause's end or a bench's end."""

from __future__ import annotations

import typing

import anyio
import pytest

from aura_anyio import _routing
from aura_anyio._endpoints import Endpoints
from aura_anyio._exceptions import RequestInfo

if typing.TYPE_CHECKING:
    from aura_anyio._routing import Endpoint, Ticket

URLS = ["http://a:1", "http://b:2"]


async def test_a_free_endpoint_is_taken_at_once() -> None:
    endpoints = Endpoints(URLS, 1)
    first, second = await take(endpoints), await take(endpoints)
    assert {first.endpoint.url, second.endpoint.url} == set(URLS)
    assert [e.in_flight for e in endpoints.endpoints] == [1, 1]


async def test_when_all_are_full_an_end_lets_the_next_attempt_go() -> None:
    endpoints = Endpoints(URLS, 1)
    tickets = [await take(endpoints), await take(endpoints)]
    taken = []

    async def wait_for_one() -> None:
        taken.append(await take(endpoints))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait_for_one)
            await anyio.wait_all_tasks_blocked()
            assert not taken  # waiting, not spinning
            endpoints.succeeded(tickets[1])
    assert taken[0].endpoint is tickets[1].endpoint
    assert endpoints.endpoints[1].done == 1


async def test_when_all_are_benched_attempts_wait_for_the_cool_down_and_one_probe_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_routing, "FIRST_COOL_DOWN", 0.05)
    endpoints = Endpoints(URLS, 10)
    for _ in range(_routing.FAILURES_TO_BENCH * 2):  # ties rotate: each fails three times
        endpoints.failed(await take(endpoints))
    assert all(endpoint.benched_until is not None for endpoint in endpoints.endpoints)
    with anyio.fail_after(10):
        probes = [await take(endpoints), await take(endpoints)]
    assert [probe.probe for probe in probes] == [True, True]
    assert {probe.endpoint.url for probe in probes} == set(URLS)
    assert anyio.current_time() >= max(e.benched_until or 0 for e in endpoints.endpoints)
    later: list[Ticket] = []

    async def after_the_probes() -> None:
        later.append(await take(endpoints))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(after_the_probes)
            await anyio.wait_all_tasks_blocked()
            assert not later  # one probe at a time, at each
            endpoints.failed(probes[0])  # benched again, for twice as long
            await anyio.wait_all_tasks_blocked()
            assert not later
            endpoints.succeeded(probes[1])
    assert later[0].endpoint is probes[1].endpoint
    assert not later[0].probe
    assert probes[1].endpoint.benched_until is None
    assert probes[0].endpoint.benched_until is not None


async def test_one_endpoint_is_never_benched() -> None:
    endpoints = Endpoints(URLS[:1], 10)
    for _ in range(_routing.FAILURES_TO_BENCH * 2):
        endpoints.failed(await take(endpoints))
    (endpoint,) = endpoints.endpoints
    assert endpoint.benched_until is None
    assert endpoint.failed == _routing.FAILURES_TO_BENCH * 2
    assert not (await take(endpoints)).probe


async def test_a_paused_endpoint_is_waited_for() -> None:
    endpoints = Endpoints(URLS[:1], 10)
    ticket = await take(endpoints)
    endpoints.pause(ticket, 0.05)
    endpoints.ended(ticket)
    started = anyio.current_time()
    with anyio.fail_after(10):
        await take(endpoints)
    assert anyio.current_time() - started >= 0.04  # the clock may round a little


async def test_a_cancelled_wait_takes_nothing() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    await endpoints.take()
    with anyio.move_on_after(0.01):
        await endpoints.take()
    with anyio.move_on_after(0.01):  # the one cancelled before is left at the front: skipped
        await endpoints.take()
    assert endpoints.endpoints[0].in_flight == 1


async def test_a_full_wait_gives_up_after_its_patience() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    await endpoints.take()
    with anyio.fail_after(10):
        assert await endpoints.take(patience=0.01) is None
    assert endpoints.endpoints[0].in_flight == 1


async def test_waiting_attempts_go_first_come_first_served() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    held = await take(endpoints)
    order: list[int] = []

    async def wait(number: int) -> None:
        ticket = await take(endpoints)
        order.append(number)
        await anyio.lowlevel.checkpoint()
        endpoints.succeeded(ticket)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            for number in range(5):
                tasks.start_soon(wait, number)
                await anyio.wait_all_tasks_blocked()
            endpoints.succeeded(held)
            late = await take(endpoints)  # queued behind the others, though it came last
            order.append(99)
            endpoints.succeeded(late)
    assert order == [0, 1, 2, 3, 4, 99]
    assert endpoints.endpoints[0].done == 7


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_wake_up_on() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    held = await take(endpoints)
    taken: list[Ticket] = []

    async def wait() -> None:
        taken.append(await take(endpoints))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            first = anyio.CancelScope()
            tasks.start_soon(_cancellable_wait, endpoints, first)
            await anyio.wait_all_tasks_blocked()
            tasks.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            first.cancel()  # the cancellation lands after the end wakes it
            endpoints.succeeded(held)
    assert len(taken) == 1
    assert endpoints.endpoints[0].in_flight == 1


async def _cancellable_wait(endpoints: Endpoints, scope: anyio.CancelScope) -> None:
    with scope:
        await take(endpoints)
        pytest.fail("the cancelled waiter took a ticket")


def test_each_endpoint_has_its_own_target() -> None:
    endpoints = Endpoints(URLS, 1, lambda url: f"{url}/v1/chat/completions")
    first, second = endpoints.endpoints
    assert endpoints.target(first).url == "http://a:1/v1/chat/completions"
    assert endpoints.target(second).info == RequestInfo("POST", "http://b:2/v1/chat/completions")
    assert endpoints.several
    assert not Endpoints(URLS[:1], 1).several


async def take(endpoints: Endpoints, avoid: Endpoint | None = None) -> Ticket:
    ticket = await endpoints.take(avoid)
    assert ticket is not None
    return ticket


async def test_a_waiter_beaten_to_its_slot_is_first_in_line_again() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    held = await take(endpoints)
    taken: list[Ticket] = []

    async def wait() -> None:
        taken.append(await take(endpoints))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            endpoints.succeeded(held)  # wakes the waiter...
            thief = await take(endpoints)  # ...but this takes the slot before it runs
            await anyio.wait_all_tasks_blocked()
            assert not taken
            endpoints.succeeded(thief)
    assert len(taken) == 1

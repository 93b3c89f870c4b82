"""Waiting for an endpoint (``_endpoints``): woken by an end, a pause's end or a bench's end."""

from __future__ import annotations

import typing

import anyio

from aura_anyio import _routing
from aura_anyio._endpoints import Endpoints

if typing.TYPE_CHECKING:
    import pytest

URLS = ["http://a:1", "http://b:2"]


async def test_a_free_endpoint_is_taken_at_once() -> None:
    endpoints = Endpoints(URLS, 1)
    first, second = await endpoints.take(), await endpoints.take()
    assert {first.endpoint.url, second.endpoint.url} == set(URLS)
    assert [e.in_flight for e in endpoints.endpoints] == [1, 1]


async def test_when_all_are_full_an_end_lets_the_next_attempt_go() -> None:
    endpoints = Endpoints(URLS, 1)
    tickets = [await endpoints.take(), await endpoints.take()]
    taken = []

    async def wait_for_one() -> None:
        taken.append(await endpoints.take())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait_for_one)
            await anyio.wait_all_tasks_blocked()
            assert not taken  # waiting, not spinning
            endpoints.succeeded(tickets[1])
    assert taken[0].endpoint is tickets[1].endpoint
    assert endpoints.endpoints[1].done == 1


async def test_when_all_are_benched_the_attempt_waits_for_the_cool_down_and_probes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_routing, "FIRST_COOL_DOWN", 0.05)
    endpoints = Endpoints(URLS[:1], 10)
    for _ in range(_routing.FAILURES_TO_BENCH):
        endpoints.failed(await endpoints.take())
    (endpoint,) = endpoints.endpoints
    assert endpoint.benched_until is not None
    with anyio.fail_after(10):
        probe = await endpoints.take()
    assert probe.probe
    assert anyio.current_time() >= endpoint.benched_until
    later: list[bool] = []

    async def after_the_probe() -> None:
        later.append((await endpoints.take()).probe)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(after_the_probe)
            await anyio.wait_all_tasks_blocked()
            assert not later  # one probe at a time
            endpoints.succeeded(probe)
    assert later == [False]
    assert endpoint.benched_until is None


async def test_a_paused_endpoint_is_waited_for() -> None:
    endpoints = Endpoints(URLS[:1], 10)
    ticket = await endpoints.take()
    endpoints.pause(ticket, 0.05)
    endpoints.ended(ticket)
    started = anyio.current_time()
    with anyio.fail_after(10):
        await endpoints.take()
    assert anyio.current_time() - started >= 0.04  # the clock may round a little


async def test_a_cancelled_wait_takes_nothing() -> None:
    endpoints = Endpoints(URLS[:1], 1)
    await endpoints.take()
    with anyio.move_on_after(0.01):
        await endpoints.take()
    assert endpoints.endpoints[0].in_flight == 1
    assert endpoints._waiting == 0

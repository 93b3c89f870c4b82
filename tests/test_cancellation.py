"""Cancellation at every stage closes the connection at once, and leaves the pool healthy.

The server is the witness: a cancelled request must show up there as a closed connection
(``Outcome.ABORTED``) at once, long before any timeout could expire. Steps are ordered by
what the server records and by ``anyio.wait_all_tasks_blocked()``, never by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import typing
from collections import Counter

import anyio
import anyio.lowlevel
import httpcore
import httpx
import pytest

from aura_anyio import APITimeoutError, AuraClient, RetryPolicy, Timeouts, build_payload
from aura_anyio._transports.httpx import HttpxTransport
from aura_anyio.testing import Fault, Outcome, ReferenceServer, default_reply

from .helpers import drain, fault_row, until

if typing.TYPE_CHECKING:
    from anyio.abc import SocketStream

    from aura_anyio._wire import WireName

pytestmark = [pytest.mark.network, pytest.mark.debug]

# Long timeouts: only cancellation may end these requests.
PATIENT = Timeouts(connect=30.0, read=30.0)
# Seconds for the server to see a cancelled request's connection close: far less than any
# timeout above (so a close that waits for one fails), and plenty for a loaded machine.
PROMPTLY = 10.0


# The first 11 bytes of the reference server's reply, "Hello from ", then a stall. On the
# OpenAI wire a cut counts text bytes too, and an event cut in a word never ends: the cut
# falls after a word, so that text arrives on both wires.
STALL_MID_BODY = Fault(stall_after=11)


def ask(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


async def read_until_closed(stream: SocketStream) -> bytes:
    received = b""
    try:
        while True:
            received += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return received


@fault_row("cancelled before the reply")
async def test_cancelled_while_connecting() -> None:
    """The TLS handshake never completes; cancelling closes the half-made connection."""
    accepted: list[SocketStream] = []
    arrived = anyio.Event()

    async def never_answer(stream: SocketStream) -> None:
        async with stream:
            accepted.append(stream)
            arrived.set()
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as server:
        server.start_soon(listener.serve, never_answer)
        async with AuraClient(f"https://127.0.0.1:{port}", timeout=PATIENT) as client:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.complete, ask("hi"))
                await arrived.wait()
                tasks.cancel_scope.cancel()
            # The client hung up: the server reads (perhaps a ClientHello, then) the end.
            with anyio.fail_after(PROMPTLY):
                await read_until_closed(accepted[0])
        server.cancel_scope.cancel()


@fault_row("cancelled before the reply")
@pytest.mark.parametrize("method", ["stream", "complete"])
async def test_cancelled_while_waiting_for_the_status_line(method: str, wire: WireName) -> None:
    async with (
        ReferenceServer(fault=Fault(stall_before_status=True)) as server,
        AuraClient(server.base_url, timeout=PATIENT, wire=wire) as client,
    ):
        async with anyio.create_task_group() as tasks:

            async def request() -> None:
                if method == "complete":
                    await client.complete(ask("hi"))
                else:
                    async with client.stream(ask("hi")):
                        pass  # pragma: no cover (never gets here)

            tasks.start_soon(request)
            await server.wait_until(lambda: len(server.requests) == 1)
            tasks.cancel_scope.cancel()
        await server.wait_until(lambda: server.aborted == 1, timeout=PROMPTLY)
        await server.wait_until(lambda: server.open_connections == 0, timeout=PROMPTLY)


@fault_row("cancelled mid-body")
async def test_cancelled_mid_body_keeps_the_text_so_far(wire: WireName) -> None:
    async with (
        ReferenceServer(fault=Fault(stall_after=11, times=1)) as server,
        AuraClient(server.base_url, timeout=PATIENT, wire=wire) as client,
    ):
        with anyio.CancelScope() as scope:
            async with client.stream(ask("hi")) as reply:
                async for _ in reply:
                    if len(reply.text) == 11:
                        scope.cancel()
        assert scope.cancelled_caught
        assert reply.text == "Hello from "
        await server.wait_until(lambda: server.outcomes == [Outcome.ABORTED], timeout=PROMPTLY)
        # The pool is healthy: the next request gets a new connection and its whole reply.
        assert await client.complete(ask("again")) != ""


@fault_row("cancelled before the reply")
async def test_cancelled_while_waiting_for_a_free_connection(wire: WireName) -> None:
    async with (
        ReferenceServer(fault=Fault(stall_before_status=True, times=1)) as server,
        AuraClient(server.base_url, timeout=PATIENT, max_connections=1, wire=wire) as client,
    ):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(client.complete, ask("holds the only connection"))
            await server.wait_until(lambda: len(server.requests) == 1)
            tasks.start_soon(client.complete, ask("waits for it"))
            # Nothing else can block it: it waits for the only connection.
            await anyio.wait_all_tasks_blocked()
            tasks.cancel_scope.cancel()  # the waiting request, and the one holding the slot
        with anyio.fail_after(PROMPTLY):
            text = await client.complete(ask("now"))
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2  # the waiting request never went out


async def test_cancelled_during_the_retry_backoff(
    caplog: pytest.LogCaptureFixture, wire: WireName
) -> None:
    caplog.set_level(logging.INFO, logger="aura_anyio")
    slow = RetryPolicy(max_retries=3, initial_delay=30.0, max_delay=30.0)
    async with (
        ReferenceServer(fault=Fault(status=503)) as server,
        AuraClient(server.base_url, max_retries=slow, wire=wire) as client,
    ):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(client.complete, ask("hi"))
            # The retry is logged just before the 30 s sleep.
            await until(lambda: "retrying POST" in caplog.text, timeout=PROMPTLY)
            tasks.cancel_scope.cancel()
        assert server.outcomes == [Outcome.COMPLETED]  # one attempt, then the sleep
        await server.wait_until(lambda: server.open_connections <= 1)


async def test_hundreds_of_cancelled_requests_leave_the_pool_healthy(wire: WireName) -> None:
    """Cancel 500 requests at random stages while they fight over 100 connections.

    Afterwards no response may be left half-sent, as many requests as there are connections
    must all get through at once (no slot leaked), and the server must hold no more
    connections than the pool may keep. Deadlines are random, so each request is cut
    wherever its time runs out; the stalls make sure that, whatever the machine's speed,
    every stage is hit: a request whose status never comes is cut before its first text,
    and every tenth request cuts itself once its first text has arrived.
    """
    faults = [
        None,
        Fault(stall_before_status=True),
        Fault(stall_after=10),
        Fault(drip=0.01, chunk_size=5),
    ]
    rng = random.Random(1234)
    stages: Counter[str] = Counter()
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, timeout=PATIENT, wire=wire) as client,
    ):

        async def cancelled(index: int) -> None:
            mid_body = index % 10 == 9  # cancelled by itself once the text begins
            fault = STALL_MID_BODY if mid_body else faults[index % len(faults)]
            content = f"{index} {fault.marker()}" if fault else str(index)
            stage = "before the first text"
            deadline = PATIENT.read if mid_body else rng.uniform(0, 1.0)
            with anyio.move_on_after(deadline) as scope:
                async with client.stream(ask(content)) as reply:
                    stage = "mid-body"
                    async for _ in reply:
                        if mid_body:
                            scope.cancel()
                        await anyio.sleep(rng.uniform(0, 0.01))
            stages[stage if scope.cancelled_caught else "not cancelled"] += 1

        async with anyio.create_task_group() as tasks:
            for index in range(500):
                tasks.start_soon(cancelled, index)
        # Every response the server began has ended: sent whole, or cut by the client.
        await server.wait_until(lambda: Outcome.PENDING not in server.outcomes, timeout=PROMPTLY)
        # As many requests as there are connections all get one at once (no slot leaked),
        # and the client holds no connection but idle ones: when 100 new requests hold one
        # each (their replies stall), every connection the server has open is one of theirs;
        # an idle one was either taken again or, expired, closed. A connection the client
        # lost would stay open besides them.
        holding = 0
        all_holding, counted = anyio.Event(), anyio.Event()

        async def hold(index: int) -> None:
            nonlocal holding
            async with client.stream(ask(f"hold {index} {STALL_MID_BODY.marker()}")):
                holding += 1
                if holding == 100:
                    all_holding.set()
                await counted.wait()

        with anyio.fail_after(2 * PROMPTLY):
            async with anyio.create_task_group() as tasks:
                for index in range(100):
                    tasks.start_soon(hold, index)
                await all_holding.wait()
                await server.wait_until(lambda: server.open_connections == 100, timeout=None)
                counted.set()
        # The hundred got a connection each at once: no slot was leaked. And they leave the
        # pool healthy too.
        with anyio.fail_after(PROMPTLY):
            text = await client.complete(ask("still healthy?"))
        assert text == default_reply(server.requests[-1])
        await server.wait_until(lambda: server.open_connections <= 100)
    # Every tenth cancels itself mid-body; the random deadlines cut most of the rest early.
    assert stages["before the first text"] > 50, stages
    assert stages["mid-body"] >= 50, stages


async def poison_the_pool(server: ReferenceServer, pool: httpcore.AsyncConnectionPool) -> None:
    """Play the race of encode/httpcore#1093 on a pool of one connection.

    A holds the connection mid-body while B and C queue for it. A is cancelled; once its
    connection is closed, B and C are cancelled in the same tick. B's cleanup hands C a new
    connection, which C, already cancelled, never uses nor gives back. (Trio runs the tasks
    woken in one tick in random order, so there the race is lost some of the times.)
    """
    url = f"{server.base_url}/api/chat"
    stalled = json.dumps(build_payload(ask(Fault(stall_after=5).marker()))).encode()
    a_scope, b_scope, c_scope = anyio.CancelScope(), anyio.CancelScope(), anyio.CancelScope()
    reading = anyio.Event()

    async def a() -> None:
        with a_scope:
            async with pool.stream("POST", url, content=stalled) as response:
                async for _ in response.aiter_stream():
                    reading.set()

    async def queued(scope: anyio.CancelScope) -> None:
        with scope:
            await pool.request("POST", url, content=json.dumps(build_payload(ask("hi"))).encode())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(a)
        await reading.wait()
        (connection,) = pool.connections
        tasks.start_soon(queued, b_scope)
        tasks.start_soon(queued, c_scope)
        await anyio.wait_all_tasks_blocked()  # B and C wait for the pool
        a_scope.cancel()
        while not connection.is_closed():  # the moment A's cleanup has run, not later
            await anyio.lowlevel.checkpoint()
        b_scope.cancel()
        c_scope.cancel()


async def test_httpcore_1093_loses_a_slot_without_the_guard() -> None:
    """The control of the next test: the race, on a bare httpcore pool, loses its only slot.

    This is the bug the httpx adapter's owned pool is built against (``max_connections=None``,
    the client admitting requests itself). If this fails, the installed httpcore has fixed
    encode/httpcore#1093, and the guard in ``_transports/httpx.py`` may go.
    """
    lost = 0
    tries = 0
    async with ReferenceServer() as server:
        while not lost and tries < 10:  # won most times on Trio, every time on asyncio
            tries += 1
            async with httpcore.AsyncConnectionPool(max_connections=1) as pool:
                await poison_the_pool(server, pool)
                try:
                    await pool.request(
                        "POST",
                        f"{server.base_url}/api/chat",
                        content=json.dumps(build_payload(ask("hi"))).encode(),
                        extensions={"timeout": {"pool": 0.5}},
                    )
                except httpcore.PoolTimeout:
                    lost += 1  # the pool lost its only slot: the bug is there
    assert lost, f"httpcore {httpcore.__version__} never lost the slot in {tries} races"


@pytest.mark.parametrize("adapter", ["anyio", "httpx"])
async def test_the_race_of_httpcore_1093_leaves_our_pool_healthy(adapter: str) -> None:
    """The same race, played on an AuraClient of one connection: nothing is lost.

    On the default transport, and on the httpx adapter built as its SOCKS pool is (no
    connection limit in httpcore; the client admits one request at a time).
    """
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            ReferenceServer(fault=Fault(stall_after=5, times=1))
        )
        options: dict[str, typing.Any] = {}
        if adapter == "httpx":
            http = httpx.AsyncClient(limits=httpx.Limits(max_connections=None))
            await stack.enter_async_context(http)
            options["transport"] = HttpxTransport(http, owned=False)
        client = await stack.enter_async_context(
            AuraClient(server.base_url, max_connections=1, timeout=PATIENT, **options)
        )
        a_scope, b_scope, c_scope = (
            anyio.CancelScope(),
            anyio.CancelScope(),
            anyio.CancelScope(),
        )
        reading = anyio.Event()

        async def a() -> None:
            with a_scope:
                async with client.stream(ask("hi")) as reply:
                    reading.set()
                    await drain(reply)

        async def queued(scope: anyio.CancelScope) -> None:
            with scope:
                await client.complete(ask("hi"))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(a)
            await reading.wait()
            tasks.start_soon(queued, b_scope)
            tasks.start_soon(queued, c_scope)
            await anyio.wait_all_tasks_blocked()  # B and C wait for the only connection
            a_scope.cancel()
            await server.wait_until(lambda: server.aborted == 1)
            b_scope.cancel()
            c_scope.cancel()
        # A lost slot would keep this waiting for the connect timeout (30 s).
        with anyio.fail_after(PROMPTLY):
            assert await client.complete(ask("now")) == default_reply(server.requests[-1])


async def test_a_request_waits_for_a_free_connection_no_longer_than_connect() -> None:
    async with ReferenceServer(fault=Fault(stall_before_status=True, times=1)) as server:
        # The wait in vain is the point: a second is plenty on a loaded machine, and the
        # only connection stays taken, however long the wait.
        timeouts = Timeouts(connect=1.0, read=30.0)
        async with AuraClient(
            server.base_url, timeout=timeouts, max_connections=1, max_retries=0
        ) as client:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.complete, ask("holds the only connection"))
                await server.wait_until(lambda: len(server.requests) == 1)
                with pytest.raises(APITimeoutError, match="pool timeout: every connection"):
                    await client.complete(ask("waits in vain"))
                tasks.cancel_scope.cancel()
            assert await client.complete(ask("now")) == default_reply(server.requests[-1])
    assert len(server.requests) == 2


def test_max_connections_is_checked() -> None:
    for bad in (0, 1.5, True, None):
        with pytest.raises(ValueError, match="max_connections must be an int >= 1"):
            AuraClient(max_connections=bad)  # type: ignore[arg-type]

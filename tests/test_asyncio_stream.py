"""The asyncio-native TCP stream's own ways (asyncio and uvloop only; the contract it shares
with the Trio stream is ``test_streams``).

Against a raw peer on loopback: an abort, the read timeout's one timer, flow control both
ways, and happy eyeballs over several addresses.
"""

from __future__ import annotations

import contextlib
import socket
import typing

import anyio
import anyio.lowlevel
import pytest

from aura_anyio._transports import _asyncio_stream
from aura_anyio._transports._asyncio_stream import AsyncioStream, connect

from .helpers import (
    peer_dripping,
    quiet_peer as quiet,
    raw_peer as peer,
    reset_on_close,
    until,
)

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import SocketStream


pytestmark = [pytest.mark.network, pytest.mark.debug, pytest.mark.loops("asyncio")]


async def test_an_aborted_stream_is_closed() -> None:
    async with peer(quiet) as port:
        fresh = await connect("127.0.0.1", port)
        fresh.abort()  # no timer yet
        await fresh.aclose()
        stream = await connect("127.0.0.1", port)
        with anyio.move_on_after(0.01):
            await stream.receive_within(30.0)  # the timer stays set
        stream.abort()
        assert stream._timer is None
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        await stream.aclose()


async def test_the_read_timeout_is_one_timer_moved_along() -> None:
    async with peer(peer_dripping(8)) as port:
        stream = await connect("127.0.0.1", port)
        received = b""
        while len(received) < 8:
            received += await stream.receive_within(0.3)
        # The timer set by the first read fired meanwhile and moved on to the later reads'
        # deadlines; now it fires with no read waiting, and stops.
        await anyio.sleep(0.4)
        assert stream._timer is None
        # A shorter timeout than the one the timer was set for: a timer of its own, not
        # a wait for the old one.
        with anyio.move_on_after(0.05):
            await stream.receive_within(30.0)
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.receive_within(0.05)
        await stream.aclose()


async def test_a_read_cancelled_as_it_timed_out_leaves_nothing_behind() -> None:
    async with peer(quiet) as port:
        stream = await connect("127.0.0.1", port)
        # Which of the two fires first is the loop's to choose (uvloop's timers are rounded
        # to the millisecond): either way, nothing is left waiting.
        with anyio.CancelScope() as scope, contextlib.suppress(TimeoutError):
            scope.deadline = anyio.current_time() + 0.05
            await stream.receive_within(0.05)
        assert stream._protocol.waiter is None
        await stream.aclose()


async def test_reading_pauses_past_the_high_water_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_asyncio_stream, "HIGH_WATER", 1000)

    async def handler(stream: SocketStream) -> None:
        for _ in range(50):
            await stream.send(b"x" * 200)
        await stream.aclose()

    async with peer(handler) as port:
        stream = await connect("127.0.0.1", port)
        await until(lambda: stream._protocol.paused)
        total = 0
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                total += len(await stream.receive())
        assert total == 50 * 200
        assert not stream._protocol.paused
        await stream.aclose()


async def test_sending_waits_while_the_peer_does_not_read() -> None:
    reading = anyio.Event()
    got = 0

    async def handler(stream: SocketStream) -> None:
        nonlocal got
        await reading.wait()
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                got += len(await stream.receive())

    async with peer(handler) as port:
        stream = await connect("127.0.0.1", port)
        small_buffers(stream)
        block = b"y" * (1 << 18)  # four times the transport's high-water mark
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_send_all, stream, block, 4)
            await until(lambda: stream._protocol.drained is not None)
            reading.set()
        await stream.send_eof()
        await until(lambda: got == 4 << 18)
        await stream.aclose()


async def _send_all(stream: AsyncioStream, block: bytes, count: int) -> None:
    for _ in range(count):
        await stream.send(block)


async def test_a_send_waiting_for_a_peer_that_breaks_fails() -> None:
    client: list[AsyncioStream] = []

    async def handler(stream: SocketStream) -> None:
        reset_on_close(stream)
        await until(lambda: bool(client) and client[0]._protocol.drained is not None)
        await stream.aclose()  # a reset, with the client's data unread

    async with peer(handler) as port:
        stream = await connect("127.0.0.1", port)
        client.append(stream)
        small_buffers(stream)
        with pytest.raises(anyio.BrokenResourceError):
            await _send_all(stream, b"z" * (1 << 18), 64)
        await stream.aclose()


def small_buffers(stream: AsyncioStream) -> None:
    """Make the kernel's send buffer small, so that the transport's own fills up."""
    stream.raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


class FakeStream:
    def __init__(self, address: tuple[int, str]) -> None:
        self.address = address
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def addresses(*ips: str) -> Callable[..., Awaitable[list[object]]]:
    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[object]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips]

    return getaddrinfo


async def test_happy_eyeballs_goes_on_to_the_next_address_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on 127.0.0.2: refused at once, and the next address is tried then,
    # not a quarter of a second later.
    monkeypatch.setattr(_asyncio_stream, "ATTEMPT_DELAY", 30.0)
    async with peer(quiet) as port:
        monkeypatch.setattr(anyio, "getaddrinfo", addresses("127.0.0.2", "127.0.0.2", "127.0.0.1"))
        with anyio.fail_after(10):
            stream = await connect("example.test", port)
        await stream.aclose()
        monkeypatch.setattr(anyio, "getaddrinfo", addresses("127.0.0.2", "127.0.0.3"))
        with pytest.raises(OSError, match=r"all connection attempts to example\.test:\d+ failed"):
            await connect("example.test", port)
        monkeypatch.setattr(anyio, "getaddrinfo", addresses())
        with pytest.raises(OSError, match="all connection attempts"):
            await connect("example.test", port)


async def test_happy_eyeballs_cancelled_drops_every_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[FakeStream] = []
    outer = anyio.CancelScope()

    async def cancelled_as_it_wins(address: tuple[int, str], port: int) -> FakeStream:
        made.append(FakeStream(address))
        outer.cancel()
        return made[-1]

    monkeypatch.setattr(anyio, "getaddrinfo", addresses("10.0.0.1", "10.0.0.2"))
    monkeypatch.setattr(_asyncio_stream, "_connect_one", cancelled_as_it_wins)
    with outer:
        await connect("example.test", 80)
    assert [stream.aborted for stream in made] == [True]

    async def never(address: tuple[int, str], port: int) -> FakeStream:
        await anyio.sleep_forever()
        raise AssertionError

    monkeypatch.setattr(_asyncio_stream, "_connect_one", never)
    with anyio.move_on_after(0.05) as scope:
        await connect("example.test", 80)
    assert scope.cancelled_caught


def test_addresses_alternate_families_without_repeats() -> None:
    v6, v4 = socket.AF_INET6, socket.AF_INET
    given: list[tuple[int, str]] = [(v6, "::1"), (v6, "::2"), (v6, "::1"), (v4, "1.1.1.1")]
    assert _asyncio_stream._interleaved(given) == [(v6, "::1"), (v4, "1.1.1.1"), (v6, "::2")]
    assert _asyncio_stream._interleaved([]) == []


async def test_a_stream_is_only_made_on_asyncio() -> None:
    assert _asyncio_stream.on_asyncio()

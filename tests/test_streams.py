"""The contract of the default transport's two plain TCP streams, one suite run against both.

On asyncio (plain, debug, uvloop) the stream is ``_asyncio_stream``'s; on Trio, ``_trio_stream``'s.
Both read a raw peer on loopback and must behave alike: what arrives and the end, a read ended
by a close, a reset, a cancelled read that loses no data, and a read timeout that moves along
with the reads and then fires. What is one stream's own (timers, flow control, happy eyeballs;
the Trio watch) is tested beside it, in ``test_asyncio_stream`` and ``test_trio_stream``.
"""

from __future__ import annotations

import select
import socket
import typing

import anyio
import pytest

from aura_anyio._transports import _asyncio_stream

from .helpers import (
    deaf_peer,
    peer_dripping,
    peer_sending,
    quiet_peer,
    raw_peer,
    read_until_broken,
    resetting_peer,
    until,
)

if typing.TYPE_CHECKING:
    from anyio.abc import SocketStream

    from aura_anyio._transports._asyncio_stream import AsyncioStream
    from aura_anyio._transports._trio_stream import TrioStream

pytestmark = [pytest.mark.network, pytest.mark.debug]


async def connect(port: int) -> AsyncioStream | TrioStream:
    """The stream the default transport makes for ``http://`` on the running loop."""
    if _asyncio_stream.on_asyncio():
        return await _asyncio_stream.connect("127.0.0.1", port)
    from aura_anyio._transports._trio_stream import TrioStream  # imports Trio

    return TrioStream(await anyio.connect_tcp("127.0.0.1", port))


async def test_what_arrives_then_the_end() -> None:
    async def handler(stream: SocketStream) -> None:
        assert await stream.receive() == b"ping"
        await stream.send(b"0123456789")
        await stream.send_eof()
        await quiet_peer(stream)

    async with raw_peer(handler) as port:
        stream = await connect(port)
        assert stream.raw_socket.fileno() > 0
        await stream.send(b"ping")
        assert await stream.receive(3) == b"012"  # at most max_bytes; the rest stays
        received = b""
        while len(received) < 7:
            received += await stream.receive_within(1.0)
        assert received == b"3456789"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive_within(1.0)
        with pytest.raises(anyio.EndOfStream):  # and again, without a timeout
            await stream.receive_within(None)
        await stream.send_eof()
        await stream.aclose()
        await stream.aclose()  # idempotent
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


async def test_a_closed_stream_reads_nothing_whether_or_not_it_was_drained() -> None:
    async with raw_peer(peer_sending(b"0123456789")) as port:
        for size in (3, 100):  # not drained (it reads at once), drained (it waits first)
            stream = await connect(port)
            received = b""
            while len(received) < 3:
                received += await stream.receive(size)
            await stream.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await stream.receive()


async def test_closing_while_a_read_waits_ends_it() -> None:
    async with raw_peer(quiet_peer) as port:
        for read_timeout in (None, 30.0):
            stream = await connect(port)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(stream.aclose)
                with pytest.raises(anyio.ClosedResourceError):
                    await stream.receive_within(read_timeout)


async def test_a_reset_is_a_broken_stream() -> None:
    async with raw_peer(resetting_peer) as port:
        stream = await connect(port)
        await stream.send(b"hello")
        with pytest.raises(anyio.BrokenResourceError):
            await read_until_broken(stream)
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send(b"more")
        await stream.aclose()


def has_data(stream: AsyncioStream | TrioStream) -> bool:
    """Whether data has arrived for ``stream`` that it has not handed over yet."""
    if isinstance(stream, _asyncio_stream.AsyncioStream):
        return not stream.quiet  # the loop reads the socket as the data comes
    return bool(select.select([stream.raw_socket], [], [], 0)[0])


async def test_a_cancelled_read_loses_no_data() -> None:
    async with raw_peer(peer_sending(b"kept")) as port:
        stream = await connect(port)
        await until(lambda: has_data(stream))
        received = b""
        with anyio.CancelScope() as scope:
            scope.cancel()
            received = await stream.receive()
        # Trio's stream takes the cancellation before the data, as Trio's sockets do;
        # asyncio's hands over what has arrived with no checkpoint. Nothing is lost either way.
        assert scope.cancelled_caught is not isinstance(stream, _asyncio_stream.AsyncioStream)
        if scope.cancelled_caught:
            received = await stream.receive()
        assert received == b"kept"
        await stream.aclose()


async def test_a_read_timeout_moves_along_with_the_reads_then_ends_one_read() -> None:
    go_on = anyio.Event()
    async with raw_peer(peer_dripping(5, then=go_on)) as port:
        stream = await connect(port)
        received = b""
        while len(received) < 5:
            received += await stream.receive_within(0.3)
        # The first read's deadline passed long ago; each read since moved its own along,
        # and none of them was ended. Now one is.
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.receive_within(0.05)
        # An ended read leaves the stream as it was: the next read waits and reads.
        go_on.set()
        assert await stream.receive_within(5.0) == b"later"
        await stream.aclose()


async def test_a_write_waits_for_the_peer_within_its_timeout() -> None:
    async with deaf_peer(connect) as stream:
        await stream.send_within(0.05, b"small")  # taken at once: the timeout never runs
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.send_within(0.2, b"x" * (64 << 20))  # more than a socket holds
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.send_within(0.05, b"more" * (1 << 18))  # and it is full already
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send_within(1.0, b"x")


async def test_a_write_larger_than_the_socket_holds_goes_out_as_the_peer_reads() -> None:
    size = 16 << 20
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = await connect(listener.getsockname()[1])
        peer, _ = listener.accept()

        def read_all() -> int:
            got = 0
            with peer:
                while got < size and (data := peer.recv(1 << 20)):
                    got += len(data)
            return got

        async with anyio.create_task_group() as tasks:
            received: list[int] = []

            async def reader() -> None:
                received.append(await anyio.to_thread.run_sync(read_all))

            tasks.start_soon(reader)
            with anyio.fail_after(30):
                await stream.send_within(10.0, b"x" * size)
        await stream.aclose()
    assert received == [size]

"""The Trio TCP stream under the default transport, and its read timeouts (Trio only).

Against a raw peer on loopback: what arrives, the end and the breaks, cancellation that takes
no data, and the one task per run that ends the reads past their deadline.
"""

from __future__ import annotations

import select
import typing

import anyio
import pytest

from .helpers import (
    peer_sending,
    quiet_peer,
    raw_peer,
    read_until_broken,
    resetting_peer,
    until,
)

if typing.TYPE_CHECKING:
    import socket

    from anyio.abc import SocketStream

    from aura_anyio._transports._trio_stream import TrioStream


@pytest.fixture(autouse=True)
def trio_only(anyio_backend: tuple[str, dict[str, object]]) -> None:
    if anyio_backend[0] != "trio":
        pytest.skip("the stream is Trio's; asyncio has its own")


async def connect(port: int) -> TrioStream:
    from aura_anyio._transports._trio_stream import TrioStream  # imports Trio

    return TrioStream(await anyio.connect_tcp("127.0.0.1", port))


def waiting(stream: TrioStream) -> bool:
    from aura_anyio._transports import _trio_stream

    try:
        watch = _trio_stream._WATCH.get()
    except LookupError:  # made by the first read with a timeout
        return False
    return stream in watch.waiting


async def test_what_arrives_then_the_end() -> None:
    async def handler(stream: SocketStream) -> None:
        assert await stream.receive() == b"ping"
        await stream.send(b"0123456789")
        await stream.send_eof()
        await quiet_peer(stream)

    async with raw_peer(handler) as port:
        stream = await connect(port)
        await stream.send(b"ping")
        assert await stream.receive(3) == b"012"  # at most max_bytes; the rest stays
        received = b""
        while len(received) < 7:
            received += await stream.receive_within(1.0)
        assert received == b"3456789"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive_within(1.0)
        await stream.send_eof()
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()


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
        await stream.aclose()


async def test_a_cancelled_read_takes_no_data() -> None:
    async with raw_peer(peer_sending(b"kept")) as port:
        stream = await connect(port)
        await until(lambda: bool(select.select([stream.raw_socket], [], [], 0)[0]))
        with anyio.CancelScope() as scope:
            scope.cancel()
            await stream.receive()
        assert scope.cancelled_caught
        assert await stream.receive() == b"kept"
        await stream.aclose()


async def test_a_read_past_its_deadline_ends_and_the_stream_reads_on() -> None:
    go_on = anyio.Event()

    async def handler(stream: SocketStream) -> None:
        for _ in range(5):  # 0.5 s of data, 0.1 s apart: each read well within 0.3 s
            await anyio.sleep(0.1)
            await stream.send(b".")
        await go_on.wait()
        await stream.send(b"later")
        await quiet_peer(stream)

    async with raw_peer(handler) as port:
        stream = await connect(port)
        received = b""
        while len(received) < 5:
            received += await stream.receive_within(0.3)
        # The watch task slept until the first read's deadline, long passed; each read since
        # moved its own deadline along, and none of them was ended.
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.receive_within(0.05)
        assert not waiting(stream)
        # An ended wait leaves the socket as it was: the next read waits and reads.
        go_on.set()
        assert await stream.receive_within(5.0) == b"later"
        await stream.aclose()


async def test_a_shorter_timeout_wakes_the_watch_sooner_and_ends_only_its_own_read() -> None:
    async with raw_peer(quiet_peer) as port:
        patient, hasty = await connect(port), await connect(port)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(patient.receive_within, 30.0)  # the watch sleeps until then
            await until(lambda: waiting(patient))
            with anyio.fail_after(10), pytest.raises(TimeoutError):
                await hasty.receive_within(0.05)
            assert waiting(patient)  # not ended: its deadline is far off
            tasks.cancel_scope.cancel()
        assert not waiting(patient)  # a cancelled read leaves the watch
        await patient.aclose()
        await hasty.aclose()


async def test_a_wakeup_with_nothing_to_read_waits_again(monkeypatch: pytest.MonkeyPatch) -> None:
    class Flaky:
        """A socket that says it has nothing twice: before the wait, and after it."""

        def __init__(self, sock: socket.socket) -> None:
            self.sock, self.misses = sock, 2

        def fileno(self) -> int:
            return self.sock.fileno()

        def recv(self, size: int) -> bytes:
            if self.misses:
                self.misses -= 1
                raise BlockingIOError
            return self.sock.recv(size)

    async with raw_peer(peer_sending(b"x")) as port:
        stream = await connect(port)
        flaky = Flaky(stream.raw_socket)
        monkeypatch.setattr(stream, "raw_socket", flaky)
        assert await stream.receive_within(5.0) == b"x"
        assert flaky.misses == 0
        await stream.aclose()


async def test_the_watch_leaves_a_stream_closed_under_its_read_alone() -> None:
    from aura_anyio._transports import _trio_stream

    async with raw_peer(quiet_peer) as port:
        stream = await connect(port)
        with anyio.move_on_after(0.01):  # a read with a timeout: the watch starts
            await stream.receive_within(30.0)
        watch = _trio_stream._WATCH.get()
        await stream.aclose()
        # As if its read, ended by the close, had not run yet when the deadline passed.
        stream.deadline = anyio.current_time() - 1
        watch.waiting.add(stream)
        watch.alarm.deadline = anyio.current_time()
        await until(lambda: stream not in watch.waiting)
        assert stream.expired

"""The Trio TCP stream's own ways (Trio only; the contract it shares with the asyncio stream is
``test_streams``): the one task per run that ends the reads past their deadline.
"""

from __future__ import annotations

import contextlib
import typing

import anyio
import pytest

from .helpers import (
    deaf_peer,
    peer_sending,
    quiet_peer,
    raw_peer,
    until,
)

if typing.TYPE_CHECKING:
    import socket

    from aura_anyio._transports._trio_stream import TrioStream


pytestmark = [pytest.mark.network, pytest.mark.loops("trio")]


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


async def test_a_read_past_its_deadline_leaves_the_watch() -> None:
    async with raw_peer(quiet_peer) as port:
        stream = await connect(port)
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.receive_within(0.05)
        assert stream.expired
        assert not waiting(stream)
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


async def test_one_task_sends_at_a_time_and_closing_ends_a_waiting_write() -> None:
    async with deaf_peer(connect) as stream:

        async def write() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await stream.send(b"x" * (64 << 20))  # more than a socket holds: it waits

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write)
            await until(lambda: stream._sending)
            with pytest.raises(anyio.BusyResourceError):
                await stream.send(b"more")
            await stream.aclose()


async def test_a_write_to_a_full_socket_waits_for_room() -> None:
    async with deaf_peer(connect) as stream:
        await fill(stream.raw_socket)
        with anyio.fail_after(10), pytest.raises(TimeoutError):
            await stream.send_within(0.05, b"more")


async def fill(sock: socket.socket) -> None:
    """Send on ``sock`` until neither its buffer nor its reading peer's takes any more (the
    buffers' sizes fixed, so that the kernel does not grow them)."""
    while True:
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                sent += sock.send(b"x" * 4096)
        if not sent:
            return
        await anyio.sleep(0.05)  # what is in flight arrives, and may make room

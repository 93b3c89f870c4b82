"""A plain TCP byte stream on Trio whose read timeout is a deadline stored, not a cancel scope.

An LLM reply arrives a token at a time, so whatever a read costs is paid per token. On Trio
a read timeout around AnyIO's ``receive`` is a cancel scope entered and left per read (with
Trio's deadline heap behind it), plus AnyIO's guard and error mapping: together about a fifth
of the client's CPU per chunk in ``benchmarks/paced.py``. This stream reads the socket as
Trio's own sockets do (try ``recv``, else ``wait_readable``), and its read timeout is one
deadline per stream, stored as the read starts to wait. One system task per Trio run sleeps
in a cancel scope that is already open until the soonest of those deadlines (DESIGN section
5: a deadline that moves costs no more than moving an open scope's deadline); when a read's
deadline has passed, it wakes that read with ``trio.lowlevel.notify_closing``, which the read
turns into ``TimeoutError``. The connection is discarded after a read timeout, as after any.

It is used for ``http://`` without a proxy on Trio; TLS and proxies keep AnyIO's streams. It
raises what AnyIO's streams raise (``EndOfStream``, ``BrokenResourceError``,
``ClosedResourceError``), and ``TimeoutError`` when the read timeout passes.
"""

from __future__ import annotations

import contextlib
import math
import typing

import anyio
import anyio.abc
import trio

if typing.TYPE_CHECKING:
    import socket

__all__ = ["TrioStream"]


@typing.final
class _Watch:
    """The read timeouts of one Trio run: the waiting reads, and the task that ends them."""

    def __init__(self) -> None:
        self.waiting: set[TrioStream] = set()
        # Entered by the task; a waiting read only lowers its deadline, if ever: reads that
        # start later with the same timeout end later.
        self.alarm = trio.CancelScope()

    async def run(self) -> None:
        """Sleep until the soonest deadline, end the reads past theirs, and sleep again.

        Cancelled (as every system task is) when the run's main task ends.
        """
        while True:
            with self.alarm:
                await trio.sleep_forever()
            now = trio.current_time()
            soonest = math.inf
            for stream in list(self.waiting):
                if stream.deadline <= now:
                    self.waiting.discard(stream)
                    stream.expired = True
                    # Closed under its read a moment ago, the read not yet woken? Nothing to
                    # end then; and a system task must not fail (it would end the run).
                    if stream.raw_socket.fileno() >= 0:
                        with contextlib.suppress(OSError):
                            trio.lowlevel.notify_closing(stream.raw_socket)
                else:
                    soonest = min(soonest, stream.deadline)
            self.alarm = trio.CancelScope(deadline=soonest)


_WATCH: trio.lowlevel.RunVar[_Watch] = trio.lowlevel.RunVar("aura_anyio.read_timeouts")


def _watch() -> _Watch:
    try:
        return _WATCH.get()
    except LookupError:
        watch = _Watch()
        _WATCH.set(watch)
        trio.lowlevel.spawn_system_task(watch.run, name="aura_anyio read timeouts")
        return watch


@typing.final
class TrioStream(anyio.abc.ByteStream):
    """AnyIO's Trio ``SocketStream`` for a plain TCP connection, read directly.

    Sending writes to the socket directly too; closing is the wrapped stream's.
    """

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream
        # The connection's socket, read here and watched by the idle check.
        self.raw_socket: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self.deadline = math.inf  # of the read waiting, if it has a timeout
        self.expired = False  # the watch ended the wait: the deadline passed
        self._watch: _Watch | None = None
        self._drained = False  # the last read emptied the socket
        self._sending = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What has arrived (at least a byte, at most ``max_bytes``), waiting for it."""
        return await self.receive_within(None, max_bytes)

    async def receive_within(self, read_timeout: float | None, max_bytes: int = 65536) -> bytes:
        """Like :meth:`receive`, but raise ``TimeoutError`` if nothing arrives in
        ``read_timeout`` seconds (``None``: wait as long as it takes)."""
        data = None
        # After a read that took less than it could, the socket had no more: a token's chunk
        # is the next write's, so wait for it rather than try a read that fails (a system
        # call and an exception per token).
        if not self._drained:
            # As Trio's own sockets: a cancellation is taken before the data, never after,
            # and a read that finds data waiting still yields, so a fast stream starves no one.
            await trio.lowlevel.checkpoint_if_cancelled()
            data = self._recv(max_bytes)
            if data is not None:
                await trio.lowlevel.cancel_shielded_checkpoint()
        while data is None:
            await self._wait(read_timeout)  # a checkpoint of its own
            data = self._recv(max_bytes)
        self._drained = len(data) < max_bytes
        if not data:
            raise anyio.EndOfStream
        return data

    def _recv(self, max_bytes: int) -> bytes | None:
        """What the socket has (``b""`` at the end), or ``None`` if it has nothing yet."""
        sock = self.raw_socket
        try:
            return sock.recv(max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            if sock.fileno() < 0:
                raise anyio.ClosedResourceError from None
            raise anyio.BrokenResourceError from exc

    async def _wait(self, read_timeout: float | None) -> None:
        if self.raw_socket.fileno() < 0:  # closed (Trio would fail on the descriptor -1)
            raise anyio.ClosedResourceError
        try:
            if read_timeout is None:
                await trio.lowlevel.wait_readable(self.raw_socket)
                return
            watch = self._watch
            if watch is None:
                watch = self._watch = _watch()
            self.expired = False
            self.deadline = deadline = trio.current_time() + read_timeout
            watch.waiting.add(self)
            if deadline < watch.alarm.deadline:
                watch.alarm.deadline = deadline
            try:
                await trio.lowlevel.wait_readable(self.raw_socket)
            finally:
                watch.waiting.discard(self)
        except trio.ClosedResourceError:
            if self.expired:
                raise TimeoutError("no data arrived within the read timeout") from None
            raise anyio.ClosedResourceError from None

    async def send(self, item: bytes) -> None:
        """Send all of ``item``."""
        await self.send_within(None, item)

    async def send_within(self, write_timeout: float | None, item: bytes) -> None:
        """Send all of ``item`` as Trio's sockets do (try ``send``, else ``wait_writable``);
        raise ``TimeoutError`` if it is not all sent ``write_timeout`` seconds after the socket
        first had to be waited for (``None``: wait as long as it takes).

        A write the socket takes at once enters no cancel scope; it is still a checkpoint.
        """
        sock = self.raw_socket
        if sock.fileno() < 0:
            raise anyio.ClosedResourceError
        if self._sending:  # as AnyIO's guard: one task sends on a stream at a time
            raise anyio.BusyResourceError("sending")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._sending = True
        try:
            view = memoryview(item)
            sent = self._send(view)
            if sent == len(view):
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            deadline = math.inf if write_timeout is None else trio.current_time() + write_timeout
            while sent < len(view):
                with trio.CancelScope(deadline=deadline) as scope:
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except trio.ClosedResourceError:
                        raise anyio.ClosedResourceError from None
                if scope.cancelled_caught:
                    raise TimeoutError("the request was not sent within the write timeout")
                sent += self._send(view[sent:])
        finally:
            self._sending = False

    def _send(self, data: memoryview) -> int:
        """How much of ``data`` the socket took now (0 if it had no room)."""
        sock = self.raw_socket
        try:
            return sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # closed here, it would have been seen before or while waiting
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        """Close the sending side."""
        await self._stream.send_eof()

    async def aclose(self) -> None:
        """Close the connection (the wrapped stream's close: done even if cancelled)."""
        await self._stream.aclose()

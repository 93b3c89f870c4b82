"""A plain TCP byte stream on asyncio's own protocols: the hot path of ``http://`` on asyncio.

An LLM reply arrives a token at a time, tens of milliseconds apart, so a client reads one
small chunk per token, and whatever a read costs is paid per token. AnyIO's asyncio
``SocketStream`` resumes reading before every receive and pauses it after (two ``epoll_ctl``
system calls a chunk), and a read timeout around it is a cancel scope entered and left per
read (a timer scheduled and cancelled): more than half of the client's CPU per chunk in
``benchmarks/paced.py`` (141 µs a chunk with them, 65 µs with this stream; aiohttp 55-57).
This stream reads as the data comes (pausing only past a bound), and its read timeout is a
deadline moved forward at each read, watched by one timer per connection that is
rescheduled only when it fires before the deadline.

It is used for ``http://`` without a proxy on asyncio (and uvloop); TLS and proxies keep
AnyIO's streams, and Trio has ``_trio_stream``. It raises what AnyIO's streams raise
(``EndOfStream``, ``BrokenResourceError``), and ``TimeoutError`` when the read timeout passes.
"""

from __future__ import annotations

import asyncio
import collections
import math
import socket
import typing

import anyio
import anyio.abc
import anyio.lowlevel

__all__ = ["AsyncioStream", "connect", "on_asyncio"]

# Past this much unread data the stream stops reading until the reader catches up.
HIGH_WATER = 1 << 20
# Happy eyeballs: how long one connection attempt has before the next starts.
ATTEMPT_DELAY = 0.25


class _Protocol(asyncio.Protocol):
    """Collects what arrives, and wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False  # reading paused: HIGH_WATER bytes wait to be read
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None  # the reader's
        self.drained: asyncio.Future[None] | None = None  # the writer's, while paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        waiter = self.waiter  # _wake() written out: this runs once per token
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.waiter)
        return True  # the stream closes the transport itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        _wake(self.waiter)
        _wake(self.drained)

    def pause_writing(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self.drained = self.drained, None
        _wake(drained)


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark the exception of a future that has one as retrieved, so that asyncio does not
    log it as never retrieved."""
    if future.done() and not future.cancelled():
        future.exception()


@typing.final
class AsyncioStream(anyio.abc.ByteStream):
    """One TCP connection; see the module docstring."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._deadline = math.inf  # of the read waiting now, if any
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    @property
    def quiet(self) -> bool:
        """Whether nothing has arrived and the peer has not closed: an idle connection is."""
        protocol = self._protocol
        return not (protocol.chunks or protocol.eof)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """What has arrived (at least a byte, at most ``max_bytes``), waiting for it."""
        return await self.receive_within(None, max_bytes)

    async def receive_within(self, read_timeout: float | None, max_bytes: int = 65536) -> bytes:
        """Like :meth:`receive`, but raise ``TimeoutError`` if nothing arrives in
        ``read_timeout`` seconds (``None``: wait as long as it takes)."""
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if not protocol.chunks:
            if not protocol.eof:
                # Waiting is written out here, not in a method of its own: a coroutine
                # fewer to make and resume on every token.
                loop = self._loop
                waiter = protocol.waiter = loop.create_future()
                if read_timeout is not None:
                    deadline = self._deadline = loop.time() + read_timeout
                    if deadline < self._timer_at:  # a shorter timeout than the timer's: anew
                        if self._timer is not None:
                            self._timer.cancel()
                        self._timer = loop.call_at(deadline, self._expire)
                        self._timer_at = deadline
                try:
                    await waiter
                except BaseException:
                    _retrieve(waiter)  # should a cancellation have overtaken its outcome
                    raise
                finally:
                    protocol.waiter = None
                    self._deadline = math.inf
            if not protocol.chunks:
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.error is not None:
                    raise anyio.BrokenResourceError from protocol.error
                raise anyio.EndOfStream
        chunks = protocol.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            chunks.append(rest)
        protocol.buffered = len(chunks[0]) if chunks else 0
        if protocol.paused and protocol.buffered <= HIGH_WATER:
            protocol.paused = False
            self._transport.resume_reading()
        return data

    def _expire(self) -> None:
        """The timer: fail the waiting read if its deadline has passed, else wait on."""
        self._timer = None
        self._timer_at = math.inf
        waiter = self._protocol.waiter
        if waiter is None or waiter.done() or self._deadline == math.inf:
            return  # no read is waiting: the next one sets the timer again
        if self._loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError("no data arrived within the read timeout"))
        else:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            self._timer_at = self._deadline

    async def send(self, item: bytes) -> None:
        """Write ``item``, waiting while the transport's buffer is full."""
        await self.send_within(None, item)

    async def send_within(self, write_timeout: float | None, item: bytes) -> None:
        """Like :meth:`send`, but raise ``TimeoutError`` if the transport's buffer has not
        drained ``write_timeout`` seconds later (``None``: wait as long as it takes).

        A write the buffer takes returns at once: only a write that waits pays for a timer.
        """
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.error is not None or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        self._transport.write(item)
        drained = protocol.drained
        if drained is not None:
            with anyio.fail_after(write_timeout):
                # Shielded: a cancelled wait must not cancel the future the next write awaits.
                await asyncio.shield(drained)
            if protocol.error is not None:
                raise anyio.BrokenResourceError from protocol.error

    async def send_eof(self) -> None:
        """Close the sending side."""
        self._transport.write_eof()

    def abort(self) -> None:
        """Close the connection at once, dropping anything not yet sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        self._transport.abort()

    async def aclose(self) -> None:
        """Close the connection; idempotent, and done even if the caller is cancelled."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        transport.close()
        _wake(self._protocol.waiter)
        # close() lets the loop flush what is buffered and close the socket at its next
        # turn: give it that turn, then drop whatever is left.
        await anyio.lowlevel.cancel_shielded_checkpoint()
        transport.abort()

    @property
    def raw_socket(self) -> socket.socket:
        """The connection's socket, for the idle check (``SocketAttribute.raw_socket``)."""
        return typing.cast("socket.socket", self._transport.get_extra_info("socket"))


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (or uvloop's), not Trio's."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def connect(host: str, port: int) -> AsyncioStream:
    """Open a TCP connection to ``host``:``port`` on the running asyncio loop.

    With several addresses, a new attempt starts every quarter of a second, or as soon as
    the last one failed, and the first to connect wins (happy eyeballs, RFC 8305, as AnyIO's
    ``connect_tcp``). Not asyncio's own (``happy_eyeballs_delay``): on Python 3.11 it loses
    the socket of an attempt that is cancelled as it connects, and uvloop has none.

    Raises:
        OSError: No address could be connected to.
    """
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = _interleaved([(info[0], str(info[4][0])) for info in infos])
    if len(addresses) == 1:
        return await _connect_one(addresses[0], port)
    winners: list[AsyncioStream] = []
    errors: list[OSError] = []
    await _race(addresses, port, winners, errors)
    if not winners:
        detail = "; ".join(str(error) for error in errors) or "no address"
        cause = errors[-1] if errors else None
        raise OSError(f"all connection attempts to {host}:{port} failed: {detail}") from cause
    # Run by test_happy_eyeballs_goes_on_to_the_next_address_at_once; but once a task group
    # has absorbed its cancellation, coverage's tracer sees no more lines of the coroutines
    # around it on Python 3.11, so it cannot be counted.
    return winners[0]  # pragma: no cover


async def _race(
    addresses: list[tuple[int, str]],
    port: int,
    winners: list[AsyncioStream],
    errors: list[OSError],
) -> None:
    """Happy eyeballs: the first connection made lands in ``winners``, the failures in
    ``errors``."""
    try:
        async with anyio.create_task_group() as attempts:

            async def attempt(address: tuple[int, str], failed: anyio.Event) -> None:
                try:
                    stream = await _connect_one(address, port)
                except OSError as exc:
                    errors.append(exc)
                    failed.set()
                    return
                if not winners:
                    winners.append(stream)
                    attempts.cancel_scope.cancel()
                else:  # pragma: no cover (cancelled by then, inside create_connection)
                    stream.abort()

            for address in addresses:
                failed = anyio.Event()
                attempts.start_soon(attempt, address, failed)
                with anyio.move_on_after(ATTEMPT_DELAY):
                    await failed.wait()
    except BaseException:
        for stream in winners:  # cancelled from outside as it won
            stream.abort()
        raise


async def _connect_one(address: tuple[int, str], port: int) -> AsyncioStream:
    family, ip = address
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_Protocol, ip, port, family=family)
    return AsyncioStream(transport, protocol)


def _interleaved(addresses: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The addresses without repeats, alternating families, the first family first."""
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return unique
    first = [address for address in unique if address[0] == unique[0][0]]
    other = [address for address in unique if address[0] != unique[0][0]]
    mixed: list[tuple[int, str]] = []
    for index in range(max(len(first), len(other))):
        mixed.extend(group[index] for group in (first, other) if index < len(group))
    return mixed

"""The reference server: openchat-ui's ``POST /api/chat`` over HTTP/1.1, on AnyIO and h11.

It runs inside the caller's event loop (asyncio or Trio) and writes every byte itself, through
the sans-IO h11, so tests control status lines, reason phrases and chunk boundaries exactly.
What the server answers is decided by the pure modules ``_chat`` and ``_plan``; this module
only moves bytes and keeps the records tests inspect.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import socket
import struct
import time
import typing
from types import MappingProxyType

import anyio
import anyio.lowlevel
import h11
from anyio.abc import ByteStream, SocketAttribute, TaskGroup, TaskStatus
from anyio.streams.tls import TLSListener

from .._models import MODELS
from .._numbers import is_number
from .._task_groups import hosted_task_group
from ._chat import ReceivedRequest, inspect_request
from ._faults import Fault, FaultBook
from ._plan import Ending, Reply, ResponsePlan, bad_request, plan_response

if typing.TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncGenerator, Callable, Collection, Iterable

    from anyio.abc import Listener

__all__ = ["Outcome", "ReferenceServer"]

# How a peer that went away shows up on an AnyIO stream: a clean close, a reset, or a stream
# we closed ourselves meanwhile.
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)

_BAD_REQUEST = bad_request()


@typing.final
class Outcome(enum.Enum):
    """How the response to one request ended."""

    #: The response is still being sent (or the server stopped while sending it).
    PENDING = "pending"
    #: The whole response was sent.
    COMPLETED = "completed"
    #: The client closed or reset the connection before the end of the response.
    ABORTED = "aborted"
    #: The server cut the connection on purpose, as a :class:`Fault` asked.
    CUT = "cut"


def _decode_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("ascii")
        # Header bytes are ISO-8859-1 by RFC 9110's history; latin-1 never fails.
        text = value.decode("latin-1")
        decoded[key] = f"{decoded[key]}, {text}" if key in decoded else text
    return decoded


@typing.final
class ReferenceServer(anyio.AsyncContextManagerMixin):
    """A local stand-in for an openchat-ui server, for tests and demos.

    ``POST /api/chat`` is served as openchat-ui serves it, and ``POST /v1/chat/completions``
    as an OpenAI-compatible server does; other paths get ``404`` and other methods ``405``.
    On ``/api/chat`` a valid body gets ``200`` with a chunked body and no ``Content-Type``,
    one chunk per word of the reply; anything else gets ``500``, the body ``Error`` and the
    detail in the reason phrase. On ``/v1/chat/completions`` the reply comes as server-sent
    events of ``chat.completion.chunk`` objects, ending with ``data: [DONE]`` (the token
    counts only when the request asks, with ``stream_options.include_usage``), and a bad body
    gets ``400`` with a JSON error; every message and body field the OpenAI API allows is
    accepted, and recorded in :attr:`requests`.
    The history is trimmed as openchat-ui trims it (see :func:`trim_history`). A client that
    closes its side of the connection (even a half-close) counts as gone: the reply stops and
    is recorded as :attr:`Outcome.ABORTED`, so tests see a cancellation at once.

    A :class:`Fault` makes a response go wrong on purpose: ``fault=`` applies one to every
    request, and a marker (``Fault.marker()``) in the content of a request's last message
    applies one to that request, taking precedence. An invalid marker gets ``400``.

    Use it as an async context manager; it listens from entering until leaving::

        async with ReferenceServer(delay=0.01) as server:
            async with AuraClient(server.base_url) as client:
                ...
            assert server.requests[-1].kept_messages

    Args:
        delay: Seconds to wait between two chunks of a reply.
        reply: Computes the reply to a valid request: a ``str`` is sent one word (with its
            trailing whitespace) per chunk, ``bytes`` as one chunk, and a sequence of ``str``
            and ``bytes`` one element per chunk, and a :class:`ToolCalls` as tool calls on
            the OpenAI route. If it raises, the client gets ``500`` with the exception's
            message as the reason phrase, as openchat-ui reports upstream failures (a JSON
            error on the OpenAI route). Defaults to :func:`default_reply`.
        models: The model ids the server knows; by default the keys of ``MODELS``.
        fault: A fault for every request that carries no marker of its own.
        ssl_context: Serve HTTPS with this server-side context (``https://`` in
            :attr:`base_url`); for TLS tests, with a certificate from ``trustme``, say.
        host: The address to listen on.
        port: The port to listen on; ``0`` picks a free one.
        record_times: Record when each request was received and each chunk of its body sent
            (:attr:`sent_times`): the truth a benchmark's measurements are checked against.

    Raises:
        ValueError: ``delay`` is not a finite number of seconds of at least 0.
        TypeError: ``fault`` is not a :class:`Fault`.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        reply: Reply | None = None,
        models: Collection[str] = MODELS.keys(),
        fault: Fault | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record_times: bool = False,
    ) -> None:
        if not is_number(delay) or delay < 0:
            raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
        self._delay = float(delay)
        self._reply = reply
        self._models = frozenset(models)
        if fault is not None and not isinstance(fault, Fault):
            raise TypeError(f"fault must be a Fault or None, got {type(fault).__name__}")
        self._fault_book = FaultBook(fault)
        self._ssl_context = ssl_context
        self._faults: list[Fault | None] = []
        self._host = host
        self._wanted_port = port
        self._port: int | None = None
        self._requests: list[ReceivedRequest] = []
        self._outcomes: list[Outcome] = []
        self._times: list[list[float]] | None = [] if record_times else None
        self._open_connections = 0
        self._accepted_connections = 0
        self._in_flight = 0
        self._max_in_flight = 0
        # Created lazily: an AnyIO Event needs a running event loop.
        self._changed: anyio.Event | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<ReferenceServer {where}>"

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: The server was never started.
        """
        if self._port is None:
            raise RuntimeError("the ReferenceServer is not started: use 'async with server:'")
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give a client, such as ``"http://127.0.0.1:54321"``.

        Raises:
            RuntimeError: The server was never started.
        """
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "http" if self._ssl_context is None else "https"
        return f"{scheme}://{host}:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, in arrival order (a copy)."""
        return list(self._requests)

    @property
    def outcomes(self) -> list[Outcome]:
        """How each response in :attr:`requests` ended, in the same order (a copy)."""
        return list(self._outcomes)

    @property
    def faults(self) -> list[Fault | None]:
        """The fault applied to each response in :attr:`requests`, or ``None`` (a copy)."""
        return list(self._faults)

    @property
    def sent_times(self) -> list[tuple[float, ...]]:
        """For each request in :attr:`requests`, when it was received (its whole body) and
        then when each chunk of the response's body was written to the socket, on
        :func:`time.perf_counter`'s clock, which other processes share; empty unless
        ``record_times`` was given. A paced server's own drift under load shows here."""
        return [] if self._times is None else [tuple(times) for times in self._times]

    @property
    def completed(self) -> int:
        """How many responses were sent completely."""
        return self._outcomes.count(Outcome.COMPLETED)

    @property
    def aborted(self) -> int:
        """How many responses the client cut short by closing or resetting the connection."""
        return self._outcomes.count(Outcome.ABORTED)

    @property
    def in_flight(self) -> int:
        """How many responses are being sent right now."""
        return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most responses that were ever being sent at once."""
        return self._max_in_flight

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        return self._open_connections

    @property
    def accepted_connections(self) -> int:
        """How many client connections were accepted in total."""
        return self._accepted_connections

    # A bounded default on purpose: a test waiting for the server must fail, not hang.
    async def wait_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate()`` is true; it is checked whenever the server's records change.

        Use it to wait for the server to observe something, such as a disconnect:
        ``await server.wait_until(lambda: server.aborted >= 1)``. Always a checkpoint;
        cancelling the wait has no other effect.

        Args:
            predicate: Called with no arguments after each change of the records.
            timeout: Seconds to wait at most; ``None`` waits forever.

        Raises:
            TimeoutError: ``predicate()`` was still false after ``timeout`` seconds.
        """
        await anyio.lowlevel.checkpoint()
        with anyio.fail_after(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()

    async def serve_forever(
        self, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the server and serve until cancelled; for command lines and demos.

        With ``await task_group.start(server.serve_forever)`` the call returns the base URL once
        the server listens.

        Raises:
            RuntimeError: The server is already running.
            OSError: The address could not be bound.
        """
        async with self:
            task_status.started(self.base_url)
            await anyio.sleep_forever()

    @contextlib.asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[ReferenceServer, None]:
        """Listen from entering until leaving, serving connections in a task group.

        Leaving stops listening, closes every connection and waits for the serving tasks.

        Raises:
            RuntimeError: The server is already running.
            OSError: The address could not be bound.
        """
        # Entering twice at once is refused by AsyncContextManagerMixin.
        listener = await anyio.create_tcp_listener(
            local_host=self._host, local_port=self._wanted_port
        )
        self._port = listener.extra(SocketAttribute.local_port)
        served: Listener[ByteStream] = listener
        if self._ssl_context is not None:
            # Not standard-compatible: HTTP/1.1 frames its own end, so clients may skip
            # close_notify, and most do.
            served = TLSListener(listener, self._ssl_context, standard_compatible=False)
        # Entering the task group neither blocks nor fails, so the listener cannot leak.
        async with hosted_task_group() as task_group:
            task_group.start_soon(self._serve, served, task_group)
            yield self

    def _changed_now(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _serve(self, listener: Listener[ByteStream], task_group: TaskGroup) -> None:
        # Listener.serve() does not close the listener, so the server does.
        async with listener:
            await listener.serve(self._handle, task_group)

    async def _handle(self, stream: ByteStream) -> None:
        self._accepted_connections += 1
        self._open_connections += 1
        self._changed_now()
        conn = h11.Connection(h11.SERVER)
        try:
            with contextlib.suppress(*_GONE):
                while await self._exchange(conn, stream):
                    conn.start_next_cycle()
        except h11.RemoteProtocolError:
            await self._send_bad_request(conn, stream)
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            self._open_connections -= 1
            self._changed_now()

    async def _exchange(self, conn: h11.Connection, stream: ByteStream) -> bool:
        """Serve one request; return whether the connection can carry another."""
        received = await self._read_request(conn, stream)
        if received is None:
            return False
        event, body = received
        target = event.target.decode("latin-1")
        record = inspect_request(
            event.method.decode("ascii"),
            target.partition("?")[0],
            MappingProxyType(_decode_headers(event.headers)),
            body,
            models=self._models,
        )
        try:
            fault = self._fault_book.choose(record.json)
        except ValueError as exc:
            fault = None
            plan = bad_request(f"Invalid fault marker: {exc}")
        else:
            plan = plan_response(record, reply=self._reply, delay=self._delay, fault=fault)
        index = len(self._requests)
        times = None
        if self._times is not None:
            times = [time.perf_counter()]
            self._times.append(times)
        self._requests.append(record)
        self._outcomes.append(Outcome.PENDING)
        self._faults.append(fault)
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        self._changed_now()
        try:
            outcome = await self._respond(conn, stream, plan, index, times)
        finally:
            self._in_flight -= 1
            self._changed_now()  # a waiter may be counting responses in flight
        return (
            outcome is Outcome.COMPLETED
            and conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
        )

    async def _read_request(
        self, conn: h11.Connection, stream: ByteStream
    ) -> tuple[h11.Request, bytes] | None:
        """Read one whole request; ``None`` if the client closed the connection between requests.

        Raises:
            h11.RemoteProtocolError: The client sent something that is not HTTP/1.1, or closed
                the connection in the middle of a request.
        """
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    interim = h11.InformationalResponse(status_code=100, headers=[])
                    await stream.send(conn.send(interim))
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    data = b""  # h11 turns this into ConnectionClosed or a protocol error
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            else:
                # ConnectionClosed; PAUSED cannot happen at the start of a cycle.
                return None

    async def _respond(
        self,
        conn: h11.Connection,
        stream: ByteStream,
        plan: ResponsePlan,
        index: int,
        times: list[float] | None,
    ) -> Outcome:
        """Send ``plan`` while watching for the client going away; record how it ended."""
        async with anyio.create_task_group() as task_group:

            async def watch() -> None:
                # A client that closes mid-reply may not make our next send() fail (the kernel
                # buffers it), so read concurrently to notice at once. Bytes of a pipelined
                # next request are kept in h11's buffer for the next cycle.
                with contextlib.suppress(*_GONE):
                    while True:
                        conn.receive_data(await stream.receive())
                task_group.cancel_scope.cancel()

            task_group.start_soon(watch)
            with contextlib.suppress(*_GONE):
                # Recorded before any further await: a client that has read the whole response
                # may stop the server before this task runs again.
                self._outcomes[index] = await self._send_plan(conn, stream, plan, times)
                self._changed_now()
            task_group.cancel_scope.cancel()
        if self._outcomes[index] is Outcome.PENDING:
            self._outcomes[index] = Outcome.ABORTED
            self._changed_now()
        return self._outcomes[index]

    async def _send_plan(
        self,
        conn: h11.Connection,
        stream: ByteStream,
        plan: ResponsePlan,
        times: list[float] | None = None,
    ) -> Outcome:
        """Send ``plan``; return ``COMPLETED``, or ``CUT`` if it ends by breaking the connection."""
        if plan.stall_before_head:
            await anyio.sleep_forever()
        head = h11.Response(status_code=plan.status, reason=plan.reason, headers=list(plan.headers))
        await stream.send(conn.send(head))
        # An empty chunk would end a chunked body, so h11 sends nothing for it: skip it here too.
        chunks = [chunk for chunk in plan.chunks if chunk]
        for index, chunk in enumerate(itertools.cycle(chunks) if plan.endless else chunks):
            wait = plan.delay if index else plan.first_delay
            if wait:
                await anyio.sleep(wait)
            data = conn.send(h11.Data(data=chunk))
            if times is not None:
                # Read before sending: a send writes to the socket at once, then yields to
                # the event loop, whose round on a busy server would make the record late.
                times.append(time.perf_counter())
            await stream.send(data)
        if plan.ending is Ending.END:
            await stream.send(conn.send(h11.EndOfMessage()))
            return Outcome.COMPLETED
        if plan.ending is Ending.STALL:
            await anyio.sleep_forever()
        if plan.ending is Ending.RESET:
            # A zero linger time makes closing send RST instead of FIN (RFC 9293 3.6).
            sock = stream.extra(SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The connection handler closes the connection as soon as this is recorded.
        return Outcome.CUT

    async def _send_bad_request(self, conn: h11.Connection, stream: ByteStream) -> None:
        # Protocol errors only arise while reading a request, before any response began, and
        # h11 still lets a server answer them; a client this broken must not stop the server.
        with contextlib.suppress(*_GONE, h11.LocalProtocolError):
            await self._send_plan(conn, stream, _BAD_REQUEST)

"""Test helpers: scripted replies over MockTransport, so client tests run the production path.

A :class:`Script` answers an ``AuraClient(transport=MockTransport(script))``'s requests with
the responses it was given, in turn, and records each request; :func:`reply` builds a
response whose body pauses or breaks wherever a test wants.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from typing import TYPE_CHECKING, TypeVar, cast

import anyio
import anyio.abc
import anyio.from_thread
import pytest

from aura_anyio import AuraClient, ChatStream, RetryPolicy, Timeouts
from aura_anyio.testing import MockResponse, MockTransport, ReferenceServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

    from anyio.abc import SocketStream

    from aura_anyio._transports._asyncio_stream import AsyncioStream
    from aura_anyio._transports._trio_stream import TrioStream
    from aura_anyio._transports.base import Request

T = TypeVar("T")
_Stream = TypeVar("_Stream", bound="AsyncioStream | TrioStream")

FAST_RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.01)
#: The reference server's reply (``testing.default_reply``) to one user message, ``{}``.
REPLY = "Hello from the reference server ✓ — you said «{}» (1 message kept) 👋"
BASE_URL = "https://chat.test"
URL = f"{BASE_URL}/api/chat"


@dataclasses.dataclass(frozen=True)
class Pause:
    """A silence of ``seconds`` in a scripted body."""

    seconds: float


Step = bytes | str | Exception | Pause


@dataclasses.dataclass(frozen=True)
class Steps:
    """A body that sends chunks, pauses or fails, step by step; each response reads it anew.

    An ``OSError`` step (``ConnectionResetError``, say) breaks the connection there, as
    :class:`MockResponse` documents.
    """

    steps: Sequence[Step]

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        return _StepIterator(iter(self.steps))


class _StepIterator:
    # A plain iterator rather than an async generator: Trio warns about generators left
    # unfinished, and tests stop reading early on purpose.
    def __init__(self, steps: Iterator[Step]) -> None:
        self._steps = steps

    def __aiter__(self) -> _StepIterator:
        return self

    async def __anext__(self) -> bytes | str:
        for step in self._steps:
            if isinstance(step, Pause):
                await anyio.sleep(step.seconds)
            elif isinstance(step, Exception):
                raise step
            else:
                return step
        raise StopAsyncIteration


def reply(
    *steps: Step,
    status: int = 200,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> MockResponse:
    """A response whose body follows ``steps``; ``reason`` sets the reason phrase."""
    return MockResponse(status, chunks=Steps(steps), headers=headers, reason=reason)


class Script:
    """A MockTransport handler: the responses given, in turn, and the requests received.

    An exception among the responses is raised instead of answering: an ``OSError``
    (``ConnectionRefusedError``, say) fails the connection.
    """

    def __init__(self, *responses: MockResponse | Exception) -> None:
        self._responses = iter(responses)
        self.calls: list[Request] = []

    @property
    def call_count(self) -> int:
        """How many requests arrived."""
        return len(self.calls)

    @property
    def called(self) -> bool:
        """Whether any request arrived."""
        return bool(self.calls)

    def __call__(self, request: Request) -> MockResponse:
        self.calls.append(request)
        response = next(self._responses, None)
        if response is None:
            raise AssertionError(f"request {len(self.calls)} was not scripted")
        if isinstance(response, Exception):
            raise response
        return response


def reply_to(prompt: str) -> str:
    """The reference server's reply to a conversation of one user message, ``prompt``."""
    return REPLY.format(prompt)


def make_client(
    script: Script,
    *,
    timeout: Timeouts = Timeouts(),  # noqa: B008
    max_retries: int | RetryPolicy = FAST_RETRIES,
    **kwargs: object,
) -> AuraClient:
    """An AuraClient whose requests ``script`` answers."""
    return AuraClient(
        BASE_URL,
        transport=MockTransport(script),
        timeout=timeout,
        max_retries=max_retries,
        **kwargs,  # type: ignore[arg-type]
    )


async def drain(chunks: ChatStream) -> None:
    """Read a reply to its end."""
    async for _ in chunks:
        pass


@contextlib.contextmanager
def served_in_thread(server: ReferenceServer) -> Iterator[ReferenceServer]:
    """Run ``server`` on an event loop in a thread of its own, for code that runs its own loop
    (a subprocess's client, Ray's actors, Hypothesis's examples) or none."""
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(server) as running,
    ):
        yield running


def fault_row(name: str) -> Callable[[T], T]:
    """Mark a test as the proof of the README fault-table row ``name`` (see test_readme.py)."""
    return cast("Callable[[T], T]", pytest.mark.fault_row(name))


async def until(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait until ``predicate()`` holds, for state that no event reports."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (nothing to wait on but time)
            await anyio.sleep(0.001)


@contextlib.asynccontextmanager
async def raw_peer(
    handler: Callable[[SocketStream], Awaitable[None]], host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    """A TCP server running ``handler`` for each connection; yields its port."""

    async def serve(stream: SocketStream) -> None:
        async with stream:  # closed however the handler ends, cancelled with the rest
            await handler(stream)

    async with (
        await anyio.create_tcp_listener(local_host=host) as listener,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(listener.serve, serve)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tasks.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def deaf_peer(connect: Callable[[int], Awaitable[_Stream]]) -> AsyncIterator[_Stream]:
    """The stream ``connect(port)`` makes to a peer that reads nothing, closed on the way out.

    The peer is a plain socket (AnyIO's own streams on asyncio read ahead), and both sides'
    buffers have a fixed size, which the kernel does not grow: once full, they stay full.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        stream = await connect(listener.getsockname()[1])
        stream.raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        peer, _ = listener.accept()  # it is in the backlog already
        with peer:
            try:
                yield stream
            finally:
                await stream.aclose()


async def quiet_peer(stream: SocketStream) -> None:
    """A peer that sends nothing and waits for the client to leave."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            await stream.receive()


def peer_sending(data: bytes) -> Callable[[SocketStream], Awaitable[None]]:
    """A peer that sends ``data``, then waits for the client to leave."""

    async def handler(stream: SocketStream) -> None:
        await stream.send(data)
        await quiet_peer(stream)

    return handler


def reset_on_close(stream: SocketStream) -> None:
    """Make closing ``stream`` a reset (``SO_LINGER`` 0) instead of an orderly end."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def peer_dripping(
    count: int, *, then: anyio.Event | None = None
) -> Callable[[SocketStream], Awaitable[None]]:
    """A peer that sends a byte ``count`` times, 0.1 s apart (each read well within 0.3 s),
    then, once ``then`` is set, ``b"later"``; then waits for the client to leave."""

    async def handler(stream: SocketStream) -> None:
        for _ in range(count):
            await anyio.sleep(0.1)
            await stream.send(b".")
        if then is not None:
            await then.wait()
            await stream.send(b"later")
        await quiet_peer(stream)

    return handler


async def resetting_peer(stream: SocketStream) -> None:
    """A peer that reads what the client sends first, then resets the connection."""
    reset_on_close(stream)
    await stream.receive()
    await stream.aclose()


async def read_until_broken(stream: anyio.abc.ByteStream) -> None:
    """Read ``stream`` until it fails (the failure propagates); a stall fails in 10 s."""
    with anyio.fail_after(10):
        while True:
            await stream.receive()

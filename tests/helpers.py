"""Test helpers for respx-driven client tests."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, TypeVar, cast

import anyio
import httpx
import pytest

from aura_anyio import AuraClient, ChatStream, RetryPolicy, Timeouts

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

    import respx

T = TypeVar("T")

FAST_RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.01)
URL = "https://chat.test/api/chat"


@dataclasses.dataclass(frozen=True)
class Pause:
    """A silence of ``seconds`` in a scripted body."""

    seconds: float


Step = bytes | str | Exception | Pause


class ScriptedStream(httpx.AsyncByteStream):
    """A response body that sends chunks, pauses or fails, step by step.

    A plain iterator rather than an async generator: Trio warns about generators left
    unfinished, and tests stop reading early on purpose.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.closed = False  # a route may hand the same response to several requests
        return _Steps(iter(self.steps), self)

    async def aclose(self) -> None:
        self.closed = True


class _Steps:
    def __init__(self, steps: Iterator[Step], stream: ScriptedStream) -> None:
        self._steps = steps
        self._stream = stream

    def __aiter__(self) -> _Steps:
        return self

    async def __anext__(self) -> bytes:
        if self._stream.closed:  # as a closed connection would, it gives nothing more
            raise httpx.ReadError("the connection is closed")
        for step in self._steps:
            if isinstance(step, Pause):
                await anyio.sleep(step.seconds)
            elif isinstance(step, Exception):
                raise step
            else:
                return step.encode() if isinstance(step, str) else step
        raise StopAsyncIteration


def reply(
    *steps: Step,
    status: int = 200,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A response whose body follows ``steps``; ``reason`` sets the reason phrase."""
    extensions = {} if reason is None else {"reason_phrase": reason.encode("latin-1")}
    return httpx.Response(
        status, headers=headers, stream=ScriptedStream(steps), extensions=extensions
    )


def make_client(
    router: respx.MockRouter,
    *,
    timeout: Timeouts = Timeouts(),  # noqa: B008
    max_retries: int | RetryPolicy = FAST_RETRIES,
    **kwargs: object,
) -> AuraClient:
    """An AuraClient whose HTTP goes to ``router``."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(router.handler))
    return AuraClient(
        "https://chat.test",
        http_client=http,
        timeout=timeout,
        max_retries=max_retries,
        **kwargs,  # type: ignore[arg-type]
    )


def route(router: respx.MockRouter, *responses: httpx.Response | Exception) -> respx.Route:
    """Route ``POST /api/chat`` to ``responses`` in turn."""
    return router.post(URL).mock(side_effect=list(responses))


async def drain(chunks: ChatStream) -> None:
    """Read a reply to its end."""
    async for _ in chunks:
        pass


def fault_row(name: str) -> Callable[[T], T]:
    """Mark a test as the proof of the README fault-table row ``name`` (see test_readme.py)."""
    return cast("Callable[[T], T]", pytest.mark.fault_row(name))


async def until(predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait until ``predicate()`` holds, for state that no event reports (httpcore's pool, say)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 (nothing to wait on but time)
            await anyio.sleep(0.001)

"""Scripted httpx responses, for the tests of the httpx adapter (respx, httpx.MockTransport).

Only tests of ``http_client=`` and of ``_transports/httpx`` use these; every other client test
runs over ``aura_anyio.testing.MockTransport`` (see ``helpers``).
"""

from __future__ import annotations

import typing

import httpx

from .helpers import Step, Steps

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence


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
        return _Steps(self.steps, self)

    async def aclose(self) -> None:
        self.closed = True


class _Steps:
    """The steps of :class:`helpers.Steps`, as bytes, and nothing once the stream is closed."""

    def __init__(self, steps: Sequence[Step], stream: ScriptedStream) -> None:
        self._steps = Steps(steps).__aiter__()
        self._stream = stream

    def __aiter__(self) -> _Steps:
        return self

    async def __anext__(self) -> bytes:
        if self._stream.closed:  # as a closed connection would, it gives nothing more
            raise httpx.ReadError("the connection is closed")
        step = await self._steps.__anext__()
        return step.encode() if isinstance(step, str) else step


def httpx_reply(
    *steps: Step,
    status: int = 200,
    reason: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An httpx response whose body follows ``steps``; ``reason`` sets the reason phrase
    (a ``str`` is sent as Latin-1, ``bytes`` as they are)."""
    if isinstance(reason, str):
        reason = reason.encode("latin-1")
    extensions = {} if reason is None else {"reason_phrase": reason}
    return httpx.Response(
        status, headers=headers, stream=ScriptedStream(steps), extensions=extensions
    )

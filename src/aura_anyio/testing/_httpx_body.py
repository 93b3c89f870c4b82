"""An httpx byte stream that yields fixed chunks, for :func:`stream_response`.

Apart from ``_streams`` so that httpx is imported only when a test builds such a response.
"""

from __future__ import annotations

import typing

import httpx

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["ChunkStream"]


@typing.final
class _ChunkIterator:
    # A plain iterator, not an async generator: Trio warns about a generator left unfinished
    # when a client stops reading early, and stopping early is what tests do.
    __slots__ = ("_chunks", "_stream")

    def __init__(self, stream: ChunkStream) -> None:
        self._stream = stream
        self._chunks = iter(stream.chunks)

    def __aiter__(self) -> _ChunkIterator:
        return self

    async def __anext__(self) -> bytes:
        if self._stream.closed:  # as a closed connection would, it gives nothing more
            raise httpx.ReadError("the connection is closed")
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


@typing.final
class ChunkStream(httpx.AsyncByteStream):
    """Yields fixed chunks one by one; it can be iterated again, so a route can reuse it."""

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self.chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.closed = False  # a route may hand the same stream to another response
        return _ChunkIterator(self)

    async def aclose(self) -> None:
        self.closed = True

"""Canned streamed responses for ``httpx.MockTransport`` and respx, with exact chunk boundaries."""

from __future__ import annotations

import typing

import httpx

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

__all__ = ["stream_response"]


@typing.final
class _ChunkIterator:
    # A plain iterator, not an async generator: Trio warns about a generator left unfinished
    # when a client stops reading early, and stopping early is what tests do.
    __slots__ = ("_chunks", "_stream")

    def __init__(self, stream: _ChunkStream) -> None:
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
class _ChunkStream(httpx.AsyncByteStream):
    """Yields fixed chunks one by one; it can be iterated again, so a route can reuse it."""

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self.chunks = chunks
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        self.closed = False  # a route may hand the same stream to another response
        return _ChunkIterator(self)

    async def aclose(self) -> None:
        self.closed = True


def stream_response(
    chunks: Iterable[bytes | str],
    *,
    status: int = 200,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    reason: str | None = None,
) -> httpx.Response:
    """Build a streamed ``httpx.Response`` whose body arrives in exactly the given chunks.

    Like openchat-ui's replies, it has no headers unless given (no ``Content-Type``, no
    ``Content-Length``), so a client must decode it as UTF-8 on its own.

    Args:
        chunks: The body, one element per chunk the client reads; ``str`` is UTF-8 encoded,
            ``bytes`` are sent as they are (split a multi-byte character across two to test
            incremental decoding).
        status: The status code.
        headers: The response headers.
        reason: The reason phrase (openchat-ui puts its error messages there); by default the
            standard phrase for ``status``. Must be Latin-1, as HTTP allows.

    Returns:
        A response for a mock transport's handler or a respx route.
    """
    body = tuple(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
    extensions = {} if reason is None else {"reason_phrase": reason.encode("latin-1")}
    return httpx.Response(status, headers=headers, stream=_ChunkStream(body), extensions=extensions)

"""MockTransport: an AuraClient's requests answered by a function of yours, with no network.

``AuraClient(transport=MockTransport(handler))`` runs everything the client does (retries,
timeouts, decoding, both wires, fan-out) over ``handler``: it gets each request and returns a
:class:`MockResponse`, whose body arrives in exactly the chunks given. Like httpx's
``MockTransport``, the handler may be sync or async.
"""

from __future__ import annotations

import dataclasses
import http
import inspect
import typing
from collections.abc import AsyncIterable, Iterable

import anyio
import anyio.lowlevel

from .._deadlines import DeadlineExpired, deadline_after, run_until
from .._transports.base import (
    ConnectError,
    NetworkError,
    ReadTimeout,
    Request,
    TransportClosed,
)

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

__all__ = ["Chunks", "Handler", "MockResponse", "MockTransport"]

#: A response body: bytes or str (one chunk), or a sync or async iterable of them (one
#: chunk per item; ``str`` is UTF-8 encoded).
Chunks = bytes | str | Iterable[bytes | str] | AsyncIterable[bytes | str]


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class MockResponse:
    """What a :class:`MockTransport` handler answers.

    Attributes:
        status: The status code.
        chunks: The body; each item of an iterable is one chunk as the client reads it, so
            a multi-byte character split across two items tests incremental decoding. A
            ``ConnectionError`` (or any ``OSError``) raised by the iterable breaks the
            connection there; an async iterable that waits longer than the client's read
            timeout trips it.
        headers: The response headers (names are matched case-insensitively).
        reason: The reason phrase; by default the standard one for ``status``.
    """

    status: int = 200
    _: dataclasses.KW_ONLY
    chunks: Chunks = ()
    headers: Mapping[str, str] | None = None
    reason: str | None = None


#: What a :class:`MockTransport` calls for each request: sync or async.
Handler = typing.Callable[[Request], "MockResponse | Awaitable[MockResponse]"]


@typing.final
class _MockBody:
    """A :class:`MockResponse` as a transport's response."""

    __slots__ = ("_chunks", "_read_timeout", "closed", "headers", "reason", "status_code")

    def __init__(self, response: MockResponse, read_timeout: float | None) -> None:
        self.status_code = response.status
        if response.reason is not None:
            self.reason = response.reason
        else:
            try:
                self.reason = http.HTTPStatus(response.status).phrase
            except ValueError:
                self.reason = ""
        self.headers = {name.lower(): value for name, value in (response.headers or {}).items()}
        self._read_timeout = read_timeout
        self.closed = False
        chunks = response.chunks
        if isinstance(chunks, (bytes, str)):
            chunks = (chunks,)
        self._chunks: Iterator[bytes | str] | AsyncIterator[bytes | str] = (
            chunks.__aiter__() if isinstance(chunks, AsyncIterable) else iter(chunks)
        )

    def __aiter__(self) -> _MockBody:
        return self

    async def __anext__(self) -> bytes:
        if self.closed:
            raise StopAsyncIteration
        chunks = self._chunks
        try:
            if isinstance(chunks, AsyncIterable):
                chunk = await run_until(deadline_after(self._read_timeout), chunks.__anext__)
            else:
                await anyio.lowlevel.checkpoint()  # as a socket read would be
                chunk = next(chunks)
        except (StopIteration, StopAsyncIteration):
            await self.aclose()
            raise StopAsyncIteration from None
        except DeadlineExpired:
            await self.aclose()
            raise ReadTimeout(f"no chunk within {self._read_timeout:g} s") from None
        except OSError as exc:
            await self.aclose()
            raise NetworkError(str(exc) or type(exc).__name__) from exc
        return chunk.encode() if isinstance(chunk, str) else bytes(chunk)

    async def aclose(self, *, linger: float = 0.0) -> None:
        if self.closed:
            return
        self.closed = True
        aclose: Callable[[], Awaitable[object]] | None = getattr(self._chunks, "aclose", None)
        if aclose is not None:  # an async generator of the handler's
            await aclose()


@typing.final
class MockTransport:
    """A transport that answers every request with ``handler(request)``; see the module doc.

    ``handler`` may raise an ``OSError`` (``ConnectionRefusedError``, say) to fail the
    connection. :attr:`open_responses` counts responses neither read to their end nor
    closed, so a test can check that the client leaks none.

    Args:
        handler: Gets the request and returns a :class:`MockResponse`, or an
            awaitable of one.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._open: set[_MockBody] = set()
        self._closed = False

    @property
    def open_responses(self) -> int:
        """Responses sent and neither read to their end nor closed."""
        return sum(not body.closed for body in self._open)

    async def send(self, request: Request) -> _MockBody:
        """Answer ``request`` with the handler's response.

        The request has ``method``, ``url``, ``headers`` (lower-case names), ``content``
        and ``json()``.
        """
        if self._closed:
            raise TransportClosed("the transport is closed")
        try:
            answer = self._handler(request)
            if inspect.isawaitable(answer):
                answer = await run_until(deadline_after(request.read_timeout), _wait, answer)
        except DeadlineExpired:
            raise ReadTimeout(f"no response within {request.read_timeout:g} s") from None
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        if not isinstance(answer, MockResponse):
            raise TypeError(
                f"a MockTransport handler must return a MockResponse, got {type(answer).__name__}"
            )
        body = _MockBody(answer, request.read_timeout)
        self._open = {open_body for open_body in self._open if not open_body.closed}
        self._open.add(body)
        return body

    async def aclose(self) -> None:
        """Refuse further requests."""
        self._closed = True


async def _wait(answer: Awaitable[MockResponse]) -> MockResponse:
    return await answer

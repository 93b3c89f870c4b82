"""The exceptions aura_anyio raises; pure, no I/O.

Every error the public API raises is an :class:`AuraError`. Each transport maps its own
library's errors (the OS's, AnyIO's, the HTTP parser's, httpx's) to the neutral ones of
``_transports/base`` once, and ``_exchange`` maps those to these once, chained with
``raise ... from``::

    AuraError
    ├── InvalidRequestError (also ValueError)      bad input, raised before any I/O
    ├── CacheError                                  a file that is not a response cache
    └── APIError                                    .request .previous_errors
        ├── APIConnectionError                      could not connect, or the connection broke
        │   └── APITimeoutError                     a connect/read/first-chunk/total timeout
        ├── APIStatusError                          .status_code .reason .body .headers
        │   ├── RateLimitError (429)                .retry_after
        │   └── ServerError (5xx)
        ├── EmptyReplyError                         a 200 with no text at all (/api/chat)
        ├── IncompleteStreamError                   failed after text arrived: .partial_text
        └── ResponseTooLargeError                   the body passed max_response_bytes

No message built here ever contains the API key, cookies or proxy credentials: the
:class:`RequestInfo` attached to an error holds only the method and a credential-free URL.
"""

from __future__ import annotations

import dataclasses
import typing
from types import MappingProxyType

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "PERMANENT_SERVER_STATUSES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuraError",
    "CacheError",
    "EmptyReplyError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "RateLimitError",
    "RequestInfo",
    "ResponseTooLargeError",
    "ServerError",
    "attempt_label",
    "end_with_history",
    "make_status_error",
]

# How much of an error body and a reason phrase go into str(error); the attributes keep all
# of what was read, and the body itself is bounded by the reader.
BODY_EXCERPT_CHARS = 200
REASON_EXCERPT_CHARS = 300
# The reason attribute is bounded as the body is (by its reader): a server can send a reason
# phrase of tens of kilobytes, and an error may be kept, logged or pickled.
REASON_LIMIT = 1024
# 501 Not Implemented and 505 HTTP Version Not Supported: the server will answer the same
# request the same way however often it comes.
PERMANENT_SERVER_STATUSES = frozenset({501, 505})


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class RequestInfo:
    """The request an error belongs to: method and URL, never its body, headers or cookies."""

    method: str
    url: str

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


class AuraError(Exception):
    """Base class of every exception aura_anyio raises on purpose."""


class CacheError(AuraError):
    """A :class:`ResponseCache` cannot use its file: not SQLite, another program's, or
    corrupt; the file is left as it is."""


class InvalidRequestError(AuraError, ValueError):
    """The arguments are invalid; raised before any network I/O, naming the field at fault."""


class APIError(AuraError):
    """A request was sent and did not produce a complete reply.

    ``previous_errors`` holds the errors of the attempts before the one that ended it,
    oldest first (``()`` after a single attempt); the message then ends with their history:
    ``(after 3 attempts: HTTP 503, empty reply)``.
    """

    request: RequestInfo | None
    previous_errors: tuple[APIError, ...]

    def __init__(self, message: str, *, request: RequestInfo | None = None) -> None:
        super().__init__(message)
        self.request = request
        self.previous_errors = ()


class APIConnectionError(APIError):
    """The connection could not be made, or it broke before the reply was complete.

    ``retryable`` is false when another attempt cannot help, as when the server's TLS
    certificate is not trusted.
    """

    retryable: bool

    def __init__(
        self, message: str, *, request: RequestInfo | None = None, retryable: bool = True
    ) -> None:
        super().__init__(message, request=request)
        self.retryable = retryable


class APITimeoutError(APIConnectionError):
    """A connect, read, first-chunk or total timeout expired."""


class APIStatusError(APIError):
    """The server answered with an error status."""

    status_code: int
    reason: str
    body: str
    headers: Mapping[str, str]

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        reason: str = "",
        body: str = "",
        headers: Mapping[str, str] | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.reason = reason
        self.body = body
        self.headers = MappingProxyType(dict(headers or {}))


class RateLimitError(APIStatusError):
    """The server refused for a rate limit: ``429 Too Many Requests``, or openchat-ui's ``500``
    that says "Rate limit reached" (it turns its upstream's 429 into a 500); ``retry_after``
    is the server's advice in seconds."""

    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        reason: str = "",
        body: str = "",
        headers: Mapping[str, str] | None = None,
        request: RequestInfo | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            reason=reason,
            body=body,
            headers=headers,
            request=request,
        )
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """The server answered with a 5xx status (openchat-ui answers every failure with 500)."""


class IncompleteStreamError(APIError):
    """The reply broke after some text had arrived; ``partial_text`` keeps that text."""

    partial_text: str

    def __init__(
        self, message: str, *, partial_text: str, request: RequestInfo | None = None
    ) -> None:
        super().__init__(message, request=request)
        self.partial_text = partial_text


class EmptyReplyError(APIError):
    """The server answered 200 with no text at all, as openchat-ui does under load; it is
    retried as a reply cut before its first text is, and if it persists, lower the load."""


class ResponseTooLargeError(APIError):
    """The reply passed ``max_response_bytes``; ``partial_text`` keeps what arrived before."""

    limit: int
    partial_text: str

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        partial_text: str = "",
        request: RequestInfo | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.limit = limit
        self.partial_text = partial_text


def attempt_label(error: APIError) -> str:
    """A few words for what ended one attempt, as a history lists it: ``HTTP 503``."""
    if isinstance(error, APIStatusError):
        return f"HTTP {error.status_code}"
    if isinstance(error, EmptyReplyError):
        return "empty reply"
    if isinstance(error, IncompleteStreamError):
        return f"cut after {len(error.partial_text)} characters"
    if isinstance(error, APITimeoutError):
        return "timeout"
    if isinstance(error, APIConnectionError):
        return "connection error"
    if isinstance(error, ResponseTooLargeError):
        return "too large"
    return type(error).__name__


def end_with_history(error: APIError, previous: tuple[APIError, ...], attempts: int) -> None:
    """Give ``error``, which ends a request of ``attempts`` attempts, the errors of the
    attempts before it.

    Only once: an error that has its history already (or has none to take) is left alone.
    """
    if error.previous_errors or not previous or error in previous:
        return
    error.previous_errors = previous
    labels = ", ".join(attempt_label(earlier) for earlier in previous)
    history = f"(after {attempts} attempt{'' if attempts == 1 else 's'}: {labels})"
    error.args = (f"{error.args[0]} {history}" if error.args else history, *error.args[1:])


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return text


def make_status_error(
    *,
    status_code: int,
    reason: str,
    body: str,
    headers: Mapping[str, str],
    request: RequestInfo | None,
    retry_after: float | None = None,
    rate_limited: bool | None = None,
) -> APIStatusError:
    """Build the error for an error status; the one place that maps statuses to classes.

    ``rate_limited`` says the status is a rate limit's (the wire knows: see
    ``Wire.rate_limited``); by default only a 429 is.

    The message carries the reason phrase (openchat-ui puts its only error detail there) and
    a bounded excerpt of the body; the ``reason`` attribute keeps at most
    :data:`REASON_LIMIT` characters of the phrase.
    """
    if len(reason) > REASON_LIMIT:
        reason = reason[:REASON_LIMIT] + "…"
    where = f" from {request}" if request is not None else ""
    message = f"HTTP {status_code} {_excerpt(reason, REASON_EXCERPT_CHARS)}".rstrip() + where
    excerpt = _excerpt(body)
    if excerpt:
        message += f"; body: {excerpt!r}"
    if rate_limited is None:
        rate_limited = status_code == 429
    if rate_limited:
        hint = f"retry after {retry_after:g} s" if retry_after is not None else "slow down"
        return RateLimitError(
            f"{message} (rate limited: {hint})",
            status_code=status_code,
            reason=reason,
            body=body,
            headers=headers,
            request=request,
            retry_after=retry_after,
        )
    if status_code >= 500:
        cls: type[APIStatusError] = ServerError
        message += (
            " (the server cannot serve this request; retrying will not help)"
            if status_code in PERMANENT_SERVER_STATUSES
            else " (the server failed; retrying later may help)"
        )
    else:
        cls = APIStatusError
        message += " (the server refused the request)"
    return cls(
        message,
        status_code=status_code,
        reason=reason,
        body=body,
        headers=headers,
        request=request,
    )

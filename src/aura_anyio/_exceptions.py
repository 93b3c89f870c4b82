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
        │   │                                       .code .type .param
        │   ├── BadRequestError (400)
        │   ├── AuthenticationError (401)
        │   ├── PermissionDeniedError (403)
        │   ├── NotFoundError (404)
        │   ├── ConflictError (409)
        │   ├── UnprocessableEntityError (422)
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

from ._error_body import server_words

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "PERMANENT_SERVER_STATUSES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuraError",
    "AuthenticationError",
    "BadRequestError",
    "CacheError",
    "ConflictError",
    "EmptyReplyError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestInfo",
    "ResponseTooLargeError",
    "ServerError",
    "UnprocessableEntityError",
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
# How much of the server's own message (from a JSON error body) goes into str(error).
SERVER_MESSAGE_CHARS = 500
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
    ``(earlier attempts: HTTP 503, empty reply)``.
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
    """The server answered with an error status.

    ``code``, ``type`` and ``param`` are what the server's JSON error body gave (OpenAI's
    ``{"error": {...}}``, vLLM's, FastAPI's ``detail``...), else ``None``; ``body`` is the
    body as it came (its first 8 KiB).
    """

    status_code: int
    reason: str
    body: str
    headers: Mapping[str, str]
    code: str | int | None
    type: str | None
    param: str | None

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
        self.code = None
        self.type = None
        self.param = None


class BadRequestError(APIStatusError):
    """400 Bad Request: the server found the request invalid (its message says why)."""


class AuthenticationError(APIStatusError):
    """401 Unauthorized: the key is missing, wrong or expired."""


class PermissionDeniedError(APIStatusError):
    """403 Forbidden: the key is valid but may not do this (a model, a region)."""


class NotFoundError(APIStatusError):
    """404 Not Found: no such route or model at this base URL."""


class ConflictError(APIStatusError):
    """409 Conflict: the request clashed with another (retried, as openai-python does)."""


class UnprocessableEntityError(APIStatusError):
    """422 Unprocessable Entity: the body is well-formed but its values are not accepted."""


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


def end_with_history(error: APIError, previous: tuple[APIError, ...]) -> None:
    """Give ``error``, which ends a request, the errors of the attempts before it.

    The message names them without a count: a ``request_timeout`` can end a request between
    two attempts, and "after 3 attempts" beside two names reads as a miscount.

    Only once: an error that has its history already (or has none to take) is left alone.
    """
    if error.previous_errors or not previous or error in previous:
        return
    error.previous_errors = previous
    labels = ", ".join(attempt_label(earlier) for earlier in previous)
    history = f"(earlier attempts: {labels})"
    error.args = (f"{error.args[0]} {history}" if error.args else history, *error.args[1:])


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return text


_CLIENT_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
}


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

    When the body is one of the JSON shapes servers put their reason in (``_error_body``),
    the message leads with the server's own message, and ``code``, ``type`` and ``param``
    hold what it gave; otherwise the message carries the reason phrase (openchat-ui puts its
    only error detail there) and a bounded excerpt of the body. The ``reason`` attribute
    keeps at most :data:`REASON_LIMIT` characters of the phrase.
    """
    if len(reason) > REASON_LIMIT:
        reason = reason[:REASON_LIMIT] + "…"
    where = f" from {request}" if request is not None else ""
    head = f"HTTP {status_code} {_excerpt(reason, REASON_EXCERPT_CHARS)}".rstrip() + where
    words = server_words(body)
    if rate_limited is None:
        rate_limited = status_code == 429
    cls: type[APIStatusError]
    if rate_limited:
        cls = RateLimitError
        hint = "rate limited: " + (
            f"retry after {retry_after:g} s" if retry_after is not None else "slow down"
        )
    elif status_code >= 500:
        cls = ServerError
        hint = (
            "the server cannot serve this request; retrying will not help"
            if status_code in PERMANENT_SERVER_STATUSES
            else "the server failed; retrying later may help"
        )
    else:
        cls = _CLIENT_ERRORS.get(status_code, APIStatusError)
        hint = "the server refused the request"
    if words is None:
        excerpt = _excerpt(body)
        message = f"{head}; body: {excerpt!r} ({hint})" if excerpt else f"{head} ({hint})"
    else:
        message = f"{_excerpt(words.message, SERVER_MESSAGE_CHARS)} ({head}; {hint})"
    error = cls(
        message,
        status_code=status_code,
        reason=reason,
        body=body,
        headers=headers,
        request=request,
    )
    if isinstance(error, RateLimitError):
        error.retry_after = retry_after
    if words is not None:
        error.code, error.type, error.param = words.code, words.type, words.param
    return error

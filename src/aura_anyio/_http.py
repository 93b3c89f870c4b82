"""The boundary with httpx: error translation and bounded reads.

This is the one place where httpx exceptions become aura_anyio's (chained with ``from``); no
httpx exception escapes the public API.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    RequestInfo,
    make_status_error,
)
from ._retry import parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ERROR_BODY_LIMIT",
    "read_error",
    "redact_url",
    "request_info",
    "translate_error",
]

# An error body is read only this far: a hostile or broken server cannot make us buffer more.
ERROR_BODY_LIMIT = 8192


def redact_url(url: str) -> str:
    """Return ``url`` with any user name and password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal regains its brackets
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def request_info(request: httpx.Request) -> RequestInfo:
    """Describe ``request`` for an error, without its body, headers or credentials."""
    return RequestInfo(request.method, redact_url(str(request.url)))


def translate_error(exc: httpx.HTTPError, info: RequestInfo) -> APIError:
    """Return the aura_anyio error for an httpx error; the caller raises it ``from exc``."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError(
            f"connect timeout: could not connect to {info.url} in time ({detail})", request=info
        )
    if isinstance(exc, httpx.ReadTimeout):
        return APITimeoutError(
            f"read timeout: the server sent nothing for too long ({detail}); "
            "raise Timeouts.read if replies pause longer",
            request=info,
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timeout talking to {info.url} ({detail})", request=info)
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(
            f"could not connect to {info.url}: {detail}; check the URL, network and proxy",
            request=info,
        )
    if isinstance(exc, httpx.ProxyError):
        return APIConnectionError(f"the proxy failed: {detail}", request=info)
    if isinstance(exc, (httpx.TransportError, httpx.DecodingError)):
        return APIConnectionError(f"the connection to {info.url} broke: {detail}", request=info)
    return APIError(f"HTTP error talking to {info.url}: {detail}", request=info)


async def read_error(response: httpx.Response, info: RequestInfo) -> APIStatusError:
    """Read at most :data:`ERROR_BODY_LIMIT` bytes of an error response and build its error.

    The response is not closed here: the caller's ``finally`` does it.
    """
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                del body[ERROR_BODY_LIMIT:]
                break
    except httpx.HTTPError:
        pass  # the status already says what went wrong; a broken body adds nothing
    headers: Mapping[str, str] = dict(response.headers)
    retry_after = parse_retry_after(headers, now=time.time())
    reason = response.reason_phrase
    if response.is_redirect:
        location = response.headers.get("location", "")
        reason = f"{reason} (redirect to {redact_url(location)!r} not followed)"
    return make_status_error(
        status_code=response.status_code,
        reason=reason,
        body=body.decode("utf-8", errors="replace"),
        headers=headers,
        request=info,
        retry_after=retry_after,
    )

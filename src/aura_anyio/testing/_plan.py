"""What the reference server sends for one request, decided before any byte goes out; no I/O.

A :class:`ResponsePlan` is the whole behaviour of one response. The server's connection
handler follows it step by step, so new behaviours (faults such as a connection broken
mid-chunk) are new plan fields plus a few lines in the handler, not a new code path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ._chat import CHAT_PATH, ReceivedRequest, default_reply, sanitize_reason, split_words

__all__ = ["Reply", "ResponsePlan", "plan_response", "reply_chunks"]

#: Computes a reply: a ``str`` is sent one word per chunk, ``bytes`` as one chunk, and a
#: sequence one element per chunk.
Reply = Callable[[ReceivedRequest], "str | bytes | Sequence[str | bytes]"]

_ERROR_HEADERS = ((b"content-type", b"text/plain;charset=UTF-8"),)


@dataclasses.dataclass(frozen=True, slots=True)
class ResponsePlan:
    """One response, byte for byte.

    Attributes:
        status: The status code.
        reason: The reason phrase, already valid for HTTP (see ``sanitize_reason``).
        headers: The headers, in order. Without a ``content-length`` the body is chunked.
        chunks: The body, one element per HTTP chunk (empty elements are skipped: an empty
            chunk would end a chunked body).
        delay: Seconds to wait between two chunks.
    """

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    chunks: tuple[bytes, ...] = ()
    delay: float = 0.0


def _error(status: int, reason: str, body: bytes, *extra: tuple[bytes, bytes]) -> ResponsePlan:
    length = (b"content-length", str(len(body)).encode("ascii"))
    return ResponsePlan(status, sanitize_reason(reason), (*_ERROR_HEADERS, length, *extra), (body,))


def reply_chunks(result: str | bytes | Sequence[str | bytes]) -> tuple[bytes, ...]:
    """Turn what a :data:`Reply` returned into the body's chunks, UTF-8 encoded.

    Raises:
        TypeError: ``result`` is neither a ``str`` nor a sequence of ``str`` and ``bytes``.
    """
    if isinstance(result, bytes):
        return (result,)
    pieces = split_words(result) if isinstance(result, str) else result
    chunks: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, str):
            chunks.append(piece.encode("utf-8"))
        elif isinstance(piece, bytes):
            chunks.append(piece)
        else:
            raise TypeError(f"a reply chunk must be str or bytes, got {type(piece).__name__}")
    return tuple(chunks)


def plan_response(
    request: ReceivedRequest, *, reply: Reply | None = None, delay: float = 0.0
) -> ResponsePlan:
    """Decide the response to ``request``, as openchat-ui would answer it.

    A rejected body, and a ``reply`` that raises, both get ``500`` with the body ``Error`` and
    the detail in the reason phrase, the way openchat-ui reports upstream failures.
    """
    if request.path != CHAT_PATH:
        plan = _error(404, "Not Found", b"Not Found")
    elif request.method != "POST":
        plan = _error(405, "Method Not Allowed", b"Method Not Allowed", (b"allow", b"POST"))
    elif request.error is not None:
        plan = _error(500, request.error, b"Error")
    else:
        try:
            chunks = reply_chunks((reply or default_reply)(request))
        except Exception as exc:  # a test's reply function reports failures this way
            plan = _error(500, str(exc) or type(exc).__name__, b"Error")
        else:
            # No content-type: openchat-ui answers with a bare ReadableStream.
            plan = ResponsePlan(200, b"OK", ((b"transfer-encoding", b"chunked"),), chunks, delay)
    if request.method == "HEAD":
        plan = dataclasses.replace(plan, chunks=())
    return plan

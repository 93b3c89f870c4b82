"""Canned streamed responses for ``httpx.MockTransport`` and respx, with exact chunk boundaries.

httpx is imported when a response is built, not with ``aura_anyio.testing``.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import httpx

__all__ = ["stream_response"]


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
    import httpx

    from ._httpx_body import ChunkStream

    body = tuple(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
    extensions = {} if reason is None else {"reason_phrase": reason.encode("latin-1")}
    return httpx.Response(status, headers=headers, stream=ChunkStream(body), extensions=extensions)

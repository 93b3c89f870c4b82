"""HTTP/1.1 requests: the bytes of a ``POST`` with a known body; pure, no I/O.

The transport builds a request's head once per client with :func:`request_prefix`, and
each request adds only its length and body with :func:`encode_request`.
"""

from __future__ import annotations

__all__ = ["encode_request", "request_prefix"]


def request_prefix(method: str, target: bytes, host: str, headers: dict[str, str]) -> bytes:
    """Return the request line and headers of a request, up to its ``Content-Length``.

    Args:
        method: The request method, a token.
        target: The request target, already encoded.
        host: The ``Host`` header's value, ASCII.
        headers: Checked already (see ``_options.build_headers``), and carrying no framing.

    Returns:
        The bytes the transport sends before each request's length and body.
    """
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), target, host.encode("ascii"))]
    lines.extend(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in headers.items())
    return b"".join(lines)


def encode_request(prefix: bytes, body: bytes) -> bytes:
    """Return the whole request: ``prefix`` (from :func:`request_prefix`), its length, ``body``.

    Args:
        prefix: The request line and headers, from :func:`request_prefix`.
        body: The request's content.

    Returns:
        The bytes to send.
    """
    return b"%scontent-length: %d\r\n\r\n%s" % (prefix, len(body), body)

"""HTTP/1.1 responses, parsed as they arrive; pure, no I/O.

:class:`ResponseParser` finds the final response's head, skipping interim (1xx) ones, then
picks the body's reader from it (RFC 9112 section 6.3) and hands the body over to that
reader. The client only ever sends ``POST`` with a known body, so a response is framed by
nothing (204, 304), ``Content-Length``, ``Transfer-Encoding: chunked`` or the server's close;
anything else is a :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import re
import typing

from .body import BodyReader, ChunkedReader, CloseReader, EmptyReader, LengthReader
from .head import Head, RemoteProtocolError, parse_head

__all__ = ["MAX_HEAD_BYTES", "ResponseParser", "choose_reader"]

# h11 allows 16 KiB; a server's cookies and security headers can pass that, 64 KiB is plenty.
MAX_HEAD_BYTES = 65536

_HEAD_END = re.compile(rb"\n\r?\n")


@typing.final
class ResponseParser:
    """Parse one response from the bytes a connection receives.

    Feed it with :meth:`feed` and :meth:`feed_eof`; :meth:`head` returns the head once all of
    it has come, then :meth:`read_body` returns the body as it arrives. Interim (1xx)
    responses are skipped; a ``101 Switching Protocols`` is an error.
    """

    __slots__ = ("_buffer", "_eof", "_head", "_keep_alive", "_reader", "_scanned")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._head: Head | None = None
        self._reader: BodyReader | None = None  # chosen once the head has come
        self._keep_alive = False
        # How far the head was searched for its end, so a head dripped byte by byte is not
        # searched again from the start on every read.
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server."""
        self._buffer += data

    def feed_eof(self) -> None:
        """Note that the server closed its side of the connection."""
        self._eof = True

    @property
    def done(self) -> bool:
        """Whether the whole response, body included, has been read."""
        reader = self._reader
        return reader is not None and reader.done

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request: the response ended cleanly,
        the server keeps the connection alive, and it sent nothing unasked for."""
        # A close-delimited body is done only at the EOF, so it is never reusable.
        return self.done and self._keep_alive and not self._buffer and not self._eof

    def head(self) -> Head | None:
        """Return the final response's head, or ``None`` while more bytes are needed.

        Raises:
            RemoteProtocolError: The head is malformed, too large, or cut by the server's close;
                or the server switched protocols, or frames the body in a way not spoken.
        """
        while self._head is None:
            buffer = self._buffer
            start = 0
            while buffer.startswith(b"\r\n", start):  # stray line ends before a status line
                start += 2
            found = _HEAD_END.search(buffer, max(start, self._scanned))
            if found is None:
                self._scanned = max(start, len(buffer) - 2)  # the end may be cut after \n\r
                # The head may be whole, its end cut after "\n\r".
                if len(buffer) - start > MAX_HEAD_BYTES + 2:
                    raise RemoteProtocolError(f"the response head is over {MAX_HEAD_BYTES} bytes")
                if self._eof:
                    raise RemoteProtocolError(
                        "Server disconnected without sending a response."
                        if len(buffer) == start
                        else "the server closed the connection inside the response head"
                    )
                return None
            if found.start() - start > MAX_HEAD_BYTES:
                raise RemoteProtocolError(f"the response head is over {MAX_HEAD_BYTES} bytes")
            head = parse_head(bytes(buffer[start : found.start()]))
            del buffer[: found.end()]
            self._scanned = 0
            if head.status_code == 101:
                raise RemoteProtocolError(
                    "the server switched protocols, which this client does not speak"
                )
            if head.status_code >= 200:
                self._reader = choose_reader(head)
                connection = head.headers.get("connection", "")
                tokens = {token.strip().lower() for token in connection.split(",")}
                self._keep_alive = head.http_version == "1.1" and "close" not in tokens
                self._head = head
        return self._head

    def read_body(self) -> bytes:
        """Return every body byte that has arrived and not been returned (``b""`` if none).

        Once :attr:`done` is true, the body is complete.

        Raises:
            RemoteProtocolError: The body is malformed, or the server closed the connection
                before its end (after the bytes that did arrive have been returned).
        """
        reader = self._reader
        if reader is None:
            raise RuntimeError("read_body() before head() has returned the head")
        return reader.read(self._buffer, self._eof)


def choose_reader(head: Head) -> BodyReader:
    """Return the reader for the body of the final response ``head`` (RFC 9112 section 6.3).

    Args:
        head: A final (2xx to 5xx) response's head.

    Returns:
        A new reader for its body.

    Raises:
        RemoteProtocolError: The framing is ambiguous (both ``Transfer-Encoding`` and
            ``Content-Length``), unsupported or malformed.
    """
    headers = head.headers
    length = headers.get("content-length")
    if head.status_code in (204, 304):
        return EmptyReader()
    if "transfer-encoding" in headers:
        if length is not None:  # a sign of request smuggling
            raise RemoteProtocolError("the response has both Transfer-Encoding and Content-Length")
        if headers["transfer-encoding"].strip().lower() != "chunked":
            raise RemoteProtocolError(
                f"unsupported Transfer-Encoding {headers['transfer-encoding']!r}"
            )
        return ChunkedReader()
    if length is None:
        return CloseReader()
    values = {value.strip() for value in length.split(",")}
    # int() refuses over 4300 digits; h11 allows 20.
    if len(values) != 1 or not all(_is_length(value) for value in values):
        raise RemoteProtocolError(f"invalid Content-Length {length!r}")
    size = int(values.pop())
    return LengthReader(size) if size else EmptyReader()


def _is_length(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 20

"""HTTP/1.1 responses for the lean transport, parsed as they arrive; pure, no I/O.

h11 turns every HTTP chunk into an event and runs its state machine for each. A streamed
reply comes as one chunk per token, so that per-event work was a third of the client's CPU
(``benchmarks/RESULTS.md``). :class:`ResponseParser` instead hands over every body byte that
has arrived in one call, whatever its chunking, so the cost follows the reads from the
socket, not the chunks. The client only ever sends ``POST`` with a known body, and reads
responses with these framings (RFC 9112 section 6.3): none (1xx, 204, 304), ``Content-Length``,
``Transfer-Encoding: chunked`` and close-delimited. Anything else is a :class:`ProtocolError`.
``tests/test_http1.py`` checks it against h11 with Hypothesis. Heads, a request's out and
a response's in, are ``_http1_head``'s; its names are re-exported here.
"""

from __future__ import annotations

import re
import typing
import zlib

from ._http1_head import Head, ProtocolError, encode_request, parse_head, request_prefix

__all__ = [
    "MAX_HEAD_BYTES",
    "Head",
    "ProtocolError",
    "ResponseParser",
    "encode_request",
    "request_prefix",
]

# h11 allows 16 KiB; a server's cookies and security headers can pass that, 64 KiB is plenty.
MAX_HEAD_BYTES = 65536
# A chunk-size line, extensions and all, and the trailer section: more is not a real server.
MAX_LINE_BYTES = 4096

_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?")
_HEAD_END = re.compile(rb"\n\r?\n")


class _Inflater(typing.Protocol):
    """What the parser uses of ``zlib.decompressobj()`` (whose class is private)."""

    @property
    def eof(self) -> bool: ...
    def decompress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


# How a body is delimited; the chunked states say what the parser waits for next.
_NONE, _LENGTH, _CLOSE, _CHUNK_SIZE_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _DONE = range(8)


@typing.final
class ResponseParser:
    """Parse one response from the bytes a connection receives.

    Feed it with :meth:`feed` and :meth:`feed_eof`; :meth:`head` returns the head once all of
    it has come, then :meth:`read_body` returns the body as it arrives. Interim (1xx)
    responses are skipped; a ``101 Switching Protocols`` is an error.
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_error",
        "_framing",
        "_head",
        "_inflate",
        "_keep_alive",
        "_remaining",
        "_scanned",
    )

    def __init__(self) -> None:
        self._buffer: bytearray = bytearray()
        self._eof: bool = False
        self._head: Head | None = None
        self._framing: int = _NONE
        self._remaining: int = 0  # of a Content-Length body, or of the current chunk
        self._keep_alive: bool = False
        self._inflate: _Inflater | None = None
        # How far the head was searched for its end, so a head dripped byte by byte is not
        # searched again from the start on every read.
        self._scanned: int = 0
        # An error found after some body bytes: raised once they have been returned.
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Add bytes received from the server."""
        self._buffer += data

    def feed_eof(self) -> None:
        """Note that the server closed its side of the connection."""
        self._eof = True

    @property
    def done(self) -> bool:
        """Whether the whole response, body included, has been read."""
        return self._framing == _DONE and self._error is None

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request: the response ended cleanly,
        the server keeps the connection alive, and it sent nothing unasked for."""
        return self.done and self._keep_alive and not self._buffer and not self._eof

    def head(self) -> Head | None:
        """Return the final response's head, or ``None`` while more bytes are needed.

        Raises:
            ProtocolError: The head is malformed, too large, or cut by the server's close;
                or the server switched protocols.
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
                    raise ProtocolError(f"the response head is over {MAX_HEAD_BYTES} bytes")
                if self._eof:
                    raise ProtocolError(
                        "Server disconnected without sending a response."
                        if len(buffer) == start
                        else "the server closed the connection inside the response head"
                    )
                return None
            if found.start() - start > MAX_HEAD_BYTES:
                raise ProtocolError(f"the response head is over {MAX_HEAD_BYTES} bytes")
            head = parse_head(bytes(buffer[start : found.start()]))
            del buffer[: found.end()]
            self._scanned = 0
            if head.status_code == 101:
                raise ProtocolError(
                    "the server switched protocols, which this client does not speak"
                )
            if head.status_code >= 200:
                self._start_body(head)
                self._head = head
        return self._head

    def _start_body(self, head: Head) -> None:
        headers = head.headers
        connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
        self._keep_alive = head.http_version == "1.1" and "close" not in connection
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            # Nothing asks for it, but RFC 9110 lets a server pick a coding then; wbits 47
            # reads gzip and zlib framing alike.
            self._inflate = zlib.decompressobj(47)
        elif encoding != "identity":
            raise ProtocolError(f"the server sent Content-Encoding {encoding!r}, not supported")
        length = headers.get("content-length")
        if head.status_code in (204, 304):
            self._framing = _DONE
        elif "transfer-encoding" in headers:
            if length is not None:  # RFC 9112 section 6.3: a sign of request smuggling
                raise ProtocolError("the response has both Transfer-Encoding and Content-Length")
            if headers["transfer-encoding"].strip().lower() != "chunked":
                raise ProtocolError(
                    f"unsupported Transfer-Encoding {headers['transfer-encoding']!r}"
                )
            self._framing = _CHUNK_SIZE_LINE
        elif length is not None:
            values = {value.strip() for value in length.split(",")}
            # int() refuses over 4300 digits; h11 allows 20.
            if len(values) != 1 or not all(_is_length(value) for value in values):
                raise ProtocolError(f"invalid Content-Length {length!r}")
            self._remaining = int(values.pop())
            self._framing = _LENGTH if self._remaining else _DONE
        else:
            self._framing = _CLOSE
            self._keep_alive = False

    def read_body(self) -> bytes:
        """Return every body byte that has arrived and not been returned (``b""`` if none).

        Once :attr:`done` is true, the body is complete.

        Raises:
            ProtocolError: The body is malformed, or the server closed the connection
                before its end (after the bytes that did arrive have been returned).
        """
        if self._error is not None:
            raise self._error
        framing = self._framing
        buffer = self._buffer
        if framing == _LENGTH:
            take = min(len(buffer), self._remaining)
            data = bytes(buffer[:take])
            del buffer[:take]
            self._remaining -= take
            if not self._remaining:
                self._framing = _DONE
        elif framing == _CLOSE:
            data = bytes(buffer)
            buffer.clear()
            if self._eof:
                self._framing = _DONE
        elif framing == _DONE:
            return b""
        elif self._head is None:
            raise RuntimeError("read_body() before head() has returned the head")
        else:
            data = self._read_chunked()
        if self._inflate is not None:
            data = self._inflate_data(data)
        if not data and self._eof and self._framing != _DONE:
            raise ProtocolError(
                "peer closed connection without sending complete message body"
                + (": incomplete chunked read" if self._framing != _LENGTH else "")
            )
        return data

    def _inflate_data(self, data: bytes) -> bytes:
        assert self._inflate is not None
        try:
            out = self._inflate.decompress(data)
            if self._framing == _DONE:
                out += self._inflate.flush()
        except zlib.error as exc:
            raise ProtocolError(f"the compressed body is corrupt ({exc})") from None
        if self._framing == _DONE and not self._inflate.eof:
            self._error = ProtocolError("the compressed body ends before its end marker")
            if not out:
                raise self._error
        return out

    def _read_chunked(self) -> bytes:
        buffer = self._buffer
        position = 0
        state = self._framing
        remaining = self._remaining
        pieces: list[bytearray] = []
        try:
            state, position, remaining = self._chunks(buffer, state, position, remaining, pieces)
        except ProtocolError as exc:
            if not pieces:
                raise
            self._error = exc  # raised after the bytes before it have been returned
        del buffer[:position]
        self._framing = state
        self._remaining = remaining
        return b"".join(pieces)

    @staticmethod
    def _chunks(
        buffer: bytearray, state: int, position: int, remaining: int, pieces: list[bytearray]
    ) -> tuple[int, int, int]:
        """Take the chunks' data from ``buffer`` into ``pieces``; return where it stopped."""
        end = len(buffer)
        while True:
            if state == _CHUNK_DATA:
                take = min(remaining, end - position)
                if take:
                    pieces.append(buffer[position : position + take])
                    position += take
                    remaining -= take
                if remaining:
                    break
                state = _CHUNK_END
            if state == _CHUNK_END:
                if end - position < 2:
                    break
                if not buffer.startswith(b"\r\n", position):
                    raise ProtocolError("a chunk's data is not followed by CRLF")
                position += 2
                state = _CHUNK_SIZE_LINE
            line_end = buffer.find(b"\r\n", position)
            # Whether the line's end has arrived or not (then its "\r" may have).
            if (line_end if line_end >= 0 else end - 1) - position > MAX_LINE_BYTES:
                raise ProtocolError("a chunk-size line or trailer is too long")
            if line_end < 0:
                break
            if state == _CHUNK_SIZE_LINE:
                match = _CHUNK_SIZE.fullmatch(buffer, position, line_end)
                if match is None:
                    raise ProtocolError("invalid chunk-size line")
                remaining = int(match[1], 16)
                state = _CHUNK_DATA if remaining else _TRAILERS
            elif line_end == position:  # the empty line that ends the trailer section
                return _DONE, position + 2, remaining
            # A trailer field is skipped: nothing in a reply needs one.
            position = line_end + 2
        return state, position, remaining


def _is_length(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= 20

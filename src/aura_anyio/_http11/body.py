"""HTTP/1.1 response bodies: one reader per framing; pure, no I/O.

RFC 9112 section 6.3 delimits a response body in one of four ways, and each has its reader
here: none at all (:class:`EmptyReader`), ``Content-Length`` (:class:`LengthReader`),
``Transfer-Encoding: chunked`` (:class:`ChunkedReader`) and the server's close
(:class:`CloseReader`). A reader takes every body byte the buffer holds in one call,
whatever the chunking, so its cost follows the reads from the socket, not the chunks, and it
leaves any bytes after the body in the buffer. Content codings are not undone: the body's
bytes are returned as they were sent.
"""

from __future__ import annotations

import re
import typing

from .head import RemoteProtocolError

__all__ = [
    "MAX_LINE_BYTES",
    "BodyReader",
    "ChunkedReader",
    "CloseReader",
    "EmptyReader",
    "LengthReader",
]

# A chunk-size line, extensions and all, and a trailer field: more is not a real server.
MAX_LINE_BYTES = 4096

# RFC 9112 section 7.1, with the line's CRLF: one call finds a whole valid size line. No more
# than 16 hex digits (64 bits), so int() never sees a huge number. A line that is not taken
# (not whole yet, too long, or invalid) is looked at the careful way: find its end, check
# its length, then refuse it.
_SIZE_LINE_PATTERN = rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r\n"
_CHUNK_SIZE_LINE = re.compile(_SIZE_LINE_PATTERN)
# And with the CRLF that ends the chunk before it: one call from one chunk's data to the next.
_NEXT_CHUNK_SIZE_LINE = re.compile(rb"\r\n" + _SIZE_LINE_PATTERN)
# The common case of that, a bare size (what servers send): its length is bounded by the
# pattern, so a match needs no check of it.
_NEXT_BARE_SIZE_LINE = re.compile(rb"\r\n([0-9A-Fa-f]{1,16})\r\n")
# A bare size line at the start of the buffer: the one-chunk read's fast path.
_WHOLE_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")
_CUT = "peer closed connection without sending complete message body"

# What a ChunkedReader waits for next.
_SIZE_LINE = 0  # a chunk-size line
_DATA = 1  # the rest of a chunk's data
_DATA_END = 2  # the CRLF after a chunk's data
_TRAILERS = 3  # a trailer field, or the empty line that ends the message


class BodyReader(typing.Protocol):
    """What the parser asks of a body's reader.

    The readers keep ``done`` as a plain attribute, which costs less to read than a property.
    """

    @property
    def done(self) -> bool:
        """Whether the whole body has been returned; :meth:`read` returns ``b""`` from then."""
        ...

    def read(self, buffer: bytearray, eof: bool) -> bytes:
        """Remove the body's bytes from the front of ``buffer`` and return them.

        Args:
            buffer: The bytes received and not yet taken; what follows the body stays.
            eof: Whether the server has closed its side: no more bytes will come.

        Returns:
            The body bytes that have arrived since the last call, ``b""`` if none.

        Raises:
            RemoteProtocolError: The body is malformed, or cut by the server's close. An error
                found after some bytes is raised by the next call, once they are returned.
        """
        ...


@typing.final
class EmptyReader:
    """No body: after a 204 or a 304, or a ``Content-Length`` of 0."""

    __slots__ = ()
    done = True

    def read(self, buffer: bytearray, eof: bool) -> bytes:
        """Return ``b""``: see :meth:`BodyReader.read`."""
        return b""


@typing.final
class LengthReader:
    """A body of ``Content-Length`` bytes.

    Args:
        length: The body's length in bytes.
    """

    __slots__ = ("_remaining", "done")

    def __init__(self, length: int) -> None:
        self._remaining = length
        self.done = not length

    def read(self, buffer: bytearray, eof: bool) -> bytes:
        """Return what has arrived of the body: see :meth:`BodyReader.read`."""
        take = min(len(buffer), self._remaining)
        data = bytes(buffer[:take])
        del buffer[:take]
        self._remaining -= take
        if not self._remaining:
            self.done = True
        elif not take and eof:
            raise RemoteProtocolError(_CUT)
        return data


@typing.final
class CloseReader:
    """A body that the server's close ends: every byte up to the EOF."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def read(self, buffer: bytearray, eof: bool) -> bytes:
        """Return what has arrived of the body: see :meth:`BodyReader.read`."""
        data = bytes(buffer)
        buffer.clear()
        if eof:
            self.done = True
        return data


@typing.final
class ChunkedReader:
    """A body sent with ``Transfer-Encoding: chunked`` (RFC 9112 section 7.1).

    Chunk extensions and trailer fields are skipped: nothing in a reply needs them.
    """

    __slots__ = ("_error", "_remaining", "_state", "done")

    def __init__(self) -> None:
        self._state = _SIZE_LINE
        self._remaining = 0  # of the current chunk's data
        # An error found after some body bytes: raised once they have been returned.
        self._error: RemoteProtocolError | None = None
        self.done = False

    def read(self, buffer: bytearray, eof: bool) -> bytes:
        """Return the data of the chunks that have arrived: see :meth:`BodyReader.read`."""
        if self.done:
            return b""  # and leave what follows the body in the buffer
        if self._error is not None:
            raise self._error
        if not buffer and not eof:
            return b""  # the reader asks before every read from the socket: nothing to parse
        state = self._state
        if state == _SIZE_LINE and (whole := _WHOLE_CHUNK.match(buffer)) is not None:
            # Exactly one whole chunk, as a server that writes a token at a time sends it
            # (and a read returns it): a bare size line, the data, its CRLF, nothing after.
            start = whole.end()
            stop = start + int(whole[1], 16)
            if start < stop and stop + 2 == len(buffer) and buffer.endswith(b"\r\n"):
                data = bytes(buffer[start:stop])
                buffer.clear()
                return data
        pieces: list[bytearray] = []
        remaining = self._remaining
        position = 0
        end = len(buffer)
        try:
            while True:
                if state == _DATA:
                    take = end - position
                    if take > remaining:
                        take = remaining
                    if take:
                        pieces.append(buffer[position : position + take])
                        position += take
                        remaining -= take
                    if remaining:
                        break
                    state = _DATA_END
                    # Chunk after whole chunk, as a reply that arrived in one read has them:
                    # the fewest steps each. Anything else is left to the careful way below.
                    bare = _NEXT_BARE_SIZE_LINE.match
                    while (match := bare(buffer, position)) is not None:
                        start = match.end()
                        stop = start + int(match[1], 16)
                        if stop >= end or start == stop:  # not all here, or the last chunk
                            break
                        pieces.append(buffer[start:stop])
                        position = stop
                if state != _TRAILERS:  # after a chunk's data, or before a size line
                    if state == _DATA_END:
                        match = _NEXT_CHUNK_SIZE_LINE.match(buffer, position)
                        longest = MAX_LINE_BYTES + 4  # the line and two CRLFs
                    else:
                        match = _CHUNK_SIZE_LINE.match(buffer, position)
                        longest = MAX_LINE_BYTES + 2
                    if match is not None and (after := match.end()) - position <= longest:
                        remaining = int(match[1], 16)
                        position = after
                        state = _DATA if remaining else _TRAILERS
                        continue
                if state == _DATA_END:
                    if end - position < 2:
                        break
                    if not buffer.startswith(b"\r\n", position):
                        raise RemoteProtocolError("a chunk's data is not followed by CRLF")
                    position += 2
                    state = _SIZE_LINE
                line_end = buffer.find(b"\r\n", position)
                # Whether the line's end has arrived or not (then its "\r" may have), so that
                # the verdict does not depend on where the reads were cut.
                if (line_end if line_end >= 0 else end - 1) - position > MAX_LINE_BYTES:
                    raise RemoteProtocolError("a chunk-size line or trailer is too long")
                if line_end < 0:
                    break
                if state == _SIZE_LINE:
                    # Whole and within the limit, yet not taken by the pattern above.
                    raise RemoteProtocolError("invalid chunk-size line")
                if line_end == position:  # the empty line that ends the trailer section
                    position += 2
                    self.done = True
                    break
                position = line_end + 2  # past a size line, or a trailer field skipped
        except RemoteProtocolError as exc:
            self._error = exc
            if not pieces:
                raise
            return b"".join(pieces)
        del buffer[:position]
        self._state = state
        self._remaining = remaining
        if not pieces and eof and not self.done:
            raise RemoteProtocolError(_CUT + ": incomplete chunked read")
        return b"".join(pieces)

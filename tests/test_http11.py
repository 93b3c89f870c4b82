"""``_http11`` against h11: the same bytes, in any split, give the same response.

h11 is the reference the lean transport replaced, so every valid response Hypothesis can
build must parse to what h11 reports, whatever the cut points of the reads. What h11 does
not cover (limits, the errors this parser adds) is pinned by examples, and each body reader
is checked on its own too. Content codings pass through untouched, as in h11.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import re
import typing

import h11
import pytest
from hypothesis import event, given, strategies as st

from aura_anyio._http11 import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    TOKEN,
    BodyReader,
    ChunkedReader,
    CloseReader,
    EmptyReader,
    Head,
    LengthReader,
    RemoteProtocolError,
    ResponseParser,
    choose_reader,
    encode_request,
    request_prefix,
)

if typing.TYPE_CHECKING:
    from collections.abc import Callable

# --- Strategies -----------------------------------------------------------------------------

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Framing and coding headers are drawn on purpose, never by chance.
_RESERVED = {"content-length", "transfer-encoding", "connection", "content-encoding"}
_VCHAR_OBS = [*range(0x21, 0x7F), *range(0x80, 0x100)]

field_names = st.text(_TCHAR, min_size=1, max_size=10).filter(lambda n: n.lower() not in _RESERVED)
_words = st.lists(st.sampled_from(_VCHAR_OBS), min_size=1, max_size=6).map(bytes)
_ows = st.sampled_from([b"", b" ", b"\t", b" \t "])


@st.composite
def field_values(draw: st.DrawFn) -> bytes:
    """A valid field value as sent: words split by spaces and tabs, with optional OWS around."""
    words = draw(st.lists(_words, max_size=3))
    value = words[0] if words else b""
    for word in words[1:]:
        value += draw(st.sampled_from([b" ", b"\t", b" \t "])) + word
    return draw(_ows) + value + draw(_ows)


_reasons = st.none() | st.lists(
    st.sampled_from([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]), max_size=12
).map(bytes)


@st.composite
def header_lines(draw: st.DrawFn) -> bytes:
    """Any number of ordinary header lines, names in any case, some repeated."""
    fields = draw(st.lists(st.tuples(field_names, field_values()), max_size=4))
    if len(fields) > 0 and draw(st.booleans()):
        fields.append((fields[0][0].upper(), draw(field_values())))  # a repeat, to be joined
    return b"".join(b"%s:%s\r\n" % (name.encode(), value) for name, value in fields)


def status_line(draw: st.DrawFn, version: bytes, status: int) -> bytes:
    reason = draw(_reasons)
    return b"HTTP/%s %d%s\r\n" % (version, status, b"" if reason is None else b" " + reason)


@st.composite
def chunked_bodies(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in chunks of random sizes, hex case, extensions and trailers."""
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=4)))
    bounds = [0, *(c for c in cuts if c < len(body)), len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    extensions = st.sampled_from([b"", b";a=b", b";name", b';a="q;r";c=d', b"  "])
    wire = []
    for chunk in [*chunks, b""]:
        size = b"%x" % len(chunk)
        size = size.upper() if draw(st.booleans()) else size
        size = b"0" * draw(st.integers(0, 2)) + size
        wire.append(size + draw(extensions) + b"\r\n")
        if chunk:
            wire.append(chunk + b"\r\n")
    wire.append(draw(header_lines()) + b"\r\n")  # trailers, then the end of the message
    return b"".join(wire)


@dataclasses.dataclass(frozen=True)
class Wire:
    """Bytes a server sends: one response, then ``data[end:]`` unasked for, then maybe EOF."""

    data: bytes
    end: int | None  # where the response ends; None when the EOF ends it (close-delimited)
    eof: bool


@st.composite
def responses(draw: st.DrawFn) -> Wire:
    """A valid response with optional interim 1xx responses, in any framing h11 reads."""
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    interim = b"".join(
        status_line(draw, version, status) + draw(header_lines()) + b"\r\n"
        for status in draw(st.lists(st.sampled_from([100, 102, 103, 199]), max_size=2))
    )
    framing = draw(st.sampled_from(["length", "chunked", "close", "none"]))
    if framing == "none":
        status = draw(st.sampled_from([204, 304]))
    else:
        status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))
    head = status_line(draw, version, status) + draw(header_lines())
    connection = draw(
        st.sampled_from([None, b"keep-alive", b"close", b"Keep-Alive, Close", b"x-close"])
    )
    if connection is not None:
        head += b"Connection: %s\r\n" % connection
    coding = draw(st.sampled_from([None, b"identity", b"gzip", b"br, gzip"]))
    if coding is not None:  # never decoded, by h11 or by the parser
        head += b"content-encoding: %s\r\n" % coding
    body = draw(st.binary(max_size=200))
    if framing == "length":
        name = draw(st.sampled_from([b"Content-Length", b"content-length"]))
        head += b"%s: %d\r\n" % (name, len(body))
        payload = body
    elif framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n"
        payload = draw(chunked_bodies(body))
    elif framing == "close":
        payload = body
    else:
        if status == 304 and draw(st.booleans()):  # the length of the would-be representation
            head += b"content-length: %d\r\n" % len(body)
        payload = b""
    message = interim + head + b"\r\n" + payload
    if framing == "close":
        return Wire(message, None, eof=True)
    # Mostly a clean end, so that a reusable connection is common too.
    extra = draw(st.sampled_from([b"", b"", b"", b"", b"HTTP/1.1 200 OK\r\n", b"\r\n", b"x"]))
    return Wire(message + extra, len(message), eof=draw(st.sampled_from([False, False, True])))


def splits(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut anywhere (empty pieces included), or one byte at a time."""
    every_byte = st.just(list(range(len(data) + 1)))
    cuts = st.lists(st.integers(0, len(data)), max_size=8).map(sorted) | every_byte
    return cuts.map(lambda c: [data[a:b] for a, b in itertools.pairwise([0, *c, len(data)])])


# --- Drivers --------------------------------------------------------------------------------


def feed(pieces: list[bytes], *, eof: bool, end: int | None = None) -> tuple[Head, bytes, bool]:
    """Run the parser as the transport does; return head, body and ``reusable``.

    With ``end`` (where the response ends), check ``done`` turns true exactly there.
    """
    parser = ResponseParser()
    head: Head | None = None
    body = bytearray()
    fed = 0
    for piece in pieces:
        parser.feed(piece)
        fed += len(piece)
        if head is None:
            head = parser.head()
        if head is not None:
            body += parser.read_body()
        assert parser.done == (end is not None and fed >= end)
    if eof:
        parser.feed_eof()
        if head is None:
            head = parser.head()
        assert head is not None
        body += parser.read_body()
    assert head is not None
    assert parser.done
    assert parser.head() is head
    assert parser.read_body() == b""
    return head, bytes(body), parser.reusable


def h11_reference(data: bytes, *, eof: bool) -> tuple[Head, bytes, bool]:
    """What h11, having sent a POST, makes of ``data``: head, body and reusability."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")])
    )
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    head: Head | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            headers: dict[str, str] = {}
            for name, value in event.headers:
                key, text = name.decode("ascii"), value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            head = Head(
                status_code=event.status_code,
                reason=event.reason.decode("latin-1"),
                headers=headers,
                http_version=event.http_version.decode("ascii"),
            )
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            assert isinstance(event, h11.InformationalResponse), event
    assert head is not None
    reusable = (
        conn.our_state is h11.DONE
        and conn.their_state is h11.DONE
        and conn.trailing_data == (b"", False)
    )
    return head, bytes(body), reusable


def outcome(pieces: list[bytes], *, eof: bool = False) -> tuple[Head | None, bytes, str | None]:
    """Feed ``pieces`` then read all it can: head, body so far, and the error if any."""
    parser = ResponseParser()
    head: Head | None = None
    body = bytearray()
    try:
        for piece in [*pieces, None]:
            if piece is None:
                if not eof:
                    break
                parser.feed_eof()
            else:
                parser.feed(piece)
            head = head or parser.head()
            while head is not None and not parser.done and (data := parser.read_body()):
                body += data
    except RemoteProtocolError as exc:
        return head, bytes(body), str(exc)
    return head, bytes(body), None


def trickle(data: bytes) -> list[bytes]:
    """``data`` in small reads: byte by byte, but over 10 kB 1000 bytes at a time until its
    last 16 (the head search is quadratic in byte-by-byte reads: seconds for 64 KiB)."""
    cut = 0 if len(data) < 10_000 else len(data) - 16
    return [data[i : min(i + 1000, cut)] for i in range(0, cut, 1000)] + [
        data[i : i + 1] for i in range(cut, len(data))
    ]


def error(data: bytes, *, eof: bool = False) -> str:
    """The message of the RemoteProtocolError ``data`` raises, whole and in small reads alike."""
    whole = outcome([data], eof=eof)[2]
    assert whole is not None, "no RemoteProtocolError"
    assert outcome(trickle(data), eof=eof)[2] == whole
    return whole


def response(head: bytes, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body


def chunked(body: bytes) -> bytes:
    return response(b"transfer-encoding: chunked\r\n", body)


def _head_of_max_size() -> bytes:
    """A head exactly MAX_HEAD_BYTES long up to the LF CR LF that ends it."""
    start = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx: "
    head = start + b"a" * (MAX_HEAD_BYTES - len(start) - 1) + b"\r"
    assert len(head) == MAX_HEAD_BYTES
    return head + b"\n\r\n"


# --- 1 and 2: h11 parity, in any split ------------------------------------------------------


@given(wire=responses(), data=st.data())
def test_matches_h11_in_any_split(wire: Wire, data: st.DataObject) -> None:
    """Status, reason, headers, version, body and reusability all agree with h11."""
    pieces = data.draw(splits(wire.data))
    got = feed(pieces, eof=wire.eof, end=wire.end)
    assert got == h11_reference(wire.data, eof=wire.eof)
    event(f"reusable={got[2]}")


@given(wire=responses(), data=st.data())
def test_chunking_does_not_matter(wire: Wire, data: st.DataObject) -> None:
    """Two splits of the same bytes give the same head, body and reusability."""
    one = feed(data.draw(splits(wire.data)), eof=wire.eof, end=wire.end)
    other = feed(data.draw(splits(wire.data)), eof=wire.eof, end=wire.end)
    assert one == other == feed([wire.data], eof=wire.eof, end=wire.end)


@pytest.mark.parametrize(
    "data",
    [
        # A limit that the whole message stays within must not trip for a partial read.
        pytest.param(
            _head_of_max_size(),
            id="head-of-exactly-MAX_HEAD_BYTES",
        ),
        pytest.param(
            chunked(b"0\r\nx: " + b"a" * (MAX_LINE_BYTES - 3) + b"\r\n\r\n"),
            id="trailer-of-exactly-MAX_LINE_BYTES",
        ),
        pytest.param(
            chunked(b"1;" + b"a" * MAX_LINE_BYTES + b"\r\nx\r\n0\r\n\r\n"),
            id="chunk-size-line-over-MAX_LINE_BYTES",
        ),
        pytest.param(chunked(b"1;" + b"a" * 100 + b"\r\nx\r\n0\r\n\r\n"), id="long-extension"),
        # The size line after a chunk's data is read with that data's CRLF: the same limits.
        pytest.param(
            chunked(b"1\r\nx\r\n1;" + b"a" * (MAX_LINE_BYTES - 2) + b"\r\ny\r\n0\r\n\r\n"),
            id="second-chunk-size-line-of-exactly-MAX_LINE_BYTES",
        ),
        pytest.param(
            chunked(b"1\r\nx\r\n1;" + b"a" * (MAX_LINE_BYTES - 1) + b"\r\ny\r\n0\r\n\r\n"),
            id="second-chunk-size-line-over-MAX_LINE_BYTES",
        ),
    ],
)
def test_limits_do_not_depend_on_chunking(data: bytes) -> None:
    """A response fed whole and in small reads gets the same verdict."""
    whole = outcome([data])
    assert whole[0] is not None
    assert outcome(trickle(data)) == whole


# --- 3: errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "eof", "word"),
    [
        (b"HTTP/1.1 20 OK\r\n\r\n", False, "status line"),
        (b"HTTP/1.1 200OK\r\n\r\n", False, "status line"),
        (b"HTTP/11 200 OK\r\n\r\n", False, "status line"),
        (b"ICY 200 OK\r\n\r\n", False, "status line"),
        (b"HTTP/1.1 200 O\x00K\r\n\r\n", False, "status line"),
        (response(b"no-colon\r\n"), False, "header line"),
        (response(b"name : value\r\n"), False, "header line"),
        (response(b": value\r\n"), False, "header line"),
        (response(b"na\x80me: value\r\n"), False, "header line"),
        (response(b" folded: before any header\r\n"), False, "continuation"),
        (response(b"x: a\x00b\r\n"), False, "invalid characters"),
        (response(b"x: a\x1bb\r\n"), False, "invalid characters"),
        (response(b"x: a\x7fb\r\n"), False, "invalid characters"),
        (response(b"x: a\rb\r\n"), False, "invalid characters"),
        (response(b"x: a\r\n \x01\r\n"), False, "invalid characters"),
        (b"HTTP/1.1 200 OK\r\nx: " + b"a" * MAX_HEAD_BYTES, False, "over"),
        (response(b"x: " + b"a" * MAX_HEAD_BYTES + b"\r\n"), False, "over"),
        (b"", True, "without sending a response"),
        (b"\r\n\r\n", True, "without sending a response"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n", True, "inside the response head"),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", False, "switched protocols"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Up\r\n\r\n", False, "switched protocols"),
        (response(b"transfer-encoding: chunked\r\ncontent-length: 1\r\n"), False, "both"),
        (response(b"transfer-encoding: gzip, chunked\r\n"), False, "Transfer-Encoding"),
        (response(b"transfer-encoding: gzip\r\n"), False, "Transfer-Encoding"),
        (
            response(b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n"),
            False,
            "Transfer-Encoding",
        ),
        (response(b"content-length: 1, 2\r\n"), False, "Content-Length"),
        (response(b"content-length: 1\r\ncontent-length: 2\r\n"), False, "Content-Length"),
        (response(b"content-length: -1\r\n"), False, "Content-Length"),
        (response(b"content-length: abc\r\n"), False, "Content-Length"),
        (response(b"content-length: 1 2\r\n"), False, "Content-Length"),
        (response(b"content-length: 1,\r\n"), False, "Content-Length"),
        (response(b"content-length:\r\n"), False, "Content-Length"),
        (response(b"content-length: \xb2\r\n"), False, "Content-Length"),  # Latin-1 superscript 2
        (chunked(b"zz\r\n"), False, "chunk-size"),
        (chunked(b"\r\n"), False, "chunk-size"),
        (chunked(b"-1\r\n"), False, "chunk-size"),
        (chunked(b" 1\r\nx\r\n"), False, "chunk-size"),
        (chunked(b"1" * 17 + b"\r\n"), False, "chunk-size"),
        (chunked(b"3\r\nabcX\r\n0\r\n\r\n"), False, "CRLF"),
        (chunked(b"3\r\nabc\n0\r\n\r\n"), False, "CRLF"),
        (chunked(b"1;" + b"a" * MAX_LINE_BYTES), False, "too long"),
        (chunked(b"0\r\nx: " + b"a" * MAX_LINE_BYTES), False, "too long"),
        (chunked(b"0\r\nx: " + b"a" * MAX_LINE_BYTES + b"\r\n\r\n"), False, "too long"),
        # After a chunk's data, read with its CRLF: the same verdicts.
        (chunked(b"1\r\nx\r\n1;" + b"a" * (MAX_LINE_BYTES - 1) + b"\r\ny\r\n"), False, "too long"),
        (chunked(b"1\r\nx\r\n\r\n1\r\ny\r\n"), False, "chunk-size"),  # an empty size line
        (chunked(b"1\r\nx\r\nzz\r\n"), False, "chunk-size"),
    ],
)
def test_protocol_errors(data: bytes, eof: bool, word: str) -> None:
    """Each malformed or unsupported response is a RemoteProtocolError that says what is wrong."""
    assert word in error(data, eof=eof)


def test_repeated_equal_content_length_is_one_length() -> None:
    """RFC 9112 section 6.3 allows the same length repeated, in one field or several."""
    data = response(b"content-length: 3\r\nContent-Length: 3 , 3\r\n", b"abcdef")
    head, body, reusable = feed([data], eof=False, end=len(data) - 3)
    assert (body, reusable) == (b"abc", False)  # "def" was not asked for
    assert head.headers["content-length"] == "3, 3 , 3"


@pytest.mark.parametrize(
    ("data", "body", "word"),
    [
        (response(b"content-length: 10\r\n", b"abc"), b"abc", "complete message body"),
        (chunked(b"5\r\nabc"), b"abc", "incomplete chunked read"),
        (chunked(b"3\r\nabc\r"), b"abc", "incomplete chunked read"),
        (chunked(b"3\r\nabc\r\n"), b"abc", "incomplete chunked read"),
        (chunked(b"3\r\nabc\r\n0\r\nx: y\r\n"), b"abc", "incomplete chunked read"),
    ],
)
def test_eof_mid_body_returns_what_came_then_raises(data: bytes, body: bytes, word: str) -> None:
    """The bytes that did arrive are handed over first; the next read raises."""
    parser = ResponseParser()
    parser.feed(data)
    assert parser.head() is not None
    assert parser.read_body() == body
    parser.feed_eof()
    with pytest.raises(RemoteProtocolError, match=word) as info:
        parser.read_body()
    assert ("chunked" in str(info.value)) == ("chunked" in word)
    # The same when the EOF comes with the data, in one read.
    parser = ResponseParser()
    parser.feed(data)
    parser.feed_eof()
    assert parser.head() is not None
    assert parser.read_body() == body
    with pytest.raises(RemoteProtocolError, match=word):
        parser.read_body()
    assert not parser.done
    assert not parser.reusable


def test_huge_content_length_is_a_protocol_error() -> None:
    assert "Content-Length" in error(response(b"content-length: " + b"9" * 5000 + b"\r\n"))


def test_status_code_under_100_is_an_error() -> None:
    data = b"HTTP/1.1 099 X\r\n\r\n" + response(b"content-length: 0\r\n")
    assert outcome([data])[2] is not None


# --- 4: lenient head syntax -----------------------------------------------------------------


def test_obs_fold_joins_with_a_space() -> None:
    head, _, _ = feed(
        [response(b"x: a\r\n b\r\n\t \tc \r\ny: d\r\ncontent-length: 0\r\n")], eof=False, end=0
    )
    assert head.headers == {"x": "a b c", "y": "d", "content-length": "0"}


@pytest.mark.parametrize("fold", [b"x:\r\n c\r\n", b"x: c\r\n \r\n"])
def test_obs_fold_value_has_no_outer_whitespace(fold: bytes) -> None:
    data = response(fold + b"content-length: 0\r\n")
    assert feed([data], eof=False, end=0)[0].headers["x"] == "c"


@given(data=st.data())
def test_leading_crlfs_are_skipped(data: st.DataObject) -> None:
    """RFC 9112 section 2.2: empty lines before the start line are ignored (h11 refuses)."""
    wire = b"\r\n" * data.draw(st.integers(1, 3)) + response(b"content-length: 2\r\n", b"ok")
    head, body, reusable = feed(data.draw(splits(wire)), eof=False, end=len(wire))
    assert (head.status_code, body, reusable) == (200, b"ok", True)


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\nx: y\ncontent-length: 2\n\nok",
        b"HTTP/1.1 200 OK\r\nx: y\ncontent-length: 2\n\r\nok",
        b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\nx: y\r\ncontent-length: 2\r\n\nok",
    ],
)
def test_bare_lf_line_ends_in_the_head(data: bytes) -> None:
    got = feed([data[i : i + 1] for i in range(len(data))], eof=False, end=len(data))
    assert got == h11_reference(data, eof=False)
    assert got[0].headers == {"x": "y", "content-length": "2"}


def test_status_line_without_reason() -> None:
    head, _, _ = feed([b"HTTP/1.1 204\r\n\r\n"], eof=False, end=0)
    assert (head.status_code, head.reason) == (204, "")


# --- 5: content codings pass through -------------------------------------------------------


@given(
    encoded=st.binary(max_size=2000) | st.binary(max_size=500).map(gzip.compress),
    coding=st.sampled_from([b"gzip", b"x-gzip", b" GZip ", b"deflate", b"br", b"gzip, br"]),
    framing=st.sampled_from(["length", "chunked", "close"]),
    data=st.data(),
)
def test_coded_bodies_pass_through_unchanged(
    encoded: bytes, coding: bytes, framing: str, data: st.DataObject
) -> None:
    """The parser never reads Content-Encoding: the body's bytes come out as they were sent,
    whatever the coding, valid or not, and whatever the reads' sizes."""
    head = b"content-encoding: %s\r\n" % coding
    if framing == "length":
        wire = response(head + b"content-length: %d\r\n" % len(encoded), encoded)
    elif framing == "chunked":
        wire = chunked(
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(encoded), encoded) if encoded else b"0\r\n\r\n"
        )
        wire = wire.replace(b"\r\n", b"\r\n" + head, 1)
    else:
        wire = response(head, encoded)
    eof = framing == "close"
    pieces = data.draw(splits(wire))
    got = feed(pieces, eof=eof, end=None if eof else len(wire))
    assert got[1] == encoded
    assert got == h11_reference(wire, eof=eof)


def test_coded_empty_and_bodiless_responses() -> None:
    """No body: nothing comes out, and nothing fails."""
    for data in [
        b"HTTP/1.1 304 Not Modified\r\ncontent-encoding: gzip\r\ncontent-length: 40\r\n\r\n",
        response(b"content-encoding: gzip\r\ncontent-length: 0\r\n"),
    ]:
        assert feed([data], eof=False, end=len(data))[1:] == (b"", True)


# --- 6: requests ----------------------------------------------------------------------------

_RESERVED_REQUEST = {"host", "content-length", "transfer-encoding"}
# Made, and checked, as this module loads: checking it imports Hypothesis's regex module
# (which pytest rewrites), and done inside @given on Python 3.11.7 that once failed with
# "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905, fixed in
# 3.11.8), as Hypothesis had changed the recursion limit.
_HOSTS = st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True)
_HOSTS.validate()


@given(
    method=st.text(_TCHAR, min_size=1, max_size=8),
    target=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    host=_HOSTS,
    headers=st.dictionaries(
        st.text(_TCHAR, min_size=1, max_size=10).filter(
            lambda n: n.lower() not in _RESERVED_REQUEST
        ),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t")),
        max_size=5,
    ),
    body=st.binary(max_size=300),
)
def test_request_parses_with_h11(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes
) -> None:
    """An h11 server reads back the method, target, host, headers and body."""
    wire = encode_request(request_prefix(method, b"/" + target.encode(), host, headers), body)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(wire)
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    received = bytearray()
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        received += event.data
    assert (request.method, request.target) == (method.encode(), b"/" + target.encode())
    assert list(request.headers) == [
        (b"host", host.encode()),
        *((name.lower().encode(), value.strip(" \t").encode()) for name, value in headers.items()),
        (b"content-length", b"%d" % len(body)),
    ]
    assert received == body
    assert conn.their_state is h11.DONE
    assert conn.trailing_data == (b"", False)


def test_request_bytes() -> None:
    """The exact wire form: what the transport caches once, then what each request adds."""
    prefix = request_prefix("POST", b"/v1/chat?x=1", "api.example:8443", {"accept": "*/*"})
    assert prefix == b"POST /v1/chat?x=1 HTTP/1.1\r\nhost: api.example:8443\r\naccept: */*\r\n"
    assert encode_request(prefix, b"{}") == prefix + b"content-length: 2\r\n\r\n{}"


def test_read_body_before_the_head_is_a_bug_of_the_caller() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(RuntimeError, match="before head"):
        parser.read_body()


def test_the_bytes_before_a_broken_chunk_are_returned_first() -> None:
    """Nothing that arrived intact is lost to a later framing error."""
    parser = ResponseParser()
    parser.feed(response(b"transfer-encoding: chunked\r\n", b"3\r\nabc\r\nzz\r\n"))
    assert parser.head() is not None
    assert parser.read_body() == b"abc"
    assert not parser.done
    with pytest.raises(RemoteProtocolError, match="chunk-size"):
        parser.read_body()
    with pytest.raises(RemoteProtocolError, match="chunk-size"):
        parser.read_body()  # and again: the parser is spent


# --- 7: each body reader on its own ---------------------------------------------------------


def read_all(
    reader: BodyReader, pieces: list[bytes], *, end: int | None, eof: bool = False
) -> tuple[bytes, bytes]:
    """Read as the parser does, one call per piece; return the body and what is left.

    With ``end`` (where the body ends), check ``done`` turns true exactly there.
    """
    buffer = bytearray()
    body = bytearray()
    fed = 0
    for piece in pieces:
        buffer += piece
        fed += len(piece)
        body += reader.read(buffer, False)
        assert reader.done == (end is not None and fed >= end)
    if eof:
        body += reader.read(buffer, True)
    assert reader.done
    assert reader.read(buffer, eof) == b""  # and the bytes after the body stay
    return bytes(body), bytes(buffer)


@given(body=st.binary(max_size=300), extra=st.binary(max_size=20), data=st.data())
def test_chunked_reader_in_any_split(body: bytes, extra: bytes, data: st.DataObject) -> None:
    """The chunks' data, whatever their sizes, extensions and trailers; nothing after them."""
    wire = data.draw(chunked_bodies(body))
    got = read_all(ChunkedReader(), data.draw(splits(wire + extra)), end=len(wire))
    assert got == (body, extra)


@given(body=st.binary(max_size=300), extra=st.binary(max_size=20), data=st.data())
def test_length_reader_in_any_split(body: bytes, extra: bytes, data: st.DataObject) -> None:
    """``Content-Length`` bytes exactly, however they are cut."""
    got = read_all(LengthReader(len(body)), data.draw(splits(body + extra)), end=len(body))
    assert got == (body, extra)


@given(body=st.binary(max_size=300), data=st.data())
def test_close_reader_in_any_split(body: bytes, data: st.DataObject) -> None:
    """Every byte, and the end only at the EOF."""
    assert read_all(CloseReader(), data.draw(splits(body)), end=None, eof=True) == (body, b"")


def test_empty_reader_takes_nothing() -> None:
    assert read_all(EmptyReader(), [b"HTTP/1.1 200 OK\r\n"], end=0, eof=True) == (
        b"",
        b"HTTP/1.1 200 OK\r\n",
    )


@pytest.mark.parametrize(
    ("make", "data"),
    [(lambda: LengthReader(5), b"abc"), (ChunkedReader, b"5\r\nabc")],
)
def test_readers_cut_by_the_eof(make: Callable[[], BodyReader], data: bytes) -> None:
    """What came is returned; then the EOF is an error, with ``chunked`` said when it was."""
    reader = make()
    assert reader.read(bytearray(data), True) == b"abc"
    with pytest.raises(RemoteProtocolError, match="complete message body") as info:
        reader.read(bytearray(), True)
    assert ("chunked" in str(info.value)) == isinstance(reader, ChunkedReader)
    assert not reader.done


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (204, {"content-length": "5"}, EmptyReader),
        (304, {"transfer-encoding": "chunked"}, EmptyReader),
        (200, {"content-length": "0"}, EmptyReader),
        (200, {"content-length": "3"}, LengthReader),
        (404, {"content-length": "3", "content-encoding": "gzip"}, LengthReader),
        (200, {"transfer-encoding": " Chunked "}, ChunkedReader),
        (500, {}, CloseReader),
    ],
)
def test_choose_reader_follows_rfc_9112(
    status: int, headers: dict[str, str], kind: type[BodyReader]
) -> None:
    head = Head(status_code=status, reason="", headers=headers, http_version="1.1")
    assert type(choose_reader(head)) is kind


def test_token_is_the_rfc_9110_tchar_set() -> None:
    """The one token pattern, for field names here and in ``_options``."""
    pattern = re.compile(TOKEN)
    assert "".join(c for c in map(chr, range(256)) if pattern.fullmatch(c)) == "".join(
        sorted(_TCHAR)
    )
    assert not pattern.fullmatch("")

"""The server-sent-events decoder: httpx-sse as the oracle, under any chunking.

httpx-sse only reads an ``httpx.Response``, so it gets the whole body at once; our decoder
gets it in drawn pieces. Where httpx-sse departs from the WHATWG rules (it dispatches events
that have no data), the streams are built so that its extra events can be told apart.
"""

from __future__ import annotations

import httpx
import httpx_sse
import pytest
from hypothesis import given, strategies as st

from aura_anyio._wire.sse import Event, EventDecoder

from .strategies import chunkings

ENDINGS = ("\n", "\r\n", "\r")
SPLITLINES = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # no line ends in an event stream
# Bytes that are not UTF-8, whole or cut short; none of them is CR, LF or ":".
INVALID = (b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80")

# Any character but CR and LF, emoji, NUL, U+0085 and U+2028 (not line ends here) included.
_chars = st.characters(codec="utf-8", exclude_characters="\r\n")
_text = st.text(_chars, max_size=8)
# Text that may hold invalid UTF-8: the decoders must replace it the same way.
_raw = st.lists(st.one_of(_text.map(str.encode), st.sampled_from(INVALID)), max_size=3).map(
    b"".join
)
_names = st.one_of(
    st.sampled_from(("id", "retry", "Data", "dat", " data", "data ", "event ")),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n:"), max_size=5),
)


@st.composite
def _lines(draw: st.DrawFn) -> bytes:
    """One non-empty line, without its ending: a field, a comment or a line with no colon."""
    kind = draw(st.sampled_from(("data", "data", "event", "other", "comment", "bare")))
    if kind == "comment":
        return b":" + draw(_raw)
    if kind == "bare":  # the whole line is the name, the value is ""
        bare = st.text(st.characters(codec="utf-8", exclude_characters="\r\n:"), min_size=1)
        return draw(st.one_of(st.sampled_from((b"data", b"event", b"id")), bare.map(str.encode)))
    name = kind if kind != "other" else draw(_names)
    space = draw(st.sampled_from((b"", b" ", b"  ", b"\t")))  # one space is dropped
    return name.encode() + b":" + space + draw(_raw)


def _has_data(line: bytes) -> bool:
    text = line.decode("utf-8", "replace")
    return not text.startswith(":") and text.partition(":")[0] == "data"


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bool]]:
    """An event stream, and for each of its blocks whether it has a data line.

    Each non-empty block ends with ``retry: <its index>``, which httpx-sse reports with the
    event, so that its events without data (the standard drops them) can be filtered out.
    The last block may be left without the empty line that would dispatch it.
    """
    blocks = draw(st.lists(st.lists(_lines(), max_size=5), max_size=6))
    lines: list[bytes] = []
    for index, block in enumerate(blocks):
        lines += [*block, f"retry: {index}".encode()] if block else []
        lines.append(b"")  # dispatch
    if draw(st.booleans()) and lines:
        lines.pop()  # the last event is never dispatched
    out = b""
    previous = ""
    for number, line in enumerate(lines):
        ending = draw(st.sampled_from(ENDINGS))
        if not line and previous == "\r" and ending == "\n":
            ending = "\r\n"  # CR then LF would be one line end: the empty line would vanish
        if number == len(lines) - 1 and draw(st.booleans()):
            ending = ""  # the stream ends in the middle of a line
        out += line + ending.encode()
        previous = ending
    return out, [any(map(_has_data, block)) for block in blocks]


def decode(pieces: list[bytes]) -> list[tuple[str, str]]:
    """Feed ``pieces`` one by one, then end the stream with an empty final feed."""
    decoder = EventDecoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    events += decoder.feed(b"", final=True)
    return [(event.event, event.data) for event in events]


def oracle(data: bytes, has_data: list[bool]) -> list[tuple[str, str]]:
    """httpx-sse's events for ``data``, less those of blocks with no data line."""
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=data)
    return [
        (sse.event, sse.data)
        for sse in httpx_sse.EventSource(response).iter_sse()
        if sse.retry is not None and has_data[sse.retry]
    ]


@given(st.data(), streams())
def test_same_events_as_httpx_sse_under_any_chunking(
    data: st.DataObject, stream: tuple[bytes, list[bool]]
) -> None:
    raw, has_data = stream
    assert decode(data.draw(chunkings(raw))) == oracle(raw, has_data)


@given(st.data(), streams())
def test_any_chunking_gives_the_events_of_one_feed(
    data: st.DataObject, stream: tuple[bytes, list[bool]]
) -> None:
    raw, _ = stream
    whole = EventDecoder().feed(raw, final=True)
    assert decode(data.draw(chunkings(raw))) == [(e.event, e.data) for e in whole]


def test_the_oracle_dispatches_events_without_data() -> None:
    """Why the streams carry retry markers: httpx-sse dispatches what the standard drops."""
    raw = b"event: e\nid: 1\n\n\n"
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
    # Two events: the id alone dispatches one at each empty line, since it is never reset.
    assert [(s.event, s.data) for s in httpx_sse.EventSource(response).iter_sse()] == [
        ("e", ""),
        ("message", ""),
    ]
    assert decode([raw]) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"data: x\n\n", [Event("x")]),
        (b"data:x\n\n", [Event("x")]),
        (b"data:  x\n\n", [Event(" x")]),  # only one space is dropped
        (b"data: a\ndata:\ndata: b\n\n", [Event("a\n\nb")]),
        (b"data:\n\n", [Event("")]),  # an empty data line is data
        (b"data\n\n", [Event("")]),  # no colon: the line is the name, the value ""
        (b"event: e\ndata: x\n\n", [Event("x", "e")]),
        (b"event:\ndata: x\n\n", [Event("x")]),  # an empty type is "message"
        (b"event: e\n\ndata: x\n\n", [Event("x")]),  # the type goes with the empty event
        (b": comment\nid: 1\nretry: 5\nother: y\ndata: x\n\n", [Event("x")]),
        # Only CR and LF end lines, not the other line breaks of str.splitlines().
        (
            SPLITLINES.join(("data: a", "b", "c", "d\n\n")).encode(),
            [Event(SPLITLINES.join("abcd"))],
        ),
        (b"data: x\r\rdata: y\r\n\r\n", [Event("x"), Event("y")]),
        (b"data: x\n", []),  # never dispatched
        (b"data: x", []),
    ],
)
def test_examples(raw: bytes, expected: list[Event]) -> None:
    assert EventDecoder().feed(raw, final=True) == expected


def test_invalid_utf8_becomes_replacement_characters() -> None:
    raw = b"data: a\xffb\xe2\x82\ndata:\xc3\n\n"
    assert decode([raw]) == [("message", "a\ufffdb\ufffd\n\ufffd")]
    assert decode([bytes([byte]) for byte in raw]) == decode([raw])


def test_a_character_split_across_feeds_survives() -> None:
    raw = "data: é€😀\n\n".encode()
    for cut in range(len(raw) + 1):
        assert decode([raw[:cut], raw[cut:]]) == [("message", "é€😀")]
    assert decode([bytes([byte]) for byte in raw]) == [("message", "é€😀")]


def test_cr_then_lf_in_the_next_feed_is_one_line_end() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []  # no empty line between a and b
    assert decoder.feed(b"\n\r") == [Event("a\nb")]
    assert decoder.feed(b"\ndata: c\r\n\n") == [Event("c")]  # the LF after the lone CR


def test_an_event_not_followed_by_an_empty_line_is_dropped() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [Event("a")]
    assert decoder.feed(b"data: c", final=True) == []


def test_an_empty_feed_between_cr_and_lf_changes_nothing() -> None:
    assert decode([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [("message", "a\nb")]


def test_a_leading_byte_order_mark_is_ignored() -> None:
    assert decode([b"\xef\xbb\xbfdata: x\n\n"]) == [("message", "x")]


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (b"", [Event("x")]),
        (b"event: e\n", [Event("x", "e")]),  # the type from an earlier feed
        (b"data: a\n", [Event("a\nx")]),  # a data line from an earlier feed
        (b"da", []),  # "da" + "data: x": a line named "dadata"
        (b"data: a\n\n", [Event("x")]),
    ],
)
def test_one_whole_event_a_feed_after_any_state(before: bytes, expected: list[Event]) -> None:
    """A feed of one whole event (a token's, as servers send them) keeps what came before."""
    decoder = EventDecoder()
    decoder.feed(before)
    assert decoder.feed(b"data: x\n\n") == expected

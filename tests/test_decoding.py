"""Incremental decoding: the same text under any chunking, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from aura_anyio._wire.text import TextDecoder, charset_from_content_type

from .strategies import chunkings


def decode_all(chunks: list[bytes], encoding: str = "utf-8") -> str:
    decoder = TextDecoder(encoding)
    return "".join(decoder.decode(chunk) for chunk in chunks) + decoder.flush()


@given(st.data(), st.text())
def test_any_chunking_gives_the_same_text(data: st.DataObject, text: str) -> None:
    assert decode_all(data.draw(chunkings(text.encode()))) == text


@given(st.data(), st.binary())
def test_invalid_bytes_are_replaced_the_same_way_under_any_chunking(
    data: st.DataObject, raw: bytes
) -> None:
    expected = raw.decode("utf-8", errors="replace")
    assert decode_all(data.draw(chunkings(raw))) == expected


@given(st.data(), st.text())
def test_another_charset_gives_the_same_text_under_any_chunking(
    data: st.DataObject, text: str
) -> None:
    # A charset other than UTF-8 has the codec's incremental decoder.
    raw = text.encode("utf-16-le")
    assert decode_all(data.draw(chunkings(raw)), "utf-16-le") == text


def test_every_split_of_a_multibyte_character() -> None:
    text = "a€😀b"
    raw = text.encode()
    for cut in range(len(raw) + 1):
        assert decode_all([raw[:cut], raw[cut:]]) == text
    assert decode_all([bytes([b]) for b in raw]) == text


def test_truncated_character_at_the_end_becomes_a_replacement() -> None:
    assert decode_all([b"ok", "€".encode()[:2]]) == "ok\ufffd"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "utf-8"),
        ("", "utf-8"),
        ("text/plain", "utf-8"),
        ("text/plain; charset=ISO-8859-1", "iso8859-1"),
        ('text/plain; charset="latin-1"', "iso8859-1"),
        ("text/plain; charset=no-such-codec", "utf-8"),
    ],
)
def test_charset_from_content_type(content_type: str | None, expected: str) -> None:
    assert charset_from_content_type(content_type) == expected


def test_declared_charset_is_used() -> None:
    assert decode_all(["é".encode("latin-1")], "latin-1") == "é"

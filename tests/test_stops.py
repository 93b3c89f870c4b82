"""Stop sequences cut on the client: one answer under any chunking, nothing yielded too soon."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from aura_anyio import InvalidRequestError
from aura_anyio._stops import StopScanner, stop_sequences

from .strategies import chunkings

#: A small alphabet, so that stop sequences actually occur and overlap in drawn text.
_text = st.text("abc", max_size=30)
_stops = st.lists(st.text("abc", min_size=1, max_size=4), max_size=3)


def cut_one_character_at_a_time(text: str, stops: list[str]) -> tuple[str, bool]:
    """The text as the reply should end: at the first place a stop sequence is complete."""
    for end in range(1, len(text) + 1):
        # Of two stop sequences that end here, the longer begins earlier.
        for stop in sorted(stops, key=len, reverse=True):
            if text[:end].endswith(stop):
                return text[: end - len(stop)], True
    return text, False


def scan(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    scanner = StopScanner(stops)
    out = [scanner.feed(piece) for piece in pieces]
    stopped = scanner.stopped
    out.append(scanner.flush())
    return out, stopped


@given(st.data(), _text, _stops)
def test_the_cut_is_the_same_under_any_chunking(
    data: st.DataObject, text: str, stops: list[str]
) -> None:
    out, stopped = scan(data.draw(chunkings(text)), stops)
    assert ("".join(out), stopped) == cut_one_character_at_a_time(text, stops)


@given(st.data(), _text, _stops)
def test_nothing_is_passed_on_that_a_later_piece_would_cut(
    data: st.DataObject, text: str, stops: list[str]
) -> None:
    expected, _ = cut_one_character_at_a_time(text, stops)
    scanner = StopScanner(stops)
    passed = ""
    for piece in data.draw(chunkings(text)):
        passed += scanner.feed(piece)
        assert expected.startswith(passed)


def test_text_that_may_begin_a_stop_sequence_is_held_back() -> None:
    scanner = StopScanner(["</s>"])
    assert scanner.feed("Hello <") == "Hello "
    assert scanner.feed("/") == ""
    assert scanner.feed("p> and </s> more") == "</p> and "
    assert scanner.stopped
    assert scanner.feed("ignored") == ""
    assert scanner.flush() == ""


def test_the_held_back_text_comes_out_at_the_end() -> None:
    scanner = StopScanner(["END"])
    assert scanner.feed("the E") == "the "
    assert not scanner.stopped
    assert scanner.flush() == "E"


def test_of_two_stop_sequences_the_one_that_ends_first_cuts() -> None:
    # "bc" is complete after "abc" arrives; "abcd" would need one more character.
    assert scan(["ab", "cd"], ["abcd", "bc"]) == (["", "a", ""], True)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [(None, ()), ("\n", ("\n",)), (["a", "bc"], ("a", "bc")), (("x",), ("x",)), ([], ())],
)
def test_stop_may_be_a_string_or_a_list_of_them(stop: object, expected: tuple[str, ...]) -> None:
    assert stop_sequences(stop) == expected


@pytest.mark.parametrize(
    ("stop", "message"),
    [
        (3, "stop must be a string or a list of strings, got int"),
        ({"a"}, "stop must be a string or a list of strings, got set"),
        ([""], r"stop\[0\] must be a non-empty string, got ''"),
        (["a", 1], r"stop\[1\] must be a non-empty string, got 1"),
        ("", "stop must be a non-empty string, got ''"),
    ],
)
def test_a_bad_stop_is_refused(stop: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        stop_sequences(stop)

"""The JSON reader of the OpenAI wire: msgspec's when installed, read as ``json.loads`` reads."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, strategies as st

from aura_anyio._wire import fastjson

from .strategies import json_values

msgspec_loads = fastjson.choose_loads(fastjson.msgspec_decoder())


def test_msgspec_is_used_when_installed() -> None:
    pytest.importorskip("msgspec")
    assert fastjson.msgspec_decoder() is not None
    assert fastjson.reader() is not json.loads
    assert fastjson.reader() is fastjson.reader()  # chosen once


def test_without_msgspec_it_is_json_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec raises ImportError
    assert fastjson.msgspec_decoder() is None
    assert fastjson.choose_loads(None) is json.loads


@given(json_values, st.booleans(), st.booleans())
def test_it_reads_what_json_reads(value: object, ascii_only: bool, spaced: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if spaced else None)
    # repr tells 1 from 1.0 and keeps the order of an object's keys.
    assert repr(msgspec_loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',  # a lone surrogate, escaped
        '"\ud800"',  # and as it is
        "123456789012345678901234567890",  # past 64 bits: an int still
        "-18446744073709551617",
        "1e400",  # past a float's range: infinity for json
        "[NaN, Infinity, -Infinity]",  # not JSON, but json reads it
        '{"a": 1, "a": 2}',  # the last of a repeated key
        '\t{"a": [1.5, -0.0, 5e-324]}\n',
    ],
)
def test_where_msgspec_differs_json_decides(text: str) -> None:
    assert repr(msgspec_loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["", "{", '{"a": }', "[1,]", "nul", '"\\x"'])
def test_what_json_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (json's own error: a ValueError)
        msgspec_loads(text)


def test_nesting_past_the_stack_is_a_recursion_error() -> None:
    with pytest.raises(RecursionError):
        msgspec_loads("[" * 100_000 + "]" * 100_000)

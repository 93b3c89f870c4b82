"""The batch file formats (pure): input lines to requests, results to rows, resume."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from aura_anyio import APITimeoutError, ChatRequest, ChatResult, RateLimitError
from aura_anyio._cli.jsonl import (
    BadLine,
    Row,
    id_key,
    line_error_row,
    ok_ids,
    parse_line,
    percentile,
    result_row,
)
from aura_anyio._exceptions import RequestInfo

ids = st.one_of(st.integers(), st.text(max_size=20))
# Rows a kill can leave, and rows that are not ok rows.
texts = st.text(max_size=50)
INFO = RequestInfo("POST", "http://x/api/chat")


@given(
    request_id=st.one_of(st.none(), ids),
    prompt=texts,
    system=st.one_of(st.none(), texts),
    line=st.integers(1, 10**6),
    temperature=st.one_of(st.none(), st.floats(0, 2)),
)
def test_a_prompt_line_becomes_its_request(
    request_id: str | int | None,
    prompt: str,
    system: str | None,
    line: int,
    temperature: float | None,
) -> None:
    fields: dict[str, object] = {"prompt": prompt}
    if request_id is not None:
        fields["id"] = request_id
    if system is not None:
        fields["system"] = system
    if temperature is not None:
        fields["temperature"] = temperature
    request = parse_line(json.dumps(fields), line)
    assert isinstance(request, ChatRequest)
    assert request.id == (line if request_id is None else request_id)
    system_messages = [] if system is None else [{"role": "system", "content": system}]
    assert request.messages == [*system_messages, {"role": "user", "content": prompt}]
    assert request.temperature == (0.5 if temperature is None else temperature)


@given(messages=st.lists(st.fixed_dictionaries({"role": st.just("user"), "content": texts})))
def test_a_messages_line_keeps_its_messages_as_they_are(messages: list[dict[str, str]]) -> None:
    request = parse_line(json.dumps({"id": "m", "messages": messages, "max_tokens": 900}), 3)
    assert isinstance(request, ChatRequest)
    assert (request.messages, request.max_tokens, request.model) == (messages, 900, "openchat_3.6")


@pytest.mark.parametrize("blank", ["", "\n", "  \t \r\n"])
def test_a_blank_line_is_no_request(blank: str) -> None:
    assert parse_line(blank, 1) is None


@pytest.mark.parametrize(
    ("text", "line_id", "needle"),
    [
        ("{", 4, "line 4 is not valid JSON"),
        ("[1]", 4, "must be a JSON object, got an array"),
        ('"x"', 4, "got a string"),
        ("3", 4, "got a number"),
        ("null", 4, "got null"),
        ('{"id": true, "prompt": "x"}', 4, "id must be a string or an integer"),
        ('{"id": [1], "prompt": "x"}', 4, "id must be a string or an integer"),
        ('{"id": "k", "prompt": "x", "promt": "y"}', "k", "unknown field 'promt'"),
        ('{"id": 9}', 9, 'exactly one of "messages" and "prompt"'),
        ('{"prompt": "x", "messages": []}', 4, 'exactly one of "messages" and "prompt"'),
        ('{"prompt": 5}', 4, "prompt must be a string"),
        ('{"prompt": "x", "system": 5}', 4, "system must be a string"),
        ('{"messages": [], "system": "s"}', 4, 'system goes with "prompt"'),
        ("[" * 100_000 + "]" * 100_000, 4, "line 4 is not valid JSON"),
        ('{"id": "\\ud800", "prompt": "x"}', 4, "id is not valid Unicode"),
    ],
)
def test_a_bad_line_says_why(text: str, line_id: str | int, needle: str) -> None:
    bad = parse_line(text, 4)
    assert isinstance(bad, BadLine)
    assert (bad.line, bad.id) == (4, line_id)
    assert needle in bad.reason
    row = line_error_row(bad)
    assert (row.ok, row.text, row.attempts, row.line) == (False, "", 0, 4)
    assert row.error == {"type": "InvalidRequestError", "message": bad.reason, "status_code": None}


@given(text=texts, request_id=ids, attempts=st.integers(1, 5), elapsed=st.floats(0, 1e4))
def test_a_result_row_round_trips_through_json(
    text: str, request_id: str | int, attempts: int, elapsed: float
) -> None:
    request = ChatRequest([{"role": "user", "content": "x"}], id=request_id)
    row = result_row(ChatResult(0, request, text, None, attempts, elapsed), line=7)
    assert json.loads(row.to_json()) == {
        "id": request_id,
        "line": 7,
        "ok": True,
        "text": text,
        "error": None,
        "attempts": attempts,
        "elapsed": round(elapsed, 6),
    }
    assert "\n" not in row.to_json()  # one row, one line, whatever the text


def test_an_error_row_names_the_type_and_the_status() -> None:
    request = ChatRequest([], id="r")
    limited = RateLimitError(
        "429 slow down", status_code=429, reason="slow", body="", headers={}, request=INFO
    )
    row = result_row(ChatResult(0, request, "", limited, 3, 1.0), line=1)
    assert row.error == {"type": "RateLimitError", "message": str(limited), "status_code": 429}
    timeout = APITimeoutError("too slow", request=INFO)
    row = result_row(ChatResult(0, request, "part", timeout, 1, 1.0), line=1)
    assert (row.ok, row.text, row.error) == (
        False,
        "part",
        {"type": "APITimeoutError", "message": "too slow", "status_code": None},
    )


@given(
    done=st.lists(ids, max_size=10),
    failed=st.lists(ids, max_size=10),
    junk=st.lists(
        st.sampled_from(['{"ok": true', "", "[]", '{"ok": true, "id": null}']), max_size=3
    ),
)
def test_resume_knows_exactly_the_ids_with_an_ok_row(
    done: list[str | int], failed: list[str | int], junk: list[str]
) -> None:
    lines = [Row(i, 1, True, "t", None, 1, 0.1).to_json() for i in done]
    lines += [Row(i, 1, False, "", {"type": "X"}, 1, 0.1).to_json() for i in failed]
    lines += ['{"ok": true, "id": false}', "[" * 100_000, *junk]
    assert ok_ids(lines) == {id_key(i) for i in done}


def test_ids_differ_by_type() -> None:
    assert id_key(1) != id_key("1")


@given(st.lists(st.floats(0, 100), min_size=1), st.floats(0, 1))
def test_a_percentile_is_one_of_the_values(values: list[float], fraction: float) -> None:
    found = percentile(values, fraction)
    assert found in values
    assert percentile(values, 0) == min(values)
    assert percentile(values, 1) == max(values)
    assert sum(value <= found for value in values) >= fraction * len(values)


def test_no_values_no_percentile() -> None:
    assert math.isnan(percentile([], 0.5))

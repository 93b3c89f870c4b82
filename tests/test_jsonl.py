"""The batch file formats (pure): input lines to requests, results to rows, resume."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    APITimeoutError,
    ChatRequest,
    ChatResult,
    EmptyReplyError,
    RateLimitError,
    ServerError,
    ToolCall,
    Usage,
)
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

from .strategies import json_values

ids = st.one_of(st.integers(), st.text(max_size=20))
# Rows a kill can leave, and rows that are not ok rows.
texts = st.text(max_size=50)
INFO = RequestInfo("POST", "http://x/api/chat")
# Any JSON object: what a line's extra_body may hold.
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
# An extra_body that is there but is not an object: passed on, refused when sent.
not_objects = json_values.filter(lambda value: value is not None and not isinstance(value, dict))
tool_calls = st.lists(
    st.builds(
        lambda call_id, name, arguments: ToolCall(
            id=call_id, type="function", function={"name": name, "arguments": arguments}
        ),
        texts,
        texts,
        texts,
    ),
    min_size=1,
    max_size=3,
)
usages = st.dictionaries(
    st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
    st.integers(0, 10**6),
)


@given(
    request_id=st.one_of(st.none(), ids),
    prompt=texts,
    system=st.one_of(st.none(), texts),
    line=st.integers(1, 10**6),
    temperature=st.one_of(st.none(), st.floats(0, 2)),
    max_tokens=st.one_of(st.none(), st.integers(1, 10**6)),
)
def test_a_prompt_line_becomes_its_request(
    request_id: str | int | None,
    prompt: str,
    system: str | None,
    line: int,
    temperature: float | None,
    max_tokens: int | None,
) -> None:
    fields: dict[str, object] = {"prompt": prompt}
    if request_id is not None:
        fields["id"] = request_id
    if system is not None:
        fields["system"] = system
    if temperature is not None:
        fields["temperature"] = temperature
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    request = parse_line(json.dumps(fields), line)
    assert isinstance(request, ChatRequest)
    assert request.id == (line if request_id is None else request_id)
    system_messages = [] if system is None else [{"role": "system", "content": system}]
    assert request.messages == [*system_messages, {"role": "user", "content": prompt}]
    assert request.temperature == (0.5 if temperature is None else temperature)
    # No max_tokens on the line: none in the request, so the wire's own default applies.
    assert request.max_tokens == max_tokens
    assert request.extra_body is None


@given(extra_body=json_objects, line=st.integers(1, 10**6))
def test_any_json_object_on_a_line_is_its_extra_body(
    extra_body: dict[str, object], line: int
) -> None:
    request = parse_line(json.dumps({"prompt": "x", "extra_body": extra_body}), line)
    assert isinstance(request, ChatRequest)
    assert request.extra_body == extra_body


@given(common=json_objects)
def test_the_common_extra_body_goes_to_a_line_without_one(common: dict[str, object]) -> None:
    before = json.dumps(common)
    for text in ['{"prompt": "x"}', '{"prompt": "x", "extra_body": null}']:
        request = parse_line(text, 1, common)
        assert isinstance(request, ChatRequest)
        assert request.extra_body == common
    assert json.dumps(common) == before  # shared by every line, changed by none


@given(common=json_objects, own=json_objects)
def test_a_lines_extra_body_fields_win_over_the_common_ones(
    common: dict[str, object], own: dict[str, object]
) -> None:
    before = json.dumps(common)
    request = parse_line(json.dumps({"prompt": "x", "extra_body": own}), 1, common)
    assert isinstance(request, ChatRequest)
    assert request.extra_body == {**common, **own}
    assert request.extra_body is not None
    for key, value in own.items():
        assert request.extra_body[key] == value
    assert json.dumps(common) == before


def test_merging_keeps_the_common_fields_a_line_does_not_set() -> None:
    request = parse_line(
        '{"prompt": "x", "extra_body": {"seed": 2, "top_p": 0.5}}', 1, {"seed": 1, "stop": ["\n"]}
    )
    assert isinstance(request, ChatRequest)
    assert request.extra_body == {"seed": 2, "stop": ["\n"], "top_p": 0.5}


@given(own=not_objects, common=st.one_of(st.none(), json_objects))
def test_an_extra_body_that_is_not_an_object_is_passed_on_as_it_is(
    own: object, common: dict[str, object] | None
) -> None:
    # Checked when sent: the line gets that request's InvalidRequestError row, the others run.
    request = parse_line(json.dumps({"id": "e", "prompt": "x", "extra_body": own}), 1, common)
    assert isinstance(request, ChatRequest)
    assert request.extra_body == own


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
    as_json = json.loads(row.to_json())
    assert (as_json["finish_reason"], as_json["usage"]) == (None, None)
    assert "tool_calls" not in as_json


@given(
    text=texts,
    request_id=ids,
    attempts=st.integers(1, 5),
    elapsed=st.floats(0, 1e4),
    finish_reason=st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls"]), texts),
    usage=st.one_of(st.none(), usages),
    calls=st.one_of(st.none(), tool_calls),
    endpoint=st.one_of(st.none(), st.sampled_from(["http://gpu1:8000", "http://gpu2:8000"])),
)
def test_a_result_row_round_trips_through_json(
    text: str,
    request_id: str | int,
    attempts: int,
    elapsed: float,
    finish_reason: str | None,
    usage: Usage | None,
    calls: list[ToolCall] | None,
    endpoint: str | None,
) -> None:
    request = ChatRequest([{"role": "user", "content": "x"}], id=request_id)
    result = ChatResult(
        0, request, text, None, attempts, elapsed, finish_reason, usage, endpoint, calls
    )
    row = result_row(result, line=7, name_server=endpoint is not None)
    assert "endpoint" not in result_row(result, line=7).to_json()  # one server: not named
    expected: dict[str, object] = {
        "id": request_id,
        "line": 7,
        "ok": True,
        "text": text,
        "error": None,
        "attempts": attempts,
        "elapsed": round(elapsed, 6),
        "ttft": None,
        "finish_reason": finish_reason,
        "usage": usage,
    }
    if calls is not None:  # only a reply that made tool calls has the field
        expected["tool_calls"] = calls
    if endpoint is not None:  # only a batch over several servers names them
        expected["endpoint"] = endpoint
    assert json.loads(row.to_json()) == expected
    assert "\n" not in row.to_json()  # one row, one line, whatever the text


def test_a_row_has_tool_calls_only_when_the_reply_made_some() -> None:
    call = ToolCall(id="call_0", type="function", function={"name": "f", "arguments": "{}"})
    row = Row(
        "r",
        1,
        True,
        "",
        None,
        1,
        0.5,
        finish_reason="tool_calls",
        usage={"total_tokens": 3},
        tool_calls=[call],
    )
    assert json.loads(row.to_json())["tool_calls"] == [call]
    assert '"tool_calls":[{"id":"call_0"' in row.to_json()
    bare = Row("r", 1, True, "t", None, 1, 0.5, finish_reason="stop")
    assert "tool_calls" not in bare.to_json()
    assert json.loads(bare.to_json())["usage"] is None
    assert bare.tool_calls is None  # left out of the JSON, not removed from the row


def test_a_row_keeps_its_time_to_first_text_and_what_its_retries_overcame() -> None:
    request = ChatRequest([], id="r")
    earlier = (ServerError("x", status_code=503), EmptyReplyError("y"))
    result = ChatResult(0, request, "hi", None, 3, 1.0, ttft=0.1234567, previous_errors=earlier)
    fields = json.loads(result_row(result, line=1).to_json())
    assert fields["ttft"] == 0.123457
    assert fields["previous_error_types"] == ["ServerError", "EmptyReplyError"]
    once = json.loads(result_row(ChatResult(0, request, "hi", None, 1, 1.0), line=1).to_json())
    assert once["ttft"] is None
    assert "previous_error_types" not in once  # no retries, no field


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

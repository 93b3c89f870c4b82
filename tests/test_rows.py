"""Rows of a batch as requests, and results as a row's fields (``_rows``); pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from aura_anyio import ChatRequest, ChatResult, ServerError
from aura_anyio._rows import OUTPUT_FIELDS, dataset_request, output_fields, row_request

PROMPT = [{"role": "user", "content": "hi"}]


@given(
    st.dictionaries(
        st.sampled_from(["model", "temperature", "max_tokens", "system", "other"]),
        st.one_of(st.none(), st.just(math.nan)),
    )
)
def test_an_empty_value_is_no_value(empty: dict[str, object]) -> None:
    request = dataset_request({"prompt": "hi", "messages": None, **empty}, 4)
    assert request == ChatRequest(PROMPT, id=4)


def test_whole_floats_are_ints_and_other_columns_pass_by() -> None:
    row = {"id": 7.0, "messages": PROMPT, "max_tokens": 100.0, "temperature": 0.2, "x": [1]}
    assert dataset_request(row, 0) == ChatRequest(PROMPT, max_tokens=100, temperature=0.2, id=7)
    assert dataset_request({"id": 1.5, "prompt": "x"}, 0) == "id must be a string or an integer"
    assert dataset_request({"id": True, "prompt": "x"}, 0) == "id must be a string or an integer"
    assert dataset_request({"id": "a", "prompt": "x", "system": "s"}, 0) == ChatRequest(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}], id="a"
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, 'exactly one of "messages" and "prompt"'),
        ({"prompt": "x", "messages": PROMPT}, 'exactly one of "messages" and "prompt"'),
        ({"prompt": 3}, "prompt must be a string"),
        ({"messages": PROMPT, "system": "s"}, "system goes with"),
        ({"prompt": "x", "system": 1}, "system must be a string"),
    ],
)
def test_a_row_of_the_wrong_shape_says_why(fields: dict[str, object], reason: str) -> None:
    outcome = row_request(fields, 1)
    assert isinstance(outcome, str)
    assert reason in outcome


def test_extra_body_of_the_row_wins_over_the_batch() -> None:
    request = row_request({"prompt": "x", "extra_body": {"a": 1}}, 1, {"a": 0, "b": 2})
    assert isinstance(request, ChatRequest)
    assert request.extra_body == {"a": 1, "b": 2}


def test_output_fields_of_a_result_and_of_a_bad_row() -> None:
    request = ChatRequest(PROMPT)
    ok = ChatResult(
        0, request, "hello", None, 1, 0.5, "stop", {"prompt_tokens": 3}, "http://a", ttft=0.25
    )
    assert dict(zip(OUTPUT_FIELDS, output_fields(ok), strict=True)) == {
        "text": "hello",
        "ok": True,
        "error": None,
        "error_type": None,
        "attempts": 1,
        "elapsed": 0.5,
        "ttft": 0.25,
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": None,
        "endpoint": "http://a",
        "reasoning": None,
    }
    failed = ChatResult(0, request, "par", ServerError("down", status_code=503), 3, 2.0)
    fields = dict(zip(OUTPUT_FIELDS, output_fields(failed), strict=True))
    assert (fields["ok"], fields["error"], fields["error_type"]) == (False, "down", "ServerError")
    bad = dict(zip(OUTPUT_FIELDS, output_fields("prompt must be a string"), strict=True))
    assert (bad["ok"], bad["error_type"], bad["attempts"]) == (False, "InvalidRequestError", 0)

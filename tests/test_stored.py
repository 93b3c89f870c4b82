"""The response cache's pure part: the request key and the stored reply's JSON."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio._exchange import StoredReader
from aura_anyio._stored import StoredReply, decode_reply, encode_reply, request_key
from aura_anyio._wire import wire_named

from .strategies import json_values, messages, stored_replies

T = typing.TypeVar("T")

openai = wire_named("openai", include_usage=True)
aura = wire_named("aura", include_usage=True)


def openai_key(
    conversation: list[dict[str, str]],
    *,
    model: str = "m",
    temperature: float = 0.5,
    max_tokens: int | None = None,
    extra_body: dict[str, object] | None = None,
) -> bytes:
    body = openai.body(
        conversation,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        extra_body=extra_body,
        key="",
    )
    return request_key("openai", body)


def reversed_keys(fields: dict[str, T]) -> dict[str, T]:
    return {key: fields[key] for key in reversed(list(fields))}


@given(messages(), st.dictionaries(st.sampled_from(("seed", "stop", "top_p")), json_values))
def test_the_key_does_not_depend_on_the_order_of_fields(
    conversation: list[dict[str, str]], extra: dict[str, object]
) -> None:
    key = openai_key(conversation, extra_body=extra)
    assert len(key) == 32
    again = openai_key(
        [reversed_keys(message) for message in conversation], extra_body=reversed_keys(extra)
    )
    assert again == key


def test_the_order_inside_a_field_counts() -> None:
    # A JSON schema's properties come out in the order given (structured output): two
    # schemas in different orders are different requests.
    def schema(*names: str) -> dict[str, object]:
        properties = {name: {"type": "string"} for name in names}
        return {"response_format": {"type": "json_schema", "schema": {"properties": properties}}}

    conversation = [{"role": "user", "content": "hi"}]
    assert openai_key(conversation, extra_body=schema("a", "b")) != openai_key(
        conversation, extra_body=schema("b", "a")
    )


@given(messages(), st.text(min_size=1))
def test_every_part_of_the_request_counts(conversation: list[dict[str, str]], word: str) -> None:
    key = openai_key(conversation)
    changed = [dict(message) for message in conversation]
    changed[-1]["content"] += word
    others = {
        openai_key(changed),
        openai_key(conversation, model="m2"),
        openai_key(conversation, temperature=0.6),
        openai_key(conversation, max_tokens=10),
        openai_key(conversation, extra_body={"seed": 1}),
    }
    assert key not in others
    assert len(others) == 5


def test_the_wire_counts_and_the_aura_key_does_not() -> None:
    conversation = [{"role": "user", "content": "hi"}]

    def aura_key(secret: str) -> bytes:
        body = aura.body(
            conversation,
            model="openchat_3.6",
            temperature=0.5,
            max_tokens=None,
            extra_body=None,
            key=secret,
        )
        assert json.loads(body)["key"] == secret  # it is in the body, but not in the key
        return request_key("aura", body)

    assert aura_key("") == aura_key("sk-secret")
    body = b'{"model": "m", "messages": []}'
    assert request_key("aura", body) != request_key("openai", body)
    # On the OpenAI wire a body field named "key" is the caller's, and counts.
    assert request_key("openai", b'{"key": 1}') != request_key("openai", b'{"key": 2}')


@given(stored_replies())
def test_a_stored_reply_reads_back_as_it_was(reply: StoredReply) -> None:
    assert decode_reply(encode_reply(reply)) == reply


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        '{"text": 1}',
        '{"text": "t", "finish_reason": 1}',
        '{"text": "t", "usage": []}',
        '{"text": "t", "tool_calls": {}}',
        '{"text": "t", "reasoning": 1}',
        "not json",
    ],
)
def test_a_row_that_is_not_a_stored_reply_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"stored reply|Expecting|Extra data"):
        decode_reply(text)


async def test_a_stored_reply_reads_as_an_ended_response() -> None:
    reply = StoredReply("whole", "stop", {"total_tokens": 3})
    reader = StoredReader(reply)
    assert (reader.done, reader.complete, reader.text) == (True, True, "whole")
    assert (reader.finish_reason, reader.usage, reader.tool_calls) == (
        "stop",
        {"total_tokens": 3},
        None,
    )
    assert await reader.next_text() == ""
    await reader.aclose()
    assert json.loads(encode_reply(reply))["text"] == "whole"
    assert not hasattr(reply, "next_text")  # the public type is a record, not a reader

"""The pure layer: message split, payload construction and validation."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    MODELS,
    InvalidRequestError,
    ModelSpec,
    build_payload,
    split_messages,
)

from .strategies import any_text, json_junk, messages

USER = {"role": "user", "content": "hi"}


@given(messages())
def test_split_keeps_order_and_count(conversation: list[dict[str, str]]) -> None:
    prompt, history = split_messages(conversation)
    others = [m for m in conversation if m["role"] != "system"]
    assert history == [{"role": m["role"], "content": m["content"]} for m in others]
    assert prompt == "\n".join(m["content"] for m in conversation if m["role"] == "system")


@given(messages(), st.floats(0, 2), st.integers(769, 10**6), st.sampled_from(list(MODELS)))
def test_payload_survives_json_and_keeps_every_message(
    conversation: list[dict[str, str]], temperature: float, max_tokens: int, model: str
) -> None:
    payload = build_payload(
        conversation, model=model, temperature=temperature, max_tokens=max_tokens
    )
    assert json.loads(json.dumps(payload)) == payload
    assert [m["content"] for m in payload["messages"]] == [
        m["content"] for m in conversation if m["role"] != "system"
    ]
    assert payload["model"]["id"] == model
    assert payload["model"]["tokenLimit"] == max_tokens
    assert payload["temperature"] == temperature


def test_payload_matches_the_wire_format() -> None:
    payload = build_payload(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi", "extra": 1},
            {"role": "system", "content": "and kind"},
            {"role": "assistant", "content": "hello"},
        ],
        key="secret",
        temperature=1,
    )
    assert payload == {
        "model": {
            "id": "openchat_3.6",
            "name": "OpenChat 3.6 (latest)",
            "maxLength": 24576,
            "tokenLimit": 8192,
        },
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
        "key": "secret",
        "prompt": "be brief\nand kind",
        "temperature": 1.0,
    }


def test_custom_model_spec() -> None:
    spec = ModelSpec("my-model", "Mine", 1000, 4096)
    assert build_payload([USER], model=spec)["model"] == {
        "id": "my-model",
        "name": "Mine",
        "maxLength": 1000,
        "tokenLimit": 8192,
    }


@pytest.mark.parametrize(
    ("messages", "kwargs", "needle"),
    [
        ("hello", {}, "messages must be a sequence"),
        ({"role": "user"}, {}, "messages must be a sequence"),
        (None, {}, "messages must be a sequence"),
        ([], {}, "at least one 'user' or 'assistant'"),
        ([{"role": "system", "content": "s"}], {}, "at least one 'user' or 'assistant'"),
        ([USER, "hi"], {}, "messages[1] must be a mapping"),
        ([{"content": "x"}], {}, "messages[0] has no 'role'"),
        ([{"role": "user"}], {}, "messages[0] has no 'content'"),
        ([USER, {"role": "bot", "content": "x"}], {}, "messages[1].role must be one of"),
        ([{"role": "user", "content": 3}], {}, "messages[0].content must be a str"),
        ([USER], {"model": "gpt-4"}, "'openchat_3.6', 'openchat_v3.2_mistral'"),
        ([USER], {"model": ""}, "model must be a known model id"),
        ([USER], {"model": 3}, "model must be a known model id"),
        ([USER], {"temperature": math.nan}, "temperature must be a finite number"),
        ([USER], {"temperature": 2.5}, "temperature"),
        ([USER], {"temperature": -0.1}, "temperature"),
        ([USER], {"temperature": True}, "temperature"),
        ([USER], {"temperature": "0.5"}, "temperature"),
        ([USER], {"max_tokens": 768}, "max_tokens must be an int of at least 769"),
        ([USER], {"max_tokens": 8192.0}, "max_tokens"),
        ([USER], {"max_tokens": True}, "max_tokens"),
        ([USER], {"key": None}, "key must be a str"),
        ([USER], {"key": "a\ud800"}, "key is not valid Unicode"),
        ([{"role": "user", "content": "x\udfff"}], {}, "messages[0].content is not valid Unicode"),
    ],
)
def test_invalid_input_names_the_field(messages: object, kwargs: object, needle: str) -> None:
    assert isinstance(kwargs, dict)
    with pytest.raises(InvalidRequestError) as caught:
        build_payload(messages, **kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("", "n", 1, 1), "ModelSpec.id"),
        (("i", 3, 1, 1), "ModelSpec.name"),
        (("i", "n", 0, 1), "ModelSpec.max_length"),
        (("i", "n", 1, True), "ModelSpec.token_limit"),
    ],
)
def test_invalid_model_spec(args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        ModelSpec(*args)  # type: ignore[arg-type]


@given(
    json_junk,
    st.one_of(json_junk, st.sampled_from(list(MODELS))),
    json_junk,
    json_junk,
)
def test_junk_raises_invalid_request_error_or_builds(
    junk_messages: object, model: object, temperature: object, max_tokens: object
) -> None:
    try:
        payload = build_payload(
            junk_messages,  # type: ignore[arg-type]
            model=model,  # type: ignore[arg-type]
            temperature=temperature,  # type: ignore[arg-type]
            max_tokens=max_tokens,  # type: ignore[arg-type]
        )
    except InvalidRequestError:
        return
    assert json.loads(json.dumps(payload)) == payload


@given(
    st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": any_text}),
        max_size=4,
    ),
    any_text,
)
def test_every_payload_built_encodes_as_utf8(junk: list[dict[str, str]], key: str) -> None:
    try:
        payload = build_payload(junk, key=key)
    except InvalidRequestError:
        return
    # The client sends ensure_ascii=False JSON as UTF-8: that must never fail.
    json.dumps(payload, ensure_ascii=False).encode("utf-8")


@given(st.lists(json_junk, max_size=5))
def test_junk_messages_only_raise_invalid_request_error(junk: list[object]) -> None:
    with contextlib.suppress(InvalidRequestError):
        split_messages(junk)  # type: ignore[arg-type]

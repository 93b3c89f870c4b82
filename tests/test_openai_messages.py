"""The OpenAI wire's request, pure: messages pass through, extra_body, and what JSON cannot carry.

``check_openai_messages`` checks a conversation on its face and returns it as given;
``openai_body`` lays out the body and merges ``extra_body``; ``encode_body`` writes it and
names the field that cannot travel as JSON.
"""

from __future__ import annotations

import json
import math
import types
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import InvalidRequestError
from aura_anyio._messages import OPENAI_ROLES, check_openai_messages, content_text
from aura_anyio._wire import OpenAIWire
from aura_anyio._wire.openai import RESERVED_FIELDS, encode_body, openai_body

from .strategies import json_junk, json_values

if typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

USER = {"role": "user", "content": "hi"}
SYSTEM = {"role": "system", "content": "be brief"}
CALL = {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}"}}
PARTS = [
    {"type": "text", "text": "what is this?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
]


def body(messages: object, **kwargs: object) -> dict[str, object]:
    arguments: dict[str, object] = {"model": "m", "temperature": 1.0, **kwargs}
    return openai_body(messages, **arguments)  # type: ignore[arg-type]


def sent(
    messages: Sequence[Mapping[str, object]], extra_body: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The body as a server reads it."""
    raw = encode_body(body(messages, extra_body=extra_body), extra_body)
    return typing.cast("dict[str, object]", json.loads(raw))


# -- check_openai_messages: what passes ------------------------------------------------------


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": role, "content": "x"} for role in OPENAI_ROLES],
        [SYSTEM, {"role": "developer", "content": ""}, USER],
        [{"role": "tool", "content": "42", "tool_call_id": "call_0"}],
        [{"role": "user", "content": PARTS}],
        [{"role": "user", "content": []}],
        [{"role": "user", "content": tuple(PARTS)}],
        [{"role": "assistant", "content": None, "tool_calls": [CALL]}],
        [{"role": "assistant", "tool_calls": [CALL]}],
        [{"role": "assistant", "content": None, "function_call": CALL["function"]}],
        [{"role": "assistant", "function_call": CALL["function"]}],
        [{"role": "assistant", "content": "calling", "tool_calls": [CALL]}],
        [{"name": "ann", "role": "user", "odd": {"a": [1, None]}, "content": "c", "z": 1.5}],
    ],
)
def test_valid_messages_come_back_as_given(messages: list[dict[str, object]]) -> None:
    checked = check_openai_messages(messages)
    assert checked == messages
    assert [list(message) for message in checked] == [list(message) for message in messages]


def test_any_mapping_is_a_message() -> None:
    (checked,) = check_openai_messages([types.MappingProxyType(USER)])
    assert checked == USER
    assert type(checked) is dict


# -- check_openai_messages: what is refused, and where ----------------------------------------


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ("hello", "messages must be a sequence of {'role', 'content'} mappings, got str"),
        (b"hi", "messages must be a sequence"),
        (USER, "messages must be a sequence of {'role', 'content'} mappings, got dict"),
        (None, "messages must be a sequence"),
        (3, "messages must be a sequence"),
        ([USER, "hi"], "messages[1] must be a mapping with 'role' and 'content', got str"),
        ([USER, ["role", "user"]], "messages[1] must be a mapping"),
        ([{"role": "user", "content": "x", 1: "y"}], "messages[0] has a key that is not a str: 1"),
        ([USER, {"content": "x"}], "messages[1] has no 'role'"),
        ([{"role": None, "content": "x"}], "messages[0].role must be one of 'system', "),
        ([{"role": "bot", "content": "x"}], "'assistant', 'tool', got 'bot'"),
        ([{"role": "User", "content": "x"}], "messages[0].role must be one of"),
        ([{"role": 3, "content": "x"}], "messages[0].role must be one of"),
        ([USER, {"role": "user"}], "messages[1] has no 'content'"),
        ([{"role": "assistant"}], "messages[0] has no 'content'"),
        ([{"role": "tool", "tool_call_id": "c"}], "messages[0] has no 'content'"),
        ([{"role": "user", "tool_calls": [CALL]}], "messages[0] has no 'content'"),
        (
            [{"role": "user", "content": None}],
            "messages[0].content must be a str or a list of content parts, got NoneType",
        ),
        (
            [{"role": "assistant", "content": None}],
            "messages[0].content must be a str or a list of content parts "
            "(or None, with tool_calls), got NoneType",
        ),
        ([{"role": "tool", "content": None, "tool_calls": []}], "messages[0].content must be"),
        ([{"role": "user", "content": 3}], "messages[0].content must be a str or a list"),
        ([{"role": "user", "content": b"x"}], "got bytes"),
        ([{"role": "user", "content": {"type": "text"}}], "got dict"),
        ([{"role": "user", "content": ["a"]}], "messages[0].content[0] must be a content part"),
        ([{"role": "user", "content": [{"text": "a"}]}], "messages[0].content[0] must be"),
        ([{"role": "user", "content": [{"type": 1}]}], "messages[0].content[0] must be"),
        ([USER, {"role": "user", "content": [*PARTS, None]}], "messages[1].content[2] must be"),
        ([], "at least one message that is not a 'system' or 'developer' message"),
        ([SYSTEM], "at least one message that is not a 'system' or 'developer' message"),
        ([{"role": "developer", "content": "d"}], "not a 'system' or 'developer' message"),
        ([SYSTEM, {"role": "developer", "content": "d"}], "not a 'system' or 'developer'"),
    ],
)
def test_malformed_messages_name_the_place(messages: object, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_openai_messages(messages)  # type: ignore[arg-type]
    assert needle in str(caught.value)
    # openai_body checks them the same way, before anything else.
    with pytest.raises(InvalidRequestError, match=r"^messages"):
        body(messages, max_tokens=0, extra_body={"model": "x"})


@st.composite
def openai_message(draw: st.DrawFn, role: st.SearchStrategy[str]) -> dict[str, object]:
    """A valid message: its role and content, and extra fields, in any order."""
    name = draw(role)
    fields: dict[str, object] = {"role": name}
    calls = name == "assistant" and draw(st.booleans())
    if calls:
        fields[draw(st.sampled_from(("tool_calls", "function_call")))] = draw(json_values)
    part = st.fixed_dictionaries(
        {"type": st.text()}, optional={"text": st.text(), "x": json_values}
    )
    content: st.SearchStrategy[object] = st.text() | st.lists(part, max_size=3)
    if calls:
        content = content | st.none()
    if not calls or draw(st.booleans()):  # a message that calls tools may have no content
        fields["content"] = draw(content)
    reserved = {"role", "content", "tool_calls", "function_call"}
    extra = st.dictionaries(
        st.text().filter(lambda key: key not in reserved), json_values, max_size=3
    )
    fields.update(draw(extra))
    order = draw(st.permutations(list(fields)))
    return {key: fields[key] for key in order}


@st.composite
def openai_messages(draw: st.DrawFn) -> list[dict[str, object]]:
    """A valid conversation: any messages, one of them not a system or developer message."""
    conversation = draw(st.lists(openai_message(st.sampled_from(OPENAI_ROLES)), max_size=5))
    anchor = draw(openai_message(st.sampled_from(("user", "assistant", "tool"))))
    conversation.insert(draw(st.integers(0, len(conversation))), anchor)
    return conversation


@given(openai_messages())
def test_any_valid_conversation_passes_and_reaches_the_server_equal(
    messages: list[dict[str, object]],
) -> None:
    """Checked, the messages are as given, in order; sent, the server reads them after a JSON
    round trip."""
    checked = check_openai_messages(messages)
    assert checked == messages
    assert [list(message) for message in checked] == [list(message) for message in messages]
    raw = OpenAIWire().body(
        messages, model="m", temperature=0.5, max_tokens=None, extra_body=None, key="k"
    )
    assert json.loads(raw)["messages"] == json.loads(json.dumps(messages))


# -- openai_body: the fields and their order ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({}, {"stream": True, "stream_options": {"include_usage": True}}),
        (
            {"max_tokens": 1},
            {"max_tokens": 1, "stream": True, "stream_options": {"include_usage": True}},
        ),
        ({"include_usage": False}, {"stream": True}),
        ({"include_usage": False, "max_tokens": 7}, {"max_tokens": 7, "stream": True}),
        (
            {"extra_body": {"seed": 1, "stop": ["\n"]}},
            {"stream": True, "stream_options": {"include_usage": True}, "seed": 1, "stop": ["\n"]},
        ),
        (  # extra_body's stream_options replaces the client's, in its place
            {"extra_body": {"top_p": 0.5, "stream_options": {"include_usage": False}}},
            {"stream": True, "stream_options": {"include_usage": False}, "top_p": 0.5},
        ),
        (
            {"include_usage": False, "extra_body": {"stream_options": {"x": 1}}},
            {"stream": True, "stream_options": {"x": 1}},
        ),
        ({"extra_body": {}}, {"stream": True, "stream_options": {"include_usage": True}}),
        (
            {"extra_body": types.MappingProxyType({"n": 2})},
            {"stream": True, "stream_options": {"include_usage": True}, "n": 2},
        ),
    ],
)
def test_body_fields_in_order(kwargs: dict[str, object], fields: dict[str, object]) -> None:
    built = body([USER], **kwargs)
    expected = {"model": "m", "messages": [USER], "temperature": 1.0, **fields}
    assert built == expected
    assert list(built) == list(expected)
    extra = typing.cast("Mapping[str, object] | None", kwargs.get("extra_body"))
    assert list(json.loads(encode_body(built, extra))) == list(expected)


@pytest.mark.parametrize(
    ("max_tokens", "needle"),
    [
        (0, "max_tokens must be an int of at least 1, got 0"),
        (-1, "got -1"),
        (True, "got True"),
        (False, "got False"),
        (1.0, "got 1.0"),
        ("5", "got '5'"),
    ],
)
def test_max_tokens_is_a_positive_int(max_tokens: object, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        body([USER], max_tokens=max_tokens)
    assert needle in str(caught.value)


@pytest.mark.parametrize("name", RESERVED_FIELDS)
def test_reserved_fields_are_refused_in_extra_body(name: str) -> None:
    hint = (
        f"pass {name}= as an argument instead"
        if name in ("temperature", "max_tokens")
        else "the client sets it itself"
    )
    with pytest.raises(InvalidRequestError) as caught:
        body([USER], extra_body={"seed": 1, name: "x"})
    assert str(caught.value) == f"extra_body may not set {name!r}: {hint}"


@pytest.mark.parametrize(
    ("extra_body", "needle"),
    [
        ([("seed", 1)], "extra_body must be a mapping of body fields, got list"),
        ("seed", "got str"),
        (3, "got int"),
        ({1: "x"}, "extra_body has a key that is not a str: 1"),
        ({"seed": 1, None: 2}, "extra_body has a key that is not a str: None"),
    ],
)
def test_extra_body_must_be_a_mapping_of_str_keys(extra_body: object, needle: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        body([USER], extra_body=extra_body)
    assert needle in str(caught.value)


@given(
    st.dictionaries(st.text().filter(lambda key: key not in RESERVED_FIELDS), json_values),
    st.booleans(),
)
def test_any_extra_body_reaches_the_server_equal(
    extra_body: dict[str, object], include_usage: bool
) -> None:
    raw = OpenAIWire(include_usage=include_usage).body(
        [USER], model="m", temperature=0.0, max_tokens=None, extra_body=extra_body, key=""
    )
    received = json.loads(raw)
    for name, value in extra_body.items():
        assert received[name] == json.loads(json.dumps(value))
    base = {"model": "m", "messages": [USER], "temperature": 0.0, "stream": True}
    if include_usage:
        base["stream_options"] = {"include_usage": True}
    assert list(received) == list({**base, **extra_body})
    assert received == json.loads(json.dumps({**base, **extra_body}))


# -- encode_body: what cannot travel as JSON ----------------------------------------------------


def _circular() -> list[object]:
    loop: list[object] = []
    loop.append(loop)
    return loop


def _deep() -> list[object]:
    deep: list[object] = []
    for _ in range(100_000):  # past the interpreter's recursion limit
        deep = [deep]
    return deep


_UNSENDABLE: list[tuple[object, str]] = [
    (_deep(), "it is nested too deeply"),
    (b"bytes", "Object of type bytes is not JSON serializable"),
    ({1, 2}, "Object of type set is not JSON serializable"),
    (math.nan, "JSON has no NaN or infinity"),
    (math.inf, "JSON has no NaN or infinity"),
    ([-math.inf], "JSON has no NaN or infinity"),
    ("a\ud800b", "it holds a lone surrogate, which no UTF-8 body can carry"),
    ({"deep": ["\udfff"]}, "lone surrogate"),
    (_circular(), "no value may contain itself"),
    ({(1, 2): "x"}, "keys must be str, int, float, bool or None"),
]


@pytest.mark.parametrize(("value", "why"), _UNSENDABLE)
def test_a_message_field_that_is_not_json_is_named(value: object, why: str) -> None:
    messages: list[Mapping[str, object]] = [
        SYSTEM,
        {"role": "user", "content": "hi", "name": value},
    ]
    with pytest.raises(InvalidRequestError) as caught:
        sent(messages)
    assert type(caught.value) is InvalidRequestError
    assert str(caught.value).startswith("messages[1].name cannot be sent as JSON: ")
    assert why in str(caught.value)
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(("value", "why"), _UNSENDABLE)
def test_an_extra_body_field_that_is_not_json_is_named(value: object, why: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        sent([USER], {"stop": ["\n"], "seed": value})
    assert type(caught.value) is InvalidRequestError
    assert str(caught.value).startswith("extra_body['seed'] cannot be sent as JSON: ")
    assert why in str(caught.value)


@pytest.mark.parametrize(
    ("messages", "extra_body", "where"),
    [
        ([{"role": "user", "content": "hi", "\ud800": 1}], None, "messages[0]"),
        ([USER, {"role": "user", "content": "hi", "k\udc80": 1}], None, "messages[1]"),
        ([{"role": "user", "content": "x\ud800"}], None, "messages[0].content"),
        ([{"role": "user", "content": [{"type": "t\ud800"}]}], None, "messages[0].content"),
        ([USER], {"seed": 1, "\ud800": 1}, "extra_body"),
        ([USER], {"stream_options": {"include_usage": math.nan}}, "extra_body['stream_options']"),
    ],
)
def test_keys_and_content_that_are_not_json_are_named(
    messages: list[dict[str, object]], extra_body: dict[str, object] | None, where: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        OpenAIWire().body(
            messages, model="m", temperature=1.0, max_tokens=None, extra_body=extra_body, key=""
        )
    assert str(caught.value).startswith(f"{where} cannot be sent as JSON: ")


def _sendable(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError):
        return False
    return True


@given(json_junk, json_junk)
def test_junk_values_are_sent_equal_or_refused_by_name(field: object, extra: object) -> None:
    """Never a TypeError or a ValueError of the json module: a body, or a named refusal."""
    messages = [{"role": "user", "content": "hi", "x": field}]
    extra_body = {"seed": extra}
    if _sendable(field) and _sendable(extra):
        received = sent(messages, extra_body)
        assert received["messages"] == json.loads(json.dumps(messages))
        assert received["seed"] == json.loads(json.dumps(extra))
        return
    where = "messages[0].x" if not _sendable(field) else "extra_body['seed']"
    with pytest.raises(InvalidRequestError) as caught:
        sent(messages, extra_body)
    assert type(caught.value) is InvalidRequestError
    assert str(caught.value).startswith(f"{where} cannot be sent as JSON: ")


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain", "plain"),
        ([{"type": "text", "text": "a"}, {"type": "image_url"}, "junk", {"text": "b"}], "ab"),
        (({"type": "text", "text": "t"},), "t"),
        (None, ""),
        (3, ""),
    ],
)
def test_the_text_of_any_content(content: object, text: str) -> None:
    assert content_text(content) == text

"""The reference server's OpenAI-compatible route: the bodies it takes, what it records, the
token counts it sends when asked, scripted tool calls and the interrupt fault.

The pure layer first (``_body``, ``_plan``, ``_events``, no I/O), then the server on loopback,
spoken to by ``AuraClient(wire="openai")`` or, for bodies that client would refuse, by httpx.
"""

from __future__ import annotations

import json
import typing

import httpx
import pytest
from hypothesis import given, strategies as st

from aura_anyio import MODELS, AuraClient
from aura_anyio.testing import (
    Fault,
    Outcome,
    ReceivedRequest,
    ReferenceServer,
    ToolCalls,
    default_reply,
)
from aura_anyio.testing._body import (
    OPENAI_FIELDS,
    OPENAI_ROLES,
    RejectedError,
    message_text,
    parse_openai_body,
)
from aura_anyio.testing._chat import CHAT_PATH, OPENAI_PATH, inspect_request, split_words
from aura_anyio.testing._events import EventFraming
from aura_anyio.testing._plan import Ending, ResponsePlan, apply_fault, plan_response

from .helpers import drain
from .strategies import json_junk

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

    from aura_anyio.testing._plan import Reply

pytestmark = pytest.mark.network

HELLO: list[dict[str, object]] = [{"role": "user", "content": "hi"}]
WEATHER = '{"city": "Paris", "unit": "celsius"}'
CALL = {
    "id": "call_0",
    "type": "function",
    "function": {"name": "weather", "arguments": WEATHER},
}
#: One message of each kind the OpenAI API allows, with the fields beyond role and content.
WHOLE: list[dict[str, object]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "developer",
        "content": [{"type": "text", "text": "Use "}, {"type": "text", "text": "tools."}],
    },
    {
        "role": "user",
        "name": "ann",
        "content": [
            {"type": "text", "text": "Weather in "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "text", "text": "Paris?"},
        ],
    },
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_0", "content": '{"celsius": 21}'},
    {"role": "assistant", "tool_calls": [CALL]},  # content may be left out, too
    {"role": "assistant", "content": "21 °C.", "refusal": None, "name": "bot"},
    {"role": "user", "content": "Thanks ✓"},
]
#: WHOLE's messages other than system and developer ones, as the server keeps them: text only.
WHOLE_KEPT = (
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": ""},
    {"role": "tool", "content": '{"celsius": 21}'},
    {"role": "assistant", "content": ""},
    {"role": "assistant", "content": "21 °C."},
    {"role": "user", "content": "Thanks ✓"},
)


def openai_body(**changes: object) -> dict[str, object]:
    """A valid ``/v1/chat/completions`` body, with ``changes``."""
    body: dict[str, object] = {"model": "m", "messages": HELLO, "stream": True}
    body.update(changes)
    return body


# The pure layer: parsing the body.


def test_the_whole_message_model_is_accepted_as_it_is() -> None:
    parsed = parse_openai_body(openai_body(messages=WHOLE))
    assert parsed.messages == tuple(WHOLE)
    assert list(parsed.messages[2]) == ["role", "name", "content"]  # nothing added or dropped
    assert (parsed.model, parsed.max_tokens, parsed.include_usage, parsed.extra) == (
        "m",
        None,
        False,
        {},
    )


@pytest.mark.parametrize("role", OPENAI_ROLES)
@pytest.mark.parametrize("content", ["", "text", [], [{"type": "text", "text": "x"}]])
def test_every_role_takes_a_string_or_a_list_of_parts(role: str, content: object) -> None:
    message = {"role": role, "content": content}
    assert parse_openai_body(openai_body(messages=[message])).messages == (message,)


def rejected(body: dict[str, object]) -> str:
    with pytest.raises(RejectedError) as caught:
        parse_openai_body(body)
    return str(caught.value)


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        pytest.param("hi", "Invalid field 'messages': expected an array, got string", id="str"),
        pytest.param(
            [{"role": "user", "content": "ok"}, "hi"],
            "Invalid field 'messages[1]': expected an object, got string",
            id="message-not-object",
        ),
        pytest.param([{"content": "x"}], "Missing field 'messages[0].role'", id="no-role"),
        pytest.param(
            [{"role": "bot", "content": "x"}],
            "Invalid field 'messages[0].role': 'bot' is not a known role",
            id="unknown-role",
        ),
        pytest.param(
            [{"role": "function", "content": "x"}],
            "Invalid field 'messages[0].role': 'function' is not a known role",
            id="deprecated-role",
        ),
        pytest.param(
            [{"role": 3, "content": "x"}],
            "Invalid field 'messages[0].role': 3 is not a known role",
            id="role-number",
        ),
        pytest.param([{"role": "user"}], "Missing field 'messages[0].content'", id="no-content"),
        pytest.param(
            [{"role": "assistant"}],
            "Missing field 'messages[0].content'",
            id="assistant-without-content-or-calls",
        ),
        pytest.param(
            [{"role": "tool", "tool_calls": [CALL]}],
            "Missing field 'messages[0].content'",
            id="only-an-assistant-may-call-tools",
        ),
        pytest.param(
            [{"role": "user", "content": None}],
            "Invalid field 'messages[0].content': expected a string or an array, got null",
            id="null-content",
        ),
        pytest.param(
            [{"role": "assistant", "content": None}],
            "Invalid field 'messages[0].content': expected a string or an array, got null",
            id="assistant-null-content-without-calls",
        ),
        pytest.param(
            [{"role": "tool", "content": None, "tool_calls": [CALL]}],
            "Invalid field 'messages[0].content': expected a string or an array, got null",
            id="tool-null-content-with-calls",
        ),
        pytest.param(
            [{"role": "user", "content": 3}],
            "Invalid field 'messages[0].content': expected a string or an array, got number",
            id="content-number",
        ),
        pytest.param(
            [{"role": "user", "content": {"type": "text", "text": "x"}}],
            "Invalid field 'messages[0].content': expected a string or an array, got object",
            id="content-object",
        ),
        pytest.param(
            [{"role": "assistant", "content": True, "tool_calls": [CALL]}],
            "Invalid field 'messages[0].content': expected a string or an array, got boolean",
            id="content-bool-with-calls",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": "a"}, "b"]}],
            "Invalid field 'messages[0].content[]': expected an object, got string",
            id="part-not-object",
        ),
        pytest.param(
            [{"role": "user", "content": [{"text": "a"}]}],
            "Missing field 'messages[0].content[].type'",
            id="part-without-type",
        ),
        pytest.param(
            [{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": None}]}],
            "Missing field 'messages[1].content[].type'",
            id="part-type-null",
        ),
    ],
)
def test_a_malformed_message_is_rejected_naming_the_field(messages: object, reason: str) -> None:
    assert rejected(openai_body(messages=messages)) == reason


def test_an_assistant_message_with_a_function_call_may_have_null_content() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "f", "arguments": ""},
    }
    assert parse_openai_body(openai_body(messages=[*HELLO, message])).messages[1] == message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"stream_options": []}, "Invalid field 'stream_options': expected an object, got array"),
        ({"stream_options": "x"}, "Invalid field 'stream_options': expected an object, got string"),
        (
            {"stream_options": True},
            "Invalid field 'stream_options': expected an object, got boolean",
        ),
        ({"model": None}, "Invalid field 'model': expected a non-empty string, got null"),
        ({"temperature": "hot"}, "Invalid field 'temperature': expected a number, got string"),
        ({"max_tokens": 0}, "Invalid field 'max_tokens': expected a positive integer, got number"),
        ({"stream": "yes"}, "Only streamed completions are served: set 'stream' to true"),
    ],
)
def test_a_malformed_field_is_rejected_naming_it(changes: dict[str, object], reason: str) -> None:
    assert rejected(openai_body(**changes)) == reason


def test_a_missing_field_is_named() -> None:
    assert rejected({"model": "m", "stream": True}) == "Missing field 'messages'"
    assert rejected({"messages": HELLO, "stream": True}) == "Missing field 'model'"
    assert rejected([]) == "Invalid field 'body': expected an object, got array"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "include_usage"),
    [
        (None, False),
        ({}, False),
        ({"include_usage": False}, False),
        ({"include_usage": None}, False),
        ({"include_usage": 1}, False),
        ({"include_usage": "true"}, False),
        ({"continuous_usage_stats": True}, False),
        ({"include_usage": True}, True),
        ({"include_usage": True, "continuous_usage_stats": False}, True),
    ],
)
def test_usage_is_included_only_when_asked_for_with_true(
    options: object, include_usage: bool
) -> None:
    changes = {} if options is None else {"stream_options": options}
    parsed = parse_openai_body(openai_body(**changes))
    assert parsed.include_usage is include_usage
    assert parsed.extra == {}  # stream_options is the server's own field


def test_a_null_stream_options_is_as_good_as_none() -> None:
    assert parse_openai_body(openai_body(stream_options=None)).include_usage is False


@given(
    st.dictionaries(
        st.text(max_size=12).filter(lambda name: name not in OPENAI_FIELDS), json_junk, max_size=6
    )
)
def test_extra_holds_exactly_the_fields_the_server_does_not_read(extra: dict[str, object]) -> None:
    own = openai_body(
        temperature=0.5, max_tokens=7, stream_options={"include_usage": True}, messages=WHOLE
    )
    assert set(own) == OPENAI_FIELDS
    parsed = parse_openai_body({**extra, **own})
    assert parsed.extra == extra
    assert (parsed.max_tokens, parsed.include_usage, parsed.messages) == (7, True, tuple(WHOLE))


def test_known_request_fields_are_kept_in_extra() -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    fields = {"seed": 7, "stop": ["\n"], "top_p": 0.9, "tools": tools, "tool_choice": "auto"}
    assert parse_openai_body(openai_body(**fields)).extra == fields


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"role": "user", "content": "plain ✓"}, "plain ✓"),
        ({"role": "user", "content": ""}, ""),
        ({"role": "user", "content": []}, ""),
        (
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "one "},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "text", "text": "two"},
                    {"type": "text", "text": 3},  # not text: skipped
                    {"type": "text"},
                ],
            },
            "one two",
        ),
        ({"role": "assistant", "content": None, "tool_calls": [CALL]}, ""),
        ({"role": "assistant", "tool_calls": [CALL]}, ""),
        ({"role": "user", "content": 3}, ""),
    ],
)
def test_message_text(message: dict[str, object], text: str) -> None:
    assert message_text(message) == text


@given(st.lists(st.text() | st.none(), max_size=6))
def test_message_text_joins_the_text_parts_in_order(texts: list[str | None]) -> None:
    parts = [
        {"type": "text", "text": text} if text is not None else {"type": "image_url"}
        for text in texts
    ]
    expected = "".join(text for text in texts if text is not None)
    assert message_text({"role": "user", "content": parts}) == expected


# The pure layer: what the server understands of a request, and its plan.


def understood(body: object, path: str = OPENAI_PATH) -> ReceivedRequest:
    """The request as the server records it, for a POST of ``body`` to ``path``."""
    return inspect_request("POST", path, {}, json.dumps(body).encode(), models=MODELS)


def test_the_received_request_of_the_whole_message_model() -> None:
    fields = {"seed": 7, "user": "ann"}
    request = understood(openai_body(messages=WHOLE, max_tokens=9, **fields))
    assert request.error is None
    assert request.wire == "openai"
    assert request.messages == tuple(WHOLE)
    assert dict(request.extra_body) == fields
    assert (request.model_id, request.token_limit, request.include_usage) == ("m", 9, False)
    assert request.system_prompt == "Be brief.\nUse tools."
    assert request.kept_messages == WHOLE_KEPT


def test_a_rejected_openai_request_records_the_reason_only() -> None:
    request = understood(openai_body(messages=[{"role": "bot", "content": "x"}]))
    assert request.error == "Invalid field 'messages[0].role': 'bot' is not a known role"
    assert (request.messages, dict(request.extra_body), request.include_usage) == ((), {}, False)
    assert (request.system_prompt, request.kept_messages) == (None, ())


def events(chunks: Sequence[bytes]) -> list[object]:
    """The server-sent events of ``chunks``: each one's JSON data, or ``"[DONE]"``.

    A chunk holds whole events (the opening goes with the first piece, the end with the last),
    each one line.
    """
    parsed: list[object] = []
    for chunk in chunks:
        assert chunk.endswith(b"\n\n")
        for line in chunk[:-2].split(b"\n\n"):
            assert line.startswith(b"data: ")
            assert b"\n" not in line
            data = line[len(b"data: ") :]
            parsed.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return parsed


def chunk_event(
    delta: dict[str, object] | None = None, finish_reason: str | None = None
) -> dict[str, object]:
    """A ``chat.completion.chunk`` with one choice, as the reference server sends it."""
    return {
        "id": "chatcmpl-reference",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
    }


OPENING = chunk_event({"role": "assistant"})


def text_event(text: str) -> dict[str, object]:
    return chunk_event({"content": text})


def usage_event(prompt: int, completion: int) -> dict[str, object]:
    counts = {"prompt_tokens": prompt, "completion_tokens": completion}
    counts["total_tokens"] = prompt + completion
    return {
        "id": "chatcmpl-reference",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [],
        "usage": counts,
    }


def call_events(index: int, name: str, arguments: str) -> list[dict[str, object]]:
    """A tool call as the reference server streams it: head, then argument pieces."""
    head = {
        "index": index,
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    return [
        chunk_event({"tool_calls": [head]}),
        *(
            chunk_event({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in split_words(arguments)
        ),
    ]


def plan_for(
    reply: Reply, *, path: str = OPENAI_PATH, fault: Fault | None = None, **changes: object
) -> ResponsePlan:
    """The plan for a request with ``changes`` to its body."""
    if path == CHAT_PATH:
        body: dict[str, object] = {
            "model": {"id": "openchat_3.6", "tokenLimit": 8192},
            "messages": HELLO,
        }
    else:
        body = openai_body(**changes)
    request = understood(body, path)
    assert request.error is None
    return plan_response(request, reply=reply, fault=fault)


@pytest.mark.parametrize("include_usage", [False, True])
def test_usage_is_planned_only_when_asked_for(include_usage: bool) -> None:
    options = {"include_usage": include_usage}
    plan = plan_for(lambda _: "one two", stream_options=options)
    usage = [usage_event(1, 2)] if include_usage else []
    expected = [
        OPENING,
        text_event("one "),
        text_event("two"),
        chunk_event(finish_reason="stop"),
        *usage,
        "[DONE]",
    ]
    assert events(plan.chunks) == expected
    assert plan.chunks[-1].endswith(b"data: [DONE]\n\n")


def test_the_usage_event_counts_the_kept_messages_and_the_pieces() -> None:
    plan = plan_for(
        lambda _: ["a", "b", "c"], messages=WHOLE, stream_options={"include_usage": True}
    )
    # WHOLE_KEPT's text is 4 + 0 + 7 + 0 + 4 + 2 tokens; the system and developer text
    # (3 + 3) is not counted.
    assert events(plan.chunks)[-2] == usage_event(17, 3)


@pytest.mark.parametrize(
    "calls",
    [
        [("weather",)],
        [("weather", "{}", "x")],
        [["weather", "{}"]],
        [("weather", {})],
        [(None, "{}")],
        ["weather"],
        "ab",
        [("ok", "{}"), ("weather", b"{}")],
    ],
)
def test_tool_calls_takes_str_pairs_only(calls: object) -> None:
    with pytest.raises(TypeError, match=r"ToolCalls\.calls takes \(name, arguments\) str pairs"):
        ToolCalls(calls)  # type: ignore[arg-type]


def test_tool_calls_takes_any_sequence_of_pairs() -> None:
    as_list = plan_for(lambda _: ToolCalls([("weather", "{}")], text="x"))
    as_tuple = plan_for(lambda _: ToolCalls((("weather", "{}"),), "x"))
    assert as_list.chunks == as_tuple.chunks
    assert ToolCalls([]).text == ""


@pytest.mark.parametrize("include_usage", [False, True])
def test_tool_calls_are_streamed_after_the_text(include_usage: bool) -> None:
    calls = ToolCalls([("weather", WEATHER), ("time", "{}"), ("noop", "")], text="Let me check.")
    plan = plan_for(lambda _: calls, stream_options={"include_usage": include_usage})
    usage = [usage_event(1, 3)] if include_usage else []  # the text's pieces only
    assert events(plan.chunks) == [
        OPENING,
        text_event("Let "),
        text_event("me "),
        text_event("check."),
        *call_events(0, "weather", WEATHER),
        *call_events(1, "time", "{}"),
        *call_events(2, "noop", ""),  # empty arguments: the head piece only
        chunk_event(finish_reason="tool_calls"),
        *usage,
        "[DONE]",
    ]
    assert len(call_events(0, "weather", WEATHER)) == 1 + 4  # four words of arguments
    assert (plan.status, plan.ending, plan.endless) == (200, Ending.END, False)
    assert (b"content-type", b"text/event-stream") in plan.headers


def test_tool_calls_without_text_start_at_once() -> None:
    plan = plan_for(lambda _: ToolCalls([("weather", WEATHER)]))
    assert events(plan.chunks) == [
        OPENING,
        *call_events(0, "weather", WEATHER),
        chunk_event(finish_reason="tool_calls"),
        "[DONE]",
    ]


def test_tool_calls_with_no_calls_are_a_plain_reply() -> None:
    plan = plan_for(lambda _: ToolCalls([], text="Nothing to call."))
    assert events(plan.chunks) == [
        OPENING,
        text_event("Nothing "),
        text_event("to "),
        text_event("call."),
        chunk_event(finish_reason="stop"),
        "[DONE]",
    ]


def test_max_tokens_cutting_the_text_drops_the_calls() -> None:
    calls = ToolCalls([("weather", WEATHER)], text="one two three")
    plan = plan_for(lambda _: calls, max_tokens=2, stream_options={"include_usage": True})
    assert events(plan.chunks) == [
        OPENING,
        text_event("one "),
        text_event("two "),
        chunk_event(finish_reason="length"),
        usage_event(1, 2),
        "[DONE]",
    ]
    # A cap the text fits in leaves the calls alone.
    fits = events(plan_for(lambda _: calls, max_tokens=3).chunks)
    assert fits[-2] == chunk_event(finish_reason="tool_calls")
    assert fits[4:-2] == call_events(0, "weather", WEATHER)


def test_tool_calls_on_api_chat_are_only_the_text() -> None:
    calls = ToolCalls([("weather", WEATHER)], text="Let me check.")
    plan = plan_for(lambda _: calls, path=CHAT_PATH)
    assert plan.chunks == (b"Let ", b"me ", b"check.")
    assert (plan.status, plan.ending, plan.events) == (200, Ending.END, None)
    assert plan_for(lambda _: ToolCalls([("weather", "{}")]), path=CHAT_PATH).chunks == ()


def test_the_framing_is_what_the_planner_uses() -> None:
    framing = EventFraming(model="m", finish_reason="tool_calls", tool_calls=(("f", "{}"),))
    assert events(framing.frame((b"hi",)))[1:-2] == [
        text_event("hi"),
        *call_events(0, "f", "{}"),
        chunk_event(finish_reason="tool_calls"),
    ]
    # An endless reply has no closing events to repeat, and makes no calls.
    assert events(framing.frame((b"hi",), endless=True)) == [text_event("hi")]


# The pure layer: the interrupt fault on this route.


REPLY = "one two three four"


@pytest.mark.parametrize("words", [0, 1, 3, 4, 10])
def test_an_interrupt_sends_n_pieces_then_done_without_a_finish_reason(words: int) -> None:
    plan = plan_for(
        lambda _: REPLY, fault=Fault(interrupt_after=words), stream_options={"include_usage": True}
    )
    pieces = split_words(REPLY)[:words]
    assert events(plan.chunks) == [OPENING, *map(text_event, pieces), "[DONE]"]
    assert b"finish_reason" not in b"".join(plan.chunks).replace(b'"finish_reason":null', b"")
    assert (plan.ending, plan.endless, plan.events) == (Ending.END, False, None)


def test_an_interrupt_stops_tool_calls_too() -> None:
    calls = ToolCalls([("weather", WEATHER)], text="Let me check.")
    plan = plan_for(lambda _: calls, fault=Fault(interrupt_after=2))
    assert events(plan.chunks) == [OPENING, text_event("Let "), text_event("me "), "[DONE]"]


def test_an_endless_interrupt_takes_n_pieces_of_the_cycle() -> None:
    plan = plan_for(lambda _: "a b", fault=Fault(interrupt_after=5, endless=True))
    texts = ["a ", "b", "a ", "b", "a "]
    assert events(plan.chunks) == [OPENING, *map(text_event, texts), "[DONE]"]
    assert (plan.ending, plan.endless) == (Ending.END, False)
    empty = plan_for(lambda _: "", fault=Fault(interrupt_after=2, endless=True))
    assert events(empty.chunks) == [OPENING, text_event(" "), text_event(" "), "[DONE]"]


def test_an_interrupt_with_other_body_faults() -> None:
    fault = Fault(interrupt_after=1, chunk_size=5, drip=0.25)
    whole = plan_for(lambda _: REPLY, fault=Fault(interrupt_after=1))
    plan = plan_for(lambda _: REPLY, fault=fault)
    assert b"".join(plan.chunks) == b"".join(whole.chunks)
    assert all(len(chunk) <= 5 for chunk in plan.chunks)
    assert plan.delay == 0.25


@given(st.lists(st.text(min_size=1, max_size=4), max_size=6), st.integers(0, 10), st.booleans())
def test_an_interrupt_is_the_first_n_pieces_on_both_routes(
    pieces: list[str], words: int, endless: bool
) -> None:
    fault = Fault(interrupt_after=words, endless=endless)
    encoded = [piece.encode() for piece in pieces]
    source = (encoded or [b" "]) * (words + 1) if endless else encoded
    sent = source[:words]
    chat = plan_for(lambda _: pieces, path=CHAT_PATH, fault=fault)
    assert list(chat.chunks) == sent
    assert (chat.ending, chat.endless) == (Ending.END, False)
    openai = plan_for(lambda _: pieces, fault=fault)
    texts = [piece.decode() for piece in sent]
    assert events(openai.chunks) == [OPENING, *map(text_event, texts), "[DONE]"]
    assert (openai.ending, openai.endless) == (Ending.END, False)


@pytest.mark.parametrize("cut", ["close_after", "reset_after", "stall_after"])
def test_a_byte_cut_past_the_text_sends_every_text_event_and_nothing_after(cut: str) -> None:
    plan = plan_for(lambda _: REPLY, fault=Fault(**{cut: 1000}))  # type: ignore[arg-type]
    assert events(plan.chunks) == list(map(text_event, split_words(REPLY)))
    assert plan.ending is not Ending.END
    # Inside the text, the event it falls in goes out up to that byte, and never ends.
    inside = plan_for(lambda _: REPLY, fault=Fault(**{cut: 6}))  # type: ignore[arg-type]
    assert events(inside.chunks[:1]) == [text_event("one ")]
    assert inside.chunks[1].endswith(b'{"content":"tw')


def test_an_interrupt_leaves_error_responses_alone() -> None:
    error = plan_for(lambda _: REPLY, fault=Fault(status=503))
    assert apply_fault(error, Fault(interrupt_after=1)) == error


# The server on loopback.


async def test_the_whole_message_model_reaches_the_server_as_sent() -> None:
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {}}}]
    extra_body = {"seed": 7, "tools": tools, "tool_choice": "auto", "user": "ann"}
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        text = await client.complete(WHOLE, model="served", extra_body=extra_body)
    (request,) = server.requests
    assert request.error is None
    assert request.messages == tuple(WHOLE)
    assert typing.cast("dict[str, object]", request.json)["messages"] == WHOLE
    assert dict(request.extra_body) == extra_body
    assert request.include_usage is True
    assert (request.model_id, request.token_limit) == ("served", None)
    assert request.system_prompt == "Be brief.\nUse tools."
    assert request.kept_messages == WHOLE_KEPT
    assert text == default_reply(request)
    assert "«Thanks ✓»" in text
    assert "(6 messages kept)" in text


async def test_a_request_without_extra_fields_records_none() -> None:
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, wire="openai", include_usage=False) as client,
    ):
        async with client.stream(HELLO, max_tokens=50) as reply:
            await drain(reply)
    (request,) = server.requests
    assert (dict(request.extra_body), request.include_usage, request.token_limit) == ({}, False, 50)
    assert "stream_options" not in typing.cast("dict[str, object]", request.json)
    assert (request.system_prompt, request.kept_messages) == ("", tuple(HELLO))
    assert reply.usage is None  # not asked for, so not sent
    assert reply.finish_reason == "stop"


async def test_usage_reaches_the_client_when_asked_for() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO) as reply:
            await drain(reply)
    pieces = len(split_words(reply.text))
    assert reply.usage == {
        "prompt_tokens": 1,
        "completion_tokens": pieces,
        "total_tokens": 1 + pieces,
    }
    assert server.requests[0].include_usage is True


async def post_raw(
    server: ReferenceServer, content: bytes | dict[str, object]
) -> tuple[httpx.Response, bytes]:
    """POST ``content`` to the OpenAI route with httpx, as a client that checks nothing."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post(OPENAI_PATH, content=raw)
    return response, response.content


def sse_events(body: bytes) -> list[object]:
    """The events of a whole event-stream body, as :func:`events` gives them."""
    assert body.endswith(b"\n\n")
    return events([event + b"\n\n" for event in body[:-2].split(b"\n\n")])


@pytest.mark.parametrize(
    ("options", "asked"),
    [
        (None, False),
        ({}, False),
        ({"include_usage": False}, False),
        ({"include_usage": True}, True),
    ],
)
async def test_the_usage_event_is_sent_only_when_asked_for(
    options: dict[str, object] | None, asked: bool
) -> None:
    changes = {} if options is None else {"stream_options": options}
    async with ReferenceServer(reply=lambda _: "one two") as server:
        response, body = await post_raw(server, openai_body(**changes))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert (b'"choices":[],"usage":' in body) is asked
    usage = [usage_event(1, 2)] if asked else []
    assert sse_events(body) == [
        OPENING,
        text_event("one "),
        text_event("two"),
        chunk_event(finish_reason="stop"),
        *usage,
        "[DONE]",
    ]
    assert server.requests[0].include_usage is asked


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            openai_body(messages=[{"role": "bot", "content": "x"}]),
            "Invalid field 'messages[0].role': 'bot' is not a known role",
            id="unknown-role",
        ),
        pytest.param(
            openai_body(messages=[{"role": "user", "content": None}]),
            "Invalid field 'messages[0].content': expected a string or an array, got null",
            id="null-content",
        ),
        pytest.param(
            openai_body(messages=[{"role": "user", "content": [{"text": "x"}]}]),
            "Missing field 'messages[0].content[].type'",
            id="part-without-type",
        ),
        pytest.param(
            openai_body(stream_options=[]),
            "Invalid field 'stream_options': expected an object, got array",
            id="stream-options",
        ),
        pytest.param(b'{"model": NaN}', "Invalid JSON body: NaN is not valid JSON", id="nan"),
    ],
)
async def test_a_rejected_body_gets_400_with_a_json_error_naming_the_field(
    content: bytes | dict[str, object], reason: str
) -> None:
    async with ReferenceServer() as server:
        response, body = await post_raw(server, content)
    assert (response.status_code, response.reason_phrase) == (400, reason)
    assert response.headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {"message": reason, "type": "invalid_request_error", "code": None}
    }
    (request,) = server.requests
    assert request.error == reason
    assert request.messages == ()


async def test_tool_calls_end_to_end() -> None:
    calls = ToolCalls([("weather", WEATHER), ("time", "{}")], text="Let me check.")

    def reply(request: ReceivedRequest) -> ToolCalls:
        return calls

    async with ReferenceServer(reply=reply) as server:
        response, body = await post_raw(server, openai_body())
        # What went out is the pure plan, byte for byte.
        assert body == b"".join(plan_response(server.requests[0], reply=reply).chunks)
        async with AuraClient(server.base_url, wire="openai") as client:
            async with client.stream(HELLO) as streamed:
                texts = [text async for text in streamed]
            result = (await client.gather([HELLO]))[0]
        async with AuraClient(server.base_url) as chat:  # /api/chat: the text only
            async with chat.stream(HELLO) as plain:
                await drain(plain)
    assert response.status_code == 200
    assert "".join(texts) == "Let me check."
    expected = [
        {"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": WEATHER}},
        {"id": "call_1", "type": "function", "function": {"name": "time", "arguments": "{}"}},
    ]
    assert (streamed.tool_calls, streamed.finish_reason) == (expected, "tool_calls")
    assert (result.text, result.tool_calls, result.finish_reason) == (
        "Let me check.",
        expected,
        "tool_calls",
    )
    assert (plain.text, plain.tool_calls) == ("Let me check.", None)
    assert [r.path for r in server.requests] == [OPENAI_PATH, OPENAI_PATH, OPENAI_PATH, CHAT_PATH]


@pytest.mark.parametrize("words", [0, 2, 10])
async def test_an_interrupted_reply_is_completed_by_the_server(words: int) -> None:
    fault = Fault(interrupt_after=words)
    marked = {"role": "user", "content": f"hi {fault.marker()}"}
    async with ReferenceServer(reply=lambda _: REPLY) as server:
        response, body = await post_raw(server, openai_body(messages=[marked]))
        await server.wait_until(lambda: server.outcomes == [Outcome.COMPLETED])
    assert response.status_code == 200
    pieces = split_words(REPLY)[:words]
    assert sse_events(body) == [OPENING, *map(text_event, pieces), "[DONE]"]
    assert server.faults == [fault]


async def test_times_limits_the_interrupt() -> None:
    fault = Fault(interrupt_after=1, times=1)
    async with ReferenceServer(reply=lambda _: REPLY, fault=fault) as server:
        _, first = await post_raw(server, openai_body())
        _, second = await post_raw(server, openai_body())
        await server.wait_until(lambda: server.outcomes == [Outcome.COMPLETED] * 2)
    assert sse_events(first) == [OPENING, text_event("one "), "[DONE]"]
    assert sse_events(second) == [
        OPENING,
        *map(text_event, split_words(REPLY)),
        chunk_event(finish_reason="stop"),
        "[DONE]",
    ]
    assert server.faults == [fault, None]


def test_tool_calls_keep_their_calls_from_any_iterable() -> None:
    calls = ToolCalls(iter([("f", "{}"), ("g", '{"a": 1}')]))  # type: ignore[arg-type]
    assert calls.calls == (("f", "{}"), ("g", '{"a": 1}'))

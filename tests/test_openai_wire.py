"""The OpenAI-compatible wire end to end, on every backend: the reference server's
``/v1/chat/completions`` and scripted responses (a MockTransport) for what it never sends.

The fault table (``test_fault_table.py``) runs on this wire too; these tests cover what only
this wire has: the request it sends, ``finish_reason`` and ``usage``, ``[DONE]``, in-band
errors, and the same streaming, cancellation and fan-out guarantees.
"""

from __future__ import annotations

import json
import typing

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aura_anyio import (
    APIConnectionError,
    APIError,
    AuraClient,
    ChatRequest,
    IncompleteStreamError,
    InvalidRequestError,
    ModelSpec,
    RetryPolicy,
)
from aura_anyio._messages import OPENAI_ROLES
from aura_anyio._payload import DEFAULT_TEMPERATURE
from aura_anyio._wire.openai import RESERVED_FIELDS
from aura_anyio.testing import Fault, MockTransport, ReferenceServer, ToolCalls, default_reply
from aura_anyio.testing._body import RejectedError, parse_openai_body
from aura_anyio.testing._chat import split_words

from .helpers import BASE_URL, FAST_RETRIES, Pause, Script, drain, make_client, reply
from .strategies import json_values

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

    from aura_anyio._transports.base import Request
    from aura_anyio.testing import MockResponse, ReceivedRequest

HELLO = [{"role": "user", "content": "hi"}]
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "One?"},
    {"role": "assistant", "content": "One."},
    {"role": "system", "content": "Now be briefer."},
    {"role": "user", "content": "Two?"},
]


def sent(request: ReceivedRequest) -> dict[str, object]:
    return typing.cast("dict[str, object]", request.json)


@pytest.mark.network
async def test_the_request_is_what_an_openai_compatible_server_expects() -> None:
    async with ReferenceServer() as server:
        client = AuraClient(server.base_url, wire="openai", key="sk-secret")
        async with client:
            text = await client.complete(
                CONVERSATION, model="openchat/openchat-3.6-8b", temperature=0.3, max_tokens=50
            )
        (request,) = server.requests
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-secret"
        assert request.headers["accept"] == "text/event-stream"
        # Messages go as they are, system ones where they were: nothing is split or merged.
        assert sent(request) == {
            "model": "openchat/openchat-3.6-8b",
            "messages": CONVERSATION,
            "temperature": 0.3,
            "max_tokens": 50,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # In that order: the library's fields, then the request's own options.
        assert list(sent(request)) == [
            "model",
            "messages",
            "temperature",
            "max_tokens",
            "stream",
            "stream_options",
        ]
        assert text == default_reply(request)
        assert "sk-secret" not in repr(client)
        assert "wire='openai'" in repr(client)


@pytest.mark.network
async def test_finish_reason_and_usage_on_the_stream() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO, max_tokens=4) as capped:
            await drain(capped)
        assert capped.text == "Hello from the reference "  # four pieces: max_tokens caps it
        assert capped.finish_reason == "length"
        assert capped.usage == {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5}
        async with client.stream(HELLO) as whole:
            await drain(whole)
        assert whole.text == default_reply(server.requests[-1])
        assert whole.finish_reason == "stop"


@pytest.mark.network
async def test_a_base_url_ending_in_v1_is_not_doubled() -> None:
    async with ReferenceServer() as server:
        async with AuraClient(server.base_url + "/v1/", wire="openai") as client:
            assert await client.complete(HELLO)
    assert server.requests[0].path == "/v1/chat/completions"


@pytest.mark.network
async def test_fan_out_results_carry_finish_reason_and_usage() -> None:
    requests = [
        ChatRequest(HELLO, model=ModelSpec("served-model", "Served", 8192, 8192), id="a"),
        ChatRequest(HELLO, max_tokens=2, id="b"),
        ChatRequest(HELLO, max_tokens=0, id="bad"),  # below 1: refused before sending
    ]
    async with ReferenceServer(delay=0.001) as server:
        async with AuraClient(server.base_url, wire="openai") as client:
            results = await client.gather(requests, max_concurrency=3)
    by_id = {result.request.id: result for result in results}
    assert (by_id["a"].finish_reason, by_id["b"].finish_reason) == ("stop", "length")
    assert by_id["b"].text == "Hello from "
    assert by_id["b"].usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert isinstance(by_id["bad"].error, InvalidRequestError)
    assert (by_id["bad"].finish_reason, by_id["bad"].usage) == (None, None)
    assert {sent(r)["model"] for r in server.requests} == {"served-model", "openchat_3.6"}


@pytest.mark.network
async def test_the_concurrency_limit_holds_on_this_wire_too() -> None:
    async with ReferenceServer(delay=0.005) as server:
        async with AuraClient(server.base_url, wire="openai") as client:
            results = await client.gather([f"p{n}" for n in range(40)], max_concurrency=5)
    assert all(result.ok for result in results)
    assert server.max_in_flight <= 5


@pytest.mark.network
async def test_cancelling_mid_reply_closes_the_connection_and_keeps_the_text() -> None:
    async with ReferenceServer(delay=0.1) as server:
        async with AuraClient(server.base_url, wire="openai") as client:
            with anyio.CancelScope() as scope:
                async with client.stream(HELLO) as chunks:
                    async for _ in chunks:
                        scope.cancel()  # after the first text: the next read is cancelled
            assert scope.cancelled_caught
            assert chunks.text
            assert default_reply(server.requests[-1]).startswith(chunks.text)
            assert chunks.text != default_reply(server.requests[-1])
            await server.wait_until(lambda: server.aborted == 1)
            with anyio.fail_after(5):
                assert await client.complete(HELLO) == default_reply(server.requests[-1])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model": ""}, "model must be a non-empty str"),
        ({"model": 3}, "model must be a non-empty str"),
        ({"max_tokens": 0}, "max_tokens must be an int of at least 1"),
        ({"temperature": 3}, "temperature"),
    ],
)
async def test_bad_arguments_are_refused_before_sending(
    kwargs: dict[str, object], needle: str
) -> None:
    async with AuraClient("http://127.0.0.1:9", wire="openai") as client:
        with pytest.raises(InvalidRequestError, match=needle):
            client.stream(HELLO, **kwargs)  # type: ignore[arg-type]


def test_the_wire_is_checked() -> None:
    with pytest.raises(InvalidRequestError, match="wire must be one of 'aura', 'openai'"):
        AuraClient(wire="grpc")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="key must be printable ASCII"):
        AuraClient(wire="openai", key="sk-é")


@pytest.mark.network
async def test_the_server_refuses_a_bad_body_with_a_json_error() -> None:
    async with ReferenceServer() as server, httpx.AsyncClient(base_url=server.base_url) as raw:
        bad = await raw.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/json"
        assert "stream" in bad.json()["error"]["message"]
        typed = await raw.post("/v1/chat/completions", json={"model": 1, "messages": HELLO})
        assert "model" in typed.json()["error"]["message"]


# What the reference server never sends, scripted.

OPENAI_URL = "https://chat.test/v1/chat/completions"


def event(payload: object) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def content(text: str) -> str:
    return event({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})


def finish(reason: str = "stop") -> str:
    """The event that ends a whole reply, before ``data: [DONE]``."""
    return event({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})


SSE = {"content-type": "text/event-stream"}
DONE = "data: [DONE]\n\n"


def scripted_client(script: Script) -> AuraClient:
    return make_client(script, wire="openai")


def all_sent_to_the_openai_path(script: Script) -> bool:
    return all((call.method, call.url) == ("POST", OPENAI_URL) for call in script.calls)


async def test_an_in_band_error_before_any_text_is_an_api_error_not_retried() -> None:
    script = Script(*[reply(event({"error": {"message": "model overloaded"}}), headers=SSE)] * 3)
    async with scripted_client(script) as client:
        with pytest.raises(APIError, match="the server reported an error: model overloaded"):
            await client.complete(HELLO)
    assert script.call_count == 1
    assert all_sent_to_the_openai_path(script)


async def test_an_in_band_error_mid_reply_keeps_the_text_and_is_not_retried() -> None:
    script = Script(*[reply(content("Half "), event({"error": "upstream died"}), headers=SSE)] * 3)
    async with scripted_client(script) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            async with client.stream(HELLO) as chunks:
                await drain(chunks)
        assert caught.value.partial_text == "Half "
        assert type(caught.value.__cause__) is APIError
        with pytest.raises(IncompleteStreamError, match="upstream died"):
            await client.complete(HELLO)  # complete() may retry a cut reply, not this
    assert script.call_count == 2
    assert all_sent_to_the_openai_path(script)


async def test_a_reply_without_done_is_a_cut_and_complete_retries_it() -> None:
    script = Script(
        reply(content("Cut "), headers=SSE),  # the body ends, but not the reply
        reply(content("Whole"), finish(), "data: [DONE]\n\n", "data: ignored\n\n", headers=SSE),
    )
    async with scripted_client(script) as client:
        assert await client.complete(HELLO) == "Whole"
    assert script.call_count == 2
    assert all_sent_to_the_openai_path(script)


async def test_a_reply_without_done_in_a_stream_is_incomplete() -> None:
    script = Script(*[reply(content("Cut "), headers=SSE)] * 3)
    async with scripted_client(script) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            async with client.stream(HELLO) as chunks:
                await drain(chunks)
    assert caught.value.partial_text == "Cut "
    cause = caught.value.__cause__
    assert isinstance(cause, APIConnectionError)
    assert "before data: [DONE]" in str(cause)
    assert all_sent_to_the_openai_path(script)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "m", "messages": HELLO, "temperature": "hot", "stream": True}, "temperature"),
        ({"model": "m", "messages": HELLO, "max_tokens": 0, "stream": True}, "max_tokens"),
        ({"model": "m", "messages": HELLO, "max_tokens": 1.5, "stream": True}, "max_tokens"),
        ({"model": "", "messages": HELLO, "stream": True}, "model"),
        ({"model": "m", "messages": "hi", "stream": True}, "messages"),
        ({"model": "m", "messages": HELLO, "stream": False}, "stream"),
    ],
)
def test_the_server_checks_an_openai_body(body: dict[str, object], needle: str) -> None:
    with pytest.raises(RejectedError, match=needle):
        parse_openai_body(body)
    parsed = parse_openai_body({"model": "m", "messages": HELLO, "stream": True, "max_tokens": 5})
    assert (parsed.model, parsed.max_tokens, parsed.messages) == ("m", 5, tuple(HELLO))


async def test_done_ends_the_reply_even_if_the_body_stalls() -> None:
    stalled = reply(content("Whole"), finish(), "data: [DONE]\n\n", Pause(30), headers=SSE)
    script = Script(stalled, stalled)
    transport = MockTransport(script)
    client = AuraClient(
        "https://chat.test", transport=transport, wire="openai", max_retries=FAST_RETRIES
    )
    async with client:
        with anyio.fail_after(10):  # the stall is never waited for
            assert await client.complete(HELLO) == "Whole"
            async with client.stream(HELLO) as chunks:
                assert [text async for text in chunks] == ["Whole"]
    assert script.call_count == 2
    assert transport.open_responses == 0  # the stalled bodies were closed, not left open


@pytest.mark.network
async def test_connections_are_reused_after_done() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        for _ in range(3):
            assert await client.complete(HELLO)
        assert server.accepted_connections == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"error": {"message": "model 'x' not found"}}, "model 'x' not found"),
        ({"choices": [{"message": {"content": "not streamed"}}]}, "not a stream of events"),
        ("[" * 100_000, "not a stream of events"),
    ],
)
async def test_a_json_body_instead_of_events_is_an_api_error_not_retried(
    body: object, needle: str
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    script = Script(*[reply(text, headers={"content-type": "application/json"})] * 3)
    async with scripted_client(script) as client:
        with pytest.raises(APIError, match=needle) as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIError
    assert script.call_count == 1
    assert all_sent_to_the_openai_path(script)


# Messages pass through as the caller gives them.

TOOL_CONVERSATION: list[dict[str, object]] = [
    {"role": "developer", "content": "Call tools when they help."},
    {
        "role": "user",
        "name": "ada",
        "content": [
            {"type": "text", "text": "Weather in "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            {"type": "text", "text": "Paris?"},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_7",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_7", "content": '{"celsius": 18}'},
    {"role": "system", "content": "Answer in one line.", "x-vendor": [1, 2.5, None, True]},
]


@pytest.mark.network
async def test_a_tool_calling_conversation_reaches_the_server_exactly() -> None:
    original = json.loads(json.dumps(TOOL_CONVERSATION))
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        text = await client.complete(TOOL_CONVERSATION)
        async with client.stream(TOOL_CONVERSATION) as chunks:
            await drain(chunks)
    assert original == TOOL_CONVERSATION  # the caller's messages are left as they were
    for request in server.requests:
        assert request.error is None
        assert sent(request)["messages"] == original
        assert list(request.messages) == original
        # Instructions are the system and developer messages; the rest is the conversation.
        assert request.system_prompt == "Call tools when they help.\nAnswer in one line."
        assert request.kept_messages == (
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": ""},
            {"role": "tool", "content": '{"celsius": 18}'},
        )
    assert text == chunks.text == default_reply(server.requests[0])


@pytest.mark.network
async def test_list_content_and_tuples_travel_as_json_arrays() -> None:
    messages = (
        {"role": "user", "content": ({"type": "text", "text": "a tuple of parts"},)},
        {"role": "assistant", "content": "", "tool_calls": ()},
        {"role": "user", "content": [], "name": "empty"},
    )
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        await client.complete(messages)
    assert sent(server.requests[0])["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a tuple of parts"}]},
        {"role": "assistant", "content": "", "tool_calls": []},
        {"role": "user", "content": [], "name": "empty"},
    ]


MALFORMED: list[tuple[object, str]] = [
    ("hi", "messages must be a sequence"),
    ({"role": "user", "content": "hi"}, "messages must be a sequence"),
    (["hi"], r"messages\[0\] must be a mapping"),
    ([{"content": "hi"}], r"messages\[0\] has no 'role'"),
    ([{"role": None, "content": "hi"}], r"messages\[0\]\.role must be one of"),
    ([{"role": "function", "content": "hi"}], r"messages\[0\]\.role must be one of .*'tool'"),
    ([{"role": "user"}], r"messages\[0\] has no 'content'"),
    ([{"role": "user", "content": None}], r"messages\[0\]\.content must be a str or a list"),
    ([HELLO[0], {"role": "tool", "content": 3}], r"messages\[1\]\.content must be"),
    ([{"role": "assistant", "content": None}], r"\(or None, with tool_calls\)"),
    ([{"role": "user", "content": ["bare text"]}], r"messages\[0\]\.content\[0\] must be"),
    ([{"role": "user", "content": [{"text": "no type"}]}], r"content\[0\] must be a content"),
    ([{"role": "user", "content": [{"type": 1}]}], r"content\[0\] must be a content part"),
    ([{"role": "user", "content": "hi", 1: "x"}], r"messages\[0\] has a key that is not a str"),
    ([{"role": "system", "content": "a"}, {"role": "developer", "content": "b"}], "at least one"),
    ([], "at least one message"),
    ([{"role": "user", "content": "hi", "name": b"ada"}], r"messages\[0\]\.name cannot be sent"),
    ([{"role": "user", "content": "hi", "n": {1, 2}}], r"messages\[0\]\.n cannot be sent"),
    ([{"role": "user", "content": "hi", "t": float("nan")}], r"messages\[0\]\.t .*NaN"),
    ([{"role": "user", "content": "\ud800"}], r"messages\[0\]\.content .*lone surrogate"),
    ([{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}], "lone surrogate"),
]


@pytest.mark.network
@pytest.mark.parametrize(("messages", "needle"), MALFORMED)
async def test_a_malformed_conversation_is_refused_before_sending(
    messages: object, needle: str
) -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        with pytest.raises(InvalidRequestError, match=needle):
            client.stream(messages)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match=needle):
            await client.complete(messages)  # type: ignore[arg-type]
        (result,) = await client.gather([ChatRequest(messages)])  # type: ignore[arg-type]
        assert isinstance(result.error, InvalidRequestError)
        assert result.attempts == 0
        assert await client.complete(HELLO)  # the client is still fine
    assert len(server.requests) == 1


def content_parts() -> st.SearchStrategy[dict[str, object]]:
    return st.builds(
        lambda kind, fields: {**fields, "type": kind},
        st.sampled_from(["text", "image_url", "input_audio", "x"]),
        st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    )


@st.composite
def openai_message(draw: st.DrawFn, roles: Sequence[str] = OPENAI_ROLES) -> dict[str, object]:
    """A valid message of the OpenAI wire, with any other fields of any JSON value."""
    role = draw(st.sampled_from(roles))
    fields: dict[str, object] = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda key: key not in ("role", "content")),
            json_values,
            max_size=3,
        )
    )
    calls = role == "assistant" and draw(st.booleans())
    if calls:
        fields["tool_calls"] = draw(st.lists(json_values, max_size=2))
    kinds = ["str", "parts", *(["none", "absent"] if calls else [])]
    kind = draw(st.sampled_from(kinds))
    if kind == "str":
        fields["content"] = draw(st.text())
    elif kind == "parts":
        fields["content"] = draw(st.lists(content_parts(), max_size=3))
    elif kind == "none":
        fields["content"] = None
    fields["role"] = role
    return fields


@st.composite
def openai_conversations(draw: st.DrawFn) -> list[dict[str, object]]:
    """A valid conversation: any messages, one of them not a system or developer message."""
    body = draw(st.lists(openai_message(), max_size=5))
    anchor = draw(openai_message(("user", "assistant", "tool")))
    body.insert(draw(st.integers(0, len(body))), anchor)
    return body


extra_bodies = st.none() | st.dictionaries(
    st.text(max_size=12).filter(lambda key: key not in RESERVED_FIELDS), json_values, max_size=4
)


def round_trip(value: object) -> object:
    return json.loads(json.dumps(value))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=openai_conversations(), extra_body=extra_bodies, streamed=st.booleans())
async def test_any_valid_conversation_and_extra_body_reach_the_server_as_json(
    messages: list[dict[str, object]], extra_body: dict[str, object] | None, streamed: bool
) -> None:
    expected_messages = round_trip(messages)
    bodies: list[bytes] = []

    def answer(request: Request) -> MockResponse:
        bodies.append(request.content)
        return reply(content("ok"), finish(), DONE, headers=SSE)

    transport = MockTransport(answer)
    async with AuraClient(BASE_URL, transport=transport, wire="openai") as client:
        if streamed:
            async with client.stream(messages, extra_body=extra_body) as chunks:
                await drain(chunks)
            assert chunks.text == "ok"
        else:
            assert await client.complete(messages, extra_body=extra_body) == "ok"
    (raw,) = bodies
    body = json.loads(raw)
    expected: dict[str, object] = {
        "model": "openchat_3.6",
        "messages": expected_messages,
        "temperature": DEFAULT_TEMPERATURE,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    expected.update(typing.cast("dict[str, object]", round_trip(extra_body or {})))
    assert body == expected
    assert messages == expected_messages  # nothing of the caller's was changed
    # Byte for byte: the messages are written as they are, compact UTF-8 JSON.
    compact = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    assert b'"messages":' + compact.encode() + b',"temperature":' in raw


# Any request field: extra_body.

EXTRA = {
    "seed": 7,
    "stop": ["\n\n"],
    "top_p": 0.9,
    "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "tool_choice": "auto",
    "logit_bias": {"50256": -100},
}


@pytest.mark.network
async def test_extra_body_reaches_the_server_from_every_entry_point() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO, extra_body=EXTRA) as chunks:
            await drain(chunks)
        assert await client.complete(HELLO, extra_body={"seed": 1})
        results = await client.gather(
            [ChatRequest(HELLO, extra_body={"seed": 2}, id="a"), ChatRequest(HELLO, id="b")]
        )
        async with client.fan_out([ChatRequest(HELLO, extra_body={"top_k": 3})]) as more:
            fanned = [result async for result in more]
    assert chunks.text == default_reply(server.requests[0])
    assert all(result.ok for result in [*results, *fanned])
    extras = sorted(
        (dict(request.extra_body) for request in server.requests), key=lambda e: json.dumps(e)
    )
    assert extras == sorted(
        [EXTRA, {"seed": 1}, {"seed": 2}, {}, {"top_k": 3}], key=lambda e: json.dumps(e)
    )
    assert dict(server.requests[0].extra_body) == EXTRA
    assert sent(server.requests[0])["stop"] == ["\n\n"]


@pytest.mark.network
async def test_extra_body_may_replace_stream_options() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        options = {"stream_options": {"include_usage": False}}
        async with client.stream(HELLO, extra_body=options) as chunks:
            await drain(chunks)
    (request,) = server.requests
    assert sent(request)["stream_options"] == {"include_usage": False}
    assert not request.include_usage
    assert chunks.usage is None
    assert chunks.finish_reason == "stop"


@pytest.mark.network
@pytest.mark.parametrize("name", RESERVED_FIELDS)
async def test_extra_body_may_not_set_the_clients_own_fields(name: str) -> None:
    hint = "as an argument" if name in ("temperature", "max_tokens") else "sets it itself"
    needle = rf"extra_body may not set '{name}': .*{hint}"
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        with pytest.raises(InvalidRequestError, match=needle):
            client.stream(HELLO, extra_body={"seed": 1, name: 1})
        with pytest.raises(InvalidRequestError, match=needle):
            await client.complete(HELLO, extra_body={name: 1})
        (result,) = await client.gather([ChatRequest(HELLO, extra_body={name: 1})])
    assert isinstance(result.error, InvalidRequestError)
    assert (result.attempts, result.text) == (0, "")
    assert server.requests == []


@pytest.mark.parametrize(
    ("extra_body", "needle"),
    [
        ([("seed", 1)], "extra_body must be a mapping of body fields, got list"),
        ("seed=1", "extra_body must be a mapping"),
        ({1: "x"}, "extra_body has a key that is not a str: 1"),
        ({"seed": b"7"}, r"extra_body\['seed'\] cannot be sent as JSON"),
        ({"stop": {"\n"}}, r"extra_body\['stop'\] cannot be sent as JSON"),
        ({"top_p": float("inf")}, r"extra_body\['top_p'\] .*no NaN or infinity"),
        ({"user": "\udc80"}, r"extra_body\['user'\] .*lone surrogate"),
        ({"x": {"nested": 1, (2, 3): 4}}, r"extra_body\['x'\] cannot be sent"),
    ],
)
async def test_a_bad_extra_body_is_refused_before_sending(extra_body: object, needle: str) -> None:
    script = Script()
    async with scripted_client(script) as client:
        with pytest.raises(InvalidRequestError, match=needle):
            client.stream(HELLO, extra_body=extra_body)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match=needle):
            await client.complete(HELLO, extra_body=extra_body)  # type: ignore[arg-type]
    assert not script.called


async def test_a_circular_value_is_refused_before_sending() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    script = Script()
    async with scripted_client(script) as client:
        with pytest.raises(InvalidRequestError, match=r"extra_body\['loop'\] cannot be sent"):
            await client.complete(HELLO, extra_body={"loop": loop})
        message = {"role": "user", "content": "hi", "meta": loop}
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.meta cannot be sent"):
            await client.complete([message])
    assert not script.called


@pytest.mark.network
async def test_extra_body_is_refused_on_the_aura_wire() -> None:
    needle = "extra_body is for the OpenAI wire.*wire='aura'"
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        with pytest.raises(InvalidRequestError, match=needle):
            client.stream(HELLO, extra_body={"seed": 1})
        with pytest.raises(InvalidRequestError, match=needle):
            await client.complete(HELLO, extra_body={"seed": 1})
        (refused,) = await client.gather([ChatRequest(HELLO, extra_body={"seed": 1})])
        assert isinstance(refused.error, InvalidRequestError)
        assert server.requests == []
        # An empty one asks for nothing: the request goes as usual.
        assert await client.complete(HELLO, extra_body={}) == default_reply(server.requests[0])
    assert server.requests[0].wire == "aura"


# Usage on request.


@pytest.mark.network
async def test_usage_is_asked_for_and_reported_by_default() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO) as chunks:
            await drain(chunks)
        (result,) = await client.gather([ChatRequest(HELLO)])
    pieces = len(default_reply(server.requests[0]).split())
    usage = {"prompt_tokens": 1, "completion_tokens": pieces, "total_tokens": 1 + pieces}
    assert chunks.usage == usage
    assert result.usage == usage
    for request in server.requests:
        assert sent(request)["stream_options"] == {"include_usage": True}
        assert request.include_usage


@pytest.mark.network
async def test_include_usage_false_sends_no_stream_options() -> None:
    async with ReferenceServer() as server:
        client = AuraClient(server.base_url, wire="openai", include_usage=False)
        async with client:
            async with client.stream(HELLO) as chunks:
                await drain(chunks)
            (result,) = await client.gather([HELLO])
    assert (chunks.usage, result.usage) == (None, None)
    assert (chunks.finish_reason, result.finish_reason) == ("stop", "stop")
    assert chunks.text == result.text == default_reply(server.requests[0])
    for request in server.requests:
        assert "stream_options" not in sent(request)
        assert not request.include_usage


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_include_usage_must_be_a_bool(value: object) -> None:
    with pytest.raises(InvalidRequestError, match="include_usage must be a bool"):
        AuraClient(wire="openai", include_usage=value)  # type: ignore[arg-type]


# No max_tokens unless asked.


@pytest.mark.network
async def test_max_tokens_is_sent_only_when_given() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO) as chunks:
            await drain(chunks)
        assert await client.complete(HELLO)
        (result,) = await client.gather([ChatRequest(HELLO)])
        assert result.ok
        assert len(server.requests) == 3
        for request in server.requests:
            assert "max_tokens" not in sent(request)
            assert request.token_limit is None
        assert chunks.finish_reason == result.finish_reason == "stop"
        # Given, on each entry point, it is sent and caps the reply.
        async with client.stream(HELLO, max_tokens=3) as capped:
            await drain(capped)
        assert await client.complete(HELLO, max_tokens=2) == "Hello from "
        (short,) = await client.gather([ChatRequest(HELLO, max_tokens=1)])
    assert [sent(r)["max_tokens"] for r in server.requests[3:]] == [3, 2, 1]
    assert (capped.text, capped.finish_reason) == ("Hello from the ", "length")
    assert (short.text, short.finish_reason) == ("Hello ", "length")


# Tool calls.

CALLS = [("get_weather", '{"city": "Paris", "unit": "celsius"}'), ("get_time", "{}")]
EXPECTED_CALLS = [
    {
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
    },
    {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
]


@pytest.mark.network
async def test_tool_calls_are_assembled_and_the_iterator_yields_only_text() -> None:
    tools = ReferenceServer(reply=lambda _: ToolCalls(CALLS, text="Let me check that."))
    async with tools as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO, extra_body={"tools": []}) as chunks:
            pieces = [piece async for piece in chunks]
        assert await client.complete(HELLO) == "Let me check that."
    # Only text comes out, however the events were grouped into reads.
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces) == "Let me check that."
    assert chunks.text == "Let me check that."
    assert chunks.tool_calls == EXPECTED_CALLS
    assert chunks.finish_reason == "tool_calls"


def echo_calls(said: str) -> list[dict[str, object]]:
    """The calls ``calls`` makes for ``said``, as the client assembles them."""
    arguments = json.dumps({"said": said})
    return [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "echo", "arguments": arguments},
        }
        for i in range(1 + len(said) % 3)
    ]


def calls(request: ReceivedRequest) -> ToolCalls:
    """One to three calls of ``echo`` with what the user said, and no text."""
    said = request.kept_messages[-1]["content"]
    return ToolCalls([("echo", json.dumps({"said": said}))] * (1 + len(said) % 3))


@pytest.mark.network
async def test_tool_calls_alone_and_in_a_fan_out() -> None:
    async with ReferenceServer(reply=calls) as server:
        async with AuraClient(server.base_url, wire="openai") as client:
            async with client.stream(HELLO) as chunks:
                assert [piece async for piece in chunks] == []
            results = await client.gather(["a", "bb", "ccc"])
            async with client.fan_out([ChatRequest(HELLO, id="x")]) as fanned:
                (alone,) = [result async for result in fanned]
    assert chunks.text == ""
    assert chunks.finish_reason == "tool_calls"
    assert chunks.tool_calls == echo_calls("hi")
    for result, said in zip(results, ["a", "bb", "ccc"], strict=True):
        assert result.ok
        assert (result.text, result.finish_reason) == ("", "tool_calls")
        assert result.tool_calls == echo_calls(said)
    assert alone.tool_calls is not None
    assert len(alone.tool_calls) == 3


@pytest.mark.network
async def test_a_reply_without_tool_calls_has_none() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO) as chunks:
            assert chunks.tool_calls is None  # before the first text, too
            await drain(chunks)
        (result,) = await client.gather([HELLO])
    assert (chunks.tool_calls, result.tool_calls) == (None, None)


@pytest.mark.network
async def test_max_tokens_cuts_the_text_before_the_tool_calls() -> None:
    tools = ReferenceServer(reply=lambda _: ToolCalls(CALLS, text="Let me check that."))
    async with tools as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO, max_tokens=2) as chunks:
            await drain(chunks)
    assert (chunks.text, chunks.finish_reason, chunks.tool_calls) == ("Let me ", "length", None)


@pytest.mark.network
async def test_tool_calls_on_the_aura_wire_are_only_their_text() -> None:
    tools = ReferenceServer(reply=lambda _: ToolCalls(CALLS, text="Let me check that."))
    async with tools as server, AuraClient(server.base_url) as client:
        async with client.stream(HELLO) as chunks:
            await drain(chunks)
    assert (chunks.text, chunks.tool_calls, chunks.finish_reason) == (
        "Let me check that.",
        None,
        None,
    )


def tool_piece(choice: dict[str, object]) -> str:
    return event({"choices": [{"finish_reason": None, **choice}]})


async def test_tool_call_pieces_are_assembled_by_index_whatever_their_order() -> None:
    pieces = [
        tool_piece({"index": 0, "delta": {"content": "On it."}}),
        tool_piece(
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 1, "id": "b", "function": {"name": "se", "arguments": '{"q'}},
                        {"index": 0, "id": "a", "type": "function", "function": {"name": "f"}},
                    ]
                },
            }
        ),
        # Another choice's calls are not this reply's.
        tool_piece({"index": 1, "delta": {"tool_calls": [{"index": 0, "id": "other"}]}}),
        tool_piece(
            {"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"name": "arch"}}]}}
        ),
        tool_piece(
            {"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": '":1}'}}]}}
        ),
        finish("tool_calls"),
        DONE,
    ]
    script = Script(reply(*pieces, headers=SSE), reply("".join(pieces), headers=SSE))
    async with scripted_client(script) as client:
        async with client.stream(HELLO) as chunks:
            assert [piece async for piece in chunks] == ["On it."]
        (result,) = await client.gather([HELLO])  # all in one chunk
    expected = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"id": "b", "type": "function", "function": {"name": "search", "arguments": '{"q":1}'}},
    ]
    assert chunks.tool_calls == expected
    assert (result.text, result.tool_calls, result.finish_reason) == (
        "On it.",
        expected,
        "tool_calls",
    )


# No silent truncation: llama.cpp's interrupted reply.

RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.01)


def first_words(text: str, count: int) -> str:
    return "".join(split_words(text)[:count])


def openai_client(server: ReferenceServer) -> AuraClient:
    return AuraClient(server.base_url, wire="openai", max_retries=RETRIES)


async def stream_into(client: AuraClient, pieces: list[str]) -> None:
    """Stream a reply to ``HELLO``, keeping each piece the caller gets in ``pieces``."""
    async with client.stream(HELLO) as chunks:
        async for piece in chunks:
            pieces.append(piece)


@pytest.mark.network
async def test_an_interrupt_before_any_text_is_retried_by_stream() -> None:
    async with ReferenceServer(fault=Fault(interrupt_after=0, times=1)) as server:
        async with openai_client(server) as client, client.stream(HELLO) as chunks:
            await drain(chunks)
    assert chunks.text == default_reply(server.requests[-1])
    assert chunks.finish_reason == "stop"
    assert chunks.attempts == len(server.requests) == 2


@pytest.mark.network
async def test_an_interrupt_before_any_text_that_persists_is_a_connection_error() -> None:
    async with ReferenceServer(fault=Fault(interrupt_after=0)) as server:
        async with openai_client(server) as client:
            with pytest.raises(APIConnectionError, match="without a finish_reason") as streamed:
                async with client.stream(HELLO) as chunks:
                    await drain(chunks)
            with pytest.raises(APIConnectionError, match="without a finish_reason") as completed:
                await client.complete(HELLO)
    for caught in (streamed, completed):
        assert not isinstance(caught.value, IncompleteStreamError)
    assert len(server.requests) == 2 * (1 + RETRIES.max_retries)


@pytest.mark.network
@pytest.mark.parametrize("words", [1, 3, 7])
async def test_an_interrupt_after_text_is_an_incomplete_stream(words: int) -> None:
    received: list[str] = []
    async with ReferenceServer(fault=Fault(interrupt_after=words)) as server:
        async with openai_client(server) as client:
            with pytest.raises(IncompleteStreamError) as caught:
                await stream_into(client, received)
    whole = default_reply(server.requests[0])
    assert caught.value.partial_text == first_words(whole, words) == "".join(received)
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert "without a finish_reason" in str(caught.value)
    assert len(server.requests) == 1  # text reached the caller: no retry


@pytest.mark.network
async def test_complete_retries_an_interrupted_reply() -> None:
    async with ReferenceServer(fault=Fault(interrupt_after=3, times=1)) as server:
        async with openai_client(server) as client:
            text = await client.complete(HELLO)
    assert text == default_reply(server.requests[-1])
    assert len(server.requests) == 2


@pytest.mark.network
async def test_complete_raises_once_retries_are_spent_on_interrupts() -> None:
    async with ReferenceServer(fault=Fault(interrupt_after=3)) as server:
        async with openai_client(server) as client:
            with pytest.raises(IncompleteStreamError) as caught:
                await client.complete(HELLO)
    assert caught.value.partial_text == first_words(default_reply(server.requests[0]), 3)
    assert len(server.requests) == 1 + RETRIES.max_retries


@pytest.mark.network
async def test_interrupted_replies_are_errors_in_a_fan_out() -> None:
    never = Fault(interrupt_after=0).marker()
    early = Fault(interrupt_after=2).marker()
    once = Fault(interrupt_after=4, times=1).marker()
    prompts = ["whole", f"never {never}", f"early {early}", f"once {once}"]
    async with ReferenceServer() as server, openai_client(server) as client:
        whole, never_, early_, once_ = await client.gather(prompts)
    assert whole.ok
    assert whole.finish_reason == "stop"
    assert once_.ok
    assert once_.attempts == 2
    assert once_.text.startswith("Hello from the reference server")
    for failed in (never_, early_):
        assert not failed.ok
        assert failed.attempts == 1 + RETRIES.max_retries
        assert failed.finish_reason is None
    assert type(never_.error) is APIConnectionError
    assert never_.text == ""
    assert isinstance(early_.error, IncompleteStreamError)
    assert early_.text == early_.error.partial_text == "Hello from "


async def test_done_without_a_finish_reason_is_a_cut_when_scripted() -> None:
    cut = reply(content("Cut "), DONE, headers=SSE)
    script = Script(cut, cut, cut, reply(content("Whole"), finish(), DONE, headers=SSE))
    async with scripted_client(script) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            async with client.stream(HELLO) as chunks:
                await drain(chunks)
        assert await client.complete(HELLO) == "Whole"  # cut twice, retried
    assert caught.value.partial_text == "Cut "
    assert "without a finish_reason" in str(caught.value.__cause__)
    assert script.call_count == 4


async def test_text_that_arrives_with_the_cut_is_kept() -> None:
    # The last words and [DONE] in one chunk, as a server that writes them together sends them.
    script = Script(*[reply(content("Cut ") + DONE, headers=SSE)] * 3)
    async with scripted_client(script) as client:
        with pytest.raises(IncompleteStreamError) as caught:
            await client.complete(HELLO)
    assert caught.value.partial_text == "Cut "
    assert script.call_count == 3

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

from aura_anyio import (
    APIConnectionError,
    APIError,
    AuraClient,
    ChatRequest,
    IncompleteStreamError,
    InvalidRequestError,
    ModelSpec,
)
from aura_anyio.testing import MockTransport, ReferenceServer, default_reply
from aura_anyio.testing._body import RejectedError, parse_openai_body

from .helpers import FAST_RETRIES, Pause, Script, drain, make_client, reply

if typing.TYPE_CHECKING:
    from aura_anyio.testing import ReceivedRequest

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
        }
        assert text == default_reply(request)
        assert "sk-secret" not in repr(client)
        assert "wire='openai'" in repr(client)


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


async def test_a_base_url_ending_in_v1_is_not_doubled() -> None:
    async with ReferenceServer() as server:
        async with AuraClient(server.base_url + "/v1/", wire="openai") as client:
            assert await client.complete(HELLO)
    assert server.requests[0].path == "/v1/chat/completions"


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


async def test_the_concurrency_limit_holds_on_this_wire_too() -> None:
    async with ReferenceServer(delay=0.005) as server:
        async with AuraClient(server.base_url, wire="openai") as client:
            results = await client.gather([f"p{n}" for n in range(40)], max_concurrency=5)
    assert all(result.ok for result in results)
    assert server.max_in_flight <= 5


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


SSE = {"content-type": "text/event-stream"}


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
        reply(content("Whole"), "data: [DONE]\n\n", "data: ignored\n\n", headers=SSE),
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
    stalled = reply(content("Whole"), "data: [DONE]\n\n", Pause(30), headers=SSE)
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

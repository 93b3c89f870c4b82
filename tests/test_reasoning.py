"""A reasoning model's thinking, kept apart from the text: the OpenAI wire's decoder under any
chunking (pure), and the stream, the fan-out, the cache and a batch row against the reference
server."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import AuraClient, ChatResult, ResponseCache
from aura_anyio._cli.jsonl import result_row
from aura_anyio._wire.openai_reply import OpenAIReply
from aura_anyio.testing import ReferenceServer, Thinking, ToolCalls

from .strategies import chunkings

if typing.TYPE_CHECKING:
    from pathlib import Path

HELLO = [{"role": "user", "content": "hello"}]
THOUGHTS = "The user greets me. A greeting back is best."


def event(delta: dict[str, object]) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


pieces = st.lists(st.text(min_size=1, max_size=8), max_size=6)


@given(
    thoughts=pieces,
    text=pieces,
    field=st.sampled_from(["reasoning_content", "reasoning"]),
    data=st.data(),
)
def test_reasoning_is_kept_apart_from_the_text_under_any_chunking(
    thoughts: list[str], text: list[str], field: str, data: st.DataObject
) -> None:
    body = b"".join(
        [
            *(event({field: piece}) for piece in thoughts),
            *(event({"content": piece}) for piece in text),
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
            b"data: [DONE]\n\n",
        ]
    )
    reply = OpenAIReply()
    said = "".join(reply.feed(part) for part in data.draw(chunkings(body))) + reply.close()
    assert said == "".join(text)
    assert reply.reasoning == ("".join(thoughts) if thoughts else None)


def test_thinking_takes_only_the_two_field_names() -> None:
    with pytest.raises(ValueError, match=r"Thinking\.field must be one of reasoning_content"):
        Thinking("x", field="thought")


def test_a_server_that_sends_both_names_has_its_thinking_kept_once() -> None:
    reply = OpenAIReply()
    reply.feed(event({"reasoning_content": "think", "reasoning": "think"}))
    reply.feed(event({"reasoning_content": "", "reasoning": " more"}))
    reply.feed(event({"reasoning_content": None, "content": "answer"}))
    assert reply.reasoning == "think more"


@pytest.mark.network
@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_a_stream_yields_the_text_and_grows_its_reasoning(field: str) -> None:
    thinking = ReferenceServer(reply=lambda _: Thinking(THOUGHTS, "Hello there!", field))
    async with thinking as server, AuraClient(server.base_url, wire="openai") as client:
        async with client.stream(HELLO) as reply:
            assert reply.reasoning == THOUGHTS  # all of it came before the first text
            pieces = [piece async for piece in reply]
        assert await client.complete(HELLO) == "Hello there!"
    assert "".join(pieces) == "Hello there!"
    assert reply.reasoning == THOUGHTS
    assert reply.usage is not None
    assert reply.usage["completion_tokens"] == len(THOUGHTS.split()) + 2


@pytest.mark.network
async def test_reasoning_with_tool_calls_in_one_reply() -> None:
    calls = ToolCalls([("get_weather", '{"city": "Paris"}')], text="Checking.")
    thinking = ReferenceServer(reply=lambda _: Thinking(THOUGHTS, calls))
    async with thinking as server, AuraClient(server.base_url, wire="openai") as client:
        (result,) = await client.gather([HELLO])
    assert (result.text, result.reasoning, result.finish_reason) == (
        "Checking.",
        THOUGHTS,
        "tool_calls",
    )
    assert result.tool_calls is not None
    assert result.tool_calls[0]["function"]["name"] == "get_weather"


@pytest.mark.network
async def test_no_reasoning_is_none_on_both_wires() -> None:
    async with ReferenceServer() as server:
        for wire in ("aura", "openai"):
            async with AuraClient(server.base_url, wire=wire) as client:
                async with client.stream(HELLO) as reply:
                    async for _ in reply:
                        pass
                (result,) = await client.gather([HELLO])
            assert reply.reasoning is None
            assert result.reasoning is None
            assert "reasoning" not in result_row(_with_id(result), line=1).to_json()


@pytest.mark.network
async def test_the_aura_wire_sends_only_the_text_of_a_thinking_reply() -> None:
    thinking = ReferenceServer(reply=lambda _: Thinking(THOUGHTS, "Hello there!"))
    async with thinking as server, AuraClient(server.base_url) as client:
        assert await client.complete(HELLO) == "Hello there!"


@pytest.mark.network
async def test_the_cache_replays_the_reasoning_and_a_row_keeps_it(tmp_path: Path) -> None:
    thinking = ReferenceServer(reply=lambda _: Thinking(THOUGHTS, "Hello there!"))
    async with (
        thinking as server,
        ResponseCache(tmp_path / "cache.sqlite") as cache,
        AuraClient(server.base_url, wire="openai", cache=cache) as client,
    ):
        (sent,) = await client.gather([HELLO])
        async with client.stream(HELLO) as replayed:
            async for _ in replayed:
                pass
    assert replayed.cached
    assert replayed.reasoning == sent.reasoning == THOUGHTS
    assert len(server.requests) == 1
    assert json.loads(result_row(_with_id(sent), line=1).to_json())["reasoning"] == THOUGHTS


def _with_id(result: ChatResult) -> ChatResult:
    """A fan-out result as a batch row wants it: its request has an id."""
    return dataclasses.replace(result, request=dataclasses.replace(result.request, id="r"))

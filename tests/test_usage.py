"""The whole usage a server sends, nested details included: read (pure), then through the
stream, complete(), a fan-out's progress, the cache and a batch's summary."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio import AuraClient, ChatRequest, ResponseCache, Usage
from aura_anyio._cli.batch import BatchStats, summary_line, summary_of
from aura_anyio._cli.jsonl import result_row
from aura_anyio._usage import detail_count, read_usage
from aura_anyio.testing import MockResponse, MockTransport, ReferenceServer, Thinking

from .strategies import usages

if typing.TYPE_CHECKING:
    from pathlib import Path

HELLO = [{"role": "user", "content": "hello"}]
USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 30, "accepted_prediction_tokens": 0},
    "queue_time": 0.012,  # a server's own field (Groq's), kept as sent
}


def events(usage: object) -> bytes:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    ]
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)
    return body + b"data: [DONE]\n\n"


def client_sending(usage: object, **kwargs: typing.Any) -> AuraClient:
    headers = {"content-type": "text/event-stream"}
    response = MockResponse(200, chunks=[events(usage)], headers=headers)
    transport = MockTransport(lambda _: response)
    return AuraClient("http://server.test", wire="openai", transport=transport, **kwargs)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@given(usages | st.dictionaries(st.sampled_from(["prompt_tokens", "x"]) | st.text(), json_values))
def test_usage_is_kept_as_sent_but_known_counts_that_are_not_ints(sent: dict[str, object]) -> None:
    usage = read_usage(sent)
    assert usage is not None
    kept = typing.cast("dict[str, object]", usage)
    for name, value in sent.items():
        known = name in ("prompt_tokens", "completion_tokens", "total_tokens")
        details = name in ("prompt_tokens_details", "completion_tokens_details")
        if known:
            assert kept.get(name) == (value if type(value) is int else None)
        elif details:
            assert (name in kept) == isinstance(value, dict)
        else:
            assert kept[name] == value
    assert detail_count(usage, "prompt_tokens_details", "cached_tokens") >= 0


def test_usage_that_is_not_an_object_is_none() -> None:
    assert read_usage([1]) is None
    assert read_usage(None) is None
    assert detail_count(None, "prompt_tokens_details", "cached_tokens") == 0


async def test_the_whole_usage_reaches_the_stream_complete_and_the_fan_out() -> None:
    async with client_sending(USAGE) as client:
        async with client.stream(HELLO) as reply:
            async for _ in reply:
                pass
        async with client.fan_out([HELLO, HELLO]) as results:
            finished = [result async for result in results]
            progress = results.progress
    assert reply.usage == USAGE
    usage: Usage | None = reply.usage
    assert usage is not None
    assert usage["prompt_tokens_details"]["cached_tokens"] == 100  # openai-python's spelling
    assert all(result.usage == USAGE for result in finished)
    assert (progress.prompt_tokens, progress.completion_tokens) == (240, 80)
    assert (progress.cached_tokens, progress.reasoning_tokens) == (200, 60)


async def test_the_cache_replays_the_whole_usage(tmp_path: Path) -> None:
    async with ResponseCache(tmp_path / "cache.sqlite") as cache:
        async with client_sending(USAGE, cache=cache) as client:
            (sent,) = await client.gather([HELLO])
            (replayed,) = await client.gather([HELLO])
    assert replayed.cached
    assert replayed.usage == sent.usage
    assert sent.usage is not None
    assert dict(sent.usage) == USAGE
    row = result_row(dataclasses.replace(sent, request=ChatRequest(HELLO, id="r")), line=1)
    assert json.loads(row.to_json())["usage"] == USAGE  # a batch row keeps it whole


@pytest.mark.network
async def test_a_reasoning_models_usage_from_the_reference_server() -> None:
    thinking = ReferenceServer(reply=lambda _: Thinking("one two three", "Hi there"))
    async with thinking as server, AuraClient(server.base_url, wire="openai") as client:
        (result,) = await client.gather([HELLO])
    assert result.usage is not None
    assert result.usage["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert result.usage["completion_tokens"] == 5


def test_the_summary_says_the_cached_and_reasoning_tokens() -> None:
    stats = BatchStats(done=1, prompt_tokens=120, completion_tokens=40)
    stats.cached_tokens, stats.reasoning_tokens = 100, 30
    summary = summary_of(stats, elapsed=1.0)
    assert (summary["cached_tokens"], summary["reasoning_tokens"]) == (100, 30)
    assert "120 tokens in (100 cached), 40 out (30 reasoning)" in summary_line(summary)

"""AuraClient against the reference server over real loopback sockets, on every backend."""

from __future__ import annotations

import logging

import anyio
import pytest

from aura_anyio import (
    APIConnectionError,
    APITimeoutError,
    AuraClient,
    IncompleteStreamError,
    ModelSpec,
    ServerError,
    Timeouts,
)
from aura_anyio.testing import DEFAULT_SYSTEM_PROMPT, ReferenceServer, default_reply

from .helpers import FAST_RETRIES, drain

pytestmark = [pytest.mark.network, pytest.mark.debug]

HELLO = [{"role": "user", "content": "hello there"}]


async def test_streams_the_reference_reply() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        async with client.stream(HELLO) as chunks:
            pieces = [text async for text in chunks]
        expected = default_reply(server.requests[-1])
        assert "".join(pieces) == expected == chunks.text
        assert len(pieces) > 5
        assert "hello there" in expected
        assert await client.complete(HELLO) == expected
        await server.wait_until(lambda: server.completed == 2)
    assert server.accepted_connections == 1  # the connection was kept alive and reused


async def test_model_and_system_prompt_reach_the_server() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        await client.complete(
            [{"role": "system", "content": "Be terse."}, *HELLO], model="openchat_v3.2_mistral"
        )
        await client.complete(HELLO)
    first, second = server.requests
    assert first.model_id == "openchat_v3.2_mistral"
    assert first.system_prompt == "Be terse."
    assert second.model_id == "openchat_3.6"
    assert second.system_prompt == DEFAULT_SYSTEM_PROMPT


async def test_the_server_trims_history_to_max_tokens() -> None:
    history = []
    for n in range(40):
        history += [
            {"role": "user", "content": f"question {n} " + "word " * 20},
            {"role": "assistant", "content": f"answer {n} " + "word " * 20},
        ]
    history.append({"role": "user", "content": "last"})
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        await client.complete(history, max_tokens=1000)
    received = server.requests[-1]
    assert received.token_limit == 1000
    assert 1 <= len(received.kept_messages) < len(history)
    assert received.kept_messages[-1]["content"] == "last"
    assert list(received.kept_messages) == history[-len(received.kept_messages) :]


async def test_multibyte_characters_split_across_chunks() -> None:
    raw = "¡Olé! 日本語 😀".encode()
    chunks = [raw[i : i + 1] for i in range(len(raw))]
    async with (
        ReferenceServer(reply=lambda _: chunks) as server,
        AuraClient(server.base_url) as client,
    ):
        assert await client.complete(HELLO) == "¡Olé! 日本語 😀"


async def test_unknown_model_is_a_server_error_with_the_reason_phrase() -> None:
    unknown = ModelSpec("no-such-model", "Nope", 100, 8192)
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, max_retries=FAST_RETRIES) as client,
    ):
        with pytest.raises(ServerError) as caught:
            await client.complete(HELLO, model=unknown)
    assert caught.value.status_code == 500
    assert "no-such-model" in caught.value.reason
    assert "no-such-model" in str(caught.value)
    assert caught.value.body == "Error"
    assert len(server.requests) == 3  # 5xx is retried twice


async def test_cancelling_mid_reply_closes_the_connection_and_keeps_the_text() -> None:
    # A tenth of a second between chunks: the reply is far from done when the cancellation
    # lands right after the first one, and the next whole reply still takes only a second.
    async with ReferenceServer(delay=0.1) as server, AuraClient(server.base_url) as client:
        with anyio.CancelScope() as scope:
            async with client.stream(HELLO) as chunks:
                async for _ in chunks:
                    scope.cancel()  # after the first text: the next read is cancelled
        assert scope.cancelled_caught
        assert chunks.text  # what arrived before the cancellation is still there
        assert chunks.text != default_reply(server.requests[-1])
        await server.wait_until(lambda: server.aborted == 1)
        # The pool is healthy afterwards: the next request goes through at once.
        with anyio.fail_after(5):
            assert await client.complete(HELLO) == default_reply(server.requests[-1])


async def test_leaving_the_block_early_closes_the_response() -> None:
    async with ReferenceServer(delay=0.05) as server, AuraClient(server.base_url) as client:
        async with client.stream(HELLO) as chunks:
            async for _ in chunks:
                break
        await server.wait_until(lambda: server.aborted == 1)
        await server.wait_until(lambda: server.open_connections == 0)


async def test_many_cancelled_requests_leave_the_pool_healthy() -> None:
    two_chunks = ReferenceServer(delay=5, reply=lambda _: ["one ", "two"])
    async with two_chunks as server, AuraClient(server.base_url) as client:
        scopes: list[anyio.CancelScope] = []

        async def cancelled_request() -> None:
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await client.complete(HELLO)

        async with anyio.create_task_group() as task_group:
            for _ in range(50):
                task_group.start_soon(cancelled_request)
            # Cancel every request mid-reply, once the server is sending all fifty.
            await server.wait_until(lambda: len(server.requests) == 50, timeout=30)
            for scope in scopes:
                scope.cancel()
        await server.wait_until(lambda: server.aborted == 50)
        await server.wait_until(lambda: server.open_connections == 0)
        # The same client, so a leaked pool slot would show: the next request goes through.
        with anyio.fail_after(5):
            async with client.stream(HELLO) as reply:
                assert await reply.__anext__() == "one "


async def test_waiting_for_a_pool_connection_is_bounded() -> None:
    async with (
        ReferenceServer(delay=30) as server,
        AuraClient(
            server.base_url, max_connections=1, timeout=Timeouts(connect=1.0), max_retries=0
        ) as client,
    ):
        async with client.stream(HELLO):  # holds the only connection
            with pytest.raises(APITimeoutError, match="pool timeout: every connection stayed"):
                await client.complete(HELLO)
            assert len(server.requests) == 1  # the second request never left
        await server.wait_until(lambda: server.aborted == 1)
        # The timed-out wait took no slot: the connection serves the next request.
        with anyio.fail_after(5):
            async with client.stream(HELLO) as reply:
                assert await reply.__anext__()


async def test_the_total_clock_starts_when_the_stream_is_entered() -> None:
    async with (
        ReferenceServer() as server,
        AuraClient(server.base_url, timeout=Timeouts(total=1)) as client,
    ):
        reply = client.stream(HELLO)
        await anyio.sleep(1.2)
        async with reply:
            await drain(reply)
        assert reply.text == default_reply(server.requests[-1])


async def test_read_timeout_mid_reply_is_an_incomplete_stream() -> None:
    async with (
        ReferenceServer(delay=2) as server,
        AuraClient(server.base_url, timeout=Timeouts(read=0.1)) as client,
        client.stream(HELLO) as chunks,
    ):
        with pytest.raises(IncompleteStreamError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == chunks.text != ""
    assert isinstance(caught.value.__cause__, APITimeoutError)


async def test_total_timeout_stops_a_slow_reply() -> None:
    async with (
        # The first chunk comes at once, the second after 5 s: the total timeout cuts between.
        ReferenceServer(delay=5) as server,
        AuraClient(server.base_url, timeout=Timeouts(total=1.0)) as client,
    ):
        with pytest.raises(IncompleteStreamError, match="total timeout"):
            await client.complete(HELLO)
        await server.wait_until(lambda: server.aborted >= 1)


async def test_connection_refused_is_an_api_connection_error() -> None:
    async with ReferenceServer() as server:
        base_url = server.base_url
    async with AuraClient(base_url, max_retries=0) as client:
        with pytest.raises(APIConnectionError, match="could not connect") as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIConnectionError


async def test_proxy_credentials_stay_out_of_errors_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with ReferenceServer() as server:
        closed_port = server.port
    proxy = f"http://user:p-secret@127.0.0.1:{closed_port}"
    async with AuraClient(proxy=proxy, max_retries=FAST_RETRIES) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.complete(HELLO)
        assert "p-secret" not in repr(client)
    assert "retrying POST" in caplog.text
    for text in (str(caught.value), repr(caught.value), caplog.text):
        assert "p-secret" not in text

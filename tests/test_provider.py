"""Aura, the gpt4free-compatible provider, against the reference server on every backend."""

from __future__ import annotations

import inspect
import json
import typing
from contextlib import aclosing

import anyio
import pytest

from aura_anyio import Aura, AuraClient, InvalidRequestError, Timeouts
from aura_anyio.testing import ReferenceServer, ToolCalls, default_reply

if typing.TYPE_CHECKING:
    from aura_anyio.testing import ReceivedRequest

HELLO = [{"role": "user", "content": "hi provider"}]


def sent(request: ReceivedRequest) -> dict[str, typing.Any]:
    """The request's JSON body."""
    return typing.cast("dict[str, typing.Any]", request.json)


class FakeDriver:
    """Duck-typed like a Selenium WebDriver."""

    def get_cookies(self) -> list[dict[str, object]]:
        return [{"name": "cf_clearance", "value": "c-secret", "path": "/"}, {"junk": 1}]

    def execute_script(self, script: str, /) -> object:
        assert script == "return navigator.userAgent"
        return "FakeBrowser/1.0"


def test_provider_attributes() -> None:
    assert Aura.url == "https://openchat.team"
    assert Aura.working
    assert Aura.supports_stream
    assert Aura.supports_system_message
    assert Aura.supports_message_history
    assert Aura.default_model == "openchat_3.6"
    assert "openchat_3.6" in Aura.models


@pytest.mark.network
async def test_streams_and_honours_the_model() -> None:
    async with ReferenceServer() as server:
        pieces = [
            text
            async for text in Aura.create_async_generator(
                "openchat_v3.2_mistral", HELLO, base_url=server.base_url, stream=True
            )
        ]
        assert "".join(pieces) == default_reply(server.requests[-1])
        assert len(pieces) > 1
        assert server.requests[-1].model_id == "openchat_v3.2_mistral"
        async with aclosing(Aura.create_async_generator("", HELLO, base_url=server.base_url)) as g:
            assert [text async for text in g]
        assert server.requests[-1].model_id == "openchat_3.6"


@pytest.mark.network
async def test_base_url_may_list_several_servers() -> None:
    async with ReferenceServer() as down:
        dead = down.base_url
    async with ReferenceServer() as server:
        for _ in range(2):  # whichever the first attempt goes to, the reply comes
            generator = Aura.create_async_generator("", HELLO, base_url=[dead, server.base_url])
            async with aclosing(generator) as pieces:
                assert "".join([text async for text in pieces]) == default_reply(
                    server.requests[-1]
                )
        assert len(server.requests) == 2


@pytest.mark.debug
@pytest.mark.network
async def test_aclosing_and_an_early_break_close_the_response() -> None:
    async with ReferenceServer(delay=0.05) as server:
        generator = Aura.create_async_generator(
            "", HELLO, base_url=server.base_url, timeout=Timeouts(read=5)
        )
        async with aclosing(generator) as pieces:
            async for _ in pieces:
                break
        await server.wait_until(lambda: server.aborted == 1)
        await server.wait_until(lambda: server.open_connections == 0)


@pytest.mark.network
async def test_api_key_is_an_alias_of_key() -> None:
    async with ReferenceServer() as server:
        generator = Aura.create_async_generator(
            "", HELLO, base_url=server.base_url, api_key="k-secret"
        )
        async with aclosing(generator) as pieces:
            assert [t async for t in pieces]
    assert server.requests[-1].json["key"] == "k-secret"  # type: ignore[index]


@pytest.mark.network
async def test_a_reused_client_is_not_closed() -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url) as client:
        async with aclosing(Aura.create_async_generator("", HELLO, client=client)) as pieces:
            assert "".join([t async for t in pieces])
        assert await client.complete(HELLO)


@pytest.mark.network
async def test_webdriver_cookies_and_user_agent_are_sent() -> None:
    async with ReferenceServer() as server:
        generator = Aura.create_async_generator(
            "", HELLO, webdriver=FakeDriver(), base_url=server.base_url, timeout=30
        )
        async with aclosing(generator) as pieces:
            assert [t async for t in pieces]
    headers = server.requests[-1].headers
    assert headers["cookie"] == "cf_clearance=c-secret"
    assert headers["user-agent"] == "FakeBrowser/1.0"


@pytest.mark.network
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"messages": "hi"}, "messages must be a sequence"),
        ({"model": "gpt-5"}, "model must be a known model id"),
        ({"temperature": 9}, "temperature"),
        ({"max_tokens": 10}, "max_tokens"),
        ({"no_such_option": 1}, "unexpected keyword arguments: no_such_option"),
        ({"timeout": "soon"}, "timeout"),
        ({"client": object()}, "client must be an AuraClient"),
    ],
)
async def test_invalid_input_raises_before_any_request(
    kwargs: dict[str, object], needle: str
) -> None:
    async with ReferenceServer() as server:
        arguments: dict[str, object] = {"model": "", "messages": HELLO}
        arguments.update(kwargs)
        arguments.setdefault("base_url", server.base_url)
        generator = Aura.create_async_generator(**arguments)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match=needle):
            await generator.__anext__()
    assert server.requests == []


@pytest.mark.network
async def test_a_webdriver_user_agent_that_cannot_be_sent_is_rejected() -> None:
    class OddDriver(FakeDriver):
        def execute_script(self, script: str, /) -> object:
            return "Browser\r\nInjected: 1"

    async with ReferenceServer() as server:
        generator = Aura.create_async_generator(
            "", HELLO, webdriver=OddDriver(), base_url=server.base_url
        )
        with pytest.raises(InvalidRequestError, match="user-agent"):
            await generator.__anext__()
    assert server.requests == []


async def test_client_and_client_settings_conflict() -> None:
    async with AuraClient() as client:
        generator = Aura.create_async_generator("", HELLO, client=client, key="k")
        with pytest.raises(InvalidRequestError, match="do not also pass key"):
            await generator.__anext__()


@pytest.mark.debug
@pytest.mark.network
async def test_no_cancel_scope_is_held_across_a_yield() -> None:
    # Resuming the generator from another task would corrupt (and on Trio, fail) a cancel
    # scope left open across a yield; with every deadline enabled it must just work.
    timeouts = Timeouts(connect=5, read=5, first_chunk=5, total=30)
    async with ReferenceServer(delay=0.01) as server:
        generator = Aura.create_async_generator(
            "", HELLO, base_url=server.base_url, timeout=timeouts
        )
        async with aclosing(generator) as pieces:
            first = await pieces.__anext__()
            rest: list[str] = []

            async def finish() -> None:
                rest.extend([text async for text in pieces])

            async with anyio.create_task_group() as task_group:
                task_group.start_soon(finish)
        assert first + "".join(rest) == default_reply(server.requests[-1])


@pytest.mark.network
async def test_max_tokens_defaults_to_the_servers_token_limit() -> None:
    assert inspect.signature(Aura.create_async_generator).parameters["max_tokens"].default is None
    async with ReferenceServer() as server:
        generator = Aura.create_async_generator("", HELLO, base_url=server.base_url)
        async with aclosing(generator) as pieces:
            assert [text async for text in pieces]
        generator = Aura.create_async_generator("", HELLO, base_url=server.base_url, max_tokens=800)
        async with aclosing(generator) as pieces:
            assert [text async for text in pieces]
    default, given = server.requests
    assert sent(default)["model"]["tokenLimit"] == default.token_limit == 8192
    assert given.token_limit == 800


TOOL_CONVERSATION: list[dict[str, object]] = [
    {"role": "developer", "content": "Use the tools."},
    {"role": "user", "name": "ada", "content": [{"type": "text", "text": "Weather?"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
]


@pytest.mark.network
async def test_an_openai_wire_client_passes_a_tool_conversation_through() -> None:
    original = json.loads(json.dumps(TOOL_CONVERSATION))
    tools = ReferenceServer(reply=lambda _: ToolCalls([("w", "{}")], text="It is sunny."))
    async with tools as server, AuraClient(server.base_url, wire="openai") as client:
        generator = Aura.create_async_generator("", TOOL_CONVERSATION, client=client)
        async with aclosing(generator) as pieces:
            assert "".join([text async for text in pieces]) == "It is sunny."
        generator = Aura.create_async_generator("", HELLO, client=client, max_tokens=2)
        async with aclosing(generator) as pieces:
            assert "".join([text async for text in pieces]) == "It is "
    whole, capped = server.requests
    assert list(whole.messages) == original
    assert sent(whole)["messages"] == original
    assert "max_tokens" not in sent(whole)
    assert sent(whole)["model"] == Aura.default_model
    assert capped.token_limit == 2


@pytest.mark.network
@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ([{"role": "robot", "content": "hi"}], r"messages\[0\]\.role must be one of"),
        ([{"role": "user", "content": 3}], r"messages\[0\]\.content must be"),
        ([{"role": "developer", "content": "only instructions"}], "at least one message"),
    ],
)
async def test_an_openai_wire_client_refuses_a_bad_conversation_before_any_request(
    messages: list[dict[str, object]], needle: str
) -> None:
    async with ReferenceServer() as server, AuraClient(server.base_url, wire="openai") as client:
        generator = Aura.create_async_generator("", messages, client=client)
        with pytest.raises(InvalidRequestError, match=needle):
            await generator.__anext__()
    assert server.requests == []


@pytest.mark.network
async def test_without_a_client_the_aura_wire_rules_apply() -> None:
    async with ReferenceServer() as server:
        generator = Aura.create_async_generator("", TOOL_CONVERSATION, base_url=server.base_url)
        with pytest.raises(InvalidRequestError, match=r"messages\[0\]"):
            await generator.__anext__()
    assert server.requests == []

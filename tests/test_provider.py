"""Aura, the gpt4free-compatible provider, against the reference server on every backend."""

from __future__ import annotations

import inspect
import json
import signal
import time
import typing
from contextlib import aclosing

import anyio
import anyio.to_thread
import pytest

from aura_anyio import Aura, AuraClient, InvalidRequestError, Timeouts
from aura_anyio.testing import ReferenceServer, ToolCalls, default_reply

from .helpers import reply_to, served_in_thread

if typing.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

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


# gpt4free's provider contract beyond create_async_generator: create_completion, create_async,
# stream, stop, get_dict and params.


@pytest.fixture
def server_in_thread() -> Iterator[ReferenceServer]:
    """A reference server on a loop of its own, for create_completion's loop of its own."""
    with served_in_thread(ReferenceServer()) as running:
        yield running


@pytest.fixture
def paced_server() -> Iterator[ReferenceServer]:
    """A reference server on a thread's loop whose chunks come 20 ms apart, not coalesced."""
    with served_in_thread(ReferenceServer(delay=0.02)) as running:
        yield running


@pytest.fixture
def slow_server() -> Iterator[ReferenceServer]:
    """A reference server on a thread's loop that sends a chunk every 0.3 s."""
    with served_in_thread(ReferenceServer(delay=0.3)) as running:
        yield running


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for state that another thread changes (a server's records)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_create_completion_is_a_sync_generator(
    paced_server: ReferenceServer, *, stream: bool
) -> None:
    pieces = Aura.create_completion("", HELLO, stream, base_url=paced_server.base_url)
    is_a_generator = inspect.isgenerator(pieces)  # (asserted apart: no narrowing to Any)
    assert is_a_generator
    assert paced_server.requests == []  # nothing happens until the first next()
    texts = list(pieces)
    assert "".join(texts) == reply_to("hi provider")
    assert (len(texts) > 1) is stream
    assert paced_server.requests[-1].model_id == Aura.default_model


def test_create_completion_defaults_to_the_whole_reply(server_in_thread: ReferenceServer) -> None:
    assert list(Aura.create_completion("", HELLO, base_url=server_in_thread.base_url)) == [
        reply_to("hi provider")
    ]


@pytest.mark.network
async def test_create_completion_from_a_thread_while_a_loop_runs() -> None:
    async with ReferenceServer() as server:  # served by the test's own loop meanwhile

        def read() -> str:
            pieces = Aura.create_completion("", HELLO, stream=True, base_url=server.base_url)
            return "".join(pieces)

        assert await anyio.to_thread.run_sync(read) == reply_to("hi provider")


@pytest.mark.network
async def test_create_completion_in_a_running_loops_own_thread(
    server_in_thread: ReferenceServer,
) -> None:
    # As gpt4free's AsyncClient (0.3.3.3) calls it: blocking, but on a loop of its own, so it works.
    text = "".join(Aura.create_completion("", HELLO, True, base_url=server_in_thread.base_url))
    assert text == reply_to("hi provider")


@pytest.mark.parametrize("how", ["close", "drop"])
def test_create_completion_abandoned_half_way_closes_the_response(
    slow_server: ReferenceServer, how: str
) -> None:
    pieces = Aura.create_completion("", HELLO, stream=True, base_url=slow_server.base_url)
    assert next(pieces)
    if how == "close":
        pieces.close()
    else:
        del pieces  # the generator is closed when the last reference goes
    eventually(lambda: slow_server.aborted == 1 and slow_server.open_connections == 0)


class Interrupted(Exception):
    """What a signal handler raises, as Ctrl-C raises KeyboardInterrupt."""


def test_create_completion_interrupted_while_waiting_closes_the_response(
    slow_server: ReferenceServer,
) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    pieces = Aura.create_completion("", HELLO, stream=True, base_url=slow_server.base_url)
    assert next(pieces)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)  # while waiting for the next chunk (0.3 s)
        with pytest.raises(Interrupted):
            next(pieces)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    eventually(lambda: slow_server.aborted == 1 and slow_server.open_connections == 0)
    assert list(pieces) == []  # a generator that raised is finished


def test_create_completion_raises_bad_input_at_the_first_next(
    server_in_thread: ReferenceServer,
) -> None:
    pieces = Aura.create_completion("", HELLO, base_url=server_in_thread.base_url, temperature=9)
    with pytest.raises(InvalidRequestError, match="temperature"):
        next(pieces)
    assert server_in_thread.requests == []


async def test_create_completion_refuses_a_client_of_another_loop() -> None:
    async with AuraClient() as client:
        with pytest.raises(InvalidRequestError, match="an AuraClient serves the loop it runs on"):
            Aura.create_completion("", HELLO, client=client)


@pytest.mark.network
async def test_create_async_returns_the_whole_reply() -> None:
    async with ReferenceServer() as server:
        text = await Aura.create_async("", HELLO, base_url=server.base_url, stream=True)
        assert text == reply_to("hi provider")


@pytest.mark.network
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_stop_cuts_the_reply_where_it_first_appears(*, stream: bool) -> None:
    whole = reply_to("hi provider")
    cases = [
        (["server", "nothing"], "Hello from the reference "),
        ("Hello", ""),
        ("absent", whole),
        ("👋 and more", whole),  # its beginning ends the reply: held back, then passed on
    ]
    async with ReferenceServer() as server:
        for stop, expected in cases:
            generator = Aura.create_async_generator(
                "", HELLO, base_url=server.base_url, stream=stream, stop=stop
            )
            async with aclosing(generator) as pieces:
                texts = [text async for text in pieces]
            assert "".join(texts) == expected
            assert "" not in texts


@pytest.mark.debug
@pytest.mark.network
async def test_a_stop_closes_the_response_at_once() -> None:
    async with ReferenceServer(delay=0.05) as server:
        generator = Aura.create_async_generator(
            "", HELLO, base_url=server.base_url, stop="from", timeout=Timeouts(read=5)
        )
        async with aclosing(generator) as pieces:
            assert [text async for text in pieces] == ["Hello "]
        await server.wait_until(lambda: server.aborted == 1 and server.open_connections == 0)


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"stream": "yes"}, "stream must be True or False, got 'yes'"),
        ({"stop": 5}, "stop must be a string or a list of strings, got int"),
        ({"stop": ["ok", ""]}, r"stop\[1\] must be a non-empty string"),
    ],
)
async def test_bad_stream_or_stop_is_refused_before_any_request(
    arguments: dict[str, object], needle: str
) -> None:
    generator = Aura.create_async_generator("", HELLO, **arguments)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match=needle):
        await generator.__anext__()


def test_get_dict_and_params_describe_the_provider() -> None:
    assert Aura.get_dict() == {"name": "Aura", "url": "https://openchat.team"}
    assert not Aura.needs_auth
    assert Aura.params.startswith("g4f.Provider.Aura supports: (\n    model: str,\n")
    assert "    stream: bool = True,\n" in Aura.params
    assert "    stop: str | Sequence[str] | None = None,\n" in Aura.params
    assert "kwargs" not in Aura.params
    assert Aura.params.endswith("\n)")


async def test_gpt4free_keywords_are_accepted_and_unknown_ones_refused() -> None:
    generator = Aura.create_async_generator("", HELLO, colour="blue", provider=Aura)
    with pytest.raises(InvalidRequestError, match=r"unexpected keyword arguments: colour$"):
        await generator.__anext__()

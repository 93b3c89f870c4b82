"""``aura_anyio.testing.MockTransport``: the transport tests and users plug in.

First MockTransport itself (handlers, bodies, timeouts, failures, ``open_responses``), then
the same scenarios through an :class:`AuraClient` over MockTransport and over the reference
server on the default transport, which must behave alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing

import anyio
import anyio.lowlevel
import pytest

from aura_anyio import (
    APIConnectionError,
    APITimeoutError,
    AuraClient,
    EmptyReplyError,
    IncompleteStreamError,
    InvalidRequestError,
    ServerError,
    Timeouts,
)
from aura_anyio._transports.base import (
    ConnectError,
    NetworkError,
    ReadTimeout,
    Request,
    TransportClosed,
)
from aura_anyio.testing import Fault, MockResponse, MockTransport, ReferenceServer

from .helpers import BASE_URL, FAST_RETRIES, URL, Pause, Script, make_client, reply

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from aura_anyio.testing._mock import Chunks, Handler

HELLO = [{"role": "user", "content": "hi"}]


def request(
    *, read_timeout: float | None = 5.0, content: bytes = b'{"a": [1, "\xc3\xa9"]}'
) -> Request:
    return Request(
        "POST",
        URL,
        {"content-type": "application/json", "x-key": "v"},
        content,
        connect_timeout=5.0,
        read_timeout=read_timeout,
    )


async def read_all(response: typing.AsyncIterable[bytes]) -> list[bytes]:
    return [chunk async for chunk in response]


class Never:
    """An async iterable whose first item never comes; records whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> Never:
        return self

    async def __anext__(self) -> bytes:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self.closed = True


# --- MockTransport itself --------------------------------------------------------------------


async def test_a_sync_handler_gets_the_request_and_answers() -> None:
    seen: list[Request] = []

    def handler(req: Request) -> MockResponse:
        seen.append(req)
        return MockResponse(201, chunks=b"hi", headers={"X-Served-By": "mock"})

    transport = MockTransport(handler)
    sent = request()
    response = await transport.send(sent)
    assert seen == [sent]
    assert (seen[0].method, seen[0].url, seen[0].headers["x-key"]) == ("POST", URL, "v")
    assert seen[0].json() == {"a": [1, "é"]}
    assert (response.status_code, response.reason) == (201, "Created")
    assert response.headers == {"x-served-by": "mock"}
    assert transport.open_responses == 1
    assert await read_all(response) == [b"hi"]
    assert transport.open_responses == 0  # read to its end


async def test_an_async_handler_is_awaited() -> None:
    async def handler(req: Request) -> MockResponse:
        await anyio.lowlevel.checkpoint()
        return MockResponse(chunks=[req.content, b"!"])

    transport = MockTransport(handler)
    assert await read_all(await transport.send(request(content=b"echo"))) == [b"echo", b"!"]


async def test_an_async_handler_without_a_read_timeout_has_no_deadline() -> None:
    async def handler(req: Request) -> MockResponse:
        await anyio.sleep(0.01)
        return MockResponse(chunks="late but fine")

    response = await MockTransport(handler).send(request(read_timeout=None))
    assert await read_all(response) == [b"late but fine"]


async def _agen() -> AsyncIterator[bytes | str]:
    yield b"a"
    yield "é"


def _gen() -> Iterator[bytes | str]:
    yield "x"
    yield b"y"


@pytest.mark.parametrize(
    ("make_chunks", "expected"),
    [
        (lambda: b"one", [b"one"]),
        (lambda: "caf\u00e9", [b"caf\xc3\xa9"]),  # str is UTF-8 encoded
        (lambda: [b"a", "b", b""], [b"a", b"b", b""]),
        (lambda: (b"t", "u"), [b"t", b"u"]),
        (lambda: [bytearray(b"ba"), memoryview(b"mv")], [b"ba", b"mv"]),
        (_gen, [b"x", b"y"]),
        (_agen, [b"a", b"\xc3\xa9"]),
        (lambda: (), []),
        (lambda: b"", [b""]),
    ],
    ids=["bytes", "str", "list", "tuple", "buffers", "generator", "async-generator", "none", "b''"],
)
async def test_every_kind_of_chunks(
    make_chunks: Callable[[], Chunks], expected: list[bytes]
) -> None:
    transport = MockTransport(lambda _: MockResponse(chunks=make_chunks()))
    chunks = await read_all(await transport.send(request()))
    assert chunks == expected
    assert all(type(chunk) is bytes for chunk in chunks)
    assert transport.open_responses == 0


@pytest.mark.debug
async def test_an_async_generator_is_closed_when_the_reader_stops_early() -> None:
    finished = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal finished
        try:
            yield b"first"
            yield b"second"
        finally:
            finished = True

    transport = MockTransport(lambda _: MockResponse(chunks=body()))
    response = await transport.send(request())
    assert await response.__anext__() == b"first"
    assert transport.open_responses == 1
    await response.aclose()
    assert finished
    assert transport.open_responses == 0
    await response.aclose()  # twice is harmless
    with pytest.raises(StopAsyncIteration):  # a closed response gives nothing more
        await response.__anext__()


async def test_headers_are_lower_cased() -> None:
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-RateLimit-Remaining": "3"}
    response = await MockTransport(lambda _: MockResponse(headers=headers)).send(request())
    assert response.headers == {
        "content-type": "text/plain; charset=utf-8",
        "x-ratelimit-remaining": "3",
    }


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (200, None, "OK"),
        (404, None, "Not Found"),
        (503, None, "Service Unavailable"),
        (599, None, ""),  # no standard phrase
        (500, "Rate limit reached for openchat", "Rate limit reached for openchat"),
        (200, "", ""),
    ],
)
async def test_the_reason_phrase(status: int, reason: str | None, expected: str) -> None:
    response = await MockTransport(lambda _: MockResponse(status, reason=reason)).send(request())
    assert (response.status_code, response.reason) == (status, expected)


async def test_an_async_handler_slower_than_the_read_timeout_is_a_read_timeout() -> None:
    async def handler(req: Request) -> MockResponse:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(10), pytest.raises(ReadTimeout, match=r"no response within 0\.05 s"):
        await MockTransport(handler).send(request(read_timeout=0.05))


async def test_an_async_body_slower_than_the_read_timeout_is_a_read_timeout() -> None:
    never = Never()
    transport = MockTransport(lambda _: MockResponse(chunks=never))
    response = await transport.send(request(read_timeout=0.05))
    with anyio.fail_after(10), pytest.raises(ReadTimeout, match=r"no chunk within 0\.05 s"):
        await response.__anext__()
    assert never.closed
    assert transport.open_responses == 0


async def test_an_os_error_from_the_handler_is_a_connect_error() -> None:
    refused = ConnectionRefusedError("nobody listens")

    def handler(req: Request) -> MockResponse:
        raise refused

    with pytest.raises(ConnectError, match=r"^nobody listens$") as caught:
        await MockTransport(handler).send(request())
    assert caught.value.__cause__ is refused


async def test_an_os_error_from_an_async_handler_without_text_is_named_by_its_class() -> None:
    async def handler(req: Request) -> MockResponse:
        await anyio.lowlevel.checkpoint()
        raise ConnectionRefusedError

    with pytest.raises(ConnectError, match=r"^ConnectionRefusedError$"):
        await MockTransport(handler).send(request())


@pytest.mark.parametrize("message", ["reset by peer", ""])
async def test_an_os_error_from_the_body_is_a_network_error(message: str) -> None:
    def body() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError(message)

    transport = MockTransport(lambda _: MockResponse(chunks=body()))
    response = await transport.send(request())
    assert await response.__anext__() == b"partial"
    with pytest.raises(NetworkError, match=f"^{message or 'ConnectionResetError'}$") as caught:
        await response.__anext__()
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert transport.open_responses == 0


async def test_an_os_error_from_an_async_body_is_a_network_error() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"partial"
        raise BrokenPipeError("broken")

    response = await MockTransport(lambda _: MockResponse(chunks=body())).send(request())
    with pytest.raises(NetworkError, match=r"^broken$"):
        await read_all(response)


async def test_other_errors_from_the_handler_or_body_are_not_translated() -> None:
    def handler(req: Request) -> MockResponse:
        raise KeyError("a bug in the test")

    with pytest.raises(KeyError):
        await MockTransport(handler).send(request())

    def body() -> Iterator[bytes]:
        yield from ()
        raise ValueError("a bug in the body")

    response = await MockTransport(lambda _: MockResponse(chunks=body())).send(request())
    with pytest.raises(ValueError, match="a bug in the body"):
        await read_all(response)


async def test_a_handler_returning_something_else_is_a_type_error() -> None:
    def handler(req: Request) -> MockResponse:
        return {"status": 200}  # type: ignore[return-value]

    with pytest.raises(TypeError, match="must return a MockResponse, got dict"):
        await MockTransport(handler).send(request())

    async def async_handler(req: Request) -> MockResponse:
        return "ok"  # type: ignore[return-value]

    with pytest.raises(TypeError, match="got str"):
        await MockTransport(async_handler).send(request())


async def test_a_closed_transport_refuses_requests() -> None:
    script = Script()
    transport = MockTransport(script)
    await transport.aclose()
    await transport.aclose()  # twice is harmless
    with pytest.raises(TransportClosed, match="the transport is closed"):
        await transport.send(request())
    assert not script.called


async def test_open_responses_counts_what_is_neither_finished_nor_closed() -> None:
    transport = MockTransport(lambda _: MockResponse(chunks=[b"a", b"b"]))
    assert transport.open_responses == 0
    first = await transport.send(request())
    second = await transport.send(request())
    third = await transport.send(request())
    assert transport.open_responses == 3
    assert await first.__anext__() == b"a"  # started, not finished
    assert transport.open_responses == 3
    assert await read_all(first) == [b"b"]
    assert transport.open_responses == 2
    await second.aclose()
    assert transport.open_responses == 1
    fourth = await transport.send(request())  # done responses are forgotten, not counted
    assert transport.open_responses == 2
    await third.aclose()
    await fourth.aclose()
    assert transport.open_responses == 0


def test_request_json_and_repr_hide_the_body_and_headers() -> None:
    sent = request(content=b'{"key": "sk-secret"}')
    assert sent.json() == {"key": "sk-secret"}
    assert "sk-secret" not in repr(sent)
    assert "x-key" not in repr(sent)
    assert URL in repr(sent)


# --- through an AuraClient ---------------------------------------------------------------------


async def test_a_client_over_mock_transport_sends_the_request_as_the_wire_says() -> None:
    script = Script(reply("Hello", " there"))
    async with make_client(script, key="sk-secret") as client:
        assert await client.complete(HELLO, model="openchat_3.6", temperature=0.25) == (
            "Hello there"
        )
    (sent,) = script.calls
    assert (sent.method, sent.url) == ("POST", URL)
    assert sent.headers["accept-encoding"] == "identity"
    assert all(name == name.lower() for name in sent.headers)
    body = sent.json()
    assert isinstance(body, dict)
    assert body["messages"] == HELLO
    assert body["key"] == "sk-secret"
    assert body["temperature"] == 0.25
    assert sent.read_timeout == client.timeouts.read
    assert sent.connect_timeout == client.timeouts.connect


@pytest.mark.debug
async def test_a_client_leaves_no_response_open_when_it_stops_early() -> None:
    finished = anyio.Event()

    async def body() -> AsyncIterator[str]:
        try:
            yield "first "
            yield "second"
        finally:
            finished.set()

    transport = MockTransport(lambda _: MockResponse(chunks=body()))
    async with AuraClient(BASE_URL, transport=transport) as client:
        async with client.stream(HELLO) as chunks:
            async for text in chunks:
                assert text == "first "
                break
        assert transport.open_responses == 0
        assert finished.is_set()


async def test_a_client_does_not_close_the_transport_it_borrows() -> None:
    transport = MockTransport(lambda _: MockResponse(chunks="still open"))
    async with AuraClient(BASE_URL, transport=transport) as client:
        assert await client.complete(HELLO) == "still open"
    assert await read_all(await transport.send(request())) == [b"still open"]


async def test_a_client_on_a_closed_transport_says_so() -> None:
    transport = MockTransport(Script())
    await transport.aclose()
    async with AuraClient(BASE_URL, transport=transport) as client:
        with pytest.raises(RuntimeError, match="the transport is closed"):
            await client.complete(HELLO)


async def test_an_empty_body_is_an_empty_reply_whatever_its_chunks() -> None:
    script = Script(*[reply(), reply(b"", b""), reply()] * 2)  # three attempts each
    async with make_client(script) as client:
        with pytest.raises(EmptyReplyError):
            await client.complete(HELLO)
        stream = client.stream(HELLO)
        with pytest.raises(EmptyReplyError):
            async with stream:
                pass
        assert stream.status_code == 200  # known, though no text came
        assert "attempts=3" in repr(stream)
    assert len(script.calls) == 6


async def test_closing_twice_and_the_client_settings() -> None:
    client = make_client(Script())
    await client.aclose()
    await client.aclose()
    assert client.base_url == "https://chat.test"
    assert client.timeouts.read == 60.0
    assert client.retry_policy.max_retries == 2
    with pytest.raises(RuntimeError, match="closed"):
        await client.complete(HELLO)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"base_url": b"https://x"}, "base_url must be a str"), ({"proxy": 3128}, "proxy must be")],
)
def test_option_types(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        AuraClient(**kwargs)  # type: ignore[arg-type]


# --- the same scenario over MockTransport and over the reference server ---------------------

Where = typing.Literal["mock", "server"]


@pytest.fixture(params=["mock", "server"])
def where(request: pytest.FixtureRequest) -> Where:
    """Whether the client runs over MockTransport or the default transport and a server."""
    return typing.cast("Where", request.param)


@dataclasses.dataclass(frozen=True)
class Over:
    """A client, and what its transport saw: requests sent, responses left open."""

    client: AuraClient
    requests: Callable[[], int]
    # Waits until the server has seen the client's closes (a server learns of them late).
    left_open: Callable[[], Awaitable[int]]


@contextlib.asynccontextmanager
async def client_over(
    where: Where,
    *,
    handler: Handler,
    server: dict[str, typing.Any],
    timeouts: Timeouts = Timeouts(),  # noqa: B008
    max_retries: int = 2,
) -> AsyncIterator[Over]:
    """A client over ``handler`` (MockTransport) or over ``ReferenceServer(**server)``."""
    policy = dataclasses.replace(FAST_RETRIES, max_retries=max_retries)
    if where == "mock":
        calls: list[Request] = []

        def counting(req: Request) -> MockResponse | Awaitable[MockResponse]:
            calls.append(req)
            return handler(req)

        transport = MockTransport(counting)

        async def left_open_mock() -> int:
            return transport.open_responses

        async with AuraClient(
            BASE_URL, transport=transport, timeout=timeouts, max_retries=policy
        ) as client:
            yield Over(client, lambda: len(calls), left_open_mock)
        return
    async with ReferenceServer(**server) as reference:

        async def left_open_server() -> int:
            with contextlib.suppress(TimeoutError):
                await reference.wait_until(lambda: reference.in_flight == 0)
            return reference.in_flight

        async with AuraClient(reference.base_url, timeout=timeouts, max_retries=policy) as client:
            yield Over(client, lambda: len(reference.requests), left_open_server)


@pytest.mark.network
async def test_retries_behave_alike(where: Where) -> None:
    script = Script(
        reply("Error", status=503), reply("Error", status=503), reply("hello ", "world")
    )
    async with client_over(
        where,
        handler=script,
        server={"fault": Fault(status=503, times=2), "reply": lambda _: "hello world"},
    ) as over:
        async with over.client.stream(HELLO) as chunks:
            text = "".join([piece async for piece in chunks])
        assert text == "hello world"
        assert chunks.attempts == 3
        assert chunks.status_code == 200
        assert over.requests() == 3
        assert await over.left_open() == 0


@pytest.mark.network
async def test_giving_up_after_the_retries_behaves_alike(where: Where) -> None:
    script = Script(*(reply("Error", status=503, reason="Busy") for _ in range(3)))
    async with client_over(
        where, handler=script, server={"fault": Fault(status=503, reason="Busy")}
    ) as over:
        with pytest.raises(ServerError, match="HTTP 503 Busy") as caught:
            await over.client.complete(HELLO)
        assert caught.value.body == "Error"
        assert over.requests() == 3
        assert await over.left_open() == 0


@pytest.mark.network
async def test_a_failure_before_any_text_is_retried_alike(where: Where) -> None:
    # The server resets the first connection before any byte of the response.
    script = Script(ConnectionResetError("reset"), reply("hello ", "world"))
    async with client_over(
        where,
        handler=script,
        server={"fault": Fault(reset_after=0, times=1), "reply": lambda _: "hello world"},
    ) as over:
        assert await over.client.complete(HELLO) == "hello world"
        assert over.requests() == 2
        assert await over.left_open() == 0


@pytest.mark.network
async def test_a_first_chunk_timeout_behaves_alike(where: Where) -> None:
    # The head arrives, the body never does: only the first-chunk deadline can end the wait.
    async with client_over(
        where,
        handler=lambda _: MockResponse(chunks=Never()),
        server={"fault": Fault(stall_after=0)},
        timeouts=Timeouts(read=60.0, first_chunk=0.2),
        max_retries=1,
    ) as over:
        stream = over.client.stream(HELLO)
        with anyio.fail_after(30), pytest.raises(APITimeoutError) as caught:
            async with stream:
                pass
        assert str(caught.value) == (
            "first-chunk timeout: no text within 0.2 s (earlier attempts: timeout)"
        )
        assert [type(error) for error in caught.value.previous_errors] == [APITimeoutError]
        assert stream.attempts == 2  # retried once: nothing had reached the caller
        assert over.requests() == 2
        assert await over.left_open() == 0


@pytest.mark.network
async def test_a_multibyte_character_split_across_chunks_behaves_alike(where: Where) -> None:
    pieces = [b"caf\xc3", b"\xa9 \xf0\x9f", b"\x91", b"\x8b!"]
    async with client_over(
        where,
        handler=lambda _: MockResponse(chunks=pieces),
        server={"reply": lambda _: pieces},
    ) as over:
        async with over.client.stream(HELLO) as chunks:
            received = [piece async for piece in chunks]
        assert "".join(received) == "café 👋!"
        assert "\ufffd" not in "".join(received)
        assert "" not in received
        if where == "mock":  # the chunks arrive exactly as given
            assert received == ["caf", "é ", "👋!"]


@pytest.mark.network
async def test_a_body_that_breaks_after_text_behaves_alike(where: Where) -> None:
    async with client_over(
        where,
        handler=lambda _: reply("hello", ConnectionResetError("reset")),
        server={"reply": lambda _: "hello world", "fault": Fault(reset_after=5)},
    ) as over:
        async with over.client.stream(HELLO) as chunks:
            with pytest.raises(IncompleteStreamError) as caught:
                async for _ in chunks:
                    pass
        assert caught.value.partial_text == "hello"
        assert isinstance(caught.value.__cause__, APIConnectionError)
        assert chunks.attempts == 1  # text reached the caller: never retried
        assert over.requests() == 1
        assert await over.left_open() == 0


@pytest.mark.network
async def test_a_read_timeout_after_text_behaves_alike(where: Where) -> None:
    async with client_over(
        where,
        handler=lambda _: reply("hello", Pause(3600)),
        server={"reply": lambda _: "hello world", "fault": Fault(stall_after=5)},
        timeouts=Timeouts(read=0.2),
    ) as over:
        with anyio.fail_after(30):
            async with over.client.stream(HELLO) as chunks:
                with pytest.raises(IncompleteStreamError) as caught:
                    async for _ in chunks:
                        pass
        assert caught.value.partial_text == "hello"
        assert isinstance(caught.value.__cause__, APITimeoutError)
        assert str(caught.value.__cause__).startswith("read timeout")
        assert over.requests() == 1
        assert await over.left_open() == 0

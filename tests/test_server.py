"""The reference server over real loopback sockets, and stream_response, on every backend."""

from __future__ import annotations

import json
import socket
import struct
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import httpx
import pytest
from anyio.abc import SocketAttribute

from aura_anyio import MODELS, build_payload
from aura_anyio.testing import (
    DEFAULT_SYSTEM_PROMPT,
    Outcome,
    ReceivedRequest,
    ReferenceServer,
    approx_tokens,
    default_reply,
    stream_response,
    trim_history,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aura_anyio._messages import Message

HELLO = [{"role": "user", "content": "hi"}]


def body(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = dict(build_payload(HELLO))
    payload.update(changes)
    return payload


async def chat_once(
    content: bytes | dict[str, object], server: ReferenceServer | None = None
) -> tuple[ReferenceServer, httpx.Response, list[bytes]]:
    """Start ``server`` (a default one if not given), POST one body, and read the reply."""
    server = server or ReferenceServer()
    async with server, httpx.AsyncClient(base_url=server.base_url) as client:
        response, chunks = await post_chat(client, content)
    return server, response, chunks


def raw_post(payload: dict[str, object]) -> bytes:
    """The bytes of a ``POST /api/chat`` carrying ``payload``, for a raw socket."""
    data = json.dumps(payload).encode()
    head = f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
    return head.encode() + data


async def read_to_end(stream: anyio.abc.ByteReceiveStream) -> bytes:
    """Read what the server sends until it closes the connection."""
    received = b""
    try:
        while True:
            received += await stream.receive()
    except anyio.EndOfStream:
        return received


async def post_chat(
    client: httpx.AsyncClient, content: bytes | dict[str, object]
) -> tuple[httpx.Response, list[bytes]]:
    """POST to /api/chat and read the body chunk by chunk as the transport delivered it."""
    raw = content if isinstance(content, bytes) else json.dumps(content).encode()
    async with client.stream("POST", "/api/chat", content=raw) as response:
        chunks = [chunk async for chunk in response.aiter_raw()]
    return response, chunks


@pytest.mark.network
async def test_default_reply_streams_in_chunks_without_content_type() -> None:
    server, response, chunks = await chat_once(body())
    assert response.status_code == 200
    assert response.reason_phrase == "OK"
    assert "content-type" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    text = b"".join(chunks).decode("utf-8")
    assert text == default_reply(server.requests[-1])
    assert "«hi»" in text
    assert "✓" in text
    assert len(chunks) == len(text.split())
    assert server.outcomes == [Outcome.COMPLETED]


@pytest.mark.network
async def test_received_request_is_recorded() -> None:
    server, response, _ = await chat_once(body(prompt="Be brief."))
    assert response.status_code == 200
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/api/chat"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert json.loads(request.body) == request.json
    assert request.model_id == "openchat_3.6"
    assert request.token_limit == 8192
    assert request.system_prompt == "Be brief."
    assert request.kept_messages == ({"role": "user", "content": "hi"},)
    assert request.error is None
    # What only the OpenAI-compatible route records stays empty here.
    assert request.wire == "aura"
    assert (request.messages, dict(request.extra_body), request.include_usage) == ((), {}, False)


@pytest.mark.network
async def test_unknown_model_is_500_with_reason() -> None:
    payload = body()
    payload["model"] = {"id": "gpt-9", "name": "x", "maxLength": 1, "tokenLimit": 8192}
    server, response, chunks = await chat_once(payload)
    assert response.status_code == 500
    assert response.reason_phrase == "Unknown model: gpt-9"
    assert b"".join(chunks) == b"Error"
    assert server.requests[-1].error == "Unknown model: gpt-9"
    assert server.requests[-1].model_id == "gpt-9"
    assert server.requests[-1].system_prompt is None


@pytest.mark.network
async def test_configured_models() -> None:
    async with (
        ReferenceServer(models={"tiny"}) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        rejected, _ = await post_chat(client, body())
        payload = body()
        payload["model"] = {"id": "tiny", "name": "Tiny", "maxLength": 10, "tokenLimit": 8192}
        accepted, _ = await post_chat(client, payload)
    assert rejected.status_code == 500
    assert rejected.reason_phrase == "Unknown model: openchat_3.6"
    assert accepted.status_code == 200


@pytest.mark.network
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"{not json", "Invalid JSON body: ", id="bad-json"),
        pytest.param(b"\xff\xfe", "Invalid JSON body: ", id="not-utf8"),
        pytest.param(b'{"x": NaN}', "Invalid JSON body: NaN", id="nan"),
        pytest.param(b"[]", "Invalid field 'body': expected an object, got array", id="array"),
        pytest.param(b"{}", "Missing field 'model'", id="no-model"),
        pytest.param(
            body(model="openchat_3.6"),
            "Invalid field 'model': expected an object, got string",
            id="model-str",
        ),
        pytest.param(
            body(model={"id": 3}),
            "Invalid field 'model.id': expected a string, got number",
            id="model-id-int",
        ),
        pytest.param(body(model={"id": "openchat_3.6"}), "Missing field 'model.tokenLimit'"),
        pytest.param(
            body(model={"id": "openchat_3.6", "tokenLimit": True}),
            "Invalid field 'model.tokenLimit': expected a number, got boolean",
            id="token-limit-bool",
        ),
        pytest.param(
            body(messages="hi"),
            "Invalid field 'messages': expected an array, got string",
            id="messages-str",
        ),
        pytest.param(
            body(messages={}),
            "Invalid field 'messages': expected an array, got object",
            id="messages-object",
        ),
        pytest.param(
            body(messages=[None]),
            "Invalid field 'messages[0]': expected an object, got null",
            id="message-null",
        ),
        pytest.param(body(messages=[{"role": "user"}]), "Missing field 'messages[0].content'"),
        pytest.param(
            body(messages=[{"role": "bot", "content": "x"}]),
            "Invalid field 'messages[0].role': 'bot' is not a known role",
            id="bad-role",
        ),
        pytest.param(
            body(messages=[{"role": "user", "content": ["x"]}]),
            "Invalid field 'messages[0].content': expected a string, got array",
            id="content-list",
        ),
        pytest.param(body(key=3), "Invalid field 'key': expected a string, got number", id="key"),
        pytest.param(b"[" * 100_000, "Invalid JSON body: nested too deeply", id="deep-nesting"),
        pytest.param(
            body(prompt=1.5), "Invalid field 'prompt': expected a string, got number", id="prompt"
        ),
        pytest.param(
            body(temperature="hot"),
            "Invalid field 'temperature': expected a number, got string",
            id="temperature",
        ),
    ],
)
async def test_bad_bodies_are_500_with_reason(
    content: bytes | dict[str, object], reason: str
) -> None:
    server, response, chunks = await chat_once(content)
    assert response.status_code == 500
    assert response.reason_phrase.startswith(reason)
    assert b"".join(chunks) == b"Error"
    assert server.outcomes == [Outcome.COMPLETED]


@pytest.mark.network
async def test_reason_phrase_is_sanitized() -> None:
    payload = body()
    payload["model"] = {"id": "bad\r\nmodel é✓" + "x" * 2000, "tokenLimit": 8192}
    _server, response, _ = await chat_once(payload)
    assert response.status_code == 500
    reason = response.extensions["reason_phrase"].decode("latin-1")
    assert reason.startswith("Unknown model: bad model é\\u2713xxx")
    assert reason.endswith("...")
    assert len(reason) == 1000


@pytest.mark.network
async def test_optional_fields_fall_back_like_chat_ts() -> None:
    payload = body(model={"id": "openchat_3.6", "tokenLimit": 8192.0})
    for field in ("key", "prompt", "temperature"):
        del payload[field]
    server, response, _ = await chat_once(payload)
    assert response.status_code == 200
    assert server.requests[-1].system_prompt == DEFAULT_SYSTEM_PROMPT
    assert server.requests[-1].token_limit == 8192.0


@pytest.mark.network
async def test_not_found_and_method_not_allowed() -> None:
    async with (
        ReferenceServer() as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        missing = await client.post("/api/other", json=body())
        wrong = await client.get("/api/chat")
        head = await client.head("/api/chat")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert (head.status_code, head.content) == (405, b"")
    assert [r.path for r in server.requests] == ["/api/other", "/api/chat", "/api/chat"]
    assert server.completed == 3
    assert server.accepted_connections == 1


def long_history(count: int) -> list[dict[str, str]]:
    # Each content is exactly 10 approximate tokens.
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i} " + "w " * 9}
        for i in range(count)
    ]


@pytest.mark.network
async def test_history_is_trimmed_like_openchat_ui() -> None:
    history = long_history(20)
    prompt = "Be brief."  # 3 tokens: "Be", "brief", "."
    # 3 + 4 * 10 + 768 = 811 fits; a fifth message would need 821.
    payload = body(prompt=prompt)
    payload["model"] = {"id": "openchat_3.6", "tokenLimit": 820}
    payload["messages"] = history
    server, response, chunks = await chat_once(payload)
    assert response.status_code == 200
    kept = server.requests[-1].kept_messages
    assert list(kept) == history[-4:]
    text = b"".join(chunks).decode()
    assert "«m18 w w w w w w w w w »" in text
    assert "(4 messages kept)" in text


async def test_trimming_stops_at_first_message_that_does_not_fit() -> None:
    history: list[Message] = [
        {"role": "user", "content": "short"},
        {"role": "assistant", "content": "long " * 50},
        {"role": "user", "content": "newest"},
    ]
    kept = trim_history("", history, token_limit=768 + 10)
    assert kept == [{"role": "user", "content": "newest"}]
    assert trim_history("", history, token_limit=768) == []
    assert trim_history("", history, token_limit=10_000) == history


def test_approx_tokens() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("Hello, world!") == 4
    assert approx_tokens("naïve café ✓") == 3


@pytest.mark.network
async def test_default_system_prompt_when_prompt_empty() -> None:
    server, response, _ = await chat_once(body(prompt=""))
    assert response.status_code == 200
    assert server.requests[-1].system_prompt == DEFAULT_SYSTEM_PROMPT


@pytest.mark.network
async def test_default_system_prompt_counts_against_token_limit() -> None:
    limit = 768 + approx_tokens(DEFAULT_SYSTEM_PROMPT) + 1
    payload = body(prompt="")
    payload["model"] = {"id": "openchat_3.6", "tokenLimit": limit}
    async with (
        ReferenceServer() as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        await post_chat(client, payload)
    assert server.requests[-1].kept_messages == ({"role": "user", "content": "hi"},)


@pytest.mark.network
async def test_custom_reply_chunks_arrive_exactly() -> None:
    check = "✓".encode()
    pieces: Sequence[str | bytes] = ["Hé", check[:1], check[1:], "", " end"]
    seen: list[ReceivedRequest] = []

    def reply(request: ReceivedRequest) -> Sequence[str | bytes]:
        seen.append(request)
        return pieces

    server, response, chunks = await chat_once(body(), ReferenceServer(reply=reply))
    assert response.status_code == 200
    # The empty piece is not sent: an empty chunk would end the body.
    assert chunks == ["Hé".encode(), check[:1], check[1:], b" end"]
    assert b"".join(chunks).decode() == "Hé✓ end"
    assert seen == server.requests


@pytest.mark.network
async def test_custom_reply_str_is_split_into_words() -> None:
    _server, _, chunks = await chat_once(
        body(), ReferenceServer(reply=lambda _: "  one two  three ")
    )
    assert chunks == [b"  ", b"one ", b"two  ", b"three "]


@pytest.mark.network
async def test_reply_that_raises_is_500_with_its_message() -> None:
    def reply(request: ReceivedRequest) -> str:
        raise RuntimeError("Rate limit reached for requests")

    _server, response, chunks = await chat_once(body(), ReferenceServer(reply=reply))
    assert (response.status_code, response.reason_phrase) == (
        500,
        "Rate limit reached for requests",
    )
    assert b"".join(chunks) == b"Error"


@pytest.mark.network
async def test_reply_with_bad_chunk_type_is_500() -> None:
    async with (
        ReferenceServer(reply=lambda _: [b"ok", 3]) as server,  # type: ignore[list-item]
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        response, _ = await post_chat(client, body())
    assert response.status_code == 500
    assert response.reason_phrase == "a reply chunk must be str or bytes, got int"


@pytest.mark.network
async def test_keep_alive_reuses_one_connection() -> None:
    async with (
        ReferenceServer() as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        first, _ = await post_chat(client, body())
        second, _ = await post_chat(client, body(messages=[{"role": "user", "content": "again"}]))
        assert server.open_connections == 1
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.accepted_connections == 1
    assert server.completed == 2
    await server.wait_until(lambda: server.open_connections == 0)


@pytest.mark.network
async def test_client_disconnect_mid_reply_is_observed() -> None:
    # A raw socket, closed at once: an httpx response closed half-way would leave httpx's
    # body generators unfinished, which Trio reports (encode/httpx#3686).
    async with (
        ReferenceServer(delay=30) as server,  # the reply takes minutes: always mid-reply
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(raw_post(body()))
        started = await stream.receive()  # the head, perhaps the first chunk
        await stream.aclose()
        # Two waiters at once share the server's change notifications.
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(server.wait_until, lambda: server.aborted >= 1)
            task_group.start_soon(server.wait_until, lambda: server.open_connections == 0)
        assert server.outcomes == [Outcome.ABORTED]
    assert started.startswith(b"HTTP/1.1 200 OK\r\n")
    assert server.completed == 0


@pytest.mark.network
async def test_connection_closed_between_requests_is_quiet() -> None:
    async with ReferenceServer() as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port):
            pass
        await server.wait_until(lambda: server.accepted_connections == 1)
        await server.wait_until(lambda: server.open_connections == 0)
    assert server.requests == []


@pytest.mark.network
async def test_connection_reset_between_requests_is_quiet() -> None:
    async with ReferenceServer() as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        await stream.send(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
        await server.wait_until(lambda: server.completed == 1)
        # SO_LINGER with a zero timeout makes close() send a reset instead of a FIN.
        raw = stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
        await server.wait_until(lambda: server.open_connections == 0)
    assert server.accepted_connections == 1


@pytest.mark.network
async def test_malformed_request_gets_400() -> None:
    async with (
        ReferenceServer() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"NOT HTTP AT ALL\r\n\r\n")
        reply = await read_to_end(stream)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert server.requests == []


@pytest.mark.network
async def test_disconnect_mid_request_is_quiet() -> None:
    async with ReferenceServer() as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await server.wait_until(lambda: server.accepted_connections == 1)
        await server.wait_until(lambda: server.open_connections == 0)
    assert server.requests == []


@pytest.mark.network
async def test_expect_100_continue() -> None:
    raw = json.dumps(body()).encode()
    head = (
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(raw)).encode() + b"\r\n\r\n"
    )
    async with (
        ReferenceServer() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(head)
        interim = await stream.receive()
        await stream.send(raw)
        reply = await read_to_end(stream)
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert server.completed == 1


@pytest.mark.network
async def test_serve_forever_until_cancelled() -> None:
    server = ReferenceServer()
    async with anyio.create_task_group() as task_group:
        base_url = await task_group.start(server.serve_forever)
        assert base_url == server.base_url
        async with httpx.AsyncClient(base_url=base_url) as client:
            response, _ = await post_chat(client, body())
        assert response.status_code == 200
        task_group.cancel_scope.cancel()


@pytest.mark.network
async def test_callers_exception_comes_out_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with ReferenceServer():
            raise KeyError("mine")


@pytest.mark.network
async def test_port_in_use_raises_oserror() -> None:
    async with ReferenceServer() as server:
        with pytest.raises(OSError, match="in use"):
            async with ReferenceServer(port=server.port):
                pass


@pytest.mark.network
async def test_outer_cancellation_stops_the_server() -> None:
    with anyio.CancelScope() as scope:
        async with (
            ReferenceServer(delay=30) as server,  # the reply takes minutes: always mid-reply
            await anyio.connect_tcp("127.0.0.1", server.port) as stream,
        ):
            await stream.send(raw_post(body()))
            await stream.receive()  # the server is now mid-reply
            scope.cancel()
            await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    # PENDING if the server stopped first, ABORTED if it saw the client leave first.
    assert server.outcomes[0] is not Outcome.COMPLETED
    assert server.open_connections == 0


@pytest.mark.network
async def test_wait_until_times_out() -> None:
    async with ReferenceServer() as server:
        with pytest.raises(TimeoutError):
            await server.wait_until(lambda: server.aborted > 0, timeout=0.05)


@pytest.mark.network
async def test_lifecycle_errors() -> None:
    server = ReferenceServer()
    assert "not started" in repr(server)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    async with server:
        assert repr(server) == f"<ReferenceServer {server.base_url}>"
        with pytest.raises(RuntimeError, match="already been entered"):
            async with server:
                pass  # pragma: no cover (never gets here)
        with pytest.raises(RuntimeError, match="already been entered"):
            await server.serve_forever()
    with pytest.raises(RuntimeError, match="not been entered"):
        await server.__aexit__(None, None, None)
    async with server:  # once left, it can serve again
        assert server.requests == []


@pytest.mark.parametrize("delay", [-1.0, float("nan"), True])
def test_bad_delay(delay: float) -> None:
    with pytest.raises(ValueError, match="delay"):
        ReferenceServer(delay=delay)


def test_models_default_to_known_ids() -> None:
    assert sorted(MODELS) == ["openchat_3.6", "openchat_v3.2_mistral"]


async def test_stream_response_yields_given_chunks() -> None:
    check = "✓".encode()
    chunks: list[bytes | str] = ["Hé", check[:2], check[2:]]

    def handler(request: httpx.Request) -> httpx.Response:
        return stream_response(chunks)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        client.stream("POST", "http://test/api/chat") as response,
    ):
        received = [chunk async for chunk in response.aiter_raw()]
    assert response.status_code == 200
    assert dict(response.headers) == {}
    assert received == ["Hé".encode(), check[:2], check[2:]]


async def test_stream_response_status_reason_and_headers() -> None:
    response = stream_response(
        [b"Error"], status=500, headers={"x-test": "1"}, reason="Rate limit reached"
    )
    assert (response.status_code, response.reason_phrase) == (500, "Rate limit reached")
    assert response.headers["x-test"] == "1"
    assert await response.aread() == b"Error"


def test_stream_response_body_is_a_plain_async_iterator() -> None:
    iterator = stream_response([b"a"]).stream.__aiter__()  # type: ignore[union-attr]
    assert iterator.__aiter__() is iterator


async def test_a_closed_stream_response_gives_nothing_more() -> None:
    response = stream_response([b"a", b"b", b"c"])
    chunks = response.aiter_raw()
    assert await chunks.__anext__() == b"a"
    await response.aclose()
    with pytest.raises(httpx.ReadError, match="closed"):
        await chunks.__anext__()  # as a closed connection would: the generators all end


@pytest.mark.network
async def test_a_bytes_reply_is_one_chunk() -> None:
    _server, _, chunks = await chat_once(
        body(), ReferenceServer(reply=lambda _: b"one \xe2\x9c\x93 chunk")
    )
    assert chunks == [b"one \xe2\x9c\x93 chunk"]

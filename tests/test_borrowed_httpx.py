"""AuraClient(http_client=...): a borrowed httpx.AsyncClient, through the httpx adapter.

What only a borrowed client has: it is never closed by the AuraClient, its own settings
(proxy, verify, pool limits) apply and cannot be combined with the AuraClient's, a closed one
is a clear error, and the fan-out's ``max_concurrency`` is not checked against a pool size it
does not own. Requests go to respx routes through ``httpx.MockTransport``, or to the
reference server through a real httpx client.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import ssl
import typing

import httpx
import pytest
import respx

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    IncompleteStreamError,
    InvalidRequestError,
    Timeouts,
)
from aura_anyio._transports.base import ConnectError, ReadTimeout, TransportClosed
from aura_anyio.testing import ReferenceServer, default_reply

from .helpers import FAST_RETRIES, URL, drain
from .httpx_helpers import httpx_reply as reply

if typing.TYPE_CHECKING:
    from collections.abc import AsyncIterator

HELLO = [{"role": "user", "content": "hello"}]


def route(router: respx.MockRouter, *responses: httpx.Response | Exception) -> respx.Route:
    """Route ``POST /api/chat`` to ``responses`` in turn."""
    return router.post(URL).mock(side_effect=list(responses))


@dataclasses.dataclass
class Borrowed:
    """A respx router and an httpx client whose requests it answers."""

    router: respx.MockRouter
    http: httpx.AsyncClient

    def client(self, **kwargs: typing.Any) -> AuraClient:
        """An AuraClient that borrows :attr:`http`."""
        options: dict[str, typing.Any] = {"max_retries": FAST_RETRIES}
        options.update(kwargs)
        return AuraClient("https://chat.test", http_client=self.http, **options)


@pytest.fixture
async def borrowed() -> AsyncIterator[Borrowed]:
    router = respx.MockRouter(assert_all_called=False, using=None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.handler)) as http:
        yield Borrowed(router, http)


async def test_a_request_through_a_borrowed_client_works(borrowed: Borrowed) -> None:
    calls = route(borrowed.router, reply("Hel", "lo ", "wörld"))
    client = borrowed.client(key="k-secret", cookies={"sid": "c-secret"})
    async with client, client.stream([{"role": "system", "content": "sys"}, *HELLO]) as chunks:
        assert [text async for text in chunks] == ["Hel", "lo ", "wörld"]
    assert chunks.text == "Hello wörld"
    request = calls.calls.last.request
    body = json.loads(request.content)
    assert (body["messages"], body["key"], body["prompt"]) == (HELLO, "k-secret", "sys")
    assert request.headers["content-type"] == "application/json"
    assert request.headers.get_list("cookie") == ["sid=c-secret"]
    assert request.headers.get_list("accept-encoding") == ["identity"]
    assert request.headers["content-length"] == str(len(request.content))


@pytest.mark.network
async def test_a_real_borrowed_client_reaches_the_server() -> None:
    async with (
        ReferenceServer() as server,
        httpx.AsyncClient() as http,
        AuraClient(server.base_url, http_client=http) as client,
    ):
        assert await client.complete(HELLO) == default_reply(server.requests[-1])
        assert await client.complete(HELLO) == default_reply(server.requests[-1])
        assert server.accepted_connections == 1  # httpx's pool kept the connection
        assert not http.is_closed


async def test_a_borrowed_client_is_not_closed(borrowed: Borrowed) -> None:
    route(borrowed.router, reply("ok"), reply("again"))
    async with borrowed.client() as client:
        assert await client.complete(HELLO) == "ok"
    assert not borrowed.http.is_closed
    with pytest.raises(RuntimeError, match="this AuraClient is closed"):
        client.stream(HELLO)
    # The httpx client still serves another AuraClient.
    async with borrowed.client() as another:
        assert await another.complete(HELLO) == "again"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"proxy": "http://user:p-secret@127.0.0.1:3128"},
            "proxy cannot be combined with http_client; configure it on the http_client you "
            "pass in",
        ),
        ({"verify": False}, "verify cannot be combined with http_client"),
        ({"verify": ssl.create_default_context()}, "verify cannot be combined with http_client"),
    ],
)
async def test_a_borrowed_client_brings_its_own_proxy_and_verify(
    kwargs: dict[str, object], message: str
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidRequestError) as caught:
            AuraClient(http_client=http, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "p-secret" not in str(caught.value)


async def test_a_closed_borrowed_client_is_a_clear_error(borrowed: Borrowed) -> None:
    calls = route(borrowed.router, reply("never"))
    await borrowed.http.aclose()
    client = borrowed.client()
    stream = client.stream(HELLO)  # made without I/O
    with pytest.raises(RuntimeError, match="lent to this AuraClient is closed") as caught:
        async with stream:
            pass  # pragma: no cover (entering fails)
    assert isinstance(caught.value.__cause__, TransportClosed)
    with pytest.raises(RuntimeError, match="lent to this AuraClient is closed"):
        await client.complete(HELLO)
    assert not calls.called


async def test_max_concurrency_is_not_checked_against_a_borrowed_pool(
    borrowed: Borrowed,
) -> None:
    calls = route(borrowed.router, *[reply("ok")] * 3)
    # The client's own pool would refuse it: it has 100 connections.
    with pytest.raises(InvalidRequestError, match="raise max_connections to match"):
        AuraClient("https://chat.test").fan_out(["x"], max_concurrency=101)
    async with borrowed.client() as client:
        results = await client.gather(["a", "b", "c"], max_concurrency=101)
    assert [result.text for result in results] == ["ok"] * 3
    assert calls.call_count == 3


@pytest.mark.network
async def test_the_borrowed_pool_limits_apply() -> None:
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=1))
    async with (
        ReferenceServer(delay=30) as server,
        http,
        AuraClient(
            server.base_url, http_client=http, timeout=Timeouts(connect=1.0), max_retries=0
        ) as client,
        client.stream(HELLO),  # holds the only connection
    ):
        with pytest.raises(APITimeoutError, match="pool timeout") as caught:
            await client.complete(HELLO)
    assert isinstance(caught.value.__cause__.__cause__, httpx.PoolTimeout)  # type: ignore[union-attr]


# httpx's errors and responses, through the adapter.


async def test_connection_errors_are_retried_then_translated(borrowed: Borrowed) -> None:
    calls = route(borrowed.router, *[httpx.ConnectError("refused")] * 3)
    async with borrowed.client() as client:
        with pytest.raises(APIConnectionError, match="could not connect") as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIConnectionError
    cause = caught.value.__cause__
    assert isinstance(cause, ConnectError)
    assert isinstance(cause.__cause__, httpx.ConnectError)
    assert calls.call_count == 3


async def test_read_timeout_is_translated(borrowed: Borrowed) -> None:
    route(borrowed.router, *[httpx.ReadTimeout("silent")] * 3)
    async with borrowed.client() as client:
        with pytest.raises(APITimeoutError, match="read timeout") as caught:
            await client.complete(HELLO)
    assert isinstance(caught.value.__cause__, ReadTimeout)


async def test_a_broken_body_after_text_is_an_incomplete_stream(borrowed: Borrowed) -> None:
    calls = route(borrowed.router, reply("Hel", httpx.ReadError("reset")), reply("Hello"))
    async with borrowed.client() as client, client.stream(HELLO) as chunks:
        with pytest.raises(IncompleteStreamError) as caught:
            await drain(chunks)
    assert caught.value.partial_text == "Hel"
    assert isinstance(caught.value.__cause__, APIConnectionError)
    assert calls.call_count == 1


async def test_a_latin1_reason_phrase_survives(borrowed: Borrowed) -> None:
    route(borrowed.router, reply("Error", status=400, reason="Limite de débit atteinte"))
    async with borrowed.client() as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.reason == "Limite de débit atteinte"
    assert caught.value.body == "Error"


async def test_a_content_encoded_reply_is_refused_not_decoded(borrowed: Borrowed) -> None:
    body = gzip.compress(b"compressed")
    calls = route(
        borrowed.router, reply(body, headers={"content-encoding": "gzip"}), reply("never")
    )
    async with borrowed.client() as client:
        with pytest.raises(APIError, match="Content-Encoding 'gzip'") as caught:
            await client.complete(HELLO)
    assert type(caught.value) is APIError
    assert calls.call_count == 1
    assert calls.calls.last.request.headers["accept-encoding"] == "identity"

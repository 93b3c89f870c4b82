"""The httpx adapter (``_transports.httpx``): a borrowed ``httpx.AsyncClient`` or a SOCKS pool.

httpx's and httpcore's errors become the neutral ones of ``_transports.base`` (``_neutral``);
the guards around httpcore close what it would leak and keep SOCKS credentials out of its
logs. httpx's own ``MockTransport`` and respx stand in for servers where the adapter is the
subject; a real SOCKS5 proxy (below) and the reference server where sockets are.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import inspect
import ipaddress
import json
import logging
import pathlib
import ssl
import subprocess
import sys
import typing
import warnings

import anyio
import anyio.lowlevel
import httpcore
import httpx
import pytest
import respx
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream
from socksio.exceptions import ProtocolError as SocksProtocolError

from aura_anyio import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuraClient,
    InvalidRequestError,
    Timeouts,
    build_payload,
)
from aura_anyio._transports import httpx as adapter
from aura_anyio._transports.base import (
    CertificateError,
    ConnectError,
    ConnectTimeout,
    NetworkError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    ReadTimeout,
    Request,
    TransportClosed,
    TransportError,
    TransportTimeout,
    WriteTimeout,
)
from aura_anyio._transports.httpx import (
    LEFTOVER_CHUNKS,
    HttpxResponse,
    HttpxTransport,
    RequestBody,
    _GuardedBackend,
    _GuardedStream,
    _neutral,
    _PoolBody,
    close_response,
    hide_socks_credentials,
    socks_transport,
)
from aura_anyio.testing import Fault, ReferenceServer, default_reply

from .helpers import FAST_RETRIES, until
from .httpx_helpers import ScriptedStream, httpx_reply

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterable

    from anyio.abc import SocketStream

URL = "https://chat.test/api/chat"
HELLO = [{"role": "user", "content": "hi"}]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# A valid /api/chat body, for the reference server.
CHAT_BODY = json.dumps(build_payload(HELLO)).encode()


def request(url: str = URL, *, content: bytes = CHAT_BODY) -> Request:
    return Request(
        "POST",
        url,
        {"content-type": "application/json", "x-custom": "Value"},
        content,
        connect_timeout=5.0,
        read_timeout=30.0,
    )


def lent(handler: typing.Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    """An httpx client whose requests ``handler`` answers (httpx's own MockTransport)."""
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), trust_env=False)


def raising(exc: Exception) -> typing.Callable[[httpx.Request], httpx.Response]:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, using=None)


def aura_over(router: respx.MockRouter, **kwargs: typing.Any) -> AuraClient:
    """An AuraClient on a borrowed httpx client whose HTTP goes to ``router``."""
    return AuraClient(
        "https://chat.test",
        http_client=lent(router.handler),
        max_retries=kwargs.pop("max_retries", FAST_RETRIES),
        **kwargs,
    )


def leaked_sockets() -> list[str]:
    """Collect garbage now; return the ResourceWarnings of sockets that nobody closed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


# --- _neutral: httpx's and httpcore's errors -> the neutral ones ------------------------------

_TABLE: list[tuple[Exception, type[TransportError]]] = [
    # httpx
    (httpx.ConnectTimeout("t"), ConnectTimeout),
    (httpx.ReadTimeout("t"), ReadTimeout),
    (httpx.WriteTimeout("t"), WriteTimeout),
    (httpx.PoolTimeout("t"), PoolTimeout),
    (httpx.TimeoutException("t"), TransportTimeout),
    (httpx.ConnectError("t"), ConnectError),
    (httpx.UnsupportedProtocol("t"), ConnectError),
    (httpx.RemoteProtocolError("t"), ProtocolError),
    (httpx.ReadError("t"), NetworkError),
    (httpx.WriteError("t"), NetworkError),
    (httpx.CloseError("t"), NetworkError),
    (httpx.DecodingError("t"), NetworkError),
    (httpx.TooManyRedirects("t"), NetworkError),
    (httpx.InvalidURL("t"), NetworkError),
    (httpx.ProxyError("t"), ProxyError),
    # httpcore: its errors have no common base, and a SOCKS pool raises them as they are
    (httpcore.ConnectTimeout("t"), ConnectTimeout),
    (httpcore.ReadTimeout("t"), ReadTimeout),
    (httpcore.WriteTimeout("t"), WriteTimeout),
    (httpcore.PoolTimeout("t"), PoolTimeout),
    (httpcore.TimeoutException("t"), TransportTimeout),
    (httpcore.ConnectError("t"), ConnectError),
    (httpcore.RemoteProtocolError("t"), ProtocolError),
    (httpcore.ProtocolError("t"), NetworkError),
    (httpcore.ReadError("t"), NetworkError),
    (httpcore.WriteError("t"), NetworkError),
    (httpcore.NetworkError("t"), NetworkError),
    (httpcore.ConnectionNotAvailable("t"), NetworkError),
    (httpcore.UnsupportedProtocol("t"), ConnectError),
    (httpcore.ProxyError("t"), ProxyError),
    # socksio's, which httpcore lets through unwrapped
    (SocksProtocolError("t"), ProxyError),
]
_IDS = [f"{type(exc).__module__.split('.')[0]}.{type(exc).__name__}" for exc, _ in _TABLE]


@pytest.mark.parametrize(("exc", "neutral"), _TABLE, ids=_IDS)
def test_neutral(exc: Exception, neutral: type[TransportError]) -> None:
    mapped = _neutral(exc)
    assert type(mapped) is neutral
    assert str(mapped).endswith("t")


@pytest.mark.parametrize(("exc", "neutral"), _TABLE, ids=_IDS)
async def test_the_transport_raises_only_neutral_errors(
    exc: Exception, neutral: type[TransportError]
) -> None:
    """Each of these escapes httpx.AsyncClient.send; the transport catches every one."""
    async with lent(raising(exc)) as http:
        with pytest.raises(neutral) as caught:
            await HttpxTransport(http, owned=False).send(request())
    assert type(caught.value) is neutral
    assert caught.value.__cause__ is exc


@pytest.mark.parametrize(("exc", "neutral"), _TABLE, ids=_IDS)
async def test_a_body_raises_only_neutral_errors(
    exc: Exception, neutral: type[TransportError]
) -> None:
    async with lent(lambda _: httpx_reply(b"first", exc)) as http:
        response = await HttpxTransport(http, owned=False).send(request())
        assert await response.__anext__() == b"first"
        with pytest.raises(neutral) as caught:
            await response.__anext__()
        assert caught.value.__cause__ is exc
        await response.aclose()


@pytest.mark.parametrize(
    ("exc", "error_type", "needle", "retryable"),
    [
        (httpx.ConnectTimeout("t"), APITimeoutError, "connect timeout", True),
        (httpx.ReadTimeout("t"), APITimeoutError, "read timeout", True),
        (httpx.WriteTimeout("t"), APITimeoutError, "write timeout", True),
        (httpx.PoolTimeout("t"), APITimeoutError, "pool timeout", True),
        (httpx.ConnectError("refused"), APIConnectionError, "could not connect", True),
        (httpx.ReadError("reset"), APIConnectionError, "broke", True),
        (httpx.RemoteProtocolError("incomplete chunked read"), APIConnectionError, "broke", True),
        (httpx.ProxyError("407"), APIConnectionError, "the proxy failed", False),
        (httpx.ProxyError("Invalid username/password"), APIConnectionError, "user name", False),
        (httpx.ProxyError("502 Bad Gateway"), APIConnectionError, "the proxy failed", True),
        (httpx.DecodingError("bad gzip"), APIConnectionError, "broke", True),
        (
            httpx.LocalProtocolError("Illegal header value b'c-secret'"),
            APIConnectionError,
            "valid HTTP",
            True,
        ),
        (httpx.TooManyRedirects("loop"), APIConnectionError, "broke: loop", True),
    ],
)
async def test_each_httpx_error_becomes_a_public_error(
    exc: Exception, error_type: type[APIConnectionError], needle: str, retryable: bool
) -> None:
    """From httpx's error to the one the caller sees: _neutral, then map_transport_error."""
    async with lent(raising(exc)) as http:
        async with AuraClient("https://chat.test", http_client=http, max_retries=0) as client:
            with pytest.raises(APIError) as caught:
                await client.complete(HELLO)
    error = caught.value
    assert type(error) is error_type
    assert needle in str(error)
    assert error.retryable is retryable
    assert error.request is not None
    assert error.request.url == URL
    assert "c-secret" not in str(error)
    assert isinstance(error.__cause__, TransportError)
    assert error.__cause__.__cause__ is exc


def test_an_error_without_text_is_named_by_its_class() -> None:
    assert str(_neutral(httpx.ReadError(""))) == "ReadError"
    assert str(_neutral(httpcore.ConnectionNotAvailable())) == "ConnectionNotAvailable"


@pytest.mark.parametrize(
    ("message", "refused"),
    [
        ("407 Proxy Authentication Required", True),
        ("Invalid username/password", True),
        (
            "Requested NO AUTHENTICATION REQUIRED from proxy server, but got USERNAME/PASSWORD.",
            True,
        ),
        ("Requested USERNAME/PASSWORD from proxy server, but got NO AUTHENTICATION.", True),
        ("Proxy Server could not connect: Connection refused.", False),
        ("502 Bad Gateway", False),
        ("4070 bytes", False),
    ],
)
@pytest.mark.parametrize("proxy_error", [httpx.ProxyError, httpcore.ProxyError])
def test_a_proxy_refusing_the_credentials(
    message: str, refused: bool, proxy_error: type[Exception]
) -> None:
    mapped = _neutral(proxy_error(message))
    assert type(mapped) is ProxyError
    assert mapped.refused is refused
    assert str(mapped) == message


@pytest.mark.parametrize(
    "exc",
    [
        httpx.LocalProtocolError("Illegal header value b'session=c-secret'"),
        httpcore.LocalProtocolError("Illegal header value b'session=c-secret'"),
    ],
)
def test_a_local_protocol_error_never_shows_its_text(exc: Exception) -> None:
    """Its text may quote a header value: a cookie, a key."""
    mapped = _neutral(exc)
    assert type(mapped) is ProtocolError
    assert str(mapped) == ("the request could not be sent as valid HTTP (LocalProtocolError)")


@pytest.mark.network
async def test_a_local_protocol_error_from_httpx_itself_shows_no_secret() -> None:
    """h11 refuses a header value with a newline, quoting it; nothing of it comes out."""
    async with ReferenceServer() as server, httpx.AsyncClient(trust_env=False) as http:
        transport = HttpxTransport(http, owned=False)
        headers = {"cookie": "session=c-secret\n"}
        bad = Request("POST", f"{server.base_url}/api/chat", headers, b"{}")
        with pytest.raises(ProtocolError) as caught:
            await transport.send(bad)
    assert "c-secret" in str(caught.value.__cause__)  # httpx's own text quotes it
    assert "c-secret" not in str(caught.value)
    assert server.requests == []


def test_a_socks_protocol_error_leaking_from_httpcore() -> None:
    mapped = _neutral(SocksProtocolError("Malformed reply"))
    assert type(mapped) is ProxyError
    assert not mapped.refused
    assert str(mapped) == "the SOCKS proxy handshake failed: Malformed reply"


def test_without_socksio_no_socks_error_is_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio.exceptions", None)
    assert adapter._socks_errors() == ()


def test_the_adapter_works_without_socksio() -> None:
    """Without the socks extra the module imports, maps errors, and serves a lent client."""
    code = """
import sys
sys.modules["socksio"] = None
sys.modules["socksio.exceptions"] = None
import anyio, httpx
from aura_anyio import AuraClient
from aura_anyio._transports import httpx as adapter
from aura_anyio._transports.base import NetworkError, ProxyError

assert type(adapter._neutral(httpx.ReadError("reset"))) is NetworkError
assert type(adapter._neutral(httpx.ProxyError("407"))) is ProxyError
try:
    adapter.socks_transport("socks5://127.0.0.1:1080", verify=True, max_idle=1)
except ImportError:
    pass
else:
    raise AssertionError("socks_transport needs socksio")

async def main():
    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b"hi"

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Body()))
    )
    async with http, AuraClient("https://chat.test", http_client=http) as client:
        assert await client.complete([{"role": "user", "content": "x"}]) == "hi"

anyio.run(main)
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


# --- certificates ------------------------------------------------------------------------------


def certificate_failure(*, verify_message: str, reason: str) -> ssl.SSLError:
    """An ssl.SSLCertVerificationError as the ssl module raises it (with its attributes)."""
    error = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    error.verify_message = verify_message
    error.reason = reason
    return error


def chained(outer: Exception, inner: BaseException, *, cause: bool) -> Exception:
    if cause:
        outer.__cause__ = inner
    else:
        outer.__context__ = inner
    return outer


@pytest.mark.parametrize("cause", [True, False], ids=["cause", "context"])
def test_a_certificate_failure_chained_under_a_connect_error(cause: bool) -> None:
    failure = certificate_failure(verify_message="self-signed certificate", reason="X")
    core = chained(httpcore.ConnectError("handshake"), failure, cause=cause)
    exc = chained(httpx.ConnectError("[SSL] certificate verify failed"), core, cause=True)
    mapped = _neutral(exc)
    assert type(mapped) is CertificateError
    assert str(mapped) == "self-signed certificate"


@pytest.mark.parametrize(
    ("verify_message", "reason", "shown"),
    [
        ("", "CERTIFICATE_VERIFY_FAILED", "CERTIFICATE_VERIFY_FAILED"),
        ("", "", "the connect error"),
    ],
)
def test_a_certificate_failure_without_details(
    verify_message: str, reason: str, shown: str
) -> None:
    failure = certificate_failure(verify_message=verify_message, reason=reason)
    exc = chained(httpx.ConnectError("the connect error"), failure, cause=True)
    assert str(_neutral(exc)) == shown


def test_a_certificate_error_raised_from_python_code() -> None:
    """ssl.CertificateError raised by Python code (ssl.match_hostname, on Python < 3.12) has
    no verify_message or reason attribute: it is still a certificate failure, not a crash."""
    exc = chained(
        httpx.ConnectError("hostname mismatch"),
        ssl.CertificateError("hostname 'a.test' doesn't match 'b.test'"),
        cause=True,
    )
    mapped = _neutral(exc)
    assert type(mapped) is CertificateError
    assert "hostname" in str(mapped)


def test_a_cycle_of_causes_ends_the_search_for_a_certificate_failure() -> None:
    first, second = httpx.ConnectError("refused"), httpcore.ConnectError("refused")
    first.__cause__ = second
    second.__context__ = first
    assert type(_neutral(first)) is ConnectError


class CountingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, counting the requests that reach it."""

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await super().handle_async_request(request)


@pytest.mark.network
async def test_an_untrusted_certificate_through_a_lent_client_is_not_retried(
    server_tls: ssl.SSLContext,
) -> None:
    counting = CountingTransport(verify=ssl.create_default_context())  # trustme's CA unknown
    async with ReferenceServer(ssl_context=server_tls) as server:
        async with httpx.AsyncClient(transport=counting, trust_env=False) as http:
            async with AuraClient(
                server.base_url, http_client=http, max_retries=FAST_RETRIES
            ) as client:
                with pytest.raises(APIConnectionError) as caught:
                    await client.complete(HELLO)
    error = caught.value
    assert not error.retryable
    assert str(error).startswith(f"TLS certificate verification failed for {server.base_url}")
    assert "verify=" in str(error)
    assert isinstance(error.__cause__, CertificateError)
    assert "certificate" in str(error.__cause__)
    assert counting.requests == 1  # never retried
    assert server.requests == []


@pytest.mark.network
async def test_a_trusted_certificate_through_a_lent_client(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with ReferenceServer(ssl_context=server_tls) as server:
        async with httpx.AsyncClient(verify=client_tls, trust_env=False) as http:
            async with AuraClient(server.base_url, http_client=http) as client:
                text = await client.complete(HELLO)
    (received,) = server.requests
    assert text == default_reply(received)


# --- HttpxTransport over a borrowed client -------------------------------------------------


async def test_a_request_goes_through_a_lent_client(router: respx.MockRouter) -> None:
    route = router.post(URL).mock(
        side_effect=[httpx_reply(b"Hel", b"lo", headers={"X-Served-By": "respx"})]
    )
    async with lent(router.handler) as http:
        transport = HttpxTransport(http, owned=False)
        response = await transport.send(request(content=b'{"a": 1}'))
        assert response.status_code == 200
        assert response.reason == "OK"
        assert response.headers["x-served-by"] == "respx"
        assert [chunk async for chunk in response] == [b"Hel", b"lo"]
    (call,) = route.calls
    sent = call.request
    assert (sent.method, str(sent.url)) == ("POST", URL)
    assert sent.headers["x-custom"] == "Value"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["content-length"] == "8"
    assert "transfer-encoding" not in sent.headers
    assert sent.content == b'{"a": 1}'
    assert sent.extensions["timeout"] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 5.0}


async def test_each_request_gets_its_own_timeouts(router: respx.MockRouter) -> None:
    route = router.post(URL).mock(return_value=httpx.Response(200))
    async with lent(router.handler) as http:
        transport = HttpxTransport(http, owned=False)
        for connect, read in ((1.0, 2.0), (1.0, 2.0), (None, None), (3.0, None)):
            sent = Request("POST", URL, {}, b"", connect_timeout=connect, read_timeout=read)
            await (await transport.send(sent)).aclose()
    assert [call.request.extensions["timeout"] for call in route.calls] == [
        {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 1.0},
        {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": 1.0},
        {"connect": None, "read": None, "write": None, "pool": None},
        {"connect": 3.0, "read": None, "write": None, "pool": 3.0},
    ]


async def test_redirects_are_not_followed(router: respx.MockRouter) -> None:
    router.post(URL).mock(
        return_value=httpx.Response(307, headers={"location": "https://elsewhere.test/api/chat"})
    )
    async with lent(router.handler) as http:
        response = await HttpxTransport(http, owned=False).send(request())
        assert response.status_code == 307
        assert response.headers["location"] == "https://elsewhere.test/api/chat"
        await response.aclose()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Caf\xe9 cr\xe8me", "Café crème"),  # Latin-1, as HTTP allows
        (b"Rate limit reached", "Rate limit reached"),
        (None, "Internal Server Error"),  # no phrase given: httpx's standard one
    ],
)
async def test_the_reason_phrase_is_decoded_as_latin1(raw: bytes | None, reason: str) -> None:
    async with lent(lambda _: httpx_reply(b"Error", status=500, reason=raw)) as http:
        response = await HttpxTransport(http, owned=False).send(request())
        assert response.reason == reason
        await response.aclose()


async def test_a_latin1_reason_phrase_reaches_the_status_error(router: respx.MockRouter) -> None:
    router.post(URL).mock(
        return_value=httpx_reply(b"Error", status=500, reason=b"Quota d\xe9pass\xe9")
    )
    async with aura_over(router, max_retries=0) as client:
        with pytest.raises(APIStatusError) as caught:
            await client.complete(HELLO)
    assert caught.value.reason == "Quota dépassé"


async def test_a_closed_lent_client_is_named_in_the_error() -> None:
    http = lent(lambda _: httpx.Response(200))
    await http.aclose()
    with pytest.raises(TransportClosed, match=r"the httpx\.AsyncClient lent to this AuraClient"):
        await HttpxTransport(http, owned=False).send(request())
    async with AuraClient("https://chat.test", http_client=http) as client:
        with pytest.raises(
            RuntimeError, match=r"httpx\.AsyncClient lent to this AuraClient is closed"
        ):
            await client.complete(HELLO)


async def test_a_closed_owned_client_is_a_closed_transport() -> None:
    transport = HttpxTransport(lent(lambda _: httpx.Response(200)), owned=True)
    await transport.aclose()
    with pytest.raises(TransportClosed, match=r"^the transport is closed$"):
        await transport.send(request())


async def test_aclose_closes_an_owned_client_but_never_a_borrowed_one() -> None:
    borrowed = lent(lambda _: httpx.Response(200))
    await HttpxTransport(borrowed, owned=False).aclose()
    assert not borrowed.is_closed
    async with AuraClient("https://chat.test", http_client=borrowed):
        pass
    assert not borrowed.is_closed  # the AuraClient does not close it either
    await borrowed.aclose()

    owned = lent(lambda _: httpx.Response(200))
    await HttpxTransport(owned, owned=True).aclose()
    assert owned.is_closed


# --- the request body -------------------------------------------------------------------------


def test_a_request_body_can_be_sent_again() -> None:
    body = RequestBody(b"payload")
    assert list(body) == [b"payload"]
    assert list(body) == [b"payload"]


async def test_a_request_body_is_iterated_without_a_generator() -> None:
    body = RequestBody(b"payload")
    for _ in range(2):  # once per attempt
        chunks = body.__aiter__()
        assert not inspect.isasyncgen(chunks)
        assert chunks.__aiter__() is chunks
        assert [chunk async for chunk in chunks] == [b"payload"]


async def test_the_transport_sends_a_request_body_that_can_be_sent_again() -> None:
    bodies: list[httpx.SyncByteStream | httpx.AsyncByteStream] = []

    def handler(req: httpx.Request) -> httpx.Response:
        bodies.append(req.stream)
        return httpx.Response(200)

    async with lent(handler) as http:
        transport = HttpxTransport(http, owned=False)
        await (await transport.send(request(content=b"payload"))).aclose()
    (stream,) = bodies
    assert isinstance(stream, RequestBody)
    for _ in range(2):
        chunks = stream.__aiter__()
        assert not inspect.isasyncgen(chunks)
        assert [chunk async for chunk in chunks] == [b"payload"]


async def test_a_retry_through_a_lent_client_sends_the_same_body(
    router: respx.MockRouter,
) -> None:
    route = router.post(URL).mock(
        side_effect=[httpx_reply(b"Error", status=503), httpx_reply(b"ok")]
    )
    async with aura_over(router) as client:
        assert await client.complete(HELLO) == "ok"
    first, second = (call.request for call in route.calls)
    assert first.content == second.content
    assert b'"content": "hi"' in first.content or b'"content":"hi"' in first.content
    assert first.headers["content-length"] == second.headers["content-length"]


@pytest.mark.network
async def test_a_request_goes_through_a_real_lent_client() -> None:
    async with ReferenceServer() as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            async with AuraClient(server.base_url, http_client=http) as client:
                text = await client.complete(ask("through httpx"), temperature=0.25)
    (received,) = server.requests
    assert text == default_reply(received)
    assert received.headers["accept-encoding"] == "identity"
    assert received.headers["content-length"] == str(len(received.body))
    assert isinstance(received.json, dict)
    assert received.json["temperature"] == 0.25


# --- HttpxResponse: reading and closing ---------------------------------------------------------


async def test_a_response_read_to_its_end_needs_no_closing() -> None:
    stream = ScriptedStream([b"a", b"b"])
    async with lent(lambda _: httpx.Response(200, stream=stream)) as http:
        response = await HttpxTransport(http, owned=False).send(request())
        assert [chunk async for chunk in response] == [b"a", b"b"]
        assert stream.closed  # httpx closed it at the end
        await response.aclose()
        await response.aclose()  # harmless


async def test_closing_a_response_early_closes_its_body() -> None:
    stream = ScriptedStream([b"a", b"b", b"c"])
    async with lent(lambda _: httpx.Response(200, stream=stream)) as http:
        response = await HttpxTransport(http, owned=False).send(request())
        assert await response.__anext__() == b"a"
        await response.aclose()
        assert stream.closed
        await response.aclose()  # harmless


@pytest.mark.network
async def test_closing_a_response_early_closes_its_connection() -> None:
    async with ReferenceServer(fault=Fault(stall_after=3)) as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            transport = HttpxTransport(http, owned=False)
            response = await transport.send(request(f"{server.base_url}/api/chat"))
            await response.__anext__()
            with anyio.fail_after(10):
                await response.aclose()
            await server.wait_until(lambda: server.aborted == 1)
    assert server.open_connections == 0


class _Endless(httpx.AsyncByteStream):
    """A body that ignores being closed: the drain must still stop."""

    def __init__(self) -> None:
        self.reads = 0

    def __aiter__(self) -> _Endless:
        return self

    async def __anext__(self) -> bytes:
        self.reads += 1
        return b"x"


async def test_draining_a_closed_response_is_bounded() -> None:
    stream = _Endless()
    response = httpx.Response(200, stream=stream)
    chunks = typing.cast("AsyncGenerator[bytes, None]", response.aiter_raw())
    assert await chunks.__anext__() == b"x"
    await close_response(response, chunks)
    assert response.is_closed
    assert stream.reads == 1 + LEFTOVER_CHUNKS
    await chunks.aclose()  # what the bound left suspended, closed here for Trio's sake


@pytest.mark.network
async def test_leaving_early_with_thousands_of_chunks_buffered_leaves_nothing_behind() -> None:
    """httpx's and httpcore's body generators all finish, however much is still buffered.

    Trio reports a generator collected half-way with a ResourceWarning, an error here. Only
    an httpx client (lent, or behind a proxy) reads through those generators, and it reads
    one chunk at a time.
    """
    async with ReferenceServer(reply=lambda _: [b"x"] * 5_000) as server:
        async with httpx.AsyncClient(trust_env=False) as http:
            async with AuraClient(server.base_url, http_client=http) as client:
                async with client.stream(ask("hi")) as reply:
                    # All of it buffered, before the first chunk is read.
                    await server.wait_until(lambda: server.completed == 1, timeout=60)
                    async for _ in reply:
                        if len(reply.text) == 3:
                            break
        gc.collect()
        await anyio.lowlevel.checkpoint()  # where Trio's finalizer would warn
    assert reply.text == "xxx"


class _Plain:
    """An async iterable without aclose (httpcore's body streams have one)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> _Plain:
        return self

    async def __anext__(self) -> bytes:
        for chunk in self._chunks:
            return chunk
        raise StopAsyncIteration


async def test_a_pool_body_closes_what_can_be_closed() -> None:
    body = _PoolBody(_Plain([b"a"]))
    assert [chunk async for chunk in body] == [b"a"]
    await body.aclose()  # nothing to close: no error

    stream = ScriptedStream([b"a", b"b"])
    body = _PoolBody(stream)
    assert await body.__aiter__().__anext__() == b"a"
    await body.aclose()
    assert stream.closed


# --- the guards around httpcore ---------------------------------------------------------------


class _FakeStream(httpcore.AsyncNetworkStream):
    """A network stream whose TLS upgrade fails, hangs, or succeeds, as told."""

    def __init__(self, upgrade: str = "ok") -> None:
        self.upgrade = upgrade
        self.closed = False
        self.upgraded: _FakeStream | None = None
        self.started = anyio.Event()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return b"read"[:max_bytes]

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        pass

    async def aclose(self) -> None:
        await anyio.lowlevel.checkpoint()  # a real close may wait: the shield lets it
        self.closed = True

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
    ) -> httpcore.AsyncNetworkStream:
        self.started.set()
        if self.upgrade == "refused":
            raise anyio.BrokenResourceError("handshake refused")
        if self.upgrade == "hang":
            await anyio.sleep_forever()
        self.upgraded = _FakeStream()
        return self.upgraded

    def get_extra_info(self, info: str) -> object:
        return f"info:{info}"


async def test_a_failed_tls_upgrade_closes_the_stream() -> None:
    inner = _FakeStream("refused")
    with pytest.raises(anyio.BrokenResourceError):
        await _GuardedStream(inner).start_tls(ssl.create_default_context())
    assert inner.closed


async def test_a_cancelled_tls_upgrade_closes_the_stream() -> None:
    inner = _FakeStream("hang")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_GuardedStream(inner).start_tls, ssl.create_default_context())
        await inner.started.wait()
        tasks.cancel_scope.cancel()
    assert inner.closed


async def test_a_guarded_stream_delegates_and_guards_its_upgrade() -> None:
    inner = _FakeStream()
    stream = _GuardedStream(inner)
    assert await stream.read(2, timeout=1.0) == b"re"
    await stream.write(b"x", timeout=1.0)
    assert stream.get_extra_info("ssl_object") == "info:ssl_object"
    upgraded = await stream.start_tls(ssl.create_default_context(), "localhost", 5.0)
    assert isinstance(upgraded, _GuardedStream)  # the upgraded stream is guarded too
    assert not inner.closed
    await upgraded.aclose()
    assert inner.upgraded is not None
    assert inner.upgraded.closed
    await stream.aclose()
    assert inner.closed


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for httpcore's AnyIOBackend: records what the guarded backend asks of it."""

    calls: typing.ClassVar[list[tuple[str, tuple[object, ...]]]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(("connect_tcp", (host, port, timeout, local_address, socket_options)))
        return _FakeStream()

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.calls.append(("connect_unix_socket", (path, timeout, socket_options)))
        return _FakeStream()

    async def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", (seconds,)))


async def test_the_guarded_backend_wraps_httpcores_anyio_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(httpcore, "AnyIOBackend", _RecordingBackend)
    monkeypatch.setattr(_RecordingBackend, "calls", [])
    backend = _GuardedBackend()
    options = [(6, 1, 1)]
    tcp = await backend.connect_tcp("h", 1, timeout=2.0, local_address="l", socket_options=options)
    unix = await backend.connect_unix_socket("/p", timeout=3.0, socket_options=options)
    await backend.sleep(0.5)
    assert isinstance(tcp, _GuardedStream)
    assert isinstance(unix, _GuardedStream)
    assert _RecordingBackend.calls == [
        ("connect_tcp", ("h", 1, 2.0, "l", options)),
        ("connect_unix_socket", ("/p", 3.0, options)),
        ("sleep", (0.5,)),
    ]


@pytest.mark.network
async def test_a_guarded_unix_socket_connection(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "sock")

    async def echo(stream: SocketStream) -> None:
        async with stream:
            await stream.send(await stream.receive())

    async with await anyio.create_unix_listener(path) as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        backend = _GuardedBackend()
        stream = await backend.connect_unix_socket(path, timeout=5.0)
        assert isinstance(stream, _GuardedStream)
        await stream.write(b"ping", timeout=5.0)
        assert await stream.read(10, timeout=5.0) == b"ping"
        assert stream.get_extra_info("socket") is not None
        await stream.aclose()
        await backend.sleep(0)
        tg.cancel_scope.cancel()


@pytest.mark.network
async def test_a_guarded_tls_connection(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with ReferenceServer(ssl_context=server_tls) as server:
        backend = _GuardedBackend()
        tcp = await backend.connect_tcp("127.0.0.1", server.port, timeout=5.0)
        stream = await tcp.start_tls(client_tls, server_hostname="localhost", timeout=5.0)
        assert isinstance(stream, _GuardedStream)
        assert stream.get_extra_info("ssl_object") is not None
        await stream.write(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n", timeout=5.0)
        assert (await stream.read(4096, timeout=5.0)).startswith(b"HTTP/1.1 404 ")
        await stream.aclose()
        await server.wait_until(lambda: server.open_connections == 0)


# --- SOCKS credentials in httpcore's log ------------------------------------------------------


def socks_record(message: object) -> logging.LogRecord:
    return logging.LogRecord("httpcore.socks", logging.DEBUG, __file__, 1, message, (), None)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "setup_socks5_connection.started stream=<S> host='h' port=1 auth=(b'u', b'pw')",
            "setup_socks5_connection.started stream=<S> host='h' port=1 auth=<hidden>",
        ),
        ("connect_tcp.started host='127.0.0.1' port=1080", None),
    ],
)
def test_socks_credentials_are_cut_from_httpcore_logs(
    message: str, shown: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    hide_socks_credentials()
    caplog.set_level(logging.DEBUG, logger="httpcore.socks")
    logging.getLogger("httpcore.socks").debug(message)
    (record,) = caplog.records
    assert record.getMessage() == (shown or message)


def test_a_record_that_is_not_text_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    hide_socks_credentials()
    caplog.set_level(logging.DEBUG, logger="httpcore.socks")
    payload = {"auth=": "not a str"}
    logging.getLogger("httpcore.socks").debug(payload)
    (record,) = caplog.records
    assert record.msg is payload


def test_hiding_socks_credentials_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    socks_logger = logging.getLogger("httpcore.socks")
    monkeypatch.setattr(socks_logger, "filters", [])
    hide_socks_credentials()
    hide_socks_credentials()
    assert len(socks_logger.filters) == 1
    record = socks_record("x auth=(b'u', b'pw')")
    assert socks_logger.filter(record)
    assert record.getMessage() == "x auth=<hidden>"


def test_a_lent_client_gets_the_filter_too(monkeypatch: pytest.MonkeyPatch) -> None:
    socks_logger = logging.getLogger("httpcore.socks")
    monkeypatch.setattr(socks_logger, "filters", [])
    HttpxTransport(lent(lambda _: httpx.Response(200)), owned=False)
    record = socks_record("auth=(b'u', b'pw')")
    socks_logger.filter(record)
    assert "pw" not in record.getMessage()


# --- SOCKS5: a real proxy ------------------------------------------------------------------------


class SocksProxy:
    """A SOCKS5 proxy (RFC 1928; user and password as RFC 1929) relaying to its targets.

    ``hang_up`` makes it close each connection right after the client's greeting. A client
    whose credentials it refuses is left to close the connection itself, as a real proxy
    would wait for it: ``open`` shows whether it did.
    """

    def __init__(self, credentials: tuple[bytes, bytes] | None, *, hang_up: bool) -> None:
        self.credentials = credentials
        self.hang_up = hang_up
        self.port = 0
        self.accepted = 0
        self.open = 0
        self.targets: list[tuple[str, int]] = []

    def url(self, userinfo: str = "") -> str:
        return f"socks5://{userinfo}{'@' if userinfo else ''}127.0.0.1:{self.port}"

    async def serve(self, client: SocketStream) -> None:
        self.accepted += 1
        self.open += 1
        try:
            async with client:
                await self._serve(client, BufferedByteReceiveStream(client))
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead):
            pass
        finally:
            self.open -= 1

    async def _serve(self, client: SocketStream, incoming: BufferedByteReceiveStream) -> None:
        _, count = await incoming.receive_exactly(2)
        await incoming.receive_exactly(count)
        if self.hang_up:
            return
        if self.credentials is None:
            await client.send(b"\x05\x00")
        else:
            await client.send(b"\x05\x02")
            _, length = await incoming.receive_exactly(2)
            user = await incoming.receive_exactly(length)
            (length,) = await incoming.receive_exactly(1)
            password = await incoming.receive_exactly(length)
            if (user, password) != self.credentials:
                await client.send(b"\x01\x01")
                while True:  # until the client hangs up (EndOfStream ends serve)
                    await incoming.receive()
            await client.send(b"\x01\x00")
        _, _, _, kind = await incoming.receive_exactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await incoming.receive_exactly(4)))
        elif kind == 3:
            (length,) = await incoming.receive_exactly(1)
            host = (await incoming.receive_exactly(length)).decode()
        else:
            host = str(ipaddress.IPv6Address(await incoming.receive_exactly(16)))
        port = int.from_bytes(await incoming.receive_exactly(2), "big")
        self.targets.append((host, port))
        async with await anyio.connect_tcp(host, port) as upstream:
            await client.send(b"\x05\x00\x00\x01" + bytes(6))
            async with anyio.create_task_group() as relay:

                async def pump(
                    source: BufferedByteReceiveStream | SocketStream, sink: SocketStream
                ) -> None:
                    with contextlib.suppress(
                        anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError
                    ):
                        while True:
                            await sink.send(await source.receive())
                    relay.cancel_scope.cancel()  # one side hung up: so does the proxy

                relay.start_soon(pump, incoming, upstream)
                relay.start_soon(pump, upstream, client)


@contextlib.asynccontextmanager
async def socks_proxy(
    credentials: tuple[bytes, bytes] | None = None, *, hang_up: bool = False
) -> AsyncIterator[SocksProxy]:
    proxy = SocksProxy(credentials, hang_up=hang_up)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        proxy.port = listener.extra(SocketAttribute.local_port)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, proxy.serve)
            yield proxy
            tasks.cancel_scope.cancel()


@pytest.mark.network
async def test_a_request_through_a_socks_proxy(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="httpcore")
    async with ReferenceServer() as server, socks_proxy((b"user", b"p-secret")) as proxy:
        async with AuraClient(server.base_url, proxy=proxy.url("user:p-secret")) as client:
            assert "p-secret" not in repr(client)
            text = await client.complete(ask("through socks"))
            assert text == default_reply(server.requests[-1])
            assert await client.complete(ask("again")) == default_reply(server.requests[-1])
        await until(lambda: proxy.open == 0)  # closing the client closed its pool
    assert proxy.accepted == 1  # the connection was kept for the second request
    assert proxy.targets == [("127.0.0.1", server.port)]
    assert "setup_socks5_connection" in caplog.text  # httpcore did log the handshake
    assert "auth=<hidden>" in caplog.text
    assert "p-secret" not in caplog.text
    # The owned pool connects through the guarded backend (httpcore logs what it returns).
    assert "connect_tcp.complete return_value=<aura_anyio._transports.httpx._GuardedStream" in (
        caplog.text
    )


@pytest.mark.network
async def test_a_socks_proxy_without_credentials() -> None:
    async with ReferenceServer() as server, socks_proxy() as proxy:
        async with AuraClient(server.base_url, proxy=proxy.url()) as client:
            assert await client.complete(HELLO) == default_reply(server.requests[-1])
    assert proxy.accepted == 1


@pytest.mark.network
async def test_a_socks_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with ReferenceServer() as server, socks_proxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with AuraClient(server.base_url) as client:
            assert await client.complete(HELLO) == default_reply(server.requests[-1])
    assert proxy.accepted == 1


@pytest.mark.network
async def test_the_socks_pool_has_no_connection_limit_of_its_own() -> None:
    """The client's own admission is the limit (httpcore#1093): httpcore's default of 10
    connections would make the 11th request wait."""
    async with ReferenceServer(fault=Fault(stall_after=0)) as server, socks_proxy() as proxy:
        transport = socks_transport(proxy.url(), verify=True, max_idle=1)
        try:
            responses: list[HttpxResponse] = []
            with anyio.fail_after(30):
                for _ in range(12):
                    responses.append(await transport.send(request(f"{server.base_url}/api/chat")))
            assert server.in_flight == 12
            assert proxy.open == 12
            for response in responses:
                await response.aclose()
            await server.wait_until(lambda: server.aborted == 12)
        finally:
            await transport.aclose()
        await until(lambda: proxy.open == 0)


@pytest.mark.network
async def test_closing_the_socks_transport_closes_its_idle_connections() -> None:
    async with ReferenceServer() as server, socks_proxy() as proxy:
        transport = socks_transport(proxy.url(), verify=True, max_idle=4)
        response = await transport.send(request(f"{server.base_url}/api/chat"))
        assert b"".join([chunk async for chunk in response])  # read to the end: kept idle
        await until(lambda: proxy.open == 1)
        await transport.aclose()
        with pytest.raises(TransportClosed, match="the transport is closed"):
            await transport.send(request(f"{server.base_url}/api/chat"))
        await until(lambda: proxy.open == 0)
        await server.wait_until(lambda: server.open_connections == 0)


@pytest.mark.network
async def test_a_proxy_refusing_the_credentials_is_not_retried_and_is_hung_up_on() -> None:
    async with ReferenceServer() as server, socks_proxy((b"user", b"right")) as proxy:
        leaked_sockets()  # what earlier tests left is theirs
        async with AuraClient(
            server.base_url, proxy=proxy.url("user:p-wrong"), max_retries=FAST_RETRIES
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.complete(HELLO)
            error = caught.value
            assert str(error) == (
                "the proxy failed: Invalid username/password; check the proxy's user name "
                "and password"
            )
            assert not error.retryable
            assert "p-wrong" not in str(error)
            del caught, error
        assert proxy.accepted == 1  # not retried
        # The client closed its connection to the proxy at once (httpcore leaves it open).
        await until(lambda: proxy.open == 0)
    assert server.requests == []
    assert leaked_sockets() == []


@pytest.mark.network
async def test_a_proxy_hanging_up_during_the_handshake() -> None:
    async with socks_proxy(hang_up=True) as proxy:
        leaked_sockets()  # what earlier tests left is theirs
        async with AuraClient("http://127.0.0.1:9/", proxy=proxy.url(), max_retries=0) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.complete(HELLO)
            # socksio's ProtocolError escapes httpcore unwrapped; the adapter maps it.
            assert str(caught.value) == (
                "the proxy failed: the SOCKS proxy handshake failed: Malformed reply"
            )
            assert caught.value.retryable
            assert isinstance(caught.value.__cause__, ProxyError)
            assert isinstance(caught.value.__cause__.__cause__, SocksProtocolError)
            del caught
        await until(lambda: proxy.open == 0)
    assert leaked_sockets() == []  # the client closed its socket too


@pytest.mark.network
async def test_a_cancelled_tls_handshake_through_a_socks_proxy_closes_the_socket() -> None:
    """httpcore closes a stream whose TLS upgrade fails on Exception only; the guarded
    backend closes it on cancellation too."""
    hello = anyio.Event()

    async def silent_tls_server(stream: SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()  # the ClientHello
                hello.set()
                while True:
                    await stream.receive()

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(SocketAttribute.local_port)
        async with socks_proxy() as proxy, anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, silent_tls_server)
            async with AuraClient(
                f"https://127.0.0.1:{port}",
                proxy=proxy.url(),
                max_retries=0,
                timeout=Timeouts(connect=60.0, read=60.0),
            ) as client:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as requests:
                        requests.start_soon(client.complete, HELLO)
                        with anyio.fail_after(10):
                            await hello.wait()
                        scope.cancel()
                await until(lambda: proxy.open == 0)  # before the client is closed
            tasks.cancel_scope.cancel()


def test_socks_transport_needs_socksio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)
    with pytest.raises(ImportError):
        socks_transport("socks5://127.0.0.1:1080", verify=True, max_idle=1)


def test_a_socks_proxy_without_socksio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)
    with pytest.raises(InvalidRequestError, match=r"install 'aura_anyio\[socks\]'") as caught:
        AuraClient(proxy="socks5://user:p-secret@127.0.0.1:1080")
    assert "socks5://***@127.0.0.1:1080" in str(caught.value)
    assert "p-secret" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_the_adapter_reads_no_private_attribute_of_another_object() -> None:
    """httpx and httpcore change their internals freely: the adapter (the owned SOCKS pool
    above all) is built from their public interfaces only."""
    source = pathlib.Path(inspect.getfile(adapter)).read_text(encoding="utf-8")
    private = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not (node.attr.startswith("__") and node.attr.endswith("__"))
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert private == []


# --- through AuraClient(http_client=...) --------------------------------------------------------


async def test_a_leaked_socks_error_from_a_lent_client_becomes_ours() -> None:
    async with lent(raising(SocksProtocolError("x"))) as http:
        async with AuraClient("https://chat.test", http_client=http, max_retries=0) as client:
            with pytest.raises(APIConnectionError, match="SOCKS proxy handshake failed"):
                await client.complete(HELLO)


async def test_an_error_body_that_breaks_still_gives_the_status_error(
    router: respx.MockRouter,
) -> None:
    router.post(URL).mock(
        side_effect=[httpx_reply("Err", httpx.ReadError("reset"), status=400, reason=b"Bad")]
    )
    async with aura_over(router) as client:
        with pytest.raises(APIError) as caught:
            await client.complete(HELLO)
    assert "400 Bad" in str(caught.value)
    assert isinstance(caught.value, APIStatusError)
    assert caught.value.body == "Err"


class FailingClose(ScriptedStream):
    async def aclose(self) -> None:
        raise RuntimeError("close failed")


@pytest.mark.parametrize(
    ("response", "text"),
    [(httpx.Response(200, text="Hello"), "Hello"), (httpx.Response(200, json="Hi"), '"Hi"')],
    ids=["text", "json"],
)
async def test_a_response_that_was_read_before_it_was_sent(
    router: respx.MockRouter, response: httpx.Response, text: str
) -> None:
    """A mock's httpx.Response(content=...) is read when built; its body still arrives.

    (respx's ``return_value=httpx.Response(200, text=...)`` is the usual way to mock httpx.)
    """
    router.post(URL).mock(return_value=response)
    async with aura_over(router, max_retries=0) as client:
        assert await client.complete(HELLO) == text


async def test_an_error_response_that_was_read_before_it_was_sent(
    router: respx.MockRouter,
) -> None:
    router.post(URL).mock(return_value=httpx.Response(400, content=b"Error"))
    async with aura_over(router, max_retries=0) as client:
        with pytest.raises(APIStatusError, match="HTTP 400 Bad Request") as caught:
            await client.complete(HELLO)
    assert caught.value.body == "Error"


async def test_a_failing_close_is_logged_not_raised(
    router: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aura_anyio")
    router.post(URL).mock(
        side_effect=[httpx.Response(200, stream=FailingClose([b"first ", b"second"]))]
    )
    async with aura_over(router) as client, client.stream(HELLO) as chunks:
        assert await chunks.__anext__() == "first "
    assert "close failed" in caplog.text


async def test_a_lent_client_keeps_its_own_pool_limits(router: respx.MockRouter) -> None:
    """The AuraClient's max_connections does not apply to a lent client: its own limits do."""
    release = anyio.Event()
    started = 0

    async def handler(req: httpx.Request) -> httpx.Response:
        nonlocal started
        started += 1
        await release.wait()
        return httpx_reply(b"ok")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), trust_env=False)
    async with http, AuraClient("https://chat.test", http_client=http, max_connections=1) as client:
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(client.complete, HELLO)
            await until(lambda: started == 3)
            release.set()

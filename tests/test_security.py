"""TLS verification, proxies and secrets, over real loopback sockets on every backend.

Proxies are real: pproxy, run in a subprocess, serves HTTP and SOCKS5 on one loopback port and
requires a user name and password. An ``http://`` proxy carries the default AnyIO transport's
``CONNECT`` tunnels; a ``socks5://`` one, the httpx adapter's SOCKS pool.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import sys
import threading
import typing

import httpx
import pytest

from aura_anyio import APIConnectionError, AuraClient, ServerError, Timeouts
from aura_anyio._transports.base import CertificateError, ProxyError
from aura_anyio.testing import Fault, ReferenceServer, default_reply

from .helpers import FAST_RETRIES, fault_row

if typing.TYPE_CHECKING:
    import ssl
    from collections.abc import Iterator

pytestmark = pytest.mark.network

HELLO = [{"role": "user", "content": "hello"}]
KEY = "sk-very-secret-key"
COOKIE = "cookie-secret-value"
PROXY_USER, PROXY_PASSWORD = "aurauser", "proxy-pa55word"
# What a CONNECT carries: the user name and password, in base64 but no less secret.
PROXY_TOKEN = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
SECRETS = (KEY, COOKIE, PROXY_PASSWORD, PROXY_TOKEN)


# TLS


@fault_row("untrusted TLS certificate")
async def test_an_untrusted_certificate_is_refused_and_not_retried(
    server_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="anyio.streams.tls")  # the server's side of it
    async with ReferenceServer(ssl_context=server_tls) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        async with AuraClient(server.base_url, max_retries=FAST_RETRIES) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.complete(HELLO)
    error = caught.value
    assert "TLS certificate verification failed" in str(error)
    assert "verify=" in str(error)
    assert error.retryable is False
    assert isinstance(error.__cause__, CertificateError)
    assert server.requests == []


async def test_a_trusted_certificate_and_verify_off(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    async with ReferenceServer(ssl_context=server_tls) as server:
        async with AuraClient(server.base_url, verify=client_tls) as client:
            trusted = await client.complete(HELLO)
        async with AuraClient(server.base_url, verify=False) as insecure:
            assert repr(insecure).endswith("verify=False)")
            unchecked = await insecure.complete(HELLO)
    assert trusted == unchecked == default_reply(server.requests[0])


def test_verify_is_checked() -> None:
    with pytest.raises(ValueError, match=r"verify must be a bool or an ssl\.SSLContext, got str"):
        AuraClient(verify="/etc/ssl/ca.pem")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verify cannot be combined with http_client"):
        AuraClient(verify=False, http_client=httpx.AsyncClient())


# Proxies


@pytest.fixture(scope="module")
def proxy_port() -> Iterator[int]:
    """Run pproxy on a free loopback port, serving HTTP and SOCKS5 with a password."""
    # pproxy asks asyncio for a loop before making one, which newer Pythons (and uvloop, which
    # it would pick up) refuse: set a plain asyncio loop first.
    launch = (
        "import asyncio, sys; sys.modules['uvloop'] = None; "
        "asyncio.set_event_loop(asyncio.new_event_loop()); "
        "from pproxy.server import main; main(sys.argv[1:])"
    )
    listen = f"http+socks5://127.0.0.1:0#{PROXY_USER}:{PROXY_PASSWORD}"
    # --auth 0: pproxy would otherwise remember a client address that once logged in.
    process = subprocess.Popen(
        [sys.executable, "-c", launch, "-l", listen, "--auth", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:
            seen.append(line)
            match = re.search(r"Serving on \S+ 127\.0\.0\.1:(\d+) by", line)
            if match:
                break
        else:
            raise RuntimeError(f"pproxy did not start: {''.join(seen)}")
        # Keep reading, so that pproxy never blocks on a full pipe.
        threading.Thread(target=seen.extend, args=(process.stdout,), daemon=True).start()
        yield int(match[1])
        assert not any(secret in line for line in seen for secret in SECRETS)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


# pproxy matches header names case-sensitively: it answers 407 to the right credentials sent
# as "proxy-authorization". These tests run through it, so they pin the usual spelling.


def proxy_url(scheme: str, port: int, password: str = PROXY_PASSWORD) -> str:
    return f"{scheme}://{PROXY_USER}:{password}@127.0.0.1:{port}"


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_replies_arrive_through_a_proxy(scheme: str, proxy_port: int) -> None:
    proxy = proxy_url(scheme, proxy_port)
    async with ReferenceServer() as server, AuraClient(server.base_url, proxy=proxy) as client:
        assert PROXY_PASSWORD not in repr(client)
        text = await client.complete(HELLO)
        async with client.stream(HELLO) as reply:
            streamed = "".join([piece async for piece in reply])
    assert text == streamed == default_reply(server.requests[0])
    assert len(server.requests) == 2


@fault_row("proxy refuses the credentials")
@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_proxy_refusing_the_credentials(scheme: str, proxy_port: int) -> None:
    async with ReferenceServer() as server:
        url = proxy_url(scheme, proxy_port, password="wrong-pa55word")
        async with AuraClient(server.base_url, proxy=url, max_retries=FAST_RETRIES) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.complete(HELLO)
    error = caught.value
    assert error.retryable is False  # the same credentials cannot do better
    assert "check the proxy's user name and password" in str(error)
    assert isinstance(error.__cause__, ProxyError)
    assert error.__cause__.refused is True
    if scheme == "http":  # the proxy's own answer to CONNECT
        assert "407 Proxy Authentication Required" in str(error)
    for shown in (str(error), repr(error), repr(error.__cause__)):
        assert "wrong-pa55word" not in shown
    assert server.requests == []  # the proxy stopped it: the traffic goes through the proxy


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_a_proxy_through_tls(
    scheme: str, proxy_port: int, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    """TLS to the origin runs inside the tunnel: the proxy sees only encrypted bytes."""
    async with ReferenceServer(ssl_context=server_tls) as server:
        proxy = proxy_url(scheme, proxy_port)
        async with AuraClient(server.base_url, proxy=proxy, verify=client_tls) as client:
            assert await client.complete(HELLO) == default_reply(server.requests[0])
            assert await client.complete(HELLO) == default_reply(server.requests[1])
    assert server.accepted_connections == 1  # one tunnel, kept for the second request


# Secrets


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_secrets_never_reach_reprs_errors_or_debug_logs(
    scheme: str, proxy_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: aura_anyio, httpx, httpcore
    failing = Fault(status=500, reason="Upstream failed", times=2)
    async with ReferenceServer(fault=failing) as server:
        client = AuraClient(
            server.base_url,
            key=KEY,
            cookies={"session": COOKIE},
            proxy=proxy_url(scheme, proxy_port),
            max_retries=FAST_RETRIES.max_retries - 1,
            timeout=Timeouts(read=5.0),
        )
        async with client:
            with pytest.raises(ServerError) as caught:
                await client.complete(HELLO)  # two 500s: one retry, logged, then the error
            text = await client.complete(HELLO)
    error = caught.value
    # The secrets did travel, where they belong: the key in the body, the cookie as a header.
    received = server.requests[-1]
    assert KEY.encode() in received.body
    assert received.headers["cookie"] == f"session={COOKIE}"
    assert text == default_reply(received)
    assert "retrying POST" in caplog.text
    if scheme == "socks5":
        assert "HTTP Request: POST" in caplog.text  # httpx's own log of each request
        # httpcore logs the handshake's arguments, credentials cut out.
        assert "setup_socks5_connection.started" in caplog.text
        assert "auth=<hidden>" in caplog.text
    else:  # the AnyIO transport: no httpx, no httpcore, so no log of theirs
        assert not any(record.name.startswith(("httpx", "httpcore")) for record in caplog.records)
    shown = [caplog.text, repr(client), str(error), repr(error), repr(error.request)]
    shown += [repr(error.__cause__), str(error.__cause__)]
    shown += [repr(record.args) for record in caplog.records]
    shown += [record.getMessage() for record in caplog.records]
    for secret in SECRETS:
        assert not any(secret in text for text in shown), secret

"""AuraClient: the chat client, on whichever transport moves its bytes."""

from __future__ import annotations

import dataclasses
import ssl
import sys
import typing
from types import MappingProxyType

import anyio

from ._cache import ResponseCache, check_cache
from ._deadlines import close_shielded
from ._endpoints import Endpoints
from ._exceptions import InvalidRequestError, RequestInfo
from ._exchange import Exchange
from ._fanout import DEFAULT_MAX_CONCURRENCY, FanOut, FanOutLimits, Requests
from ._models import DEFAULT_MODEL, ModelSpec, Timeouts
from ._numbers import is_int
from ._options import (
    build_headers,
    check_base_urls,
    check_proxy,
    redact_url,
)
from ._payload import DEFAULT_TEMPERATURE
from ._retry import DEFAULT_MAX_RETRIES, RetryPolicy
from ._stored import request_key
from ._stream import Attempts, ChatStream, complete_reply
from ._tokens import tokens_within
from ._transports.base import Request
from ._transports.choice import check_lent, choose_transport
from ._version import __version__
from ._wire import wire_named

if typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

    import httpx

    from ._messages import Messages
    from ._models import ChatRequest, ChatResult
    from ._ratelimit import Limiter
    from ._routing import Endpoint
    from ._transports.base import Transport
    from ._wire import WireName

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "AuraClient",
]

DEFAULT_BASE_URL = "https://openchat.team"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 100  # httpx's default pool size
DEFAULT_HEADERS = {
    "accept": "*/*",
    # No content coding: a compressed stream would be decoded for nothing, and a body that
    # comes compressed anyway is refused with a clear error.
    "accept-encoding": "identity",
    "content-type": "application/json",
    "user-agent": f"aura_anyio/{__version__}",
}


@typing.final
class AuraClient:
    """A client for an OpenChat web service's ``POST /api/chat``; works on asyncio and Trio.

    Use it as an async context manager (or call :meth:`aclose`); one client serves any number
    of concurrent requests over a shared connection pool.

    Args:
        base_url: The service's root URL (``/api/chat`` is appended, or on the OpenAI wire
            ``/v1/chat/completions``, or ``/chat/completions`` if it ends in ``/v1``); or a
            sequence of them, several servers of one model: each attempt goes to the one with
            the fewest in flight, a retry to another, and one that fails three attempts in a
            row (a connection error, a timeout, a 5xx) rests for 1 s, then 2, 4... up to
            60 s, until one probe succeeds there; a 429 pauses that server alone.
        key: An API key: in the body on ``/api/chat`` (an upstream key), as ``Authorization:
            Bearer`` on the OpenAI wire; a secret, never shown in ``repr`` or errors.
        proxy: A proxy URL (``http``, ``https`` or ``socks5``; SOCKS needs the ``socks``
            extra); credentials in it stay secret. By default the environment's
            (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...), as httpx and curl read it.
        verify: Check the server's TLS certificate against the system's CAs (``True``), against
            an ``ssl.SSLContext`` of yours, or not at all (``False``: insecure, and explicit).
        timeout: Limits on each stage of a reply.
        max_retries: Retries after the first attempt, or a full :class:`RetryPolicy`.
        headers: Extra request headers.
        cookies: Cookies sent with every request (a secret, like the key).
        max_response_bytes: The largest reply body accepted.
        max_connections: The most requests in flight at once to each server; more wait for
            a free one, for up to ``timeout.connect`` seconds. Applies to the client's own
            connection pool.
        wire: ``"aura"`` for openchat-ui's ``/api/chat``, or ``"openai"`` for an
            OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio, OpenChat's own),
            streamed as server-sent events.
        include_usage: On the OpenAI wire, ask for the token counts with each reply
            (``stream_options: {"include_usage": true}``); turn it off for a server that
            refuses the field.
        cache: A :class:`ResponseCache`, open, to answer requests sent before from and to
            keep whole replies in; borrowed, never opened or closed by this client.
            ``stream()`` replays a stored reply as one piece of text; ``complete()`` and the
            fan-out also send identical requests in flight at once only once.
        transport: What moves the bytes, borrowed and never closed by this client: an
            ``aura_anyio.testing.MockTransport`` in tests, say. By default the client's own
            HTTP/1.1 transport on AnyIO (through HTTP proxies with ``CONNECT``).
        http_client: An ``httpx.AsyncClient`` to borrow; it is never closed by this client,
            and its own limits apply instead of ``proxy``, ``verify`` and ``max_connections``.

    Raises:
        InvalidRequestError: An argument is invalid.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] = DEFAULT_BASE_URL,
        *,
        key: str = "",
        proxy: str | None = None,
        verify: bool | ssl.SSLContext = True,
        timeout: Timeouts = Timeouts(),  # noqa: B008 (immutable)
        max_retries: int | RetryPolicy = DEFAULT_MAX_RETRIES,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        wire: WireName = "aura",
        include_usage: bool = True,
        cache: ResponseCache | None = None,
        transport: Transport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_urls = check_base_urls(base_url)
        self._base_url = self._base_urls[0]
        if not isinstance(key, str):
            raise InvalidRequestError(f"key must be a str, got {type(key).__name__}")
        if not isinstance(timeout, Timeouts):
            raise InvalidRequestError(
                f"timeout must be a Timeouts instance, got {type(timeout).__name__}"
            )
        self._policy = (
            max_retries if isinstance(max_retries, RetryPolicy) else RetryPolicy(max_retries)
        )
        if not is_int(max_response_bytes) or max_response_bytes <= 0:
            raise InvalidRequestError(
                f"max_response_bytes must be a positive int, got {max_response_bytes!r}"
            )
        if not is_int(max_connections) or max_connections < 1:
            raise InvalidRequestError(
                f"max_connections must be an int >= 1, got {max_connections!r}"
            )
        self._max_connections = max_connections
        self._proxy = check_proxy(proxy)
        if not isinstance(verify, (bool, ssl.SSLContext)):
            raise InvalidRequestError(
                f"verify must be a bool or an ssl.SSLContext, got {type(verify).__name__}"
            )
        self._verify = verify
        check_lent(transport, http_client, proxy=self._proxy, verify=verify)
        self._key = key
        self._timeouts = timeout
        self._max_response_bytes = max_response_bytes
        self._wire = wire_named(wire, include_usage=include_usage)
        self._cache = check_cache(cache)
        self._url = self._wire.path(self._base_url)
        # A borrowed httpx client keeps its own pool limits.
        self._endpoints = Endpoints(
            self._base_urls,
            max_connections if http_client is None else sys.maxsize,
            self._wire.path,
        )
        headers_ = build_headers(DEFAULT_HEADERS, headers, cookies)
        # The wire's own headers (the key, on the OpenAI wire) win over the caller's.
        headers_.update(self._wire.headers(key))
        # One mapping for every request, never changed: the transport builds its head once.
        self._headers: Mapping[str, str] = MappingProxyType(headers_)
        self._owns_transport = transport is None
        self._transport: Transport = (
            transport
            if transport is not None
            else choose_transport(
                [self._wire.path(url) for url in self._base_urls],
                proxy=self._proxy,
                verify=verify,
                max_idle=self._max_idle,
                http_client=http_client,
            )
        )
        self._info = RequestInfo("POST", self._url)
        self._limited = http_client is None
        self._closed = False

    @property
    def _max_idle(self) -> int:
        return self._max_connections * len(self._base_urls)

    @property
    def base_url(self) -> str:
        """The service's root URL (the first, when there are several)."""
        return self._base_url

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The root URLs of the servers, in the order given."""
        return self._base_urls

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Each server's figures (``url``, ``in_flight``, ``done``, ``failed``,
        ``benched_until``), in the order the URLs were given; live, not a copy."""
        return self._endpoints.endpoints

    @property
    def timeouts(self) -> Timeouts:
        """The limits on each stage of a reply."""
        return self._timeouts

    @property
    def cache(self) -> ResponseCache | None:
        """Where whole replies are kept, if anywhere."""
        return self._cache

    @property
    def retry_policy(self) -> RetryPolicy:
        """When and how patiently requests are retried."""
        return self._policy

    def __repr__(self) -> str:
        urls = self._base_urls
        parts = [f"base_url={urls[0] if len(urls) == 1 else list(urls)!r}"]
        if self._key:
            parts.append("key=<hidden>")
        if self._proxy is not None:
            parts.append(f"proxy={redact_url(self._proxy)!r}")
        if "cookie" in self._headers:
            parts.append("cookies=<hidden>")
        if self._verify is False:
            parts.append("verify=False")
        if self._wire.name != "aura":
            parts.append(f"wire={self._wire.name!r}")
        return f"AuraClient({', '.join(parts)})"

    async def __aenter__(self) -> AuraClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, unless the transport or httpx client was borrowed.

        Idempotent; shielded from cancellation, for at most a few seconds.
        """
        if self._closed:
            return
        self._closed = True
        if self._owns_transport:
            await close_shielded(self._transport.aclose)

    def _exchange(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec,
        temperature: float,
        max_tokens: int | None,
        extra_body: Mapping[str, object] | None,
        gate: Limiter | None = None,
    ) -> Exchange:
        body = self._wire.body(
            messages,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_body=extra_body,
            key=self._key,
        )
        if self._closed:
            raise RuntimeError("this AuraClient is closed; create a new one")
        timeouts = self._timeouts
        cache = self._cache
        return Exchange(
            transport=self._transport,
            request=Request(
                "POST",
                self._url,
                self._headers,
                body,
                connect_timeout=timeouts.connect,
                read_timeout=timeouts.read,
            ),
            info=self._info,
            wire=self._wire,
            timeouts=timeouts,
            policy=self._policy,
            max_response_bytes=self._max_response_bytes,
            endpoints=self._endpoints,
            gate=gate,
            cache=cache,
            cache_key=b"" if cache is None else request_key(self._wire.name, body),
        )

    def stream(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        extra_body: Mapping[str, object] | None = None,
    ) -> ChatStream:
        """Stream a reply: ``async with client.stream(messages) as reply: async for text in reply``.

        The arguments are validated here, before any I/O. Entering the block sends the
        request (retrying connection failures, timeouts and 408/429/5xx until the first text
        arrives) and can block for as long as the timeouts allow; cancelling it, or leaving
        the block early, closes the response at once. Once text has reached the caller
        nothing is retried: a later failure raises :class:`IncompleteStreamError`, and
        ``reply.text`` keeps what arrived.

        Args:
            messages: A sequence of ``{"role", "content"}`` mappings. On the OpenAI wire
                they pass through as given: roles ``system``, ``developer``, ``user``,
                ``assistant`` and ``tool``; content a str, a list of content parts, or
                ``None`` (an assistant message with ``tool_calls``); every other field
                (``name``, ``tool_calls``, ``tool_call_id``...) unchanged.
            model: A model id from ``MODELS`` or a :class:`ModelSpec`; on the OpenAI wire,
                any model the server serves.
            temperature: Sampling temperature in [0, 2].
            max_tokens: On ``/api/chat`` the server's token limit for the conversation
                (above 768; 8192 by default). On the OpenAI wire a cap on the reply (any
                int from 1), sent only if given, so that the server's default applies.
            extra_body: More fields of the request body, OpenAI wire only (``seed``,
                ``stop``, ``top_p``, ``response_format``, ``tools``, ``tool_choice``...);
                ``model``, ``messages``, ``stream``, ``temperature`` and ``max_tokens`` are
                the client's own.

        Raises:
            InvalidRequestError: An argument is invalid (raised by this call).
            RuntimeError: The client is closed (raised by this call), or the transport or
                httpx client lent to it is (when entering).
            APIError: When entering or iterating: the request failed (see the error table).
        """
        return ChatStream(
            self._exchange(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
                extra_body=extra_body,
            )
        )

    async def complete(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec = DEFAULT_MODEL,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        extra_body: Mapping[str, object] | None = None,
    ) -> str:
        """Return the whole reply to ``messages``.

        Since the caller sees no text until the end, a reply cut part-way is retried too.
        Blocks until the reply is complete; cancellation closes the response and propagates.

        The arguments are those of :meth:`stream`; use :meth:`stream` for the reply's
        ``finish_reason``, ``usage``, ``tool_calls`` and ``reasoning``.

        Raises:
            InvalidRequestError: An argument is invalid; nothing was sent.
            RuntimeError: The client, or the transport or httpx client lent to it, is closed.
            APIError: The request failed after any retries; an
                :class:`IncompleteStreamError` keeps the last attempt's ``partial_text``.
        """
        exchange = self._exchange(
            messages,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_body=extra_body,
        )
        reply = await complete_reply(exchange, Attempts(started=anyio.current_time()))
        return reply.text

    def _fan_out_exchange(self, request: ChatRequest, gate: Limiter) -> Exchange:
        exchange = self._exchange(
            request.messages,
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            extra_body=request.extra_body,
            gate=gate,
        )
        budget = gate.tokens_per_minute
        if budget is None:
            return exchange
        # Valid by now: the body was built. On /api/chat max_tokens is the conversation's
        # limit, not the reply's, so only the OpenAI wire counts it.
        cap = request.max_tokens if self._wire.name == "openai" else None
        tokens = tokens_within(budget, request.messages, cap)
        return dataclasses.replace(exchange, tokens=tokens)

    def fan_out(
        self,
        requests: Requests,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        requests_per_second: float | None = None,
        request_timeout: float | None = None,
        tokens_per_minute: float | None = None,
        limiter: Limiter | None = None,
    ) -> FanOut:
        """Send many requests at once: ``async with client.fan_out(requests) as results:``.

        ``async for result in results`` yields a :class:`ChatResult` as each request finishes.
        The input is pulled lazily, one item per free worker, so memory stays bounded by
        ``max_concurrency`` whatever its length; results wait for the consumer (a slow loop
        slows the requests down; nothing piles up). A request's :class:`AuraError`, invalid
        input included, becomes its result's ``error`` and never stops the others; any other
        exception (from the input, say) stops the fan-out and comes out as itself, as does an
        exception raised in the caller's loop. A 429 or a ``Retry-After`` pauses every request
        until it passes. Leaving the block early cancels the requests still running and
        closes their connections.

        Args:
            requests: A sync or async iterable of :class:`ChatRequest`, message lists or
                prompt strings.
            max_concurrency: The most requests in flight at once (at most the client's
                ``max_connections`` times its number of servers).
            requests_per_second: A limit on attempts per second, retries included, with a
                burst of at most one second's worth; ``None`` for no limit.
            request_timeout: Seconds each request may take, retries included; one that takes
                longer ends with an :class:`APITimeoutError` result. ``None`` for no limit.
            tokens_per_minute: A budget of tokens a minute, for every attempt together: each
                takes its estimate (its messages' characters / 4, plus ``max_tokens`` on the
                OpenAI wire) from a bucket of one minute's worth, and the ``usage`` its reply
                reports corrects it. A request estimated above the whole budget ends with an
                :class:`InvalidRequestError` result. ``None`` for no limit.
            limiter: A :class:`Limiter` (a :class:`RateLimiter`, say) that this fan-out
                shares with others: its rate, token budget and pauses hold for all of them
                together. Instead of ``requests_per_second`` and ``tokens_per_minute``.

        Raises:
            InvalidRequestError: An argument is invalid (raised by this call).
        """
        limits = FanOutLimits(
            max_concurrency, requests_per_second, request_timeout, tokens_per_minute, limiter
        )
        return self._fan_out(requests, limits)

    def _fan_out(self, requests: Requests, limits: FanOutLimits) -> FanOut:
        """The one path of every fan-out: :meth:`fan_out`'s, :meth:`gather`'s and the
        ``aura`` command's.

        Raises:
            InvalidRequestError: ``requests`` is no input, or ``limits`` ask for more
                connections than the client has.
        """
        limits.check(requests, self._max_idle if self._limited else None)
        return FanOut(self._fan_out_exchange, requests, limits)

    async def gather(
        self,
        requests: Requests,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        requests_per_second: float | None = None,
        request_timeout: float | None = None,
        tokens_per_minute: float | None = None,
        limiter: Limiter | None = None,
    ) -> list[ChatResult]:
        """Send many requests at once and return their results in input order.

        Like :meth:`fan_out`, but it keeps every result, so memory grows with the input.
        Blocks until every request has finished; cancelling it cancels them all.

        Raises:
            InvalidRequestError: An argument is invalid; nothing was sent.
        """
        limits = FanOutLimits(
            max_concurrency, requests_per_second, request_timeout, tokens_per_minute, limiter
        )
        results: list[ChatResult] = []
        async with self._fan_out(requests, limits) as finished:
            results.extend([result async for result in finished])
        results.sort(key=lambda result: result.index)
        return results

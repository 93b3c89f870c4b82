"""Aura: a drop-in for gpt4free's ``Aura`` provider, on asyncio and Trio.

gpt4free consumes providers as async generators, so :meth:`Aura.create_async_generator` is one.
It therefore holds no cancel scope or task group across its ``yield`` (PEP 789): its deadlines
come from the client's read timeout and from deadline checks inside each read, and its
``finally`` (the ``async with`` of the stream) closes the response.
"""

from __future__ import annotations

import typing

import anyio

from ._client import DEFAULT_BASE_URL, AuraClient
from ._exceptions import InvalidRequestError
from ._models import DEFAULT_MODEL, MODELS, Timeouts
from ._numbers import is_number
from ._options import build_headers
from ._payload import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, build_payload

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Mapping

    from ._messages import Messages

__all__ = ["Aura", "WebDriver"]


# The keyword arguments gpt4free callers pass to every provider; accepted and not needed here.
_IGNORED_KWARGS = frozenset({"stream", "web_search", "images", "image", "media"})
_CLIENT_KWARGS = ("base_url", "key", "timeout", "headers", "cookies")


class WebDriver(typing.Protocol):
    """What :class:`Aura` reads from a Selenium-like driver: its cookies and user agent."""

    def get_cookies(self) -> list[dict[str, object]]:
        """Return the browser's cookies as dicts with ``name`` and ``value``."""
        ...

    def execute_script(self, script: str, /) -> object:
        """Run JavaScript in the page and return its result."""
        ...


def _webdriver_args(webdriver: WebDriver) -> tuple[dict[str, str], dict[str, str]]:
    cookies = {
        str(cookie["name"]): str(cookie["value"])
        for cookie in webdriver.get_cookies()
        if "name" in cookie and "value" in cookie
    }
    user_agent = webdriver.execute_script("return navigator.userAgent")
    headers = {"user-agent": user_agent} if isinstance(user_agent, str) and user_agent else {}
    return cookies, headers


def _timeouts(timeout: object) -> Timeouts:
    if timeout is None:
        return Timeouts()
    if isinstance(timeout, Timeouts):
        return timeout
    if is_number(timeout):
        # gpt4free's timeout bounds the whole call; each stage gets the same bound.
        return Timeouts(connect=timeout, read=timeout, total=timeout)
    raise InvalidRequestError(f"timeout must be seconds or a Timeouts, got {timeout!r}")


@typing.final
class Aura:
    """The gpt4free-compatible provider for the OpenChat web service ("Aura")."""

    url = DEFAULT_BASE_URL
    working = True
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = DEFAULT_MODEL
    models: typing.ClassVar[list[str]] = list(MODELS)

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        proxy: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        webdriver: WebDriver | None = None,
        **kwargs: object,
    ) -> AsyncGenerator[str, None]:
        """Stream the reply to ``messages`` as text pieces, as gpt4free's ``Aura`` did.

        Works on asyncio and Trio; close it deterministically with ``contextlib.aclosing``,
        which closes the response at once.

        Args:
            model: A model id; ``""`` means :attr:`default_model`.
            messages: A sequence of ``{"role", "content"}`` mappings.
            proxy: A proxy URL (``http``, ``https`` or ``socks5``).
            temperature: Sampling temperature in [0, 2].
            max_tokens: The server's token limit for the conversation (above 768; 8192 if
                ``None``). With a ``client`` on the OpenAI wire, a cap on the reply, sent only
                if given.
            webdriver: A Selenium-like driver whose cookies and user agent are borrowed.
            **kwargs: ``base_url`` (a URL, or a list of several servers of one model),
                ``key`` (or ``api_key``), ``timeout`` (seconds, or
                :class:`Timeouts`), ``headers``, ``cookies``, or ``client`` (an
                :class:`AuraClient` to reuse, which is not closed and brings its own
                settings). gpt4free's ``stream``, ``web_search``, ``images``, ``image`` and
                ``media`` are accepted and ignored.

        Raises:
            InvalidRequestError: An argument is invalid; raised at the first ``anext``,
                before any I/O.
            APIError: The request failed.
        """
        model = model or cls.default_model
        client = kwargs.pop("client", None)
        settings = {name: kwargs.pop(name) for name in _CLIENT_KWARGS if name in kwargs}
        if "api_key" in kwargs:
            settings.setdefault("key", kwargs.pop("api_key"))
        unknown = sorted(set(kwargs) - _IGNORED_KWARGS)
        if unknown:
            raise InvalidRequestError(f"unexpected keyword arguments: {', '.join(unknown)}")
        if client is not None:
            if not isinstance(client, AuraClient):
                raise InvalidRequestError(
                    f"client must be an AuraClient, got {type(client).__name__}"
                )
            given = sorted(settings) + [
                name for name, value in (("proxy", proxy), ("webdriver", webdriver)) if value
            ]
            if given:
                raise InvalidRequestError(
                    f"client= brings its own settings; do not also pass {', '.join(given)}"
                )
        owned: AuraClient | None = None
        if client is None:
            # Validate everything before any I/O, the webdriver's included (a client of the
            # caller's checks the request with its own wire, before any I/O too).
            build_payload(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            )
            headers = settings.get("headers")
            cookies = settings.get("cookies")
            build_headers({}, headers, cookies)  # reject bad values before the webdriver's I/O
            if webdriver is not None:
                # Selenium calls block on their own HTTP round trips: keep them off the loop.
                driver_cookies, driver_headers = await anyio.to_thread.run_sync(
                    _webdriver_args, webdriver
                )
                # What the caller passed wins over what the browser had.
                cookies = {**driver_cookies, **typing.cast("Mapping[str, str]", cookies or {})}
                headers = {**driver_headers, **typing.cast("Mapping[str, str]", headers or {})}
            client = owned = AuraClient(
                typing.cast("str | list[str]", settings.get("base_url", cls.url)),
                key=typing.cast("str", settings.get("key", "")),
                proxy=proxy,
                timeout=_timeouts(settings.get("timeout")),
                headers=typing.cast("Mapping[str, str] | None", headers),
                cookies=typing.cast("Mapping[str, str] | None", cookies),
            )
        try:
            async with client.stream(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
            ) as reply:
                async for text in reply:
                    yield text
        finally:
            if owned is not None:
                await owned.aclose()

"""Aura: a drop-in for gpt4free's ``Aura`` provider, on asyncio and Trio.

gpt4free consumes providers as async generators, so :meth:`Aura.create_async_generator` is one.
It therefore holds no cancel scope or task group across its ``yield`` (PEP 789): its deadlines
come from the client's read timeout and from deadline checks inside each read, and its
``finally`` (the ``async with`` of the stream) closes the response.

The rest of gpt4free's provider contract (``create_completion``, ``create_async``,
``get_dict``, ``params``) is here too, without depending on gpt4free, as the seed's base
classes gave it; :mod:`aura_anyio.g4f` makes the same provider one of gpt4free's own classes.
"""

from __future__ import annotations

import inspect
import typing
from contextlib import aclosing

import anyio
import anyio.from_thread

from ._client import DEFAULT_BASE_URL, AuraClient
from ._exceptions import InvalidRequestError
from ._models import DEFAULT_MODEL, MODELS, Timeouts
from ._numbers import is_number
from ._options import build_headers
from ._payload import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, build_payload
from ._stops import StopScanner, stop_sequences

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator, Mapping, Sequence

    from ._messages import Messages

__all__ = ["Aura", "Provider", "WebDriver"]


# The keyword arguments gpt4free's entry points pass to every provider (its Client passes the
# provider itself, and a conversation it has cached); accepted and not needed here.
_IGNORED_KWARGS = frozenset({"web_search", "images", "image", "media", "provider", "conversation"})
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


def _describe(provider: type[Provider]) -> str:
    """gpt4free's ``params``: the arguments of ``create_async_generator``, one a line."""
    lines: list[str] = []
    for name, parameter in inspect.signature(provider.create_async_generator).parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        line = f"\n    {name}: {parameter.annotation}"  # all annotated (as strings)
        if parameter.default is not inspect.Parameter.empty:
            default = parameter.default
            line += f' = "{default}"' if isinstance(default, str) else f" = {default}"
        lines.append(line + ",")
    return f"g4f.Provider.{provider.__name__} supports: ({''.join(lines)}\n)"


class _Generate(typing.Protocol):
    """:meth:`Aura.create_async_generator`, called with keywords its caller did not check."""

    def __call__(
        self, model: str, messages: Messages, /, **kwargs: object
    ) -> AsyncGenerator[str, None]: ...


def _check_stream(stream: object) -> bool:
    if not isinstance(stream, bool):
        raise InvalidRequestError(f"stream must be True or False, got {stream!r}")
    return stream


class Provider:
    """gpt4free's provider contract over an :class:`AuraClient`; :class:`Aura` is its name.

    :class:`Aura` and ``aura_anyio.g4f.Aura`` (which adds gpt4free's base classes) are final
    subclasses of this one.
    """

    url = DEFAULT_BASE_URL
    working = True
    needs_auth = False
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = DEFAULT_MODEL
    models: typing.ClassVar[list[str]] = list(MODELS)
    params: typing.ClassVar[str]
    """The arguments :meth:`create_async_generator` takes, as gpt4free lists them."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.params = _describe(cls)

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: Messages,
        proxy: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int | None = None,
        webdriver: WebDriver | None = None,
        stream: bool = True,
        stop: str | Sequence[str] | None = None,
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
            stream: ``True`` yields the text as it arrives; ``False`` yields the whole reply
                once, and may then retry a reply cut part-way, as
                :meth:`AuraClient.complete` does.
            stop: A string, or a list of them, that ends the reply: the text stops where
                the first of them appears (it is not included) and the response is closed.
                Cut here, on the client, so it works on both wires.
            **kwargs: ``base_url`` (a URL, or a list of several servers of one model),
                ``key`` (or ``api_key``), ``timeout`` (seconds, or
                :class:`Timeouts`), ``headers``, ``cookies``, or ``client`` (an
                :class:`AuraClient` to reuse, which is not closed and brings its own
                settings). gpt4free's ``web_search``, ``images``, ``image`` and ``media``
                are accepted and ignored.

        Raises:
            InvalidRequestError: An argument is invalid; raised at the first ``anext``,
                before any I/O.
            APIError: The request failed.
        """
        model = model or cls.default_model
        streaming = _check_stream(stream)
        stops = stop_sequences(stop)
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
        scanner = StopScanner(stops)
        try:
            if not streaming:
                text = await client.complete(
                    messages, model=model, temperature=temperature, max_tokens=max_tokens
                )
                text = scanner.feed(text) + scanner.flush()
                if text:
                    yield text
                return
            async with client.stream(
                messages,
                model=model,
                temperature=temperature,
                max_tokens=max_tokens,
            ) as reply:
                async for piece in reply:
                    text = scanner.feed(piece) if stops else piece
                    if text:
                        yield text
                    if scanner.stopped:
                        return  # leaving the block closes the response
            rest = scanner.flush()
            if rest:
                yield rest
        finally:
            if owned is not None:
                await owned.aclose()

    @classmethod
    async def create_async(cls, model: str, messages: Messages, **kwargs: object) -> str:
        """Return the whole reply, as gpt4free's ``create_async`` does.

        Takes the arguments of :meth:`create_async_generator`; ``stream`` is ignored, since
        the caller sees nothing until the end (so a reply cut part-way may be retried).
        """
        kwargs["stream"] = False
        generate = typing.cast("_Generate", cls.create_async_generator)
        async with aclosing(generate(model, messages, **kwargs)) as pieces:
            return "".join([text async for text in pieces])

    @classmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool = False, **kwargs: object
    ) -> Generator[str, None, None]:
        """gpt4free's synchronous entry point: a generator of text pieces.

        The reply is read on an event loop of its own (asyncio, in a thread of its own), so
        it works from any thread, one where another event loop runs included. Each piece is
        read only when asked for; closing the generator, or dropping it half-way, closes
        the response. Takes the arguments of :meth:`create_async_generator` but ``client``.

        Raises:
            InvalidRequestError: ``client`` was passed: an :class:`AuraClient` serves the loop
                it runs on, not this one (raised by this call); any other invalid argument
                is raised at the first ``next``, before any I/O.
        """
        if "client" in kwargs:
            raise InvalidRequestError(
                "create_completion reads the reply on an event loop of its own, and an "
                "AuraClient serves the loop it runs on: pass base_url and the client's other "
                "settings instead, or iterate create_async_generator on your loop"
            )
        generate = typing.cast("_Generate", cls.create_async_generator)
        return _in_a_thread(generate(model, messages, stream=stream, **kwargs))

    @classmethod
    def get_dict(cls) -> dict[str, str]:
        """The provider as gpt4free describes it: its ``name`` and ``url``."""
        return {"name": cls.__name__, "url": cls.url}


@typing.final
class Aura(Provider):
    """The gpt4free-compatible provider for the OpenChat web service ("Aura")."""


_END = object()


async def _next(pieces: AsyncGenerator[str, None]) -> str | object:
    # StopAsyncIteration cannot cross the portal as an exception of a coroutine.
    try:
        return await pieces.__anext__()
    except StopAsyncIteration:
        return _END


def _in_a_thread(pieces: AsyncGenerator[str, None]) -> Generator[str, None, None]:
    """Iterate ``pieces`` on an event loop in a thread of its own, one piece per ``next``."""
    with anyio.from_thread.start_blocking_portal() as portal:
        pending = None
        try:
            while True:
                pending = portal.start_task_soon(_next, pieces)
                text = pending.result()
                if text is _END:
                    return
                yield typing.cast("str", text)
        finally:
            if pending is None or pending.done():
                portal.call(pieces.aclose)
            # Else this thread was interrupted while a read was under way: leaving the
            # portal cancels it, and the cancellation closes the response.

"""The provider driven by gpt4free's own entry points, as a gpt4free user calls it.

``nox -s tests`` runs this against gpt4free 0.3.3.3 (the last release that shipped ``Aura``);
``nox -s g4f_newest`` against the newest release tried. Nothing here leaves the machine: the
suite's DNS guard (tests/offline.py) refuses lookups beyond loopback, and each test checks that
gpt4free asked for none, at import or at call time.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import typing
import warnings

import pytest

from aura_anyio import Aura as PlainAura
from aura_anyio.testing import ReferenceServer

from .helpers import reply_to, served_in_thread
from .offline import GUARD

# gpt4free is imported after the guard's count, to check that importing it looks up nothing.
_REFUSED_BEFORE_IMPORT = len(GUARD.refused)
import g4f  # noqa: E402
import g4f.client  # noqa: E402
import g4f.cookies  # noqa: E402
import g4f.debug  # noqa: E402
from g4f.Provider import RetryProvider  # noqa: E402
from g4f.providers import base_provider  # noqa: E402

from aura_anyio.g4f import Aura  # noqa: E402

_REFUSED_AT_IMPORT = GUARD.refused[_REFUSED_BEFORE_IMPORT:]

if typing.TYPE_CHECKING:
    import pathlib
    from collections.abc import Iterator

PROMPT = "hello from g4f"
MESSAGES = [{"role": "user", "content": PROMPT}]
REPLY = reply_to(PROMPT)

#: gpt4free 8 counts each provider's successes on its class (``provider.live``), which only
#: its own subclasses have: there its Client takes ``aura_anyio.g4f.Aura``.
CLIENT_TAKES_THE_PLAIN_PROVIDER = not hasattr(base_provider.BaseProvider, "live")
BOTH = [
    pytest.param(PlainAura, id="aura_anyio.Aura"),
    pytest.param(Aura, id="aura_anyio.g4f.Aura"),
]
CLIENT_PROVIDERS = [
    pytest.param(
        PlainAura,
        id="aura_anyio.Aura",
        marks=pytest.mark.skipif(
            not CLIENT_TAKES_THE_PLAIN_PROVIDER,
            reason="this gpt4free's Client needs one of its own providers: aura_anyio.g4f.Aura",
        ),
    ),
    pytest.param(Aura, id="aura_anyio.g4f.Aura"),
]


@pytest.fixture(autouse=True)
def _g4f_stays_here(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> Iterator[None]:
    """No version check, gpt4free's files in a temporary directory, and no lookup refused."""
    monkeypatch.setattr(g4f.debug, "version_check", False)
    config = getattr(g4f.cookies, "CookiesConfig", None)
    if config is not None and hasattr(config, "cookies_dir"):
        monkeypatch.setattr(config, "cookies_dir", str(tmp_path))  # gpt4free 8 writes usage
    breaker = getattr(g4f.Provider, "ProviderCircuitBreaker", None)
    if breaker is not None:  # gpt4free 8 benches a provider that failed: not across tests
        monkeypatch.setattr(breaker, "_failures", {})
        monkeypatch.setattr(breaker, "_cooldowns", {})
    before = len(GUARD.refused)
    yield
    assert GUARD.refused[before:] == []


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """A reference server on a loop of its own (gpt4free's sync calls run loops of theirs),
    whose chunks come 10 ms apart, so that a streamed reply comes in several pieces."""
    with served_in_thread(ReferenceServer(delay=0.01)) as running:
        yield running


class Broken(base_provider.AsyncGeneratorProvider):  # type: ignore[misc]
    """A gpt4free provider that always fails."""

    url = "http://127.0.0.1:9"
    working = True

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: object, **kwargs: object
    ) -> typing.AsyncIterator[str]:
        raise RuntimeError("this provider is down")
        yield ""  # type: ignore[unreachable]  # (makes this an async generator)


def test_importing_g4f_looked_nothing_up() -> None:
    assert GUARD.installed
    assert _REFUSED_AT_IMPORT == []


def test_the_guard_refuses_what_the_version_check_would_look_up() -> None:
    with pytest.raises(OSError, match=r"the tests stay offline: no lookup of 'pypi\.org'"):
        socket.getaddrinfo("pypi.org", 443)
    assert GUARD.refused[-1] == "pypi.org"
    del GUARD.refused[-1]  # asked for on purpose


@pytest.mark.parametrize("provider", BOTH)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_chat_completion_create(
    server: ReferenceServer, provider: type[PlainAura], *, stream: bool
) -> None:
    result = g4f.ChatCompletion.create(
        "", MESSAGES, provider=provider, stream=stream, base_url=server.base_url
    )
    if stream:
        pieces = list(result)
        assert all(isinstance(piece, str) for piece in pieces)
        assert "".join(pieces) == REPLY
        assert len(pieces) > 1
    else:
        assert result == REPLY
    assert server.requests[-1].model_id == Aura.default_model  # "" is the default


@pytest.mark.network
@pytest.mark.loops("asyncio")  # gpt4free's async entry points are asyncio's
@pytest.mark.parametrize("provider", BOTH)
async def test_chat_completion_create_async_whole(
    server: ReferenceServer, provider: type[PlainAura]
) -> None:
    text = await g4f.ChatCompletion.create_async(
        "openchat_3.6", MESSAGES, provider=provider, base_url=server.base_url
    )
    assert text == REPLY


@pytest.mark.network
@pytest.mark.loops("asyncio")
async def test_chat_completion_create_async_streamed(server: ReferenceServer) -> None:
    pieces = g4f.ChatCompletion.create_async(
        "", MESSAGES, provider=Aura, stream=True, base_url=server.base_url
    )
    if inspect.isawaitable(pieces):  # pragma: no cover (a coroutine in some releases)
        pieces = await pieces
    assert "".join([piece async for piece in pieces]) == REPLY


@pytest.mark.parametrize("provider", CLIENT_PROVIDERS)
def test_the_client_whole(server: ReferenceServer, provider: type[PlainAura]) -> None:
    completion = g4f.client.Client(provider=provider).chat.completions.create(
        messages=MESSAGES, model="", base_url=server.base_url
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"


def test_the_client_streamed(server: ReferenceServer) -> None:
    chunks = g4f.client.Client(provider=Aura).chat.completions.create(
        messages=MESSAGES, model="", stream=True, base_url=server.base_url
    )
    texts = [chunk.choices[0].delta.content for chunk in chunks]
    assert "".join(text for text in texts if text) == REPLY
    assert len(texts) > 2


async def async_create(**kwargs: object) -> typing.Any:
    with warnings.catch_warnings():
        # 0.3.3.3's AsyncClient says it is deprecated; gpt4free 8's is its own class again.
        warnings.simplefilter("ignore", DeprecationWarning)
        completions = g4f.client.AsyncClient(provider=Aura).chat.completions
    create = getattr(completions, "async_create", completions.create)  # 0.3.3.3: async_create
    result = create(messages=MESSAGES, model="", **kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.network
@pytest.mark.loops("asyncio")
async def test_the_async_client(server: ReferenceServer) -> None:
    completion = await async_create(base_url=server.base_url)
    assert completion.choices[0].message.content == REPLY
    chunks = await async_create(stream=True, base_url=server.base_url)
    texts = [chunk.choices[0].delta.content async for chunk in chunks]
    assert "".join(text for text in texts if text) == REPLY


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_retry_provider_falls_back_from_a_failing_provider(
    server: ReferenceServer, *, stream: bool
) -> None:
    retry = RetryProvider([Broken, Aura], shuffle=False)
    result = g4f.ChatCompletion.create(
        "", MESSAGES, provider=retry, stream=stream, base_url=server.base_url
    )
    # gpt4free 8 streams its own records (which provider answered) among the text.
    assert "".join(piece for piece in result if isinstance(piece, str)) == REPLY
    assert retry.last_provider is Aura


@pytest.mark.network
@pytest.mark.loops("asyncio")
async def test_a_retry_provider_falls_back_asynchronously(server: ReferenceServer) -> None:
    retry = RetryProvider([Broken, Aura], shuffle=False)
    text = await g4f.ChatCompletion.create_async(
        "", MESSAGES, provider=retry, base_url=server.base_url
    )
    assert text == REPLY


@pytest.mark.network
async def test_create_async_generator_on_every_backend() -> None:
    async with ReferenceServer() as server:
        generator = Aura.create_async_generator("", MESSAGES, base_url=server.base_url)
        async with contextlib.aclosing(generator) as pieces:
            assert "".join([piece async for piece in pieces]) == REPLY
        assert await Aura.create_async("", MESSAGES, base_url=server.base_url) == REPLY


def test_the_provider_describes_itself() -> None:
    assert issubclass(Aura, base_provider.AsyncGeneratorProvider)
    method = inspect.getattr_static(Aura, "create_async_generator")
    assert method is inspect.getattr_static(PlainAura, "create_async_generator")
    assert Aura.get_dict() == {"name": "Aura", "url": "https://openchat.team"}
    assert Aura.params == PlainAura.params
    assert Aura.supports_stream
    assert not Aura.needs_auth

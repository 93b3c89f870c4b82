"""What the ``aura`` command's subcommands share: exit codes, the failures they end with, and
the options and client of every subcommand that talks to a server (click).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import typing

import anyio
import click

from .._client import DEFAULT_BASE_URL, AuraClient
from .._exceptions import InvalidRequestError
from .._models import DEFAULT_MAX_TOKENS, Timeouts
from .._options import build_headers
from .._wire import WIRES
from .batch import until_signalled

if typing.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from click.decorators import FC

    from .._cache import ResponseCache
    from .._wire import WireName

__all__ = [
    "BACKENDS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "Connection",
    "Failed",
    "Interrupted",
    "base_url_option",
    "connection_options",
    "extra_body_option",
    "header_option",
    "max_tokens_option",
    "parse_extra_body",
    "timeout_option",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
BACKENDS = ("asyncio", "trio")


class Failed(Exception):
    """The command failed: one line on stderr, and exit code 1 (2 for bad input)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the command: exit code 130."""


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """The options every subcommand that talks to a server shares."""

    base_url: tuple[str, ...]
    retries: int
    backend: str
    wire: WireName = "aura"
    timeout: Timeouts = Timeouts()  # noqa: RUF009 (immutable)
    headers: tuple[tuple[str, str], ...] = ()

    def client(self, concurrency: int = 1, cache: ResponseCache | None = None) -> AuraClient:
        try:
            urls = self.base_url
            return AuraClient(
                urls[0] if len(urls) == 1 else list(urls),
                key=os.environ.get("AURA_KEY", ""),
                max_retries=self.retries,
                max_connections=max(100, concurrency),
                wire=self.wire,
                cache=cache,
                timeout=self.timeout,
                headers=dict(self.headers),
            )
        except InvalidRequestError as exc:
            raise Failed(str(exc), EXIT_USAGE) from None

    def run(self, job: Callable[[], Awaitable[object]], *, use_uvloop: bool = False) -> None:
        """Run ``job`` on the chosen backend (asyncio on uvloop's loop with ``use_uvloop``);
        SIGINT and SIGTERM cancel it."""
        if self.backend == "trio" and importlib.util.find_spec("trio") is None:
            raise Failed("--backend trio needs trio: pip install 'aura_anyio[trio]'", EXIT_USAGE)
        if use_uvloop and importlib.util.find_spec("uvloop") is None:
            raise Failed("--backend uvloop needs uvloop: pip install uvloop", EXIT_USAGE)
        options = {"use_uvloop": True} if use_uvloop else {}

        async def main() -> None:
            async def whole() -> None:
                await job()

            if await until_signalled(whole):
                raise Interrupted

        anyio.run(main, backend=self.backend, backend_options=options)


def _urls(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Every URL of the repeated option, each value also split at commas (``AURA_BASE_URL``)."""
    urls = tuple(url.strip() for value in values for url in value.split(","))
    return tuple(url for url in urls if url) or (DEFAULT_BASE_URL,)


def _headers(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """``--header "Name: value"``, repeatable, as pairs, checked as the client checks them."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(f"give it as 'Name: value', got {value!r}")
        pairs.append((name.strip(), text.strip()))
    try:
        build_headers({}, dict(pairs))
    except InvalidRequestError as exc:
        raise click.BadParameter(str(exc)) from None
    return tuple(pairs)


def _read_timeout(_ctx: click.Context, _param: click.Parameter, value: float) -> Timeouts:
    """The ``--timeout`` option as the client's timeouts, checked before anything is sent."""
    try:
        return Timeouts(read=value)
    except InvalidRequestError:
        raise click.BadParameter(f"must be a positive number of seconds, got {value!r}") from None


#: ``--base-url``, repeatable: the servers to send to.
base_url_option = click.option(
    "--base-url",
    multiple=True,
    callback=_urls,
    envvar="AURA_BASE_URL",
    default=(DEFAULT_BASE_URL,),
    show_default=True,
    help="The service's root URL (or AURA_BASE_URL). Give it more than once (or "
    "AURA_BASE_URL comma-separated) for several servers of one model: requests "
    "go to the least busy, and a failing one rests.",
)
#: ``--timeout``: the read timeout, as the client's ``Timeouts``.
timeout_option = click.option(
    "--timeout",
    type=float,
    default=Timeouts().read,
    show_default=True,
    callback=_read_timeout,
    metavar="SECONDS",
    help="The longest silence between two pieces of a reply (the read timeout); "
    "a reply cut by one is an error, retried while no text has come.",
)


#: ``--header "Name: value"``, repeatable: more request headers.
header_option = click.option(
    "--header",
    "headers",
    multiple=True,
    callback=_headers,
    metavar="'NAME: VALUE'",
    help="A request header to send too; give it more than once for several. The key "
    "belongs in AURA_KEY, where other users cannot read it.",
)


def connection_options(command: FC) -> FC:
    """Add the options every subcommand that talks to a server takes."""
    for option in reversed(
        [
            base_url_option,
            click.option(
                "--retries",
                type=click.IntRange(min=0),
                default=2,
                show_default=True,
                help="Retries after a failed attempt.",
            ),
            timeout_option,
            header_option,
            click.option(
                "--backend", type=click.Choice(BACKENDS), default="asyncio", show_default=True
            ),
            click.option(
                "--wire",
                type=click.Choice(list(WIRES)),
                envvar="AURA_WIRE",
                default="aura",
                show_default=True,
                help="aura: an OpenChat /api/chat service; openai: an OpenAI-compatible server "
                "(/v1/chat/completions). Or AURA_WIRE.",
            ),
        ]
    ):
        command = option(command)
    return command


def extra_body_option(command: FC) -> FC:
    """Add ``--extra-body``."""
    return click.option(
        "--extra-body",
        metavar="JSON",
        help="More request body fields, as a JSON object (--wire openai only): "
        '\'{"seed": 1, "stop": ["\\n"]}\', say.',
    )(command)


def max_tokens_option(command: FC) -> FC:
    """Add ``--max-tokens``."""
    return click.option(
        "--max-tokens",
        type=int,
        help=f"aura: the conversation's token limit (default {DEFAULT_MAX_TOKENS}); openai: "
        "a cap on the reply (default: the server's).",
    )(command)


def parse_extra_body(text: str | None, wire: WireName) -> Mapping[str, object] | None:
    """The ``--extra-body`` option's JSON object, or ``None``; :class:`Failed` if it is bad."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Failed(f"--extra-body is not valid JSON ({exc})", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise Failed("--extra-body must be a JSON object of body fields", EXIT_USAGE)
    if wire != "openai":
        raise Failed(
            "--extra-body needs --wire openai: openchat-ui's /api/chat reads no other field",
            EXIT_USAGE,
        )
    return typing.cast("dict[str, object]", value)

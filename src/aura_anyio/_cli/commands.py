"""The ``aura`` command's subcommands: chat, batch, serve and demo (click and rich); bench is
``bench``'s.

Exit codes: 0 success; 1 a request failed (some, for a batch); 2 a usage error; 130
interrupted by SIGINT or SIGTERM. Errors are one line on stderr, never a traceback; the key
comes from ``AURA_KEY``, never from the command line, where other users could read it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import typing
from pathlib import Path

import anyio
import click

from .._cache import ResponseCache
from .._exceptions import AuraError, CacheError, InvalidRequestError
from .._fanout import FanOutLimits
from .._models import DEFAULT_MODEL, DEFAULT_TEMPERATURE, Timeouts
from .batch import BatchStats, run_batch, summary_line, summary_of
from .bench import bench
from .progress import BatchProgress
from .shared import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Connection,
    Failed,
    Interrupted,
    connection_options,
    extra_body_option,
    max_tokens_option,
    parse_extra_body,
)

if typing.TYPE_CHECKING:
    from .._wire import WireName

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "Failed",
    "Interrupted",
    "cli",
    "finish_batch",
    "main",
    "silence_stdout",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Stream chat replies from an OpenChat /api/chat service or an OpenAI-compatible server
    (--wire openai), one prompt or a whole batch.

    The API key, if the service needs one, comes from the AURA_KEY environment variable.
    """


@cli.command()
@click.argument("prompt", nargs=-1, required=True)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--system", help="A system message sent before the prompt.")
@click.option("--temperature", type=float, default=DEFAULT_TEMPERATURE, show_default=True)
@max_tokens_option
@extra_body_option
@connection_options
def chat(
    prompt: tuple[str, ...],
    model: str,
    system: str | None,
    temperature: float,
    max_tokens: int | None,
    extra_body: str | None,
    base_url: tuple[str, ...],
    retries: int,
    timeout: Timeouts,
    headers: tuple[tuple[str, str], ...],
    backend: str,
    wire: WireName,  # click.Choice(list(WIRES)) lets no other name through
) -> None:
    """Stream the reply to PROMPT (its words joined by spaces; - reads it from stdin).

    Standard output carries the reply and nothing else.
    """
    # echo and heredocs end the prompt with a line break that is not part of it.
    text = sys.stdin.read().rstrip("\r\n") if prompt == ("-",) else " ".join(prompt)
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": text})
    extra = parse_extra_body(extra_body, wire)
    connection = Connection(base_url, retries, backend, wire, timeout, headers)
    out = _lenient_stdout()

    async def job() -> None:
        async with connection.client() as client:
            try:
                reply = client.stream(
                    messages,
                    model=model,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    extra_body=extra,
                )
            except InvalidRequestError as exc:
                raise Failed(str(exc), EXIT_USAGE) from None
            try:
                async with reply:
                    async for piece in reply:
                        out.write(piece)
                        out.flush()
            except AuraError as exc:
                _end_line(out, reply.text)
                raise Failed(str(exc)) from None
        _end_line(out, reply.text)

    connection.run(job)


def _lenient_stdout() -> typing.TextIO:
    """stdout, replacing what its encoding cannot carry (a terminal's, say) instead of failing."""
    stream = sys.stdout
    reconfigure = getattr(stream, "reconfigure", None)  # a TextIOWrapper's; not a test's stand-in
    if reconfigure is not None:
        reconfigure(errors="replace")
    return stream


def _end_line(out: typing.TextIO, text: str) -> None:
    # A terminal gets its prompt back on a line of its own; a pipe gets the reply exactly.
    if out.isatty() and text and not text.endswith("\n"):
        out.write("\n")
        out.flush()


cli.add_command(bench)


@cli.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--rps", type=click.FloatRange(min=0, min_open=True), help="Requests per second.")
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds each request may take, retries included.",
)
@click.option(
    "--tpm",
    type=click.FloatRange(min=0, min_open=True),
    help="Tokens per minute, estimated (4 characters a token, plus max_tokens on the OpenAI "
    "wire) and corrected by the usage replies report.",
)
@click.option("--resume", is_flag=True, help="Skip ids that already have an ok row in OUTPUT.")
@click.option("--no-progress", is_flag=True, help="No progress bar, even on a terminal.")
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An SQLite file of whole replies (made if new): a request sent before, by any run, "
    "is answered from it, and each new reply is kept. Several batches may share one.",
)
@click.option(
    "--summary-json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the summary (counts, tokens, requests/s, latency p50/p95) as JSON here.",
)
@extra_body_option
@connection_options
def batch(
    source: Path,
    output: Path,
    concurrency: int,
    rps: float | None,
    request_timeout: float | None,
    tpm: float | None,
    resume: bool,
    no_progress: bool,
    cache_path: Path | None,
    summary_json: Path | None,
    extra_body: str | None,
    base_url: tuple[str, ...],
    retries: int,
    timeout: Timeouts,
    headers: tuple[tuple[str, str], ...],
    backend: str,
    wire: WireName,  # click.Choice(list(WIRES)) lets no other name through
) -> None:
    """Send every request of SOURCE (JSON lines) and append each result to OUTPUT.

    A line is {"id": ..., "messages": [...]} or {"id": ..., "prompt": "...", "system": "..."},
    with optional model, temperature, max_tokens and extra_body (over --extra-body); id
    defaults to the line number. Each result is one JSON line of OUTPUT the moment it is done.
    Exit code 0 if every request succeeded, 1 if some failed, 130 if interrupted (every
    finished result is in OUTPUT: run again with --resume to finish).
    """
    try:  # before anything is written: nan and inf pass click's ranges
        FanOutLimits(concurrency, rps, request_timeout, tpm)
    except InvalidRequestError as exc:
        message = str(exc).replace(" or None", "")
        for name, option in (
            ("requests_per_second", "--rps"),
            ("request_timeout", "--request-timeout"),
            ("tokens_per_minute", "--tpm"),
        ):
            message = message.replace(name, option)
        raise Failed(message, EXIT_USAGE) from None
    extra = parse_extra_body(extra_body, wire)
    if output.exists() and not resume:
        raise Failed(
            f"{output} exists; pass --resume to continue that batch, or choose another file",
            EXIT_USAGE,
        )
    connection = Connection(base_url, retries, backend, wire, timeout, headers)
    stats = BatchStats()  # filled in as the batch goes, so an interrupted one has its counts

    async def job() -> None:
        async with contextlib.AsyncExitStack() as stack:
            cache = None
            if cache_path is not None:
                try:
                    cache = await stack.enter_async_context(ResponseCache(cache_path))
                except CacheError as exc:
                    raise Failed(str(exc), EXIT_USAGE) from None
            client = await stack.enter_async_context(connection.client(concurrency, cache))
            with BatchProgress(enabled=not no_progress) as progress:
                await run_batch(
                    client,
                    source,
                    output,
                    concurrency=concurrency,
                    requests_per_second=rps,
                    request_timeout=request_timeout,
                    tokens_per_minute=tpm,
                    resume=resume,
                    extra_body=extra,
                    stats=stats,
                    on_result=progress.update,
                )

    try:
        connection.run(job)
    finally:
        finish_batch(stats, output, sys.exc_info()[1], summary_json)


def finish_batch(
    stats: BatchStats,
    output: Path,
    error: BaseException | None,
    summary_json: Path | None = None,
) -> None:
    """Say how a batch ended, on stderr (and as JSON in ``summary_json``); raise
    :class:`Failed` if some requests failed.

    ``error`` is what stopped the batch, if anything did; it propagates on its own, and only
    an interruption gets the counts too.
    """
    interrupted = isinstance(error, Interrupted)
    if error is not None and not interrupted:
        return  # the error says it all, on its own line
    summary = summary_of(stats, time.monotonic() - stats.started)
    click.echo(f"aura: {'interrupted: ' if interrupted else ''}{summary_line(summary)}", err=True)
    if summary_json is not None:
        try:
            summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise Failed(f"cannot write the summary to {summary_json}: {exc}") from None
    if interrupted:
        click.echo(f"aura: every finished result is in {output}; --resume finishes it", err=True)
    elif stats.failed:
        raise Failed(f"{stats.failed} of {stats.done} requests failed; see {output}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--delay-ms",
    "--itl-ms",
    "delay_ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Pause between chunks: the inter-token latency.",
)
@click.option(
    "--ttft-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Pause between the head and the first chunk: the time to first token.",
)
@click.option(
    "--tokens",
    type=click.IntRange(min=1),
    help="Answer every request with this many tokens (a word and a space each; on the OpenAI "
    "route max_tokens caps them) instead of the usual reply.",
)
def serve(host: str, port: int, delay_ms: float, ttft_ms: float, tokens: int | None) -> None:
    """Run the reference server until SIGINT or SIGTERM; print its URL on stdout.

    --ttft-ms, --itl-ms and --tokens pace it as a model server, a known truth for a benchmark
    to measure.
    """
    from ..testing import Fault, ReferenceServer

    for option, value in (("--itl-ms", delay_ms), ("--ttft-ms", ttft_ms)):
        if not math.isfinite(value):
            raise Failed(f"{option} must be a finite number of milliseconds", EXIT_USAGE)
    pieces = [f"t{index} " for index in range(tokens or 0)]
    fault = Fault(first_chunk_after=ttft_ms / 1000) if ttft_ms else None

    async def job() -> None:
        async with ReferenceServer(
            host=host,
            port=port,
            delay=delay_ms / 1000,
            fault=fault,
            reply=(lambda _request: pieces) if pieces else None,
        ) as server:
            click.echo(server.base_url)
            await anyio.sleep_forever()

    try:
        Connection((), 0, "asyncio").run(job)
    except Interrupted:
        pass  # the way to stop a server: not a failure
    except OSError as exc:
        raise Failed(f"cannot serve on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE) from None


@cli.command()
def demo() -> None:
    """Start the reference server, stream one reply, then a batch of 1,000 prompts."""
    from .demo import run_demo

    Connection((), 0, "asyncio").run(run_demo)


def main(argv: list[str] | None = None) -> int:
    """Run the ``aura`` command with ``argv`` (default: the process's); return the exit code."""
    try:
        cli.main(args=argv, prog_name="aura", standalone_mode=False)
    except Failed as exc:
        click.echo(f"aura: error: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:  # a usage error: click shows the usage too
        exc.show()
        return exc.exit_code
    except (Interrupted, click.Abort):  # click's Abort: Ctrl-C before the handler was set
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a reader that left (aura chat ... | head): no traceback
        silence_stdout()
        return EXIT_FAILED
    return 0


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit fails no more."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

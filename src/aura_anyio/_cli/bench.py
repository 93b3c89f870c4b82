"""``aura bench``: load a server with requests on a schedule and report what it served, as
vLLM's ``bench serve`` does (DESIGN section 11).

Each request is started at its scheduled time in a task of its own and waits there for a free
slot (``--max-concurrency``), so its latencies count from when it was due (``_bench.report``).
The client does not retry: a benchmark reports failures, it does not hide them. The client's
own CPU is measured over each run, and a warning says when it was too busy to trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import random
import time
import typing
from pathlib import Path

import anyio
import click

from .._bench.report import Outcome, parse_rates, parse_slo, report, table
from .._bench.schedule import ARRIVALS, arrival_times, check_schedule
from .._bench.stats import check_percentiles
from .._exceptions import AuraError, InvalidRequestError
from .._models import DEFAULT_MODEL, ChatRequest, Timeouts
from .._tokens import estimate_tokens
from .._wire import WIRES
from .jsonl import BadLine, parse_line
from .plot import check_plotting, plot_runs
from .progress import BenchProgress
from .shared import (
    EXIT_USAGE,
    Connection,
    Failed,
    base_url_option,
    header_option,
    timeout_option,
)

if typing.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from .._bench.schedule import Arrival
    from .._client import AuraClient
    from .._wire import WireName

__all__ = [
    "CPU_WARNING",
    "bench",
    "file_prompts",
    "prompts",
    "run_rate",
    "say",
    "synthetic_prompts",
]

#: Past this share of one core the client is the bottleneck, and the figures understate the
#: server.
CPU_WARNING = 80.0
# A run shorter than this is too short to tell the client's CPU share from noise.
CPU_WARNING_AFTER = 1.0
# The clock of every figure: uvloop's loop time ticks in whole milliseconds, too coarse for
# gaps of a few ms between tokens.
_now = time.perf_counter
# Words for synthetic prompts: about one token each.
_WORDS = "the of and to in is it you that was for on are with as his they be at one".split()  # noqa: SIM905 (a line, not twenty)


# How many places a synthetic prompt may start from in the draw of words.
_STRETCH = 4096


def synthetic_prompts(input_tokens: int, seed: int) -> Iterator[ChatRequest]:
    """Endless prompts of about ``input_tokens`` words each, different from one another, the
    same for a seed."""
    draw = random.Random(seed)
    length = max(1, input_tokens - 1)
    # Each prompt is a stretch of one long draw of words, from a place drawn at random: one
    # draw a prompt, not one a word, for a client that makes its prompts as it goes.
    words = draw.choices(_WORDS, k=length + _STRETCH)
    index = 0
    while True:
        at = draw.randrange(_STRETCH)
        text = " ".join(words[at : at + length])
        yield ChatRequest([{"role": "user", "content": f"{index} {text}"}], id=index)
        index += 1


def prompts(
    pool: list[ChatRequest] | None,
    input_tokens: int,
    seed: int,
    extra_body: Mapping[str, object] | None = None,
) -> Iterable[ChatRequest]:
    """The requests of a run: ``pool`` over and over, else synthetic prompts; each with
    ``extra_body``'s fields over its own, if given."""
    source = itertools.cycle(pool) if pool is not None else synthetic_prompts(input_tokens, seed)
    if not extra_body:
        return source
    return (
        dataclasses.replace(request, extra_body={**(request.extra_body or {}), **extra_body})
        for request in source
    )


def file_prompts(path: Path) -> list[ChatRequest]:
    """The requests of a batch file (``aura batch``'s line format); :class:`Failed` if a line
    is not one, or there are none."""
    requests: list[ChatRequest] = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, text in enumerate(lines, start=1):
            item = parse_line(text, number)
            if isinstance(item, BadLine):
                raise Failed(f"--prompts: {item.reason}", EXIT_USAGE)
            if item is not None:
                requests.append(item)
    if not requests:
        raise Failed(f"--prompts: {path} has no requests", EXIT_USAGE)
    return requests


async def run_rate(
    client: AuraClient,
    requests: Iterable[ChatRequest],
    times: Iterable[float] | None,
    *,
    max_concurrency: int | None,
    max_tokens: int | None,
    model: str,
    until: float | None = None,
    due_at_start: bool = False,
    live: BenchProgress | None = None,
) -> tuple[list[Outcome], float]:
    """Send ``requests``, each at its time in ``times`` (seconds from the start); return what
    each did and the run's duration.

    A request due while every slot is taken waits for one, and that wait counts in its
    latencies. With ``times`` ``None`` (``max_concurrency`` is then required), each slot
    sends a request as soon as its last one ends: each is due then, for ``until`` seconds, as
    fast as the slots allow with no queue; or, with ``due_at_start``, every request is due at
    the start, and the wait for a slot counts. Requests are sent until ``requests``,
    ``times`` or ``until`` ends. ``live``, if given, is told of each request as it is sent and
    as it ends.
    """
    outcomes: list[Outcome] = []

    async def measure(request: ChatRequest, due: float) -> None:
        if live is not None:
            live.sent()
        outcome = await _measure(client, request, due, model, max_tokens)
        outcomes.append(outcome)
        if live is not None:
            live.ended(outcome)

    start = _now()
    ends = math.inf if until is None else start + until
    if times is None:
        assert max_concurrency is not None, "slots that send in turn need max_concurrency"
        # A task per slot, not per request: the client's own cost per request is what
        # lets it measure a fast server (no task to start, no limiter to take).
        source = iter(requests)

        async def slot() -> None:
            for request in source:  # shared: each request goes to one slot
                now = _now()
                if now >= ends:
                    break
                await measure(request, start if due_at_start else now)

        async with anyio.create_task_group() as slots:
            for _ in range(max_concurrency):
                slots.start_soon(slot)
        return outcomes, _now() - start
    limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None

    async def send(request: ChatRequest, due: float) -> None:
        async with limiter if limiter is not None else contextlib.nullcontext():
            await measure(request, due)

    async with anyio.create_task_group() as task_group:
        for request, offset in zip(requests, times, strict=False):  # either may end
            due = start + offset
            if due >= ends:
                break
            # The loop's timer may wake a little early by this clock: never send before.
            while (wait := due - _now()) > 0:  # noqa: ASYNC110 (a clock, not an event)
                await anyio.sleep(wait)
            task_group.start_soon(send, request, due)
    return outcomes, _now() - start


async def _measure(
    client: AuraClient, request: ChatRequest, due: float, model: str, max_tokens: int | None
) -> Outcome:
    started = _now()
    first: float | None = None
    last = started
    gaps: list[float] = []
    events = 0
    try:
        async with client.stream(
            request.messages,
            model=request.model if request.model != DEFAULT_MODEL else model,
            max_tokens=request.max_tokens if request.max_tokens is not None else max_tokens,
            extra_body=request.extra_body,
        ) as reply:
            async for _ in reply:
                now = _now()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
                # Events that came in one read arrived together: the gaps between them are
                # nought, as vLLM's client times them, not one gap for all of them.
                seen, events = events, reply.text_events
                gaps.extend(itertools.repeat(0.0, events - seen - 1))
    except AuraError as exc:
        return Outcome(due, started, first, _now(), error=type(exc).__name__)
    ended = _now()
    usage = reply.usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    if prompt_tokens is None:  # the wire sent no count: estimate it, only then
        prompt_tokens = estimate_tokens(request.messages, None)
    return Outcome(
        due,
        started,
        first,
        ended,
        tuple(gaps),
        prompt_tokens,
        usage.get("completion_tokens", events),
    )


@click.command()
@base_url_option
@click.option("--wire", type=click.Choice(list(WIRES)), default="openai", show_default=True)
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option("--num-prompts", type=click.IntRange(min=1), help="Requests per run [100].")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Send requests for this many seconds per run, instead of --num-prompts.",
)
@click.option(
    "--request-rate",
    default="inf",
    show_default=True,
    help="Requests a second, or inf. A comma list is a sweep: one run per rate. With "
    "--num-prompts, inf makes every request due at once (they queue for the slots, and "
    "their latencies count the wait); with --duration, a request is due whenever a slot "
    "frees (no queue).",
)
@click.option("--arrival", type=click.Choice(ARRIVALS), default="poisson", show_default=True)
@click.option(
    "--burstiness",
    type=float,
    default=1.0,
    show_default=True,
    help="Gamma arrivals' shape: below 1 burstier, above 1 steadier (--arrival gamma).",
)
@click.option("--max-concurrency", type=click.IntRange(min=1), help="Requests in flight at most.")
@click.option(
    "--prompts",
    "prompts_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Requests in aura batch's JSONL format, used in turn (over again if fewer).",
)
@click.option(
    "--input-tokens",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Synthetic prompts of about this many tokens (without --prompts).",
)
@click.option(
    "--output-tokens",
    type=click.IntRange(min=1),
    help="Sent as max_tokens (--wire openai): the reply's length at most.",
)
@click.option(
    "--ignore-eos",
    is_flag=True,
    help="Ask the server to write --output-tokens whatever the model says (ignore_eos, as "
    "vLLM's bench sends it; --wire openai): replies of one length.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--num-warmups",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Requests sent first, at --max-concurrency, and not counted: the connections open "
    "and the server warm before the first run.",
)
@click.option("--slo", help="Limits for goodput, in ms: ttft_ms=500,tpot_ms=50,e2el_ms=3000.")
@click.option("--percentiles", default="99", show_default=True, help="Comma-separated.")
@click.option(
    "--backend",
    type=click.Choice(["asyncio", "uvloop", "trio"]),
    default="asyncio",
    show_default=True,
)
@timeout_option
@header_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append one JSON object per run (vLLM's keys) to this file.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw each run's TTFT and TPOT (median and --percentiles) against its throughput "
    "to this PNG (or .svg, .pdf): for a sweep. Needs matplotlib (the plot extra).",
)
@click.option("--no-progress", is_flag=True, help="No live figures, even on a terminal.")
def bench(
    base_url: tuple[str, ...],
    wire: WireName,
    model: str,
    num_prompts: int | None,
    duration: float | None,
    request_rate: str,
    arrival: Arrival,
    burstiness: float,
    max_concurrency: int | None,
    prompts_path: Path | None,
    input_tokens: int,
    output_tokens: int | None,
    ignore_eos: bool,
    seed: int,
    num_warmups: int,
    slo: str | None,
    percentiles: str,
    backend: str,
    timeout: Timeouts,
    headers: tuple[tuple[str, str], ...],
    output: Path | None,
    plot: Path | None,
    no_progress: bool,
) -> None:
    """Load a server with requests on a schedule and report what it served, as vLLM's
    bench serve does: TTFT, TPOT, ITL and end-to-end latency from each request's scheduled
    time, the time queued in the client, throughput and goodput.

    The table goes to stderr; --output appends the figures as JSON. Exit code 1 if any
    request failed.
    """
    try:
        rates = parse_rates(request_rate)
        for rate in rates:
            check_schedule(rate, arrival, burstiness)
        limits = parse_slo(slo)
        wanted = _percentiles(percentiles)
    except InvalidRequestError as exc:
        raise Failed(str(exc), EXIT_USAGE) from None
    if num_prompts is not None and duration is not None:
        raise Failed("give --num-prompts or --duration, not both", EXIT_USAGE)
    if duration is not None and math.inf in rates and max_concurrency is None:
        raise Failed("--duration with --request-rate inf needs --max-concurrency", EXIT_USAGE)
    if wire == "aura" and output_tokens is not None:
        raise Failed("--output-tokens needs --wire openai: /api/chat has no cap", EXIT_USAGE)
    if wire == "aura" and ignore_eos:
        raise Failed("--ignore-eos needs --wire openai: /api/chat reads no such field", EXIT_USAGE)
    extra_body = {"ignore_eos": True} if ignore_eos else None
    if plot is not None:
        check_plotting()
    pool = file_prompts(prompts_path) if prompts_path is not None else None
    count = num_prompts if num_prompts is not None else (None if duration else 100)
    connection = Connection(
        base_url, 0, "asyncio" if backend == "uvloop" else backend, wire, timeout, headers
    )
    failed = 0
    runs: list[dict[str, object]] = []

    async def job() -> None:
        nonlocal failed
        async with connection.client(concurrency=max_concurrency or 1000) as client:
            if num_warmups:  # other prompts: a server that caches prefixes gains nothing
                warm = prompts(pool, input_tokens, seed + 1, extra_body)
                warm = itertools.islice(warm, num_warmups)
                await run_rate(
                    client,
                    list(warm),
                    None if max_concurrency else itertools.repeat(0.0),
                    due_at_start=True,
                    max_concurrency=max_concurrency,
                    max_tokens=output_tokens,
                    model=model,
                )
            for rate in rates:
                requests = prompts(pool, input_tokens, seed, extra_body)
                if count is not None:  # made before the run, as vLLM does, off its clock
                    requests = list(itertools.islice(requests, count))
                # At an inf rate with slots, each slot sends in turn (every request due at
                # the start, or for a duration as each slot frees); otherwise on a schedule.
                times: Iterable[float] | None = None
                if rate != math.inf or max_concurrency is None:
                    times = arrival_times(rate, arrival=arrival, burstiness=burstiness, seed=seed)
                    if count is not None:
                        times = itertools.islice(times, count)
                label = f"rate {'inf' if rate == math.inf else f'{rate:g}'}"
                cpu = time.process_time()
                with BenchProgress(label, count, enabled=not no_progress) as live:
                    outcomes, took = await run_rate(
                        client,
                        requests,
                        times,
                        max_concurrency=max_concurrency,
                        max_tokens=output_tokens,
                        model=model,
                        until=duration,
                        due_at_start=duration is None,
                        live=live,
                    )
                share = 100 * (time.process_time() - cpu) / took if took > 0 else 0.0
                figures = report(
                    outcomes,
                    duration=took,
                    request_rate=rate,
                    max_concurrency=max_concurrency,
                    percentiles=wanted,
                    slo=limits,
                    client_cpu_percent=round(share, 1),
                )
                say(figures, wanted, output)
                runs.append(figures)
                failed += typing.cast("int", figures["failed"])

    try:
        connection.run(job, use_uvloop=backend == "uvloop")
    finally:
        if plot is not None and runs:  # the runs done before an interruption are drawn too
            plot_runs(runs, wanted, plot)
    if failed:
        raise Failed(f"{failed} requests failed; their error types are in the figures")


def _percentiles(text: str) -> list[float]:
    """``--percentiles 50,90,99``; :class:`InvalidRequestError` naming the option."""
    try:
        wanted = [float(part) for part in text.split(",")]
    except ValueError:
        raise InvalidRequestError(
            f"--percentiles takes numbers from 0 to 100, comma-separated; got {text!r}"
        ) from None
    check_percentiles(wanted)
    return wanted


def say(figures: dict[str, object], percentiles: Sequence[float], output: Path | None) -> None:
    """Show one run's figures on stderr, warn if the client was too busy to trust them, and
    append them to ``output`` as a JSON line."""
    click.echo(table(figures, percentiles), err=True)
    share = typing.cast("float", figures["client_cpu_percent"])
    if share > CPU_WARNING and typing.cast("float", figures["duration"]) >= CPU_WARNING_AFTER:
        click.echo(
            f"aura: warning: the client used {share:.0f}% of a core, so these figures "
            "understate the server; use fewer streams per process, --backend uvloop, or "
            "several processes",
            err=True,
        )
    if output is not None:
        with output.open("a", encoding="utf-8") as file:
            file.write(json.dumps(figures) + "\n")

"""What a benchmark run measured, as vLLM's ``bench serve`` reports it; pure, no I/O.

Every latency counts from the request's *scheduled* time, so the time it waited in the client
for a free slot (``queue``) is part of its TTFT and E2EL, as a user of the server would feel it,
and is also reported alone. ITL is the gap between two events carrying text as they arrived
(those that came in one read, nought); TPOT is (E2EL - TTFT) / (output tokens - 1); the output
tokens are the server's ``usage`` count, else the events counted.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections import Counter

from .._exceptions import InvalidRequestError
from .._numbers import is_number
from .stats import summary

if typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["MEASURES", "SLO_MEASURES", "Outcome", "parse_rates", "parse_slo", "report", "table"]

#: The measures reported, each as mean, median, std and percentiles, in milliseconds.
MEASURES = ("ttft", "tpot", "itl", "e2el", "queue")
#: The measures an SLO may bound (``--slo ttft_ms=500,tpot_ms=50``).
SLO_MEASURES = ("ttft", "tpot", "e2el")


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a run, on the event loop's clock (seconds).

    Attributes:
        scheduled: When it was due.
        started: When it had a slot and was sent.
        first: When its first text arrived; ``None`` if none did.
        end: When it ended, whole or failed.
        gaps: The gaps between its events carrying text, in order.
        input_tokens: Its prompt's tokens (the server's count, else an estimate).
        output_tokens: Its reply's tokens (the server's count, else the events).
        error: The type of the error it ended with; ``None`` if it succeeded.
    """

    scheduled: float
    started: float
    first: float | None
    end: float
    gaps: tuple[float, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        """Seconds from when it was due to its first text."""
        return None if self.first is None else self.first - self.scheduled

    @property
    def e2el(self) -> float:
        """Seconds from when it was due to its end."""
        return self.end - self.scheduled

    @property
    def tpot(self) -> float | None:
        """Seconds per output token after the first; ``None`` for fewer than two."""
        ttft = self.ttft
        if ttft is None or self.output_tokens < 2:
            return None
        return (self.e2el - ttft) / (self.output_tokens - 1)


def parse_rates(text: str) -> list[float]:
    """``--request-rate``: a number of requests a second, ``inf``, or a comma list of them
    (a sweep, one run each).

    Raises:
        InvalidRequestError: A rate is not a positive number or ``inf``.
    """
    rates: list[float] = []
    for part in text.split(","):
        try:
            rate = float(part)
        except ValueError:
            rate = math.nan
        if math.isnan(rate) or rate <= 0:
            raise InvalidRequestError(
                f"--request-rate takes positive numbers or inf, comma-separated; got {part!r}"
            )
        rates.append(rate)
    return rates


def parse_slo(text: str | None) -> dict[str, float]:
    """``--slo ttft_ms=500,tpot_ms=50,e2el_ms=2000``: the most each measure may take, in ms.

    Raises:
        InvalidRequestError: A part is not ``NAME_ms=NUMBER`` with a known name and a
            positive number.
    """
    if text is None:
        return {}
    limits: dict[str, float] = {}
    known = ", ".join(f"{name}_ms" for name in SLO_MEASURES)
    for part in text.split(","):
        name, _, value = part.partition("=")
        measure = name.strip().removesuffix("_ms")
        try:
            limit = float(value)
        except ValueError:
            limit = math.nan
        if not name.strip().endswith("_ms") or measure not in SLO_MEASURES:
            raise InvalidRequestError(f"--slo names {known}; got {part!r}")
        if not is_number(limit) or limit <= 0:
            raise InvalidRequestError(f"--slo limits are positive milliseconds; got {part!r}")
        limits[measure] = limit
    return limits


def report(
    outcomes: Sequence[Outcome],
    *,
    duration: float,
    request_rate: float,
    max_concurrency: int | None,
    percentiles: Sequence[float],
    slo: Mapping[str, float],
    client_cpu_percent: float,
) -> dict[str, object]:
    """One run's figures, with vLLM's keys (times in ms, throughputs a second)."""
    done = [outcome for outcome in outcomes if outcome.error is None]
    input_tokens = sum(outcome.input_tokens for outcome in done)
    output_tokens = sum(outcome.output_tokens for outcome in done)
    per_second = 1 / duration if duration > 0 else 0.0
    figures: dict[str, object] = {
        "completed": len(done),
        "failed": len(outcomes) - len(done),
        "duration": duration,
        "request_rate": "inf" if request_rate == math.inf else request_rate,
        "max_concurrency": max_concurrency,
        "total_input_tokens": input_tokens,
        "total_output_tokens": output_tokens,
        "request_throughput": len(done) * per_second,
        "output_throughput": output_tokens * per_second,
        "total_token_throughput": (input_tokens + output_tokens) * per_second,
        "request_goodput": (
            sum(_meets(outcome, slo) for outcome in done) * per_second if slo else None
        ),
    }
    samples: dict[str, list[float]] = {
        "ttft": [value for outcome in done if (value := outcome.ttft) is not None],
        "tpot": [value for outcome in done if (value := outcome.tpot) is not None],
        "itl": [gap for outcome in done for gap in outcome.gaps],
        "e2el": [outcome.e2el for outcome in done],
        "queue": [outcome.started - outcome.scheduled for outcome in done],
    }
    for measure in MEASURES:
        stats = summary([value * 1000 for value in samples[measure]], percentiles)
        for name, value in stats.items():  # mean, median, std, p99...: vLLM's keys
            figures[f"{name}_{measure}_ms"] = value
    figures["client_cpu_percent"] = client_cpu_percent
    errors = Counter(outcome.error for outcome in outcomes if outcome.error is not None)
    figures["errors"] = dict(sorted(errors.items()))
    return figures


def _meets(outcome: Outcome, slo: Mapping[str, float]) -> bool:
    measured = {"ttft": outcome.ttft, "tpot": outcome.tpot, "e2el": outcome.e2el}
    for measure, limit in slo.items():
        value = measured[measure]
        if value is not None and value * 1000 > limit:
            return False
    return True


def table(figures: Mapping[str, object], percentiles: Sequence[float]) -> str:
    """The figures as vLLM prints them: a title, then one ``name: value`` line each."""
    lines = ["{:=^60}".format(" Serving Benchmark Result ")]

    def row(label: str, value: object) -> None:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        lines.append(f"{label:<44}{text:>16}")

    row("Request rate (req/s):", figures["request_rate"])
    row("Max concurrency:", figures["max_concurrency"] or "none")
    row("Successful requests:", figures["completed"])
    row("Failed requests:", figures["failed"])
    row("Benchmark duration (s):", figures["duration"])
    row("Total input tokens:", figures["total_input_tokens"])
    row("Total generated tokens:", figures["total_output_tokens"])
    row("Request throughput (req/s):", figures["request_throughput"])
    if figures["request_goodput"] is not None:
        row("Request goodput (req/s):", figures["request_goodput"])
    row("Output token throughput (tok/s):", figures["output_throughput"])
    row("Total token throughput (tok/s):", figures["total_token_throughput"])
    row("Client CPU (% of a core):", figures["client_cpu_percent"])
    errors = typing.cast("dict[str, int]", figures["errors"])
    if errors:
        row("Errors:", ", ".join(f"{count} {kind}" for kind, count in errors.items()))
    titles = {
        "ttft": "Time to First Token",
        "tpot": "Time per Output Token (excl. 1st token)",
        "itl": "Inter-token Latency",
        "e2el": "End-to-end Latency",
        "queue": "Time Queued in the Client",
    }
    for measure in MEASURES:
        lines.append("{:-^60}".format(f" {titles[measure]} "))
        short = measure.upper()
        row(f"Mean {short} (ms):", figures[f"mean_{measure}_ms"])
        row(f"Median {short} (ms):", figures[f"median_{measure}_ms"])
        for percent in percentiles:
            label = str(int(percent)) if float(percent).is_integer() else str(percent)
            row(f"P{label} {short} (ms):", figures[f"p{label}_{measure}_ms"])
    lines.append("=" * 60)
    return "\n".join(lines)

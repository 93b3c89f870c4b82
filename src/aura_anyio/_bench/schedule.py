"""When each request of a benchmark is due: arrival times at a mean rate; pure, no I/O.

As vLLM's ``bench serve`` draws them, so that runs of the two tools are comparable: the gaps
between arrivals are drawn from a gamma distribution of shape ``burstiness`` and mean
``1 / rate`` (a shape of 1 is a Poisson process, below 1 burstier, above 1 steadier);
``constant`` spaces them evenly; an infinite rate sends every request at once. The gaps come
from a ``random.Random(seed)`` of the schedule's own, so a seed gives the same schedule on
every machine and Python.
"""

from __future__ import annotations

import itertools
import math
import random
import typing

from .._exceptions import InvalidRequestError
from .._numbers import is_number

if typing.TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ARRIVALS", "Arrival", "arrival_times", "check_schedule"]

Arrival = typing.Literal["poisson", "constant", "gamma"]
ARRIVALS: tuple[Arrival, ...] = ("poisson", "constant", "gamma")


def check_schedule(rate: float, arrival: str, burstiness: float) -> None:
    """Check a schedule's settings.

    Raises:
        InvalidRequestError: ``rate`` is not a positive number (``math.inf`` included),
            ``arrival`` is not one of :data:`ARRIVALS`, or ``burstiness`` is not a positive
            finite number (or not 1 for ``poisson``).
    """
    if not (is_number(rate) or rate == math.inf) or rate <= 0:
        raise InvalidRequestError(f"request_rate must be a positive number or inf, got {rate!r}")
    if arrival not in ARRIVALS:
        raise InvalidRequestError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if not is_number(burstiness) or burstiness <= 0:
        raise InvalidRequestError(
            f"burstiness must be a positive finite number, got {burstiness!r}"
        )
    if arrival == "poisson" and burstiness != 1:
        raise InvalidRequestError(
            "burstiness shapes gamma arrivals (poisson is gamma with burstiness 1); "
            f"use arrival 'gamma' for burstiness {burstiness!r}"
        )


def arrival_times(
    rate: float,
    *,
    arrival: Arrival = "poisson",
    burstiness: float = 1.0,
    seed: int = 0,
) -> Iterator[float]:
    """Seconds from the start at which each request is due, in order, without end.

    Take as many as there are requests (``itertools.islice``), or while they are below a
    duration (``itertools.takewhile``).

    Raises:
        InvalidRequestError: A setting is invalid (see :func:`check_schedule`), raised by
            this call rather than on the first ``next()``.
    """
    check_schedule(rate, arrival, burstiness)
    if rate == math.inf:
        return itertools.repeat(0.0)
    if arrival == "constant":
        return (index / rate for index in itertools.count())
    return _gamma_times(rate, 1.0 if arrival == "poisson" else burstiness, random.Random(seed))


def _gamma_times(rate: float, shape: float, draw: random.Random) -> Iterator[float]:
    # The mean gap is shape * scale = 1 / rate, whatever the shape.
    scale = 1.0 / (rate * shape)
    at = 0.0
    while True:
        yield at
        at += draw.gammavariate(shape, scale)

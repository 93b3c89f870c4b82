"""The statistics ``aura bench`` reports for each measure (TTFT, TPOT, ITL, E2EL, queue);
pure, no I/O.

The same definitions as NumPy's, which vLLM's ``bench serve`` uses, so that the two tools'
figures mean the same: the mean, the median (the mean of the two middle values of an even
count), the population standard deviation (``ddof=0``) and percentiles by linear
interpolation between the closest ranks (NumPy's default ``"linear"`` method). Computed here
rather than with NumPy, which the client does not otherwise need.
"""

from __future__ import annotations

import math
import typing

from .._exceptions import InvalidRequestError
from .._numbers import is_number

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["check_percentiles", "percentile", "percentile_label", "summary"]


def check_percentiles(percentiles: Sequence[float]) -> None:
    """Check that each percentile is a number from 0 to 100 and there is at least one.

    Raises:
        InvalidRequestError: One is not.
    """
    if not percentiles:
        raise InvalidRequestError("percentiles must name at least one percentile")
    for value in percentiles:
        if not is_number(value) or not 0 <= value <= 100:
            raise InvalidRequestError(f"a percentile must be from 0 to 100, got {value!r}")


def percentile(ordered: Sequence[float], percent: float) -> float:
    """The ``percent`` percentile of ``ordered`` (sorted, not empty), interpolated linearly
    between the closest ranks, as ``numpy.percentile`` does by default."""
    position = (len(ordered) - 1) * percent / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    low, high = ordered[below], ordered[above]
    return low + (high - low) * (position - below)


def summary(values: Sequence[float], percentiles: Sequence[float]) -> dict[str, float]:
    """``mean``, ``median``, ``std`` and ``p{P}`` for each percentile P of ``values``; every
    figure is 0.0 when there are no values, as vLLM reports a measure nothing gave."""
    check_percentiles(percentiles)
    names = [f"p{percentile_label(percent)}" for percent in percentiles]
    if not values:
        return dict.fromkeys(["mean", "median", "std", *names], 0.0)
    ordered = sorted(values)
    mean = math.fsum(ordered) / len(ordered)
    variance = math.fsum((value - mean) ** 2 for value in ordered) / len(ordered)
    figures = {"mean": mean, "median": percentile(ordered, 50), "std": math.sqrt(variance)}
    for name, percent in zip(names, percentiles, strict=True):
        figures[name] = percentile(ordered, percent)
    return figures


def percentile_label(percent: float) -> str:
    """How a key names a percentile, as vLLM's do: ``99``, ``99.9`` (``p99_ttft_ms``)."""
    return str(int(percent)) if float(percent).is_integer() else str(percent)

"""``aura bench --plot``: a sweep's latencies against the throughput each rate reached, drawn
with matplotlib (the ``plot`` extra), imported only when a plot is asked for."""

from __future__ import annotations

import importlib.util
import typing

from .._bench.stats import percentile_label
from .shared import EXIT_USAGE, Failed

if typing.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ["check_plotting", "plot_runs"]

# What each panel shows: the measure's key and its title.
_PANELS = (("ttft", "Time to first token"), ("tpot", "Time per output token"))


def check_plotting() -> None:
    """:class:`Failed` (a usage error) unless matplotlib can be imported: said before the
    run, not after it."""
    if importlib.util.find_spec("matplotlib") is None:
        raise Failed("--plot needs matplotlib: pip install 'aura_anyio[plot]'", EXIT_USAGE)


def plot_runs(
    runs: Sequence[Mapping[str, object]], percentiles: Sequence[float], path: Path
) -> None:
    """Draw, for each run of a sweep, its median and percentile TTFT and TPOT against its
    output throughput, each point labelled with its request rate; write it to ``path``
    (PNG, SVG or PDF, by the suffix)."""
    # The Figure class alone, not pyplot: no global state, no GUI backend to choose.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    throughput = [typing.cast("float", run["output_throughput"]) for run in runs]
    rates = [_rate(run["request_rate"]) for run in runs]
    # A 50th percentile is the median: drawn once.
    others = (f"p{percentile_label(percent)}" for percent in percentiles if percent != 50)
    names = ["median", *others]
    for axes, (measure, title) in zip(figure.subplots(1, 2), _PANELS, strict=True):
        for name in names:
            values = [typing.cast("float", run[f"{name}_{measure}_ms"]) for run in runs]
            axes.plot(throughput, values, marker="o", label=name)
            if name == "median":
                for x, y, rate in zip(throughput, values, rates, strict=True):
                    axes.annotate(rate, (x, y), textcoords="offset points", xytext=(4, 4))
        axes.set_title(title)
        axes.set_xlabel("Output throughput (tokens/s)")
        axes.set_ylabel("ms")
        axes.grid(alpha=0.3)
        axes.legend()
    # matplotlib types these two's **kwargs as unknown: the call itself is typed.
    title = "aura bench: latency against throughput, one point per request rate"
    figure.suptitle(title)  # pyright: ignore[reportUnknownMemberType]
    figure.savefig(path, dpi=110)  # pyright: ignore[reportUnknownMemberType]


def _rate(rate: object) -> str:
    return f"{rate:g}/s" if isinstance(rate, float | int) else f"{rate}/s"

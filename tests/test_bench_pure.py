"""The pure parts of ``aura bench``: the arrival schedule (its order, its seed, its mean rate)
and the statistics, checked against NumPy on random data."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings, strategies as st

from aura_anyio import InvalidRequestError
from aura_anyio._bench.schedule import Arrival, arrival_times
from aura_anyio._bench.stats import summary

numpy = pytest.importorskip("numpy")

rates = st.floats(0.1, 10_000)
seeds = st.integers(0, 2**32)
Kind = tuple[Arrival, float]


def first(count: int, rate: float, kind: Kind, seed: int) -> list[float]:
    """The first ``count`` arrival times of a schedule."""
    arrival, burstiness = kind
    times = arrival_times(rate, arrival=arrival, burstiness=burstiness, seed=seed)
    return list(itertools.islice(times, count))


@given(rates, seeds, st.sampled_from([("poisson", 1.0), ("gamma", 0.3), ("gamma", 4.0)]))
def test_arrivals_are_in_order_and_a_seed_repeats_them(rate: float, seed: int, kind: Kind) -> None:
    times = first(200, rate, kind, seed)
    assert times == first(200, rate, kind, seed)
    assert times[0] == 0.0
    assert all(a <= b for a, b in itertools.pairwise(times))
    assert first(200, rate, kind, seed + 1) != times


@settings(max_examples=20, deadline=None)
@given(rates, seeds, st.sampled_from([("poisson", 1.0), ("gamma", 0.5), ("gamma", 3.0)]))
def test_arrivals_keep_the_mean_rate(rate: float, seed: int, kind: Kind) -> None:
    count, burstiness = 20_000, kind[1]
    times = first(count + 1, rate, kind, seed)
    mean_gap = times[-1] / count
    # The mean of n gamma gaps has a relative spread of 1 / sqrt(n * shape): six of them.
    assert mean_gap * rate == pytest.approx(1.0, rel=6 / math.sqrt(count * burstiness))


def test_constant_arrivals_are_evenly_spaced_and_inf_is_at_once() -> None:
    assert list(itertools.islice(arrival_times(4, arrival="constant"), 5)) == [
        0,
        0.25,
        0.5,
        0.75,
        1,
    ]
    assert list(itertools.islice(arrival_times(math.inf), 3)) == [0.0, 0.0, 0.0]
    due = itertools.takewhile(lambda at: at < 2, arrival_times(10, arrival="constant"))
    assert len(list(due)) == 20  # a --duration of 2 s at 10 a second


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "request_rate must be a positive number or inf, got 0"),
        ({"rate": math.nan}, "request_rate must be a positive number or inf"),
        ({"rate": 1, "arrival": "bursty"}, "arrival must be one of poisson, constant, gamma"),
        ({"rate": 1, "arrival": "gamma", "burstiness": 0}, "burstiness must be a positive"),
        ({"rate": 1, "arrival": "gamma", "burstiness": math.inf}, "burstiness must be"),
        ({"rate": 1, "burstiness": 2}, "use arrival 'gamma' for burstiness 2"),
    ],
)
def test_a_bad_schedule_is_refused_at_once(kwargs: dict[str, object], message: str) -> None:
    rate = kwargs.pop("rate")
    with pytest.raises(InvalidRequestError, match=message):
        arrival_times(rate, **kwargs)  # type: ignore[arg-type]


values = st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200)
percents = st.lists(
    st.floats(0, 100) | st.sampled_from([50.0, 90.0, 99.0, 99.9]), min_size=1, max_size=4
)


@given(values, percents)
def test_the_statistics_are_numpys(data: list[float], wanted: list[float]) -> None:
    figures = summary(data, wanted)
    array = numpy.array(data)
    expected = {"mean": array.mean(), "median": numpy.median(array), "std": array.std()}
    for percent in wanted:
        key = f"p{int(percent)}" if percent.is_integer() else f"p{percent}"
        expected[key] = numpy.percentile(array, percent)
    assert figures.keys() == expected.keys()
    for name, value in expected.items():
        assert figures[name] == pytest.approx(float(value), rel=1e-9, abs=1e-6), name


def test_no_values_are_all_zero_and_percentiles_are_checked() -> None:
    assert summary([], [99]) == {"mean": 0.0, "median": 0.0, "std": 0.0, "p99": 0.0}
    assert summary([5.0], [99.9])["p99.9"] == 5.0
    with pytest.raises(InvalidRequestError, match="at least one"):
        summary([1.0], [])
    with pytest.raises(InvalidRequestError, match="from 0 to 100, got 101"):
        summary([1.0], [101])

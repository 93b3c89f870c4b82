"""The job-wide limit that Ray actors reserve from (``_reservations``), against its promise."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from aura_anyio._reservations import Reservations

EPSILON = 1e-6


def go_times(reservations: Reservations, times: list[float], tokens: list[int]) -> list[float]:
    """When each attempt goes: asked at its time, it waits as long as it is told."""
    return [at + reservations.reserve(at, amount) for at, amount in zip(times, tokens, strict=True)]


ask_times = st.lists(st.floats(0, 0.5), min_size=1, max_size=60).map(
    lambda steps: list(itertools.accumulate(steps))
)


@given(st.floats(0.5, 200), ask_times)
def test_no_window_admits_more_than_a_burst_and_the_rate(rate: float, times: list[float]) -> None:
    reservations = Reservations(requests_per_second=rate)
    goes = sorted(go_times(reservations, times, [0] * len(times)))
    burst = max(1.0, rate)
    for first, last in itertools.combinations(range(len(goes)), 2):
        went = last - first + 1
        assert went <= burst + rate * (goes[last] - goes[first]) + EPSILON


@given(st.floats(0.5, 200), ask_times)
def test_nobody_waits_who_need_not(rate: float, times: list[float]) -> None:
    # Asked one at a time, at most the rate, every attempt goes at once.
    reservations = Reservations(requests_per_second=rate)
    spaced = [index / rate for index in range(len(times))]
    assert go_times(reservations, spaced, [0] * len(spaced)) == pytest.approx(spaced)


def test_a_thousand_at_once_at_a_hundred_a_second_take_nine_seconds() -> None:
    reservations = Reservations(requests_per_second=100)
    waits = [reservations.reserve(0.0) for _ in range(1000)]
    assert waits[:100] == [0.0] * 100
    assert abs(waits[-1] - 9.0) < EPSILON


@given(st.integers(60, 100_000), st.lists(st.integers(1, 500), min_size=1, max_size=40))
def test_the_token_budget_holds_for_a_minute(per_minute: int, tokens: list[int]) -> None:
    reservations = Reservations(tokens_per_minute=per_minute)
    goes = go_times(reservations, [0.0] * len(tokens), tokens)
    for index, went in enumerate(goes):
        spent = sum(tokens[: index + 1])
        assert spent <= per_minute + per_minute / 60 * went + EPSILON


def test_tokens_given_back_shorten_the_wait() -> None:
    reservations = Reservations(tokens_per_minute=600)  # 10 a second
    assert reservations.reserve(0.0, 600) == 0.0
    assert reservations.reserve(0.0, 100) == 10.0
    reservations.correct(0.0, 600, 500)  # the first used 100 fewer
    assert reservations.reserve(0.0, 50) == 5.0
    Reservations().correct(0.0, 10, 1)  # without a budget, nothing to settle


@given(st.floats(0.01, 60), st.floats(0, 100))
def test_a_pause_holds_every_attempt_until_it_ends(seconds: float, now: float) -> None:
    reservations = Reservations()
    assert not reservations.limited
    reservations.pause(now, seconds)
    reservations.pause(now, seconds / 2)  # a shorter one does not shorten it
    assert reservations.paused_for(now) == pytest.approx(seconds)
    assert reservations.reserve(now + seconds / 4) == pytest.approx(seconds * 3 / 4)
    assert reservations.reserve(now + seconds) == 0.0
    assert Reservations(requests_per_second=1).limited

"""Retry decisions: which errors retry, the backoff, and Retry-After."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given, strategies as st

from aura_anyio import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    EmptyReplyError,
    IncompleteStreamError,
    InvalidRequestError,
    RateLimitError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
)
from aura_anyio._exceptions import REASON_LIMIT, APIError, RequestInfo, make_status_error
from aura_anyio._retry import (
    backoff_delay,
    is_retryable,
    parse_duration,
    parse_retry_after,
    pause_after,
    rate_limit_wait,
    retry_delay,
)

NOW = 1_700_000_000.0
POLICY = RetryPolicy(max_retries=3, initial_delay=0.5, max_delay=8.0, max_retry_after=60.0)


def http_date(when: float) -> str:
    return format_datetime(datetime.fromtimestamp(when, timezone.utc), usegmt=True)


def status_error(code: int, headers: dict[str, str] | None = None) -> APIStatusError:
    headers = headers or {}
    return make_status_error(
        status_code=code,
        reason="Reason",
        body="Error",
        headers=headers,
        request=None,
        retry_after=parse_retry_after(headers, now=NOW),
    )


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (status_error(408), True),
        (status_error(429), True),
        (status_error(500), True),
        (status_error(502), True),
        (status_error(503), True),
        (status_error(504), True),
        (status_error(599), True),
        (status_error(501), False),  # Not Implemented: the same answer every time
        (status_error(505), False),  # HTTP Version Not Supported
        (status_error(501, {"Retry-After": "1"}), False),
        (status_error(400), False),
        (status_error(401), False),
        (status_error(404), False),
        (status_error(302), False),
        (APIConnectionError("refused"), True),
        (APIConnectionError("untrusted certificate", retryable=False), False),
        (APITimeoutError("slow"), True),
        (EmptyReplyError("a 200 with no text"), True),
        (IncompleteStreamError("cut", partial_text="ab"), True),
        (ResponseTooLargeError("big", limit=1), False),
        (APIError("other"), False),
    ],
)
def test_what_retries(error: APIError, retryable: bool) -> None:
    assert is_retryable(error) is retryable
    decided = retry_delay(error, attempt=1, policy=POLICY, now=NOW, random=0.5)
    assert (decided is not None) is retryable


def test_nothing_retries_once_text_reached_the_caller() -> None:
    for error in (APIConnectionError("x"), IncompleteStreamError("x", partial_text="a")):
        assert not is_retryable(error, text_received=True)


def test_attempts_are_bounded() -> None:
    error = status_error(500)
    delays = [retry_delay(error, attempt=n, policy=POLICY, now=NOW, random=0.0) for n in (1, 2, 3)]
    assert delays == [0.5, 1.0, 2.0]
    assert retry_delay(error, attempt=4, policy=POLICY, now=NOW, random=0.0) is None
    no_retries = RetryPolicy(max_retries=0)
    assert retry_delay(error, attempt=1, policy=no_retries, now=NOW, random=0.0) is None


@given(st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_backoff_stays_between_zero_and_the_cap(attempt: int, random: float) -> None:
    delay = backoff_delay(attempt, POLICY, random=random)
    assert 0 < delay <= POLICY.max_delay
    uncapped = POLICY.initial_delay * 2 ** min(attempt - 1, 20)
    assert delay >= 0.75 * min(uncapped, POLICY.max_delay)


@given(st.floats(0, 60), st.floats(0, 1, exclude_max=True))
def test_retry_after_is_honoured_exactly_up_to_the_cap(seconds: float, random: float) -> None:
    error = status_error(429, {"Retry-After": repr(seconds)})
    assert isinstance(error, RateLimitError)
    assert retry_delay(error, attempt=1, policy=POLICY, now=NOW, random=random) == seconds


@given(st.floats(60, 1e9, exclude_min=True))
def test_retry_after_past_the_cap_gives_up(seconds: float) -> None:
    error = status_error(503, {"retry-after": repr(seconds)})
    assert retry_delay(error, attempt=1, policy=POLICY, now=NOW, random=0.1) is None


def test_total_budget_stops_a_retry_that_would_overrun() -> None:
    error = status_error(500, {"Retry-After": "5"})
    kwargs = {"attempt": 1, "policy": POLICY, "now": NOW, "random": 0.0}
    assert retry_delay(error, elapsed=1.0, budget=10.0, **kwargs) == 5.0  # type: ignore[arg-type]
    assert retry_delay(error, elapsed=6.0, budget=10.0, **kwargs) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"llm_provider-retry-after": "7"}, 7.0),  # the LiteLLM proxy's name for it
        ({"llm_provider-retry-after": "7", "Retry-After": "5"}, 5.0),  # the proxy's own wins
        (
            {
                "Retry-After": format_datetime(
                    datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True
                )
            },
            30.0,
        ),
        (
            {
                "Retry-After": format_datetime(
                    datetime.fromtimestamp(NOW - 30, timezone.utc), usegmt=True
                )
            },
            0.0,
        ),
        ({"Retry-After": "Sun, 06 Nov 1994 08:49:37"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


@given(st.dictionaries(st.sampled_from(["Retry-After", "retry-after-ms", "x"]), st.text()))
def test_parse_retry_after_never_raises(headers: dict[str, str]) -> None:
    delay = parse_retry_after(headers, now=NOW)
    assert delay is None or delay >= 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"max_retries": True},
        {"initial_delay": -1.0},
        {"max_delay": float("nan")},
    ],
)
def test_invalid_policy(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_status_error_messages_carry_the_reason_and_a_bounded_excerpt() -> None:
    error = make_status_error(
        status_code=500,
        reason="Rate limit reached for model",
        body="x" * 10_000,
        headers={},
        request=None,
    )
    text = str(error)
    assert "500 Rate limit reached for model" in text
    assert len(text) < 500
    assert error.body == "x" * 10_000


@given(st.text(min_size=0, max_size=30_000) | st.text("ab ", min_size=REASON_LIMIT))
def test_the_reason_attribute_is_bounded(reason: str) -> None:
    error = make_status_error(status_code=500, reason=reason, body="", headers={}, request=None)
    assert len(error.reason) <= REASON_LIMIT + 1
    assert error.reason.startswith(reason[:REASON_LIMIT])
    assert (error.reason == reason) is (len(reason) <= REASON_LIMIT)
    assert len(str(error)) < 500


def test_a_long_reason_is_cut_with_an_ellipsis() -> None:
    error = make_status_error(status_code=503, reason="r" * 5000, body="", headers={}, request=None)
    assert error.reason == "r" * REASON_LIMIT + "…"


@pytest.mark.parametrize(
    ("error", "delay", "pause"),
    [
        (status_error(429, {"retry-after": "7"}), 7.0, 7.0),
        (status_error(429, {"retry-after": "3600"}), None, None),  # above the cap: no pause
        (status_error(429), 0.4, 0.4),  # no advice: the backoff
        (status_error(503, {"retry-after": "2"}), 2.0, 2.0),
        (status_error(503), 0.4, None),  # a plain 5xx is this request's trouble only
        (APIConnectionError("refused"), 0.4, None),
        # openchat-ui's upstream 429, as a 500: the whole client slows down
        (
            make_status_error(
                status_code=500, reason="x", body="", headers={}, request=None, rate_limited=True
            ),
            0.4,
            0.4,
        ),
    ],
)
def test_what_pauses_every_request(
    error: APIError, delay: float | None, pause: float | None
) -> None:
    assert pause_after(error, delay=delay, policy=POLICY, now=NOW) == pause


def test_a_cut_reply_is_retried_as_its_cause_would_be() -> None:
    """complete() may retry a reply whose connection broke, not one the server failed itself."""
    for cause, retried in [
        (APIConnectionError("reset"), True),
        (APIConnectionError("bad certificate", retryable=False), False),
        (APIError("the server reported an error: engine died"), False),
        (None, True),
    ]:
        cut = IncompleteStreamError("the reply broke", partial_text="Half")
        cut.__cause__ = cause
        assert is_retryable(cut) is retried
        assert not is_retryable(cut, text_received=True)


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (502, True), (503, True), (501, False), (505, False)]
)
def test_a_server_error_says_whether_a_retry_may_help(status: int, retryable: bool) -> None:
    error = status_error(status)
    assert error.status_code == status
    assert isinstance(error, ServerError)
    text = str(error)
    assert ("(the server failed; retrying later may help)" in text) is retryable
    assert (
        "(the server cannot serve this request; retrying will not help)" in text
    ) is not retryable
    assert ("retrying later may help" in text) is retryable
    assert is_retryable(error) is retryable


@given(st.integers(500, 599))
def test_every_5xx_but_501_and_505_retries(status: int) -> None:
    error = status_error(status)
    retried = status not in (501, 505)
    assert is_retryable(error) is retried
    decided = retry_delay(error, attempt=1, policy=POLICY, now=NOW, random=0.5)
    assert (decided == 0.5 * 0.875) is retried
    assert (decided is None) is not retried


def test_a_status_error_names_its_request() -> None:
    request = RequestInfo("POST", "http://h/v1/chat/completions")
    error = make_status_error(
        status_code=501, reason="Not Implemented", body="", headers={}, request=request
    )
    assert str(request) == "POST http://h/v1/chat/completions"
    assert str(error).startswith("HTTP 501 Not Implemented from POST http://h/v1/chat/completions")
    assert "retrying will not help" in str(error)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_rate_limit_is_what_the_wire_says_it_is(status: int) -> None:
    def build(rate_limited: bool | None) -> APIError:
        return make_status_error(
            status_code=status,
            reason="Rate limit reached",
            body="",
            headers={"retry-after": "2"},
            request=None,
            retry_after=2.0,
            rate_limited=rate_limited,
        )

    assert isinstance(build(None), RateLimitError) is (status == 429)  # by default, 429 only
    limited = build(True)
    assert isinstance(limited, RateLimitError)
    assert (limited.status_code, limited.retry_after) == (status, 2.0)
    assert "(rate limited: retry after 2 s)" in str(limited)
    assert not isinstance(build(False), RateLimitError)


# -- x-ratelimit-* headers: durations in Go's form, and when to hold off ----------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        (" 1.5m ", 90.0),
        (".5s", 0.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("7ns", 7e-9),
        ("2.5", 2.5),  # a bare number is seconds
        ("0", 0.0),
        ("", None),
        ("soon", None),
        ("1x", None),
        ("s", None),
        ("1s 2s", None),
        ("-1s", None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_durations_as_reset_headers_write_them(text: str, seconds: float | None) -> None:
    result = parse_duration(text)
    assert result == pytest.approx(seconds) if seconds is not None else result is None


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(list(_UNITS))), min_size=1))
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{number}{unit}" for number, unit in parts)
    expected = sum(number * _UNITS[unit] for number, unit in parts)
    assert parse_duration(text) == pytest.approx(expected)


@given(st.text(max_size=20))
def test_any_text_is_a_duration_or_none(text: str) -> None:
    result = parse_duration(text)
    assert result is None or (math.isfinite(result) and result >= 0)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}, 1.0),
        ({"X-RateLimit-Remaining-Tokens": "0", "X-RateLimit-Reset-Tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1s"}, None),
        ({"x-ratelimit-remaining-requests": "0"}, None),  # no reset: nothing to wait for
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "?"}, None),
        ({"x-ratelimit-remaining-requests": "none", "x-ratelimit-reset-requests": "1s"}, None),
        (  # both spent: the longer wait
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "20ms",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "1.5s",
            },
            1.5,
        ),
        (  # only the tokens are spent
            {
                "x-ratelimit-remaining-requests": "99",
                "x-ratelimit-reset-requests": "20ms",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "2s",
            },
            2.0,
        ),
    ],
)
def test_when_rate_limit_headers_say_to_hold_off(
    headers: dict[str, str], wait: float | None
) -> None:
    assert rate_limit_wait(headers) == wait

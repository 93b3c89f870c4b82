"""When to retry a failed request, and how long to wait; pure, no I/O.

The client owns the clock, the sleeping and the random source; it passes them in, so every
decision here is a plain function of its arguments (openai-python's ``_should_retry`` and
``_calculate_retry_timeout`` are the model).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from email.utils import parsedate_to_datetime

from ._exceptions import (
    PERMANENT_SERVER_STATUSES,
    APIConnectionError,
    APIError,
    APIStatusError,
    EmptyReplyError,
    IncompleteStreamError,
    InvalidRequestError,
    RateLimitError,
)
from ._numbers import is_int, is_number

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "PERMANENT_SERVER_STATUSES",
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "backoff_delay",
    "is_retryable",
    "parse_duration",
    "parse_retry_after",
    "pause_after",
    "rate_limit_wait",
    "retry_delay",
]

DEFAULT_MAX_RETRIES = 2
# 408 Request Timeout, 409 Conflict (a lock held a moment too long: openai-python retries
# it too), 429 Too Many Requests and every 5xx: openchat-ui answers all its failures,
# upstream rate limits included, with 500.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Args:
        max_retries: Retries after the first attempt; 0 disables retrying.
        initial_delay: The backoff before the first retry, in seconds.
        max_delay: The cap on any backoff, in seconds.
        max_retry_after: The longest ``Retry-After`` honoured; a server asking for more gets
            the error raised instead of a silent long sleep.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if not is_int(self.max_retries) or self.max_retries < 0:
            raise InvalidRequestError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise InvalidRequestError(f"{name} must be a finite number >= 0, got {value!r}")


def parse_retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Return the wait a response asks for, in seconds, or ``None`` if it asks for none.

    Reads ``retry-after-ms`` (milliseconds, as OpenAI-style servers send) and ``Retry-After``
    (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date, compared with ``now``, a Unix
    time); without either, ``llm_provider-retry-after``, under which the LiteLLM proxy passes
    on its upstream's ``Retry-After``. Header names are matched case-insensitively.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value / 1000
    raw = lowered.get("retry-after", lowered.get("llm_provider-retry-after"))
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            date = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if date.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form may lack a zone.
            return None
        return max(0.0, date.timestamp() - now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


# Go's time.Duration as text, which OpenAI-style servers put in their reset headers.
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float | None:
    """Return the seconds of a duration as rate-limit reset headers write it, or ``None``.

    The form is Go's (``1s``, ``6m0s``, ``20ms``, ``1h2m3.5s``); a bare number is seconds.
    """
    text = text.strip()
    if _DURATION.fullmatch(text):
        return sum(
            float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text)
        )
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """How long a response's ``x-ratelimit-*`` headers say to hold off, or ``None``.

    When ``x-ratelimit-remaining-requests`` (or ``-tokens``) is down to 0, the next request
    would be refused until ``x-ratelimit-reset-requests`` (or ``-tokens``) has passed; the
    longer of the two waits is returned. Names are matched case-insensitively.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    wait: float | None = None
    for kind in ("requests", "tokens"):
        remaining = lowered.get(f"x-ratelimit-remaining-{kind}")
        reset = lowered.get(f"x-ratelimit-reset-{kind}")
        if remaining is None or reset is None:
            continue
        try:
            spent = float(remaining) <= 0
        except ValueError:
            continue
        seconds = parse_duration(reset) if spent else None
        if seconds is not None:
            wait = seconds if wait is None else max(wait, seconds)
    return wait


def backoff_delay(attempt: int, policy: RetryPolicy, *, random: float) -> float:
    """Return the jittered exponential backoff before retry number ``attempt`` (from 1).

    ``random`` is a draw from [0, 1); the delay lies in (3/4 of the capped exponential, all
    of it], so concurrent clients spread out while each still backs off.
    """
    exponent = min(max(attempt - 1, 0), 64)
    base = min(policy.initial_delay * 2.0**exponent, policy.max_delay)
    return base * (1.0 - 0.25 * random)


def is_retryable(error: APIError, *, text_received: bool = False) -> bool:
    """Tell whether ``error`` is worth another attempt.

    Connection failures, timeouts and empty replies are, unless text already reached the
    caller or the failure is permanent (``retryable`` is false); so are 408, 409, 429 and 5xx
    statuses, but for 501 Not Implemented and 505 HTTP Version Not Supported, which no retry
    changes. An :class:`IncompleteStreamError` is, when the caller saw none of its text
    (``complete()`` buffers the reply, ``stream()`` does not) and what broke it is worth
    another attempt (an error the server reported inside the reply is not).
    """
    if isinstance(error, IncompleteStreamError):
        cause = error.__cause__
        if isinstance(cause, APIError) and not is_retryable(cause):
            return False
        return not text_received
    if isinstance(error, APIStatusError):
        status = error.status_code
        return status in RETRYABLE_STATUSES or (
            status >= 500 and status not in PERMANENT_SERVER_STATUSES
        )
    if isinstance(error, APIConnectionError) and not error.retryable:
        return False
    if isinstance(error, (APIConnectionError, EmptyReplyError)):
        return not text_received
    return False


def retry_delay(
    error: APIError,
    *,
    attempt: int,
    policy: RetryPolicy,
    now: float,
    random: float,
    elapsed: float = 0.0,
    budget: float | None = None,
    text_received: bool = False,
) -> float | None:
    """Decide whether to retry after ``error``, and how long to wait first.

    Args:
        error: What the attempt failed with.
        attempt: The number of the retry being considered (1 for the first retry).
        policy: Limits on retrying.
        now: The current Unix time, for HTTP-date ``Retry-After`` values.
        random: A draw from [0, 1) for the jitter.
        elapsed: Seconds spent on this request so far.
        budget: The request's total time limit, if any; no retry starts that would sleep past it.
        text_received: Whether the caller already saw text of this reply.

    Returns:
        The delay in seconds, or ``None`` to give up and raise ``error``.
    """
    if attempt > policy.max_retries or not is_retryable(error, text_received=text_received):
        return None
    delay: float | None = None
    if isinstance(error, APIStatusError):
        delay = (
            error.retry_after
            if isinstance(error, RateLimitError)
            else parse_retry_after(error.headers, now=now)
        )
        if delay is not None and delay > policy.max_retry_after:
            return None
    if delay is None:
        delay = backoff_delay(attempt, policy, random=random)
    if budget is not None and elapsed + delay >= budget:
        return None
    return delay


def pause_after(
    error: APIError, *, delay: float | None, policy: RetryPolicy, now: float
) -> float | None:
    """Return how long every request of the client should hold off after ``error``, if at all.

    A rate limit (a 429, or openchat-ui's 500 that says so), or any status with a
    ``Retry-After``, is the server asking the whole client to
    slow down, not one request: for as long as it asked (when that is within
    ``policy.max_retry_after``), or else for ``delay``, the backoff this request waits.
    """
    if not isinstance(error, APIStatusError):
        return None
    asked = (
        error.retry_after
        if isinstance(error, RateLimitError)
        else parse_retry_after(error.headers, now=now)
    )
    if asked is not None:
        return asked if asked <= policy.max_retry_after else None
    return delay if isinstance(error, RateLimitError) else None

"""A reply's token counts (``usage``) as the server sent them, nested details included; pure,
no I/O.

OpenAI's object is ``{"prompt_tokens", "completion_tokens", "total_tokens",
"prompt_tokens_details": {"cached_tokens", ...}, "completion_tokens_details":
{"reasoning_tokens", ...}}``; servers add fields of their own, which are kept as sent. Only a
known count that is not an integer (a string, a null, a fraction) is left out, so that the
types below tell the truth. By OpenAI's definition the cached tokens are part of
``prompt_tokens`` and the reasoning tokens part of ``completion_tokens``.
"""

from __future__ import annotations

import typing

from ._numbers import is_int

__all__ = [
    "CompletionTokensDetails",
    "PromptTokensDetails",
    "Usage",
    "detail_count",
    "read_usage",
]


class PromptTokensDetails(typing.TypedDict, total=False):
    """What ``usage["prompt_tokens_details"]`` may hold: ``cached_tokens`` (served from the
    server's prompt cache), ``audio_tokens``."""

    cached_tokens: int
    audio_tokens: int


class CompletionTokensDetails(typing.TypedDict, total=False):
    """What ``usage["completion_tokens_details"]`` may hold: ``reasoning_tokens`` (a
    reasoning model's thinking), ``audio_tokens`` and the predicted-output counts."""

    reasoning_tokens: int
    audio_tokens: int
    accepted_prediction_tokens: int
    rejected_prediction_tokens: int


class Usage(typing.TypedDict, total=False):
    """A reply's token counts, as the server sent them: every field it gave, these included
    when they are integers."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: CompletionTokensDetails


_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_DETAILS = {
    "prompt_tokens_details": PromptTokensDetails.__annotations__,
    "completion_tokens_details": CompletionTokensDetails.__annotations__,
}


def read_usage(value: object) -> Usage | None:
    """The ``usage`` object ``value`` as a :class:`Usage` (a copy); ``None`` if it is not a
    JSON object."""
    if not isinstance(value, dict):
        return None
    usage = dict(typing.cast("dict[str, object]", value))
    for name in _COUNTS:
        if name in usage and not is_int(usage[name]):
            del usage[name]
    for name, known in _DETAILS.items():
        if name not in usage:
            continue
        details = usage[name]
        if not isinstance(details, dict):  # vLLM sends null for none
            del usage[name]
            continue
        usage[name] = {
            key: count
            for key, count in typing.cast("dict[str, object]", details).items()
            if key not in known or is_int(count)
        }
    return typing.cast("Usage", usage)


def detail_count(usage: Usage | None, details: str, name: str) -> int:
    """A count inside one of the details objects (``prompt_tokens_details``,
    ``cached_tokens``, say); 0 when the server did not give it."""
    if usage is None:
        return 0
    found: object = typing.cast("dict[str, object]", usage).get(details)
    if not isinstance(found, dict):
        return 0
    count = typing.cast("dict[str, object]", found).get(name)
    return count if is_int(count) else 0

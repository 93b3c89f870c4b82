"""The /api/chat request body; pure, no I/O.

The wire format is openchat-ui's ``pages/api/chat.ts``: the system prompt travels apart from
the history, and ``model.tokenLimit`` is what the server trims the history against.
"""

from __future__ import annotations

from typing import TypedDict

from ._exceptions import InvalidRequestError
from ._messages import Message, Messages, check_unicode, split_messages
from ._models import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_TEMPERATURE,
    ModelSpec,
    resolve_model,
)
from ._numbers import is_int, is_number

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TEMPERATURE",
    "RESERVED_TOKENS",
    "Payload",
    "build_payload",
    "check_max_tokens",
    "check_temperature",
]

# openchat-ui keeps history only while tokens + 768 <= tokenLimit, so a limit of 768 or less
# silently drops the whole conversation.
RESERVED_TOKENS = 768


class ModelField(TypedDict):
    """The ``model`` object of the wire body."""

    id: str
    name: str
    maxLength: int
    tokenLimit: int


class Payload(TypedDict):
    """The JSON body of ``POST /api/chat``."""

    model: ModelField
    messages: list[Message]
    key: str
    prompt: str
    temperature: float


def check_temperature(temperature: object) -> float:
    """Return ``temperature`` as a float, or raise if it is not a finite number in [0, 2]."""
    if not is_number(temperature) or not 0 <= temperature <= 2:
        raise InvalidRequestError(
            f"temperature must be a finite number between 0 and 2, got {temperature!r}"
        )
    return float(temperature)


def check_max_tokens(max_tokens: object, *, minimum: int = RESERVED_TOKENS + 1) -> int:
    """Return ``max_tokens``, or raise if it is not an int of at least ``minimum``."""
    if not is_int(max_tokens) or max_tokens < minimum:
        why = (
            f" (the server reserves {RESERVED_TOKENS} tokens and would drop the whole history)"
            if minimum > RESERVED_TOKENS
            else ""
        )
        raise InvalidRequestError(
            f"max_tokens must be an int of at least {minimum}{why}, got {max_tokens!r}"
        )
    return max_tokens


def build_payload(
    messages: Messages,
    *,
    model: str | ModelSpec = DEFAULT_MODEL,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    key: str = "",
) -> Payload:
    """Build the JSON body of ``POST /api/chat`` for a conversation.

    Args:
        messages: A sequence of ``{"role", "content"}`` mappings.
        model: A model id from ``MODELS`` or a :class:`ModelSpec`.
        temperature: Sampling temperature, a finite number in [0, 2].
        max_tokens: Sent as ``model.tokenLimit``; must exceed the server's 768-token reserve.
        key: An upstream API key (a secret), or ``""``.

    Raises:
        InvalidRequestError: Any argument is invalid; the message names it.
    """
    prompt, history = split_messages(messages)
    spec = resolve_model(model)
    temperature = check_temperature(temperature)
    max_tokens = check_max_tokens(max_tokens)
    if not isinstance(key, str):
        raise InvalidRequestError(f"key must be a str, got {type(key).__name__}")
    check_unicode("key", key)
    return {
        "model": {
            "id": spec.id,
            "name": spec.name,
            "maxLength": spec.max_length,
            "tokenLimit": max_tokens,
        },
        "messages": history,
        "key": key,
        "prompt": prompt,
        "temperature": temperature,
    }

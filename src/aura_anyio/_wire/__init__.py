"""The two wires a client can speak: request bodies out, reply text in; pure, no I/O.

- ``"aura"`` (:mod:`.aura`): openchat-ui's ``POST /api/chat``: the reply is the body's text,
  and the body's end is the reply's end.
- ``"openai"`` (:mod:`.openai`): ``POST /v1/chat/completions`` with ``"stream": true``: the
  reply comes as server-sent events (:mod:`.sse`) of JSON chunks, and ``data: [DONE]`` ends it.

Everything else (sending, retries, timeouts, fan-out) is the same for both; a wire only says
what to send and how to read what comes back. :mod:`.text` decodes a body's text under any
chunking.
"""

from __future__ import annotations

from .._exceptions import InvalidRequestError
from .aura import AuraWire
from .base import (
    BrokenReply,
    EmptyReply,
    ReplyDecoder,
    ReplyError,
    ReportedError,
    Wire,
    WireName,
)
from .openai import OpenAIWire, openai_body

__all__ = [
    "WIRES",
    "AuraWire",
    "BrokenReply",
    "EmptyReply",
    "OpenAIWire",
    "ReplyDecoder",
    "ReplyError",
    "ReportedError",
    "Wire",
    "WireName",
    "openai_body",
    "wire_named",
]

#: The wires by name.
WIRES: dict[str, Wire] = {"aura": AuraWire(), "openai": OpenAIWire()}


def wire_named(name: object, *, include_usage: object = True) -> Wire:
    """Return the wire called ``name``; ``include_usage`` is the OpenAI wire's setting.

    Raises:
        InvalidRequestError: No wire is called ``name`` (the message names the known ones),
            or ``include_usage`` is not a bool.
    """
    if not isinstance(name, str) or name not in WIRES:
        raise InvalidRequestError(
            f"wire must be one of {', '.join(map(repr, WIRES))}, got {name!r}"
        )
    if not isinstance(include_usage, bool):
        raise InvalidRequestError(
            f"include_usage must be a bool, got {type(include_usage).__name__}"
        )
    if name == "openai" and not include_usage:
        return OpenAIWire(include_usage=False)
    return WIRES[name]

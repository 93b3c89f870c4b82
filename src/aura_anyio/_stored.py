"""What the response cache keeps, and under which key; pure, no I/O.

A request's key is a SHA-256 of its canonical form: the wire's name and the body it sends,
with every object's keys sorted, so that two requests that mean the same (messages written
with their fields in another order, say) share a key. Everything in the body counts (model,
messages, temperature, max_tokens, ``extra_body``, ``stream_options``) except
``/api/chat``'s ``key`` field: an API key is no part of the reply, and a secret.
A stored reply is one JSON object: text, finish_reason, usage and tool_calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from ._wire import ToolCall

__all__ = ["StoredReply", "decode_reply", "encode_reply", "request_key"]


def request_key(wire: str, body: bytes) -> bytes:
    """The 32-byte key of the request ``body`` (UTF-8 JSON, as the wire sends it) on ``wire``."""
    fields = json.loads(body)
    if wire == "aura":
        fields.pop("key", None)
    canonical = json.dumps(
        [wire, fields], ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).digest()


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class StoredReply:
    """A whole reply as the cache keeps it, read back like a response that has ended.

    Attributes:
        text: The reply's text.
        finish_reason: Why it ended, if the wire said.
        usage: The token counts the server sent, if any.
        tool_calls: The tool calls it made, if any.
    """

    text: str
    finish_reason: str | None = None
    usage: Mapping[str, int] | None = None
    tool_calls: list[ToolCall] | None = None
    # A reader's view of it: ended, with nothing more to read and nothing to close.
    done: typing.ClassVar[bool] = True

    async def next_text(self) -> str:
        """Nothing: the whole text is :attr:`text`."""
        return ""

    async def aclose(self) -> None:
        """Nothing to close."""


def encode_reply(reply: StoredReply) -> str:
    """``reply`` as the JSON text the cache stores."""
    return json.dumps(
        {
            "text": reply.text,
            "finish_reason": reply.finish_reason,
            "usage": None if reply.usage is None else dict(reply.usage),
            "tool_calls": reply.tool_calls,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_reply(text: str) -> StoredReply:
    """The reply stored as ``text``.

    Raises:
        ValueError: ``text`` is not a stored reply (a row written by something else).
    """
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a stored reply is a JSON object")
    fields = typing.cast("dict[str, object]", value)
    reply_text = fields.get("text")
    finish_reason = fields.get("finish_reason")
    usage = fields.get("usage")
    tool_calls = fields.get("tool_calls")
    if not isinstance(reply_text, str):
        raise ValueError("a stored reply's text is a string")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise ValueError("a stored reply's finish_reason is a string or null")
    if usage is not None and not (
        isinstance(usage, dict)
        and all(
            isinstance(count, int) for count in typing.cast("dict[str, object]", usage).values()
        )
    ):
        raise ValueError("a stored reply's usage is an object of integers or null")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise ValueError("a stored reply's tool_calls is a list or null")
    return StoredReply(
        reply_text,
        finish_reason,
        typing.cast("dict[str, int] | None", usage),
        typing.cast("list[ToolCall] | None", tool_calls),
    )

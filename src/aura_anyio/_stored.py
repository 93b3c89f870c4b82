"""What the response cache keeps, and under which key; pure, no I/O.

A request's key is a SHA-256 of its canonical form: the wire's name and the body it sends,
with the body's fields and each message's fields in sorted order, so that two requests that
mean the same (messages written with their fields in another order, say) share a key.
Deeper values are kept in the order sent: there the order can mean something (a JSON
schema's properties, which a server follows in structured output). Everything in the body
counts (model, messages, temperature, max_tokens, ``extra_body``, ``stream_options``) except
``/api/chat``'s ``key`` field: an API key is no part of the reply, and a secret.
A stored reply is one JSON object: text, finish_reason, usage, tool_calls and reasoning (left
out by versions before it: ``None``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing

from ._usage import read_usage

if typing.TYPE_CHECKING:
    from ._messages import ToolCall
    from ._usage import Usage

__all__ = ["StoredReply", "decode_reply", "encode_reply", "request_key"]


def request_key(wire: str, body: bytes) -> bytes:
    """The 32-byte key of the request ``body`` (UTF-8 JSON, as the wire sends it) on ``wire``."""
    fields: dict[str, object] = json.loads(body)
    if wire == "aura":
        fields.pop("key", None)
    messages = fields.get("messages")
    if isinstance(messages, list):
        fields["messages"] = [
            sorted(typing.cast("dict[str, object]", message).items())
            if isinstance(message, dict)
            else message
            for message in typing.cast("list[object]", messages)
        ]
    canonical = json.dumps([wire, sorted(fields.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class StoredReply:
    """A whole reply as the cache keeps it.

    Attributes:
        text: The reply's text.
        finish_reason: Why it ended, if the wire said.
        usage: The token counts the server sent, if any.
        tool_calls: The tool calls it made, if any.
        reasoning: The reasoning it sent apart from its text, if any.
    """

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning: str | None = None


def encode_reply(reply: StoredReply) -> str:
    """``reply`` as the JSON text the cache stores: ASCII, so that a lone surrogate (half an
    emoji pair, escaped in one event by a server that cut the pair in two) is kept too."""
    return json.dumps(
        {
            "text": reply.text,
            "finish_reason": reply.finish_reason,
            "usage": None if reply.usage is None else dict(reply.usage),
            "tool_calls": reply.tool_calls,
            "reasoning": reply.reasoning,
        },
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
    sent_usage = fields.get("usage")
    usage = read_usage(sent_usage)
    tool_calls = fields.get("tool_calls")
    reasoning = fields.get("reasoning")
    if not isinstance(reply_text, str):
        raise ValueError("a stored reply's text is a string")
    if finish_reason is not None and not isinstance(finish_reason, str):
        raise ValueError("a stored reply's finish_reason is a string or null")
    if sent_usage is not None and usage is None:
        raise ValueError("a stored reply's usage is an object or null")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise ValueError("a stored reply's tool_calls is a list or null")
    if reasoning is not None and not isinstance(reasoning, str):
        raise ValueError("a stored reply's reasoning is a string or null")
    return StoredReply(
        reply_text,
        finish_reason,
        usage,
        typing.cast("list[ToolCall] | None", tool_calls),
        reasoning,
    )

"""openchat-ui's ``POST /api/chat`` wire; pure, no I/O.

The body is :func:`build_payload`'s (``_payload``), the key travels in it, and the reply is
the response body's text: the body's end is the reply's end.
"""

from __future__ import annotations

import typing

from .._exceptions import InvalidRequestError
from .._payload import DEFAULT_MAX_TOKENS, build_payload
from .base import EmptyReply, dump_json
from .text import TextDecoder, charset_from_content_type

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from .._messages import Messages
    from .._models import ModelSpec
    from .base import ReplyDecoder, WireName

__all__ = ["UPSTREAM_RATE_LIMIT", "AuraWire", "TextReply"]

#: What the reason phrase of openchat-ui's 500 says when its upstream refused for a rate
#: limit (OpenAI's "Rate limit reached for ... on requests per min"), case aside.
UPSTREAM_RATE_LIMIT = "rate limit reached"


@typing.final
class TextReply:
    """The /api/chat reply: the body is the text, and its end is the reply's end.

    A reply always has text: a body that ends without any is openchat-ui's empty 200 (its
    race under load), which :meth:`close` raises as :class:`EmptyReply`.
    """

    __slots__ = ("_text", "text_events")

    finish_reason = None
    usage = None
    tool_calls = None
    reasoning = None
    done = False  # only the body's end ends this reply

    def __init__(self, encoding: str) -> None:
        self._text = TextDecoder(encoding)
        self.text_events = 0  # the body's reads that carried text

    def feed(self, data: bytes) -> str:
        text = self._text.decode(data)
        if text:
            self.text_events += 1
        return text

    def close(self) -> str:
        text = self._text.flush()
        if text:
            self.text_events += 1
        elif not self.text_events:
            raise EmptyReply("the server answered 200 with no text at all")
        return text


@typing.final
class AuraWire:
    """openchat-ui's ``POST /api/chat``."""

    name: WireName = "aura"

    def path(self, base: str) -> str:
        return base + "/api/chat"

    def body(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec,
        temperature: float,
        max_tokens: int | None,
        extra_body: Mapping[str, object] | None,
        key: str,
    ) -> bytes:
        if extra_body:
            raise InvalidRequestError(
                "extra_body is for the OpenAI wire: openchat-ui's /api/chat (wire='aura') "
                "reads no other field"
            )
        payload = build_payload(
            messages,
            model=model,
            temperature=temperature,
            max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
            key=key,
        )
        return dump_json(payload)

    def headers(self, key: str) -> dict[str, str]:
        return {}  # the key travels in the body

    def admission_wait(self, headers: Mapping[str, str]) -> float | None:
        return None  # openchat-ui sends no rate-limit headers

    def rate_limited(self, status_code: int, reason: str) -> bool:
        # openchat-ui answers every failure with 500 and its upstream's message as the reason
        # phrase: an upstream 429 arrives as "500 Rate limit reached for ...".
        return status_code == 429 or (
            status_code == 500 and UPSTREAM_RATE_LIMIT in reason.casefold()
        )

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        return TextReply(charset_from_content_type(content_type))

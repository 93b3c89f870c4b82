"""What every wire is: the :class:`Wire` and :class:`ReplyDecoder` protocols; pure, no I/O.

With the errors a reply decoder raises. A module of its own so that the wire modules and the
registry in ``__init__`` can all import it without importing each other.
"""

from __future__ import annotations

import json
import typing

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from .._messages import Messages, ToolCall
    from .._models import ModelSpec
    from .._usage import Usage

__all__ = [
    "BrokenReply",
    "EmptyReply",
    "ReplyDecoder",
    "ReplyError",
    "ReportedError",
    "Wire",
    "WireName",
    "dump_json",
]

#: The names a client's ``wire=`` takes.
WireName = typing.Literal["aura", "openai"]


class ReplyError(Exception):
    """What a reply decoder raises; ``text`` is the text decoded before the fault in the same
    call, which the decoder could not return: the caller keeps it."""

    text = ""


class BrokenReply(ReplyError):
    """The reply ended, or went on, in a way its wire does not allow (a cut, most likely)."""


class EmptyReply(ReplyError):
    """The reply ended without any text, where its wire always has some."""


class ReportedError(ReplyError):
    """The server reported an error inside the reply (an ``{"error": ...}`` event)."""


class ReplyDecoder(typing.Protocol):
    """Reads one reply's body: bytes in, text out, and what the wire says about the end."""

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended (``"stop"``, ``"length"``...), if the wire says."""
        ...

    @property
    def usage(self) -> Usage | None:
        """The token counts the server sent, if it sent any."""
        ...

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls the reply made so far, if it made any."""
        ...

    @property
    def reasoning(self) -> str | None:
        """The reasoning (a model's thinking) sent apart from the text so far, if any."""
        ...

    @property
    def done(self) -> bool:
        """Whether the wire marked the reply's end, before the body's end (``[DONE]``)."""
        ...

    @property
    def text_events(self) -> int:
        """How many events carried text so far: server-sent events, or body reads on a wire
        without events. A benchmark times each, as it arrived."""
        ...

    def feed(self, data: bytes) -> str:
        """Return the text ``data`` completed."""
        ...

    def close(self) -> str:
        """Return the text left at the end of the body; raise :class:`BrokenReply` if the
        wire says the reply is not complete.

        Both this and :meth:`feed` raise a :class:`ReplyError` whose ``text`` holds any text
        decoded before the fault.
        """
        ...


class Wire(typing.Protocol):
    """What a client sends for one request, and how it reads the reply."""

    @property
    def name(self) -> WireName:
        """The name ``wire=`` takes for this wire."""
        ...

    def path(self, base: str) -> str:
        """The URL to post to, under the base URL ``base`` (no trailing slash)."""
        ...

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
        """The request body; raises :class:`InvalidRequestError` for bad arguments.

        ``max_tokens=None`` means the wire's default, ``extra_body`` more body fields.
        """
        ...

    def headers(self, key: str) -> dict[str, str]:
        """Headers this wire adds."""
        ...

    def rate_limited(self, status_code: int, reason: str) -> bool:
        """Whether an error status with this reason phrase is a refusal for a rate limit."""
        ...

    def admission_wait(self, headers: Mapping[str, str]) -> float | None:
        """How long a response's headers say to hold off new requests, if they say."""
        ...

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        """A decoder for one reply."""
        ...


# allow_nan=False: NaN is not JSON, and a server would refuse the whole body. Made once:
# json.dumps() with these options makes an encoder per call (a microsecond a request).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump_json(value: object) -> bytes:
    """Return ``value`` as compact UTF-8 JSON, the form both wires send."""
    return _ENCODER.encode(value).encode()

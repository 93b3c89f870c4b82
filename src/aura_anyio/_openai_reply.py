"""An OpenAI-style reply: ``chat.completion.chunk`` objects as server-sent events; pure.

The text is in ``choices[0].delta.content``, the end in ``finish_reason`` and ``data:
[DONE]``, the token counts in ``usage``, and a server's own failure in an ``{"error": ...}``
object (or an ``event: error``).
"""

from __future__ import annotations

import json
import typing

from ._checks import is_int
from ._sse import Event, EventDecoder

__all__ = ["BrokenReply", "JSONReply", "OpenAIReply", "ReportedError"]

# An unexpected JSON body is read this far: enough for any error object.
_JSON_LIMIT = 8192


class BrokenReply(Exception):
    """The reply ended, or went on, in a way its wire does not allow (a cut, most likely)."""


class ReportedError(Exception):
    """The server reported an error inside the reply (an ``{"error": ...}`` event)."""


@typing.final
class OpenAIReply:
    """Reads one reply: feed it the body's bytes, then close it at the body's end."""

    __slots__ = ("_done", "_events", "finish_reason", "usage")

    def __init__(self) -> None:
        self._events = EventDecoder()
        self._done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

    @property
    def done(self) -> bool:
        """Whether ``data: [DONE]`` came: the reply is whole, whatever follows."""
        return self._done

    def feed(self, data: bytes) -> str:
        return self._read(self._events.feed(data))

    def close(self) -> str:
        text = self._read(self._events.feed(b"", final=True))
        # [DONE] ends a whole reply; a finish_reason is as good, for servers that omit it.
        if not self._done and self.finish_reason is None:
            raise BrokenReply("the event stream ended before data: [DONE]")
        return text

    def _read(self, events: list[Event]) -> str:
        pieces: list[str] = []
        for event in events:
            if self._done:
                break  # what follows [DONE] is not part of the reply
            if event.data == "[DONE]":
                self._done = True
            elif event.event == "error":
                raise ReportedError(event.data[:_EXCERPT])
            else:
                pieces.append(self._chunk(event.data))
        return "".join(pieces)

    def _chunk(self, data: str) -> str:
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past the stack
            raise BrokenReply(f"an event's data is not JSON: {data[:_EXCERPT]!r}") from None
        if not isinstance(chunk, dict):
            raise BrokenReply(f"an event's data is not a JSON object: {data[:_EXCERPT]!r}")
        fields = typing.cast("dict[str, object]", chunk)
        if fields.get("error") is not None:  # some servers send "error": null in every chunk
            raise ReportedError(_error_message(fields["error"]))
        usage = fields.get("usage")
        if isinstance(usage, dict):
            counts = typing.cast("dict[str, object]", usage)
            self.usage = {name: value for name, value in counts.items() if is_int(value)}
        choices = fields.get("choices")
        if not isinstance(choices, list) or not choices:
            return ""  # a chunk with usage only, say
        choice = typing.cast("list[object]", choices)[0]
        if not isinstance(choice, dict):
            return ""
        choice = typing.cast("dict[str, object]", choice)
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        delta = choice.get("delta")
        content = (
            typing.cast("dict[str, object]", delta).get("content")
            if isinstance(delta, dict)
            else None
        )
        return content if isinstance(content, str) else ""


_EXCERPT = 200


def _error_message(error: object) -> str:
    """The words of an in-band error: ``{"error": {"message": ...}}`` or ``{"error": "..."}``."""
    if isinstance(error, dict):
        message = typing.cast("dict[str, object]", error).get("message")
        if isinstance(message, str):
            return message[:_EXCERPT]
    if isinstance(error, str):
        return error[:_EXCERPT]
    return json.dumps(error)[:_EXCERPT]


@typing.final
class JSONReply:
    """A ``200`` with one JSON object where a stream of events was asked for.

    Some servers answer so when they cannot stream, or to report an error; either way no
    reply comes, and retrying will not bring one.
    """

    __slots__ = ("_body",)

    finish_reason = None
    usage = None
    done = False

    def __init__(self) -> None:
        self._body = bytearray()

    def feed(self, data: bytes) -> str:
        self._body += data[: max(0, _JSON_LIMIT - len(self._body))]
        return ""

    def close(self) -> str:
        try:
            body = json.loads(self._body)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict) and "error" in body:
            raise ReportedError(_error_message(typing.cast("dict[str, object]", body)["error"]))
        raise ReportedError(
            "the server answered with one JSON object, not a stream of events; "
            "does it stream chat completions?"
        )

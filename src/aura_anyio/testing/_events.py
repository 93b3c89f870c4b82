"""The OpenAI-compatible route's reply: ``chat.completion.chunk`` server-sent events; no I/O.

Each piece of the reply (a word, as on ``/api/chat``) is one event; then come the tool calls,
if the reply makes any, their arguments in pieces; the last events carry the
``finish_reason``, the token counts (when the request asked for them), and ``data: [DONE]``.
A fault that cuts the reply after N bytes counts the reply's text bytes, as on ``/api/chat``:
the events before the cut go out whole, and the event the cut falls in goes out up to that
byte, so it never ends.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from ._chat import split_words

if typing.TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["EventFraming", "json_error"]

_ID = "chatcmpl-reference"
DONE = b"data: [DONE]\n\n"


def _string(piece: bytes) -> bytes:
    """``piece`` as a JSON string; bytes that are not UTF-8 stay as they are (a fault)."""
    text = piece.decode("utf-8", "surrogateescape")
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogateescape")


def json_error(message: str, kind: str = "invalid_request_error") -> bytes:
    """An OpenAI-style error body."""
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class EventFraming:
    """How to frame one reply's pieces as events: its model, end and token counts."""

    model: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    usage: bool = True
    #: The tool calls (name, arguments) the reply makes after its text.
    tool_calls: tuple[tuple[str, str], ...] = ()
    #: The reasoning's pieces, sent before the text in ``delta.<reasoning_field>``.
    reasoning: tuple[str, ...] = ()
    reasoning_field: str = "reasoning_content"

    def _event(self, fields: bytes) -> bytes:
        """One event: a chunk object with the common fields, then ``fields``."""
        common = {"id": _ID, "object": "chat.completion.chunk", "created": 0, "model": self.model}
        return b"data: " + json.dumps(common).encode()[:-1] + b"," + fields + b"}\n\n"

    def _content(self, piece: bytes) -> bytes:
        return self._event(
            b'"choices":[{"index":0,"delta":{"content":'
            + _string(piece)
            + b'},"finish_reason":null}]'
        )

    def _delta(self, delta: object) -> bytes:
        return self._event(
            b'"choices":[{"index":0,"delta":'
            + json.dumps(delta, ensure_ascii=False).encode()
            + b',"finish_reason":null}]'
        )

    def _calls(self) -> list[bytes]:
        """Each tool call: its id, type and name first, then its arguments a piece at a time."""
        events: list[bytes] = []
        for index, (name, arguments) in enumerate(self.tool_calls):
            head = {
                "index": index,
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            events.append(self._delta({"tool_calls": [head]}))
            events.extend(
                self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in split_words(arguments)
            )
        return events

    def frame(self, pieces: tuple[bytes, ...], *, endless: bool = False) -> tuple[bytes, ...]:
        """The events of a whole reply; an endless one has no closing events to repeat."""
        events = [self._delta({self.reasoning_field: piece}) for piece in self.reasoning]
        events += [self._content(piece) for piece in pieces]
        if endless:
            return tuple(events)
        events += self._calls()
        reason = json.dumps(self.finish_reason).encode()
        closing = self._event(b'"choices":[{"index":0,"delta":{},"finish_reason":' + reason + b"}]")
        ending = [closing]
        if self.usage:
            counts: dict[str, object] = {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": len(pieces) + len(self.reasoning),
                "total_tokens": self.prompt_tokens + len(pieces) + len(self.reasoning),
            }
            if self.reasoning:  # as OpenAI counts them: part of completion_tokens
                counts["completion_tokens_details"] = {"reasoning_tokens": len(self.reasoning)}
            ending.append(self._event(b'"choices":[],"usage":' + json.dumps(counts).encode()))
        # The role goes with the first piece and the end with the last, each in one chunk: a
        # paced reply's delay then falls between its tokens only, as a model server's does.
        chunks = [self._opening(), *events]
        if len(chunks) > 1:
            chunks[:2] = [chunks[0] + chunks[1]]
        chunks[-1] += b"".join(ending) + DONE
        return tuple(chunks)

    def _opening(self) -> bytes:
        return self._event(
            b'"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]'
        )

    def interrupted(self, pieces: Iterable[bytes]) -> tuple[bytes, ...]:
        """The events of ``pieces``, then ``data: [DONE]`` with no ``finish_reason``.

        That is how llama.cpp's server ends a request it interrupts to serve another.
        """
        return (self._opening(), *map(self._content, pieces), DONE)

    def cut(self, pieces: Iterable[bytes], size: int) -> tuple[bytes, ...]:
        """The events of the first ``size`` bytes of text; the event cut short never ends."""
        events: list[bytes] = []
        for piece in pieces:
            if size <= 0:
                break
            if len(piece) <= size:
                events.append(self._content(piece))
            else:  # up to the cut byte, inside the content string
                whole = self._content(piece[:size])
                events.append(whole[: whole.rindex(b'"},"finish_reason"')])
            size -= len(piece)
        return tuple(events)

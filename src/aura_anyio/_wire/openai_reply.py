"""The OpenAI-compatible wire's reply, read as it streams; pure, no I/O.

The reply comes as server-sent events of ``chat.completion.chunk`` JSON objects: the text in
``choices[0].delta.content``, the end in ``finish_reason`` and ``data: [DONE]``, the token
counts in ``usage``, tool calls in ``delta.tool_calls`` (in pieces), a reasoning model's
thinking in ``delta.reasoning_content`` (vLLM, llama.cpp, DeepSeek) or ``delta.reasoning``
(OpenRouter, newer vLLM), kept apart from the text, and a server's own
failure in an ``{"error": ...}`` object (or an ``event: error``). A server that does not
stream, or refuses, answers with one JSON object instead (:class:`JSONReply`).
"""

from __future__ import annotations

import json
import typing

from .._numbers import is_int
from .._usage import read_usage
from .base import BrokenReply, ReplyError, ReportedError
from .fastjson import reader as json_reader
from .sse import Event, EventDecoder

if typing.TYPE_CHECKING:
    from .._messages import ToolCall
    from .._usage import Usage

__all__ = ["JSONReply", "OpenAIReply"]


# An unexpected JSON body is read this far: enough for any error object.
_JSON_LIMIT = 8192
# What an error message keeps of what the server sent.
_EXCERPT = 200


@typing.final
class _ToolCallParts:
    """One tool call as its pieces arrive: ``name`` and ``arguments`` come in fragments."""

    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name: list[str] = []
        self.arguments: list[str] = []

    def add(self, delta: dict[str, object]) -> None:
        call_id = delta.get("id")
        if isinstance(call_id, str) and call_id:
            self.id = call_id
        kind = delta.get("type")
        if isinstance(kind, str) and kind:
            self.type = kind
        function = delta.get("function")
        if isinstance(function, dict):
            fields = typing.cast("dict[str, object]", function)
            name = fields.get("name")
            if isinstance(name, str):
                self.name.append(name)
            arguments = fields.get("arguments")
            if isinstance(arguments, str):
                self.arguments.append(arguments)

    def whole(self) -> ToolCall:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": "".join(self.name), "arguments": "".join(self.arguments)},
        }


@typing.final
class OpenAIReply:
    """Reads one reply: feed it the body's bytes, then close it at the body's end.

    Only the first choice (``index`` 0) is read; the others of a request with ``n`` above 1
    are skipped rather than mixed into its text.
    """

    __slots__ = (
        "_calls",
        "_done",
        "_events",
        "_loads",
        "_thoughts",
        "finish_reason",
        "text_events",
        "usage",
    )

    def __init__(self) -> None:
        self._events = EventDecoder()
        self._loads = json_reader()
        self._done = False
        self._calls: dict[int, _ToolCallParts] | None = None
        self._thoughts: list[str] | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.text_events = 0

    @property
    def done(self) -> bool:
        """Whether ``data: [DONE]`` came: the reply is whole, whatever follows."""
        return self._done

    @property
    def tool_calls(self) -> list[ToolCall] | None:
        """The tool calls assembled so far, in ``index`` order; ``None`` if none came."""
        if self._calls is None:
            return None
        return [self._calls[index].whole() for index in sorted(self._calls)]

    @property
    def reasoning(self) -> str | None:
        """The reasoning so far, joined; ``None`` if none came."""
        return None if self._thoughts is None else "".join(self._thoughts)

    def feed(self, data: bytes) -> str:
        events = self._events.feed(data)
        if len(events) == 1 and not self._done:
            # One event, as a token comes: what _read() does with it, without its loop. A
            # fault here has no text before it (ReplyError.text is "").
            event = events[0]
            if event.event == "message" and event.data != "[DONE]":
                text = self._chunk(event.data)
                if text:
                    self.text_events += 1
                return text
        return self._read(events)

    def close(self) -> str:
        text = self._read(self._events.feed(b"", final=True))
        # [DONE] ends a whole reply; a finish_reason is as good, for servers that omit it.
        if not self._done and self.finish_reason is None:
            error = BrokenReply("the event stream ended before data: [DONE]")
            error.text = text
            raise error
        return text

    def _read(self, events: list[Event]) -> str:
        pieces: list[str] = []
        try:
            for event in events:
                if self._done:
                    break  # what follows [DONE] is not part of the reply
                if event.data == "[DONE]":
                    self._done = True
                    if self.finish_reason is None:
                        # llama.cpp's server ends a request it interrupts (to serve another)
                        # this way: a reply cut short must not pass for a whole one.
                        raise BrokenReply(
                            "the server ended the reply (data: [DONE]) without a "
                            "finish_reason: it was cut short"
                        )
                elif event.event == "error":
                    raise ReportedError(event.data[:_EXCERPT])
                elif piece := self._chunk(event.data):
                    pieces.append(piece)
        except ReplyError as error:
            self.text_events += len(pieces)
            error.text = "".join(pieces)  # the caller keeps what came before the fault
            raise
        self.text_events += len(pieces)
        return "".join(pieces)

    # _chunk and _choice run once per event: a field that is absent (None) is passed over
    # before its type is tested.
    def _chunk(self, data: str) -> str:
        try:
            chunk = self._loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested past the stack
            raise BrokenReply(f"an event's data is not JSON: {data[:_EXCERPT]!r}") from None
        if not isinstance(chunk, dict):
            raise BrokenReply(f"an event's data is not a JSON object: {data[:_EXCERPT]!r}")
        fields = typing.cast("dict[str, object]", chunk)
        error = fields.get("error")
        if error is not None:  # some servers send "error": null in every chunk
            raise ReportedError(_error_message(error))
        usage = fields.get("usage")
        if usage is not None:  # a null in every chunk but the last is no usage
            read = read_usage(usage)
            if read is not None:
                self.usage = read
        choices = fields.get("choices")
        if not isinstance(choices, list):
            return ""
        for choice in typing.cast("list[object]", choices):
            if isinstance(choice, dict):
                first = typing.cast("dict[str, object]", choice)
                index = first.get("index")
                # type() rather than is_int(): a call less per event, and a bool's is not int.
                if index is None or (index == 0 and type(index) is int):
                    return self._choice(first)
        return ""  # a chunk with usage only, or another choice's

    def _choice(self, choice: dict[str, object]) -> str:
        reason = choice.get("finish_reason")
        if reason is not None and isinstance(reason, str):
            self.finish_reason = reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ""
        fields = typing.cast("dict[str, object]", delta)
        calls = fields.get("tool_calls")
        if calls is not None and isinstance(calls, list):
            self._add_calls(typing.cast("list[object]", calls))
        # A server that sends both names sends the same thinking twice: one is kept.
        thought = fields.get("reasoning_content")
        if not thought or not isinstance(thought, str):
            thought = fields.get("reasoning")
        if thought and isinstance(thought, str):
            if self._thoughts is None:
                self._thoughts = []
            self._thoughts.append(thought)
        content = fields.get("content")
        return content if isinstance(content, str) else ""

    def _add_calls(self, calls: list[object]) -> None:
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            if self._calls is None:  # an empty list (vLLM sends one with every delta) is none
                self._calls = {}
            fields = typing.cast("dict[str, object]", call)
            index = fields.get("index")
            # A server that leaves out the index sends each call whole, in its place.
            key = index if is_int(index) else position
            parts = self._calls.get(key)
            if parts is None:
                parts = self._calls[key] = _ToolCallParts()
            parts.add(fields)


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
    tool_calls = None
    reasoning = None
    done = False
    text_events = 0

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

"""The OpenAI-compatible wire: ``POST /v1/chat/completions``, streamed; pure, no I/O.

vLLM, llama.cpp, Ollama, LM Studio and OpenChat's own server speak it. The request asks for
``"stream": true``, and the reply comes as server-sent events of ``chat.completion.chunk``
JSON objects: the text in ``choices[0].delta.content``, the end in ``finish_reason`` and
``data: [DONE]``, the token counts in ``usage``, and a server's own failure in an
``{"error": ...}`` object (or an ``event: error``).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping

from .._exceptions import InvalidRequestError
from .._messages import check_openai_messages, check_unicode
from .._models import ModelSpec
from .._numbers import is_int
from .._payload import check_max_tokens, check_temperature
from .._retry import rate_limit_wait
from .base import BrokenReply, ReplyError, ReportedError, dump_json
from .fastjson import reader as json_reader
from .sse import Event, EventDecoder

if typing.TYPE_CHECKING:
    from .._messages import Messages, ToolCall
    from .base import ReplyDecoder, WireName

__all__ = [
    "OPENAI_PATH",
    "RESERVED_FIELDS",
    "JSONReply",
    "OpenAIReply",
    "OpenAIWire",
    "encode_body",
    "openai_body",
]

OPENAI_PATH = "/v1/chat/completions"

#: The body fields the client writes itself, which ``extra_body`` may not set: the first
#: three are the request, the last two have arguments of their own.
RESERVED_FIELDS = ("model", "messages", "stream", "temperature", "max_tokens")


def _check_extra_body(extra_body: object) -> Mapping[str, object]:
    if not isinstance(extra_body, Mapping):
        raise InvalidRequestError(
            f"extra_body must be a mapping of body fields, got {type(extra_body).__name__}"
        )
    fields = typing.cast("Mapping[object, object]", extra_body)
    for name in fields:
        if not isinstance(name, str):
            raise InvalidRequestError(f"extra_body has a key that is not a str: {name!r}")
        if name in RESERVED_FIELDS:
            hint = (
                f"pass {name}= as an argument instead"
                if name in ("temperature", "max_tokens")
                else "the client sets it itself"
            )
            raise InvalidRequestError(f"extra_body may not set {name!r}: {hint}")
    return typing.cast("Mapping[str, object]", fields)


def openai_body(
    messages: Messages,
    *,
    model: str | ModelSpec,
    temperature: float,
    max_tokens: int | None = None,
    extra_body: Mapping[str, object] | None = None,
    include_usage: bool = True,
) -> dict[str, object]:
    """The body of ``POST /v1/chat/completions``, streamed; messages pass through as given.

    ``max_tokens`` goes out only when given (the server's default applies otherwise), and
    ``stream_options: {"include_usage": true}`` when ``include_usage`` is true; the fields of
    ``extra_body`` come last, and may replace ``stream_options``.

    Raises:
        InvalidRequestError: An argument is invalid; the message names it.
    """
    checked = check_openai_messages(messages)
    if isinstance(model, ModelSpec):
        model = model.id
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty str or a ModelSpec, got {model!r}")
    check_unicode("model", model)
    body: dict[str, object] = {
        "model": model,
        "messages": checked,
        "temperature": check_temperature(temperature),
    }
    if max_tokens is not None:
        # Here max_tokens caps the reply, so any positive count will do.
        body["max_tokens"] = check_max_tokens(max_tokens, minimum=1)
    body["stream"] = True
    if include_usage:
        # OpenAI and vLLM send the token counts only when asked.
        body["stream_options"] = {"include_usage": True}
    if extra_body is not None:
        body.update(_check_extra_body(extra_body))
    return body


def encode_body(body: Mapping[str, object], extra_body: Mapping[str, object] | None) -> bytes:
    """``body`` as UTF-8 JSON.

    Raises:
        InvalidRequestError: A value cannot travel as JSON (a ``bytes`` or a set, a NaN, a
            lone surrogate...); the message names the message field or ``extra_body`` key.
    """
    try:
        return dump_json(body)
    # UnicodeEncodeError is a ValueError; RecursionError, a value nested past the stack.
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidRequestError(_unsendable(body, extra_body, exc)) from None


def _unsendable(
    body: Mapping[str, object], extra_body: Mapping[str, object] | None, error: Exception
) -> str:
    """Say which field of ``body`` cannot be written as JSON, and why."""
    messages = typing.cast("list[dict[str, object]]", body["messages"])
    places: list[tuple[str, object]] = []
    for index, message in enumerate(messages):
        places += [(f"messages[{index}].{name}", value) for name, value in message.items()]
        places.append((f"messages[{index}]", message))  # its keys
    if extra_body is not None:
        places += [(f"extra_body[{name!r}]", value) for name, value in extra_body.items()]
        places.append(("extra_body", extra_body))
    for place, value in places:
        try:
            dump_json(value)
        except (TypeError, ValueError, RecursionError) as exc:
            where, error = place, exc
            break
    else:  # pragma: no cover (the body's own fields are checked already)
        where = "the request body"
    if isinstance(error, UnicodeEncodeError):
        why = "it holds a lone surrogate, which no UTF-8 body can carry"
    elif isinstance(error, TypeError):
        why = str(error)
    elif isinstance(error, RecursionError):
        why = "it is nested too deeply"
    else:  # NaN and infinities, or a value that contains itself
        why = f"{error} (JSON has no NaN or infinity, and no value may contain itself)"
    return f"{where} cannot be sent as JSON: {why}"


@typing.final
class OpenAIWire:
    """``POST /v1/chat/completions``, streamed as server-sent events.

    Args:
        include_usage: Ask for the token counts (``stream_options.include_usage``); off for
            a server that refuses the field.
    """

    __slots__ = ("include_usage",)

    name: WireName = "openai"

    def __init__(self, *, include_usage: bool = True) -> None:
        self.include_usage = include_usage

    def path(self, base: str) -> str:
        # Clients of the OpenAI SDK are used to base URLs that end in /v1.
        return base + ("/chat/completions" if base.endswith("/v1") else OPENAI_PATH)

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
        body = openai_body(
            messages,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            extra_body=extra_body,
            include_usage=self.include_usage,
        )
        return encode_body(body, extra_body)

    def headers(self, key: str) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if key:
            if not (key.isascii() and key.isprintable()):  # never quoted: it is a secret
                raise InvalidRequestError(
                    "key must be printable ASCII to travel in an Authorization header"
                )
            headers["authorization"] = f"Bearer {key}"
        return headers

    def rate_limited(self, status_code: int, reason: str) -> bool:
        return status_code == 429

    def admission_wait(self, headers: Mapping[str, str]) -> float | None:
        # x-ratelimit-remaining-* at 0: the next request would be refused until the reset.
        return rate_limit_wait(headers)

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        if content_type is not None and "json" in content_type.lower():
            return JSONReply()  # an error, or a server that does not stream
        return OpenAIReply()  # an event stream is UTF-8, whatever the header says


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

    __slots__ = ("_calls", "_done", "_events", "_loads", "finish_reason", "usage")

    def __init__(self) -> None:
        self._events = EventDecoder()
        self._loads = json_reader()
        self._done = False
        self._calls: dict[int, _ToolCallParts] | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

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

    def feed(self, data: bytes) -> str:
        return self._read(self._events.feed(data))

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
                else:
                    pieces.append(self._chunk(event.data))
        except ReplyError as error:
            error.text = "".join(pieces)  # the caller keeps what came before the fault
            raise
        return "".join(pieces)

    def _chunk(self, data: str) -> str:
        try:
            chunk = self._loads(data)
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
        if not isinstance(choices, list):
            return ""
        for choice in typing.cast("list[object]", choices):
            if isinstance(choice, dict):
                first = typing.cast("dict[str, object]", choice)
                index = first.get("index")
                if index is None or (is_int(index) and index == 0):
                    return self._choice(first)
        return ""  # a chunk with usage only, or another choice's

    def _choice(self, choice: dict[str, object]) -> str:
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return ""
        fields = typing.cast("dict[str, object]", delta)
        calls = fields.get("tool_calls")
        if isinstance(calls, list):
            self._add_calls(typing.cast("list[object]", calls))
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

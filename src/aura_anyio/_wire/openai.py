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

from .._exceptions import InvalidRequestError
from .._messages import check_unicode, validate_messages
from .._models import ModelSpec
from .._numbers import is_int
from .._payload import check_max_tokens, check_temperature
from .base import BrokenReply, ReportedError, dump_json
from .sse import Event, EventDecoder

if typing.TYPE_CHECKING:
    from .._messages import Messages
    from .base import ReplyDecoder, WireName

__all__ = ["OPENAI_PATH", "JSONReply", "OpenAIReply", "OpenAIWire", "openai_body"]

OPENAI_PATH = "/v1/chat/completions"


def openai_body(
    messages: Messages, *, model: str | ModelSpec, temperature: float, max_tokens: int
) -> dict[str, object]:
    """The body of ``POST /v1/chat/completions``, streamed; messages stay in their order.

    Raises:
        InvalidRequestError: An argument is invalid; the message names it.
    """
    checked = validate_messages(messages)
    if isinstance(model, ModelSpec):
        model = model.id
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty str or a ModelSpec, got {model!r}")
    check_unicode("model", model)
    return {
        "model": model,
        "messages": checked,
        "temperature": check_temperature(temperature),
        # Here max_tokens caps the reply, so any positive count will do.
        "max_tokens": check_max_tokens(max_tokens, minimum=1),
        "stream": True,
    }


@typing.final
class OpenAIWire:
    """``POST /v1/chat/completions``, streamed as server-sent events."""

    name: WireName = "openai"

    def path(self, base: str) -> str:
        # Clients of the OpenAI SDK are used to base URLs that end in /v1.
        return base + ("/chat/completions" if base.endswith("/v1") else OPENAI_PATH)

    def body(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec,
        temperature: float,
        max_tokens: int,
        key: str,
    ) -> bytes:
        return dump_json(
            openai_body(messages, model=model, temperature=temperature, max_tokens=max_tokens)
        )

    def headers(self, key: str) -> dict[str, str]:
        headers = {"accept": "text/event-stream"}
        if key:
            if not (key.isascii() and key.isprintable()):  # never quoted: it is a secret
                raise InvalidRequestError(
                    "key must be printable ASCII to travel in an Authorization header"
                )
            headers["authorization"] = f"Bearer {key}"
        return headers

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        if content_type is not None and "json" in content_type.lower():
            return JSONReply()  # an error, or a server that does not stream
        return OpenAIReply()  # an event stream is UTF-8, whatever the header says


# An unexpected JSON body is read this far: enough for any error object.
_JSON_LIMIT = 8192
# What an error message keeps of what the server sent.
_EXCERPT = 200


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

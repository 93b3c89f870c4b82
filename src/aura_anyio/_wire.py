"""The two wires a client can speak: request bodies out, reply text in; pure, no I/O.

- ``"aura"``: openchat-ui's ``POST /api/chat`` (``_payload``): the reply is the body's text,
  and the body's end is the reply's end.
- ``"openai"``: ``POST /v1/chat/completions`` with ``"stream": true``, as vLLM, llama.cpp,
  Ollama, LM Studio and OpenChat's own server speak it: the reply comes as server-sent events
  of JSON chunks, the text in ``choices[0].delta.content``, and ``data: [DONE]`` ends it.

Everything else (sending, retries, timeouts, fan-out) is the same for both; a wire only says
what to send and how to read what comes back.
"""

from __future__ import annotations

import json
import typing

from ._decoding import TextDecoder, charset_from_content_type
from ._exceptions import InvalidRequestError
from ._messages import check_unicode, validate_messages
from ._models import ModelSpec
from ._openai_reply import BrokenReply, JSONReply, OpenAIReply, ReportedError
from ._payload import build_payload, check_max_tokens, check_temperature

if typing.TYPE_CHECKING:
    from ._messages import Messages

__all__ = [
    "WIRES",
    "BrokenReply",
    "ReplyDecoder",
    "ReportedError",
    "Wire",
    "openai_body",
    "wire_named",
]

OPENAI_PATH = "/v1/chat/completions"


class ReplyDecoder(typing.Protocol):
    """Reads one reply's body: bytes in, text out, and what the wire says about the end."""

    @property
    def finish_reason(self) -> str | None:
        """Why the reply ended (``"stop"``, ``"length"``...), if the wire says."""
        ...

    @property
    def usage(self) -> dict[str, int] | None:
        """The token counts the server sent, if it sent any."""
        ...

    @property
    def done(self) -> bool:
        """Whether the wire marked the reply's end, before the body's end (``[DONE]``)."""
        ...

    def feed(self, data: bytes) -> str:
        """Return the text ``data`` completed."""
        ...

    def close(self) -> str:
        """Return the text left at the end of the body; raise :class:`BrokenReply` if the
        wire says the reply is not complete."""
        ...


class Wire(typing.Protocol):
    """What a client sends for one request, and how it reads the reply."""

    @property
    def name(self) -> str: ...
    def path(self, base: str) -> str:
        """The URL to post to, under the base URL ``base`` (no trailing slash)."""
        ...

    def body(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec,
        temperature: float,
        max_tokens: int,
        key: str,
    ) -> bytes:
        """The request body; raises :class:`InvalidRequestError` for bad arguments."""
        ...

    def headers(self, key: str) -> dict[str, str]:
        """Headers this wire adds."""
        ...

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        """A decoder for one reply."""
        ...


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@typing.final
class _TextReply:
    """The /api/chat reply: the body is the text, and its end is the reply's end."""

    __slots__ = ("_text",)

    finish_reason = None
    usage = None
    done = False  # only the body's end ends this reply

    def __init__(self, encoding: str) -> None:
        self._text = TextDecoder(encoding)

    def feed(self, data: bytes) -> str:
        return self._text.decode(data)

    def close(self) -> str:
        return self._text.flush()


@typing.final
class AuraWire:
    """openchat-ui's ``POST /api/chat``."""

    name = "aura"

    def path(self, base: str) -> str:
        return base + "/api/chat"

    def body(
        self,
        messages: Messages,
        *,
        model: str | ModelSpec,
        temperature: float,
        max_tokens: int,
        key: str,
    ) -> bytes:
        return _json(
            build_payload(
                messages, model=model, temperature=temperature, max_tokens=max_tokens, key=key
            )
        )

    def headers(self, key: str) -> dict[str, str]:
        return {}  # the key travels in the body

    def decoder(self, content_type: str | None) -> ReplyDecoder:
        return _TextReply(charset_from_content_type(content_type))


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

    name = "openai"

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
        return _json(
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


#: The wires by name.
WIRES: dict[str, Wire] = {"aura": AuraWire(), "openai": OpenAIWire()}


def wire_named(name: object) -> Wire:
    """Return the wire called ``name``, or raise :class:`InvalidRequestError`."""
    if not isinstance(name, str) or name not in WIRES:
        raise InvalidRequestError(
            f"wire must be one of {', '.join(map(repr, WIRES))}, got {name!r}"
        )
    return WIRES[name]

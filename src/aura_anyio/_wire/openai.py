"""The OpenAI-compatible wire: ``POST /v1/chat/completions``, streamed; pure, no I/O.

vLLM, llama.cpp, Ollama, LM Studio and OpenChat's own server speak it. The request asks for
``"stream": true``; the reply, server-sent events of ``chat.completion.chunk`` JSON objects,
is read by ``openai_reply``. This module builds the request: the body, its checks, the headers.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping

from .._exceptions import InvalidRequestError
from .._messages import check_openai_messages, check_unicode
from .._models import ModelSpec
from .._payload import check_max_tokens, check_temperature
from .._retry import rate_limit_wait
from .base import dump_json
from .openai_reply import JSONReply, OpenAIReply

if typing.TYPE_CHECKING:
    from .._messages import Messages
    from .base import ReplyDecoder, WireName

__all__ = ["OPENAI_PATH", "RESERVED_FIELDS", "OpenAIWire", "encode_body", "openai_body"]

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

"""Parsing and validating request bodies; pure, no I/O.

``/api/chat`` as openchat-ui's ``chat.ts`` would, and ``/v1/chat/completions`` as an
OpenAI-compatible server would.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from .._messages import ROLES, Message, content_text
from .._numbers import is_int, is_number

if typing.TYPE_CHECKING:
    from collections.abc import Container, Mapping

__all__ = [
    "OPENAI_FIELDS",
    "OPENAI_ROLES",
    "ChatBody",
    "OpenAIBody",
    "RejectedError",
    "load_json",
    "message_text",
    "parse_chat_body",
    "parse_openai_body",
]


class RejectedError(Exception):
    """The body is not a request openchat-ui could serve; ``str()`` is the reason phrase."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChatBody:
    """The parts of a valid ``/api/chat`` body the server acts on."""

    model_id: str
    token_limit: float
    prompt: str
    messages: tuple[Message, ...]


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _wrong_type(field: str, expected: str, value: object) -> RejectedError:
    return RejectedError(f"Invalid field '{field}': expected {expected}, got {_json_type(value)}")


def _field(obj: Mapping[str, object], name: str, where: str = "") -> object:
    try:
        return obj[name]
    except KeyError:
        raise RejectedError(f"Missing field '{where}{name}'") from None


def _reject_constant(name: str) -> typing.NoReturn:
    # JSON.parse rejects NaN and Infinity; Python's json module would accept them.
    raise ValueError(f"{name} is not valid JSON")


def load_json(body: bytes) -> object:
    """Parse ``body`` as JSON the way JavaScript's ``JSON.parse`` would, or raise ``ValueError``."""
    try:
        value: object = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:  # deeply nested arrays: a rejected body, not a crashed server
        raise ValueError("nested too deeply") from None
    return value


def _json_object(field: str, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _wrong_type(field, "an object", value)
    return typing.cast("dict[str, object]", value)  # JSON object keys are always str


def _check_messages(value: object) -> tuple[Message, ...]:
    if not isinstance(value, list):
        raise _wrong_type("messages", "an array", value)
    checked: list[Message] = []
    for index, element in enumerate(typing.cast("list[object]", value)):
        where = f"messages[{index}]"
        item = _json_object(where, element)
        role = _field(item, "role", f"{where}.")
        content = _field(item, "content", f"{where}.")
        if not isinstance(role, str) or role not in ROLES:
            raise RejectedError(f"Invalid field '{where}.role': {role!r} is not a known role")
        if not isinstance(content, str):
            raise _wrong_type(f"{where}.content", "a string", content)
        checked.append({"role": role, "content": content})
    return tuple(checked)


def parse_chat_body(data: object, *, models: Container[str]) -> ChatBody:
    """Validate a parsed ``/api/chat`` body.

    Raises:
        RejectedError: A field is missing or has the wrong type, or the model is unknown.
    """
    body = _json_object("body", data)
    model = _json_object("model", _field(body, "model"))
    model_id = _field(model, "id", "model.")
    if not isinstance(model_id, str):
        raise _wrong_type("model.id", "a string", model_id)
    if model_id not in models:
        raise RejectedError(f"Unknown model: {model_id}")
    token_limit = _field(model, "tokenLimit", "model.")
    if not is_number(token_limit):  # a JavaScript number: 8192.0 is as good as 8192
        raise _wrong_type("model.tokenLimit", "a number", token_limit)
    messages = _check_messages(_field(body, "messages"))
    # chat.ts falls back to its defaults when these are absent or null (`!prompt`,
    # `temperature == null`, `key ? key : env`); a value of the wrong type fails upstream.
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise _wrong_type("key", "a string", key)
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string", prompt)
    temperature = body.get("temperature")
    if temperature is not None and not is_number(temperature):
        raise _wrong_type("temperature", "a number", temperature)
    return ChatBody(model_id, token_limit, prompt or "", messages)


#: The roles an OpenAI-compatible server takes.
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
#: The body fields the server reads itself; the others are recorded as ``extra_body``.
OPENAI_FIELDS = frozenset(
    ("model", "messages", "stream", "temperature", "max_tokens", "stream_options")
)


@dataclasses.dataclass(frozen=True, slots=True)
class OpenAIBody:
    """The parts of a valid ``/v1/chat/completions`` body the server acts on."""

    model: str
    messages: tuple[dict[str, object], ...]
    max_tokens: int | None
    include_usage: bool
    extra: dict[str, object]


def _check_openai_messages(value: object) -> tuple[dict[str, object], ...]:
    if not isinstance(value, list):
        raise _wrong_type("messages", "an array", value)
    checked: list[dict[str, object]] = []
    for index, element in enumerate(typing.cast("list[object]", value)):
        where = f"messages[{index}]"
        item = _json_object(where, element)
        role = _field(item, "role", f"{where}.")
        if not isinstance(role, str) or role not in OPENAI_ROLES:
            raise RejectedError(f"Invalid field '{where}.role': {role!r} is not a known role")
        # As OpenAI's schema has it: content may be left out (or null) only by an assistant
        # message that calls tools (or, in the older form, a function).
        calls = role == "assistant" and ("tool_calls" in item or "function_call" in item)
        if "content" not in item and not calls:
            raise RejectedError(f"Missing field '{where}.content'")
        content = item.get("content")
        if content is None and not calls:
            raise _wrong_type(f"{where}.content", "a string or an array", content)
        if isinstance(content, list):
            for part in typing.cast("list[object]", content):
                fields = _json_object(f"{where}.content[]", part)
                if not isinstance(fields.get("type"), str):
                    raise RejectedError(f"Missing field '{where}.content[].type'")
        elif content is not None and not isinstance(content, str):
            raise _wrong_type(f"{where}.content", "a string or an array", content)
        checked.append(item)
    return tuple(checked)


def message_text(message: Mapping[str, object]) -> str:
    """The text of a message's content: a str, the text parts of a list, or ``""``."""
    return content_text(message.get("content"))


def parse_openai_body(data: object) -> OpenAIBody:
    """Validate a parsed ``/v1/chat/completions`` body, as an OpenAI-compatible server would.

    Raises:
        RejectedError: A field is missing or has the wrong type, or streaming was not asked
            for (the only way this server answers).
    """
    body = _json_object("body", data)
    model = _field(body, "model")
    if not isinstance(model, str) or not model:
        raise _wrong_type("model", "a non-empty string", model)
    messages = _check_openai_messages(_field(body, "messages"))
    temperature = body.get("temperature")
    if temperature is not None and not is_number(temperature):
        raise _wrong_type("temperature", "a number", temperature)
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not is_int(max_tokens) or max_tokens < 1):
        raise _wrong_type("max_tokens", "a positive integer", max_tokens)
    if body.get("stream") is not True:
        raise RejectedError("Only streamed completions are served: set 'stream' to true")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _wrong_type("stream_options", "an object", options)
    include_usage = (
        options is not None
        and typing.cast("dict[str, object]", options).get("include_usage") is True
    )
    extra = {name: value for name, value in body.items() if name not in OPENAI_FIELDS}
    return OpenAIBody(model, messages, max_tokens, include_usage, extra)

"""Chat messages: validation and the system/history split; pure, no I/O."""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict

from ._exceptions import InvalidRequestError

__all__ = [
    "OPENAI_ROLES",
    "ROLES",
    "FunctionCall",
    "Message",
    "Messages",
    "ToolCall",
    "check_openai_messages",
    "check_unicode",
    "content_text",
    "split_messages",
    "validate_messages",
]


class FunctionCall(TypedDict):
    """The function a tool call calls: its name, and its arguments as a JSON text."""

    name: str
    arguments: str


class ToolCall(TypedDict):
    """One tool call of a reply, assembled from its streamed pieces (OpenAI wire)."""

    id: str
    type: str
    function: FunctionCall


Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
#: The roles of the OpenAI-compatible wire, whose messages pass through as they are.
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
# The roles that set the scene; a conversation needs one message of another role.
_INSTRUCTIONS = frozenset(("system", "developer"))


class Message(TypedDict):
    """One chat message as the wire carries it."""

    role: Role
    content: str


#: What the API accepts as a conversation: ``Message`` dicts, or any mappings with ``role``
#: and ``content`` (extra keys are dropped). It is checked at run time all the same.
Messages: typing.TypeAlias = Sequence[Mapping[str, object]]


def check_unicode(field: str, text: str) -> None:
    """Raise if ``text`` holds a lone surrogate, which no UTF-8 body can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(
            f"{field} is not valid Unicode: a lone surrogate at index {exc.start}"
        ) from None


def _check_message(index: int, message: object) -> Message:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise InvalidRequestError(
            f"{where} must be a mapping with 'role' and 'content', got {type(message).__name__}"
        )
    message = typing.cast("Mapping[object, object]", message)
    try:
        role = message["role"]
    except KeyError:
        raise InvalidRequestError(f"{where} has no 'role'") from None
    try:
        content = message["content"]
    except KeyError:
        raise InvalidRequestError(f"{where} has no 'content'") from None
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidRequestError(
            f"{where}.role must be one of 'system', 'user', 'assistant', got {role!r}"
        )
    if not isinstance(content, str):
        raise InvalidRequestError(f"{where}.content must be a str, got {type(content).__name__}")
    check_unicode(f"{where}.content", content)
    return {"role": role, "content": content}


def content_text(content: object) -> str:
    """The text of a message's content: a str itself, the text parts of a list joined, or
    ``""`` (``None``, or anything else)."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = typing.cast("Sequence[object]", content)
        return "".join(
            text
            for part in parts
            if isinstance(part, Mapping)
            and isinstance(text := typing.cast("Mapping[str, object]", part).get("text"), str)
        )
    return ""


def _check_sequence(messages: object) -> Sequence[object]:
    kind = type(messages).__name__
    if isinstance(messages, (str, bytes, bytearray, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages must be a sequence of {{'role', 'content'}} mappings, got {kind}"
        )
    return typing.cast("Sequence[object]", messages)


def validate_messages(messages: Messages) -> list[Message]:
    """Check a conversation and return it as plain ``{"role", "content"}`` dicts, in order.

    Raises:
        InvalidRequestError: ``messages`` is not a sequence of messages, a message is malformed
            (the error names its index), or there is no user or assistant message.
    """
    items = _check_sequence(messages)
    checked = [_check_message(index, message) for index, message in enumerate(items)]
    if not any(message["role"] != "system" for message in checked):
        raise InvalidRequestError(
            "messages must contain at least one 'user' or 'assistant' message"
        )
    return checked


def split_messages(messages: Messages) -> tuple[str, list[Message]]:
    """Split a conversation into the system prompt and the rest.

    Returns:
        The system messages' contents joined by ``"\\n"`` in order, and the other messages in
        order, each reduced to ``{"role", "content"}``.

    Raises:
        InvalidRequestError: as :func:`validate_messages`.
    """
    checked = validate_messages(messages)
    system = "\n".join(m["content"] for m in checked if m["role"] == "system")
    return system, [m for m in checked if m["role"] != "system"]


def _check_openai_message(index: int, message: object) -> dict[str, object]:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise InvalidRequestError(
            f"{where} must be a mapping with 'role' and 'content', got {type(message).__name__}"
        )
    fields = dict(typing.cast("Mapping[object, object]", message))
    for name in fields:
        if not isinstance(name, str):
            raise InvalidRequestError(f"{where} has a key that is not a str: {name!r}")
    checked = typing.cast("dict[str, object]", fields)
    role = checked.get("role")
    if role is None and "role" not in checked:
        raise InvalidRequestError(f"{where} has no 'role'")
    if not isinstance(role, str) or role not in OPENAI_ROLES:
        known = ", ".join(map(repr, OPENAI_ROLES))
        raise InvalidRequestError(f"{where}.role must be one of {known}, got {role!r}")
    # Only an assistant message that calls tools may go without content (or with null).
    calls = role == "assistant" and ("tool_calls" in checked or "function_call" in checked)
    if "content" not in checked:
        if not calls:
            raise InvalidRequestError(f"{where} has no 'content'")
        return checked
    content = checked["content"]
    if isinstance(content, str) or (content is None and calls):
        return checked
    if isinstance(content, (list, tuple)):
        parts = typing.cast("Sequence[object]", content)
        for number, part in enumerate(parts):
            if not isinstance(part, Mapping) or not isinstance(
                typing.cast("Mapping[object, object]", part).get("type"), str
            ):
                raise InvalidRequestError(
                    f"{where}.content[{number}] must be a content part, a mapping with a "
                    f"'type' such as 'text' or 'image_url', got {part!r:.80}"
                )
        return checked
    allowed = "a str or a list of content parts"
    if role == "assistant":
        allowed += " (or None, with tool_calls)"
    raise InvalidRequestError(f"{where}.content must be {allowed}, got {type(content).__name__}")


def check_openai_messages(messages: Messages) -> list[dict[str, object]]:
    """Check a conversation for the OpenAI-compatible wire; return its messages as they are.

    Roles are ``system``, ``developer``, ``user``, ``assistant`` and ``tool``; content is a
    str, a list of content parts, or (an assistant message with ``tool_calls``) ``None`` or
    absent. Every other field (``name``, ``tool_calls``, ``tool_call_id``...) is kept
    unchanged; whether each value can travel as JSON is checked when the body is written.

    Raises:
        InvalidRequestError: ``messages`` is not a sequence of messages, a message is malformed
            on its face (the error names its index), or every message is a system or
            developer message.
    """
    items = _check_sequence(messages)
    checked = [_check_openai_message(index, message) for index, message in enumerate(items)]
    if all(message["role"] in _INSTRUCTIONS for message in checked):
        raise InvalidRequestError(
            "messages must contain at least one message that is not a 'system' or "
            "'developer' message"
        )
    return checked

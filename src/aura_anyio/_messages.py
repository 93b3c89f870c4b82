"""Chat messages: validation and the system/history split; pure, no I/O."""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict

from ._exceptions import InvalidRequestError

__all__ = [
    "ROLES",
    "Message",
    "Messages",
    "check_unicode",
    "split_messages",
    "validate_messages",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


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


def validate_messages(messages: Messages) -> list[Message]:
    """Check a conversation and return it as plain ``{"role", "content"}`` dicts, in order.

    Raises:
        InvalidRequestError: ``messages`` is not a sequence of messages, a message is malformed
            (the error names its index), or there is no user or assistant message.
    """
    kind = type(messages).__name__
    if isinstance(messages, (str, bytes, bytearray, Mapping)) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages must be a sequence of {{'role', 'content'}} mappings, got {kind}"
        )
    items = typing.cast("Sequence[object]", messages)
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

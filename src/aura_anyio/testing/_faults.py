"""Server faults for tests: what can go wrong with a response, and its marker; pure, no I/O.

A :class:`Fault` is chosen for a whole server (``ReferenceServer(fault=...)``) or for one
request, by a marker in the content of the request's last message::

    [[fault status=503 retry_after=2 times=1]]

``Fault.marker()`` writes that text and :func:`find_fault` reads it back. A marker's values are
percent-encoded, so a reason phrase may hold spaces; a flag such as ``endless`` stands alone.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections import Counter
from urllib.parse import quote, unquote

from .._numbers import is_int, is_number

if typing.TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ERROR_SHAPES", "Fault", "FaultBook", "find_fault", "parse_fault"]

#: The JSON error bodies ``Fault(error_shape=...)`` can send, by the servers that send them.
ERROR_SHAPES = ("openai", "vllm", "ollama", "fastapi", "fastapi_validation", "message")

_MARKER = re.compile(r"\[\[fault(?P<body>(?:\s+[^\s\]]+)*)\s*\]\]")
# A header value as h11 sends it: visible ASCII and inner spaces, nothing around them.
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
_CUTS = (
    "stall_before_status",
    "stall_after",
    "reset_after",
    "close_after",
    "interrupt_after",
    "empty_body",
)


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One way for a response to go wrong; every field left at its default means "as usual".

    At most one of the cuts (``stall_before_status``, ``stall_after``, ``reset_after``,
    ``close_after``, ``interrupt_after``, ``empty_body``) may be set, and ``status`` replaces
    the reply, so it takes no body fault.

    Attributes:
        status: Answer with this status (300-599, but not 304, which has no body) instead of
            the reply; the body is ``Error``.
        reason: The reason phrase for ``status`` (by default the standard one).
        retry_after: A ``Retry-After`` header value for ``status``, sent as it is.
        location: A ``Location`` header value for ``status`` (a redirect).
        error_body_bytes: Make the error body this many bytes long instead of ``Error``.
        error_shape: Make the error body JSON of this server's shape, with ``reason`` (or
            the standard phrase) as its message: ``openai`` (also LiteLLM's, llama.cpp's),
            ``vllm``, ``ollama``, ``fastapi``, ``fastapi_validation`` or ``message`` (a bare
            ``{"message": ...}``); see :data:`ERROR_SHAPES`.
        stall_before_status: Read the request, then send nothing until the client leaves.
        stall_after: Send this many body bytes, then nothing until the client leaves.
        reset_after: Send this many body bytes, then reset the connection (TCP RST).
        close_after: Send this many body bytes, then close the connection without the final
            chunk.
        interrupt_after: Send this many pieces of the reply (words), then end it cleanly, as
            llama.cpp's server ends a request it interrupts to serve another: on the OpenAI
            route with ``data: [DONE]`` and no ``finish_reason``; on ``/api/chat`` the body
            just ends (a clean early end, which that wire cannot tell apart).
        empty_body: Answer ``200`` and end the body at once, without a byte of the reply, as
            openchat-ui does under load (on the OpenAI route, not even ``data: [DONE]``).
        drip: Seconds to wait between two chunks (instead of the server's ``delay``).
        first_chunk_after: Seconds to wait between the head and the first chunk, as a model
            does before its first token: the reply's time to first text.
        chunk_size: Cut the body into chunks of this many bytes; 1 splits every multi-byte
            character across chunks.
        invalid_utf8: Send the byte ``0xFF`` (never valid UTF-8) after the first chunk.
        endless: Repeat the reply forever (a space, if the reply is empty).
        times: Apply the fault to this many requests only, then answer as usual. Requests are
            counted per fault and per marker text, so two prompts with the same marker share a
            count only if their last messages are equal.
    """

    status: int | None = None
    reason: str | None = None
    retry_after: str | None = None
    location: str | None = None
    error_body_bytes: int | None = None
    error_shape: str | None = None
    stall_before_status: bool = False
    stall_after: int | None = None
    reset_after: int | None = None
    close_after: int | None = None
    interrupt_after: int | None = None
    empty_body: bool = False
    drip: float | None = None
    first_chunk_after: float | None = None
    chunk_size: int | None = None
    invalid_utf8: bool = False
    endless: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_field(field.name, _kind(field), getattr(self, field.name))
        if self.status is not None and (not 300 <= self.status <= 599 or self.status == 304):
            raise ValueError(f"Fault.status must be from 300 to 599 and not 304, got {self.status}")
        if self.status is None:
            for name in ("reason", "retry_after", "location", "error_body_bytes", "error_shape"):
                if getattr(self, name) is not None:
                    raise ValueError(f"Fault.{name} needs a status")
        if self.error_shape is not None and self.error_shape not in ERROR_SHAPES:
            raise ValueError(
                f"Fault.error_shape must be one of {', '.join(ERROR_SHAPES)}, "
                f"got {self.error_shape!r}"
            )
        if self.error_shape is not None and self.error_body_bytes is not None:
            raise ValueError("Fault takes at most one of error_shape and error_body_bytes")
        cuts = [name for name in _CUTS if _is_set(getattr(self, name))]
        if len(cuts) > 1:
            raise ValueError(f"Fault takes at most one cut, got {' and '.join(cuts)}")
        body_faults = [*cuts, *self._body_faults()]
        if self.status is not None and body_faults:
            raise ValueError(f"Fault.status replaces the reply; it takes no {body_faults[0]}")

    def _body_faults(self) -> list[str]:
        names = ("drip", "first_chunk_after", "chunk_size", "invalid_utf8", "endless")
        return [name for name in names if _is_set(getattr(self, name))]

    @property
    def cut(self) -> str | None:
        """The name of the cut that is set, or ``None``."""
        for name in _CUTS:
            if _is_set(getattr(self, name)):
                return name
        return None

    def marker(self) -> str:
        """Return the marker text that makes the reference server apply this fault.

        Put it anywhere in the content of a request's last message.
        """
        parts = ["[[fault"]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or value is False:
                continue
            if value is True:
                parts.append(field.name)
            else:
                parts.append(f"{field.name}={quote(str(value), safe='')}")
        return " ".join(parts) + "]]"


def _is_set(value: object) -> bool:
    # Not `value not in (None, False)`: 0 == False, and a cut after 0 bytes is a real fault.
    return value is not None and value is not False


def _kind(field: dataclasses.Field[object]) -> str:
    # Annotations are strings here (PEP 563): "int | None", "bool" and so on.
    return str(field.type).split(" |", 1)[0]


def _check_field(name: str, kind: str, value: object) -> None:
    if value is None or (kind == "bool" and isinstance(value, bool)):
        return
    if kind == "int" and is_int(value) and value >= 0:
        if name in ("chunk_size", "times") and value == 0:
            raise ValueError(f"Fault.{name} must be at least 1, got 0")
        return
    if kind == "float" and is_number(value) and value >= 0:
        return
    if kind == "str" and isinstance(value, str):
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(
                f"Fault.{name} must be printable ASCII, not starting or ending with a space, "
                f"got {value!r}"
            )
        return
    wanted = {"int": "an int >= 0", "float": "a number >= 0", "str": "a str", "bool": "a bool"}
    raise ValueError(f"Fault.{name} must be {wanted[kind]}, got {value!r}")


def _convert(name: str, kind: str, text: str | None) -> object:
    if kind == "bool":
        if text is not None:
            raise ValueError(f"the flag {name} takes no value")
        return True
    if text is None:
        raise ValueError(f"{name} needs a value ({name}=...)")
    text = unquote(text)
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a number") from None
    return text


_KINDS = {field.name: _kind(field) for field in dataclasses.fields(Fault)}


def parse_fault(text: str) -> Fault | None:
    """Return the fault the first marker in ``text`` asks for, or ``None`` if it has none.

    Raises:
        ValueError: The marker names an unknown field or has a bad value.
    """
    match = _MARKER.search(text)
    if match is None:
        return None
    values: dict[str, object] = {}
    for token in match["body"].split():
        name, sep, value = token.partition("=")
        if name not in _KINDS:
            raise ValueError(f"unknown fault field {name!r}; known: {', '.join(_KINDS)}")
        if name in values:
            raise ValueError(f"the fault field {name} is given twice")
        values[name] = _convert(name, _KINDS[name], value if sep else None)
    # Each value has its field's type, which mypy cannot follow through a dict: Fault checks.
    make = typing.cast("Callable[..., Fault]", Fault)  # type: ignore[explicit-any]
    return make(**values)


def find_fault(body: object) -> tuple[Fault, str] | None:
    """Return the fault asked for by the last message of a parsed request body, and its marker.

    Any body that is not an object with a list of messages whose last one has a string
    ``content`` has no fault.

    Raises:
        ValueError: The marker is invalid.
    """
    if not isinstance(body, dict):
        return None
    messages = typing.cast("dict[str, object]", body).get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = typing.cast("list[object]", messages)[-1]
    if not isinstance(last, dict):
        return None
    content = typing.cast("dict[str, object]", last).get("content")
    if not isinstance(content, str):
        return None
    fault = parse_fault(content)
    return None if fault is None else (fault, content)


@typing.final
class FaultBook:
    """Which fault each request gets, counting what ``Fault.times`` allows.

    A request's own marker wins over the server's fault. Uses are counted per fault and per
    marker text (the whole last message), so two prompts share a count only if they are equal.
    """

    def __init__(self, default: Fault | None = None) -> None:
        self._default = default
        self._used: Counter[tuple[Fault, str]] = Counter()

    def choose(self, body: object) -> Fault | None:
        """Return the fault for a request with the parsed ``body``, and count its use.

        Raises:
            ValueError: The request's marker is invalid.
        """
        found = find_fault(body)
        fault, key = found if found is not None else (self._default, "")
        if fault is None:
            return None
        used = self._used[fault, key]
        if fault.times is not None and used >= fault.times:
            return None
        self._used[fault, key] = used + 1
        return fault

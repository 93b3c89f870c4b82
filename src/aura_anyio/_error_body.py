"""The server's own words in an error response's body; pure, no I/O.

Servers put their reason for an error status in one of a few JSON shapes:

- OpenAI's ``{"error": {"message", "type", "code", "param"}}``, which LiteLLM, llama.cpp's
  server and Ollama's OpenAI-compatible route also send (Ollama's own routes:
  ``{"error": "..."}``);
- vLLM's ``{"object": "error", "message", "type", "code"}``, and a bare ``{"message": ...}``;
- FastAPI's ``{"detail": "..."}``, or ``{"detail": [{"loc", "msg", "type"}, ...]}`` for a body
  that failed validation.

Anything else (HTML, plain text, a body cut at the read limit) has no words to take: the error
then quotes an excerpt of the body.
"""

from __future__ import annotations

import dataclasses
import json
import typing

__all__ = ["ServerWords", "server_words"]


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ServerWords:
    """What the body said: the message, and the ``type``, ``code`` and ``param`` it gave."""

    message: str
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


def server_words(body: str) -> ServerWords | None:
    """The server's message in ``body``, if it is one of the known JSON shapes; else ``None``."""
    text = body.strip()
    if not text.startswith("{"):
        return None  # most error pages are HTML or text: no need to try JSON
    try:
        data: object = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested past the stack
        return None
    fields = typing.cast("dict[str, object]", data)  # text that starts with { is an object
    error = fields.get("error")
    if isinstance(error, dict):
        return _words(typing.cast("dict[str, object]", error))
    if isinstance(error, str) and error.strip():
        return ServerWords(error)
    detail = fields.get("detail")
    if isinstance(detail, str) and detail.strip():
        return ServerWords(detail)
    if isinstance(detail, list):
        return _validation(typing.cast("list[object]", detail))
    return _words(fields)


def _words(fields: dict[str, object]) -> ServerWords | None:
    message = fields.get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    return ServerWords(
        message,
        type=_text(fields.get("type")),
        code=_code(fields.get("code")),
        param=_text(fields.get("param")),
    )


def _validation(problems: list[object]) -> ServerWords | None:
    """FastAPI's list of validation errors, as one message: ``body.messages: Field required``."""
    parts: list[str] = []
    kinds: list[str] = []
    for problem in problems:
        if not isinstance(problem, dict):
            continue
        fields = typing.cast("dict[str, object]", problem)
        message = fields.get("msg")
        if not isinstance(message, str):
            continue
        where = fields.get("loc")
        if isinstance(where, list) and where:
            path = ".".join(str(part) for part in typing.cast("list[object]", where))
            message = f"{path}: {message}"
        parts.append(message)
        kind = _text(fields.get("type"))
        if kind is not None:
            kinds.append(kind)
    if not parts:
        return None
    return ServerWords("; ".join(parts), type=kinds[0] if kinds else None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _code(value: object) -> str | int | None:
    if isinstance(value, bool):
        return None
    return value if isinstance(value, (str, int)) else None

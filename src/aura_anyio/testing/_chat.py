"""What openchat-ui's ``pages/api/chat.ts`` computes from a request; pure, no I/O.

Parsing and validating the JSON body, the default system prompt, history trimming and the
reference server's deterministic reply all live here, so the server module only moves bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing

from .._messages import ROLES, Message
from .._payload import RESERVED_TOKENS

if typing.TYPE_CHECKING:
    from collections.abc import Container, Mapping, Sequence

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "MAX_REASON_CHARS",
    "ChatBody",
    "ReceivedRequest",
    "RejectedError",
    "approx_tokens",
    "default_reply",
    "load_json",
    "parse_chat_body",
    "sanitize_reason",
    "split_words",
    "trim_history",
]

#: The system prompt the server uses when the request's ``prompt`` is empty.
DEFAULT_SYSTEM_PROMPT = (
    "You are OpenChat, a helpful assistant. Follow the user's instructions carefully. "
    "Respond using markdown."
)

# Long enough for any message the server writes, short enough for any HTTP client's limits.
MAX_REASON_CHARS = 200

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD_PIECE = re.compile(r"\S+\s*|\s+")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]+")


def approx_tokens(text: str) -> int:
    """Count the tokens of ``text`` approximately, as the reference server's trimming does.

    openchat-ui counts with a tiktoken encoder; this stand-in counts each run of word characters
    and each other non-space character as one token (``\\w+|[^\\w\\s]``). It is deterministic and
    never below the number of words, which is all the trimming tests need.
    """
    return sum(1 for _ in _TOKEN.finditer(text))


def trim_history(
    system_prompt: str, messages: Sequence[Message], *, token_limit: int
) -> list[Message]:
    """Keep the newest messages that fit in ``token_limit``, exactly as openchat-ui does.

    Walking from the newest message back, a message is kept while
    ``tokens_so_far + approx_tokens(content) + 768 <= token_limit``, where ``tokens_so_far``
    starts at the system prompt's count; the walk stops at the first message that does not fit.

    Returns:
        The kept messages, oldest first.
    """
    count = approx_tokens(system_prompt)
    kept: list[Message] = []
    for message in reversed(messages):
        tokens = approx_tokens(message["content"])
        if count + tokens + RESERVED_TOKENS > token_limit:
            break
        count += tokens
        kept.append(message)
    kept.reverse()
    return kept


def split_words(text: str) -> list[str]:
    """Split ``text`` into words, each with its trailing whitespace; joined, they give ``text``."""
    return _WORD_PIECE.findall(text)


def sanitize_reason(text: str) -> bytes:
    """Make ``text`` a valid HTTP reason phrase: one line of printable ASCII, bounded in length."""
    # Escapes keep non-ASCII model ids readable instead of silently dropping them.
    line = _CONTROL_OR_SPACE.sub(" ", text).strip().encode("ascii", "backslashreplace")
    if len(line) > MAX_REASON_CHARS:
        line = line[: MAX_REASON_CHARS - 3] + b"..."
    return line or b"Internal Server Error"


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the reference server received and understood it, recorded on arrival.

    Attributes:
        method: The request method, such as ``"POST"``.
        path: The request target without its query string.
        headers: Header values by lower-cased name; repeated headers are joined with ``", "``.
        body: The raw request body.
        json: The parsed body, or ``None`` if it was not valid JSON.
        model_id: ``model.id`` when the body had one as a string, else ``None``.
        token_limit: ``model.tokenLimit`` when the body was valid, else ``None``.
        system_prompt: The system prompt actually used (the default one if ``prompt`` was
            empty), or ``None`` if the request was rejected.
        kept_messages: The history left after trimming, oldest first; empty if rejected.
        error: The reason phrase of the rejection, or ``None`` if the request was valid.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: object = None
    model_id: str | None = None
    token_limit: int | None = None
    system_prompt: str | None = None
    kept_messages: tuple[Message, ...] = ()
    error: str | None = None


def default_reply(request: ReceivedRequest) -> str:
    """Return the reference server's reply to ``request``: deterministic, with multi-byte text.

    The reply quotes the newest kept user message and counts the kept messages; it contains
    2-, 3- and 4-byte UTF-8 characters, so a client that decodes chunk by chunk gets it wrong.
    """
    users = [m["content"] for m in request.kept_messages if m["role"] == "user"]
    said = users[-1] if users else ""
    count = len(request.kept_messages)
    plural = "" if count == 1 else "s"
    return (
        f"Hello from the reference server ✓ — you said «{said}» ({count} message{plural} kept) 👋"
    )


class RejectedError(Exception):
    """The body is not a request openchat-ui could serve; ``str()`` is the reason phrase."""


@dataclasses.dataclass(frozen=True, slots=True)
class ChatBody:
    """The parts of a valid ``/api/chat`` body the server acts on."""

    model_id: str
    token_limit: int
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
    value: object = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
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
    if isinstance(token_limit, bool) or not isinstance(token_limit, int):
        raise _wrong_type("model.tokenLimit", "an integer", token_limit)
    messages = _check_messages(_field(body, "messages"))
    key = _field(body, "key")
    if not isinstance(key, str):
        raise _wrong_type("key", "a string", key)
    prompt = _field(body, "prompt")
    if not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string", prompt)
    temperature = _field(body, "temperature")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
    ):
        raise _wrong_type("temperature", "a number", temperature)
    return ChatBody(model_id, token_limit, prompt, messages)


#: The only route the server answers; anything else is a test convenience (404 or 405).
CHAT_PATH = "/api/chat"


def is_chat_route(method: str, path: str) -> bool:
    """Return whether ``method`` and ``path`` are ``POST /api/chat``."""
    return method == "POST" and path == CHAT_PATH


def inspect_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    models: Container[str],
) -> ReceivedRequest:
    """Understand a request as openchat-ui would: validate, pick the prompt, trim the history.

    Never raises for bad input: a rejected body is recorded with its reason in ``error``.
    """
    base = ReceivedRequest(method=method, path=path, headers=headers, body=body)
    if not is_chat_route(method, path):
        return base
    try:
        data = load_json(body)
    except ValueError as exc:
        return dataclasses.replace(base, error=f"Invalid JSON body: {exc}")
    try:
        chat = parse_chat_body(data, models=models)
    except RejectedError as exc:
        model = (
            typing.cast("dict[str, object]", data).get("model") if isinstance(data, dict) else None
        )
        model_id = (
            typing.cast("dict[str, object]", model).get("id") if isinstance(model, dict) else None
        )
        return dataclasses.replace(
            base,
            json=data,
            model_id=model_id if isinstance(model_id, str) else None,
            error=str(exc),
        )
    system_prompt = chat.prompt or DEFAULT_SYSTEM_PROMPT
    kept = trim_history(system_prompt, chat.messages, token_limit=chat.token_limit)
    return dataclasses.replace(
        base,
        json=data,
        model_id=chat.model_id,
        token_limit=chat.token_limit,
        system_prompt=system_prompt,
        kept_messages=tuple(kept),
    )

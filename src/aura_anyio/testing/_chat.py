"""What openchat-ui's ``pages/api/chat.ts`` computes from a request; pure, no I/O.

Parsing and validating the JSON body, the default system prompt, history trimming and the
reference server's deterministic reply all live here, so the server module only moves bytes.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from types import MappingProxyType

from .._payload import RESERVED_TOKENS
from ._body import RejectedError, load_json, message_text, parse_chat_body, parse_openai_body

if typing.TYPE_CHECKING:
    from collections.abc import Container, Mapping, Sequence

    from .._messages import Message

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "MAX_REASON_CHARS",
    "ReceivedRequest",
    "approx_tokens",
    "default_reply",
    "sanitize_reason",
    "split_words",
    "trim_history",
]

#: The system prompt the server uses when the request's ``prompt`` is empty.
DEFAULT_SYSTEM_PROMPT = (
    "You are OpenChat, a helpful assistant. Follow the user's instructions carefully. "
    "Respond using markdown."
)

# Longer than upstream rate-limit messages, well inside every HTTP client's line limit.
MAX_REASON_CHARS = 1000

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
    system_prompt: str, messages: Sequence[Message], *, token_limit: float
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
    """Make ``text`` a valid HTTP reason phrase: one line of Latin-1, bounded in length.

    Node writes a status message as Latin-1, so é survives; characters past U+00FF are escaped.
    """
    line = _CONTROL_OR_SPACE.sub(" ", text).strip().encode("latin-1", "backslashreplace")
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
        model_id: ``model.id`` (``model`` on the OpenAI wire) when the body had one as a
            string, else ``None``.
        token_limit: ``model.tokenLimit`` when the body was valid (``max_tokens`` on the
            OpenAI wire, if given), else ``None``.
        system_prompt: The system prompt actually used (the default one if ``prompt`` was
            empty; on the OpenAI wire the system and developer messages' text joined by
            newlines), or ``None`` if the request was rejected.
        kept_messages: The history left after trimming, oldest first; empty if rejected. The
            OpenAI wire trims nothing: these are its messages other than system and
            developer ones, each as ``{"role", "content"}`` with the content's text (the
            text parts of a list; ``""`` for none), so roles ``tool`` and ``assistant``
            messages with tool calls show up too.
        error: The reason phrase of the rejection, or ``None`` if the request was valid.
        wire: ``"aura"`` for ``/api/chat``, ``"openai"`` for ``/v1/chat/completions``.
        messages: On the OpenAI wire, the valid request's messages exactly as received.
        extra_body: On the OpenAI wire, the valid request's body fields other than
            ``model``, ``messages``, ``stream``, ``temperature``, ``max_tokens`` and
            ``stream_options``: what the client's ``extra_body`` sent.
        include_usage: Whether the request asked for token counts
            (``stream_options.include_usage``); the server sends them only then.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: object = None
    model_id: str | None = None
    token_limit: float | None = None
    system_prompt: str | None = None
    kept_messages: tuple[Message, ...] = ()
    error: str | None = None
    wire: str = "aura"
    messages: tuple[Mapping[str, object], ...] = ()
    extra_body: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    include_usage: bool = False


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


#: The routes the server answers: openchat-ui's, and the OpenAI-compatible one. Anything else
#: gets 404 or 405.
CHAT_PATH = "/api/chat"
OPENAI_PATH = "/v1/chat/completions"
WIRE_BY_PATH = {CHAT_PATH: "aura", OPENAI_PATH: "openai"}


def is_chat_route(method: str, path: str) -> bool:
    """Return whether ``method`` and ``path`` are ``POST`` to one of the chat routes."""
    return method == "POST" and path in WIRE_BY_PATH


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
    base = ReceivedRequest(
        method=method, path=path, headers=headers, body=body, wire=WIRE_BY_PATH.get(path, "aura")
    )
    if not is_chat_route(method, path):
        return base
    try:
        data = load_json(body)
    except ValueError as exc:
        return dataclasses.replace(base, error=f"Invalid JSON body: {exc}")
    if base.wire == "openai":
        return _inspect_openai(base, data)
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


def _inspect_openai(base: ReceivedRequest, data: object) -> ReceivedRequest:
    try:
        chat = parse_openai_body(data)
    except RejectedError as exc:
        return dataclasses.replace(base, json=data, error=str(exc))
    instructions = [m for m in chat.messages if m["role"] in ("system", "developer")]
    kept = [
        typing.cast("Message", {"role": m["role"], "content": message_text(m)})
        for m in chat.messages
        if m["role"] not in ("system", "developer")
    ]
    return dataclasses.replace(
        base,
        json=data,
        model_id=chat.model,
        token_limit=chat.max_tokens,
        system_prompt="\n".join(map(message_text, instructions)),
        kept_messages=tuple(kept),
        messages=chat.messages,
        extra_body=MappingProxyType(chat.extra),
        include_usage=chat.include_usage,
    )

"""Plain value types: model specs, timeouts, and a fan-out's requests and results; pure, no I/O."""

from __future__ import annotations

import dataclasses
import typing
from types import MappingProxyType

from ._exceptions import InvalidRequestError
from ._messages import check_unicode
from ._numbers import check_positive, is_int

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from ._exceptions import APIError, AuraError
    from ._messages import Messages, ToolCall
    from ._usage import Usage

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "DEFAULT_TEMPERATURE",
    "MODELS",
    "ChatRequest",
    "ChatResult",
    "ModelSpec",
    "Timeouts",
    "resolve_model",
    "to_request",
]

DEFAULT_MODEL = "openchat_3.6"
# The defaults of every request (build_payload() and ChatRequest alike).
DEFAULT_TEMPERATURE = 0.5
DEFAULT_MAX_TOKENS = 8192


def _check_positive_int(field: str, value: object) -> None:
    if not is_int(value) or value <= 0:
        raise InvalidRequestError(f"{field} must be a positive int, got {value!r}")


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as the /api/chat wire names it; only ``id`` and the token limit reach the server.

    Args:
        id: The model id the server knows, such as ``"openchat_3.6"``.
        name: The display name sent beside it.
        max_length: The deployment's maximum prompt length in characters.
        token_limit: The deployment's context size in tokens.
    """

    id: str
    name: str
    max_length: int
    token_limit: int

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidRequestError(f"ModelSpec.id must be a non-empty str, got {self.id!r}")
        if not isinstance(self.name, str):
            raise InvalidRequestError(f"ModelSpec.name must be a str, got {self.name!r}")
        check_unicode("ModelSpec.id", self.id)
        check_unicode("ModelSpec.name", self.name)
        _check_positive_int("ModelSpec.max_length", self.max_length)
        _check_positive_int("ModelSpec.token_limit", self.token_limit)


#: The models openchat-ui deployments have served, by id.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "openchat_3.6": ModelSpec("openchat_3.6", "OpenChat 3.6 (latest)", 24576, 8192),
        "openchat_v3.2_mistral": ModelSpec("openchat_v3.2_mistral", "OpenChat Aura", 24576, 8192),
    }
)


def resolve_model(model: object) -> ModelSpec:
    """Return the :class:`ModelSpec` for a model id or spec.

    Raises:
        InvalidRequestError: ``model`` is neither a known id nor a ``ModelSpec``.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        spec = MODELS.get(model)
        if spec is not None:
            return spec
    known = ", ".join(repr(name) for name in MODELS)
    raise InvalidRequestError(
        f"model must be a known model id ({known}) or a ModelSpec, got {model!r}"
    )


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each stage of a reply may take, in seconds; ``None`` means no limit.

    Args:
        connect: Establishing the connection (TCP, proxy and TLS), and likewise waiting for a
            free connection when the pool is full.
        read: The longest silence between two pieces of the reply.
        first_chunk: From sending a request to the first text of its reply, per attempt.
        total: From entering the stream (or calling ``complete()``) to the end of the reply,
            retries included.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    first_chunk: float | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_positive(f"timeout.{field.name}", getattr(self, field.name))


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ChatRequest:
    """One prompt of a fan-out: the arguments of :meth:`AuraClient.complete`, plus an id.

    Nothing is checked here: a bad field becomes that request's ``InvalidRequestError``
    result, so one bad line of a batch never stops the others.

    Args:
        messages: A sequence of messages (see :meth:`AuraClient.stream`).
        model: A model id from ``MODELS`` or a :class:`ModelSpec`.
        temperature: Sampling temperature in [0, 2].
        max_tokens: On ``/api/chat`` the server's token limit for the conversation (above
            768; 8192 by default); on the OpenAI wire a cap on the reply, sent only if given.
        id: The caller's name for the request, carried to its result.
        extra_body: More fields of the request body (OpenAI wire only).
    """

    messages: Messages
    model: str | ModelSpec = DEFAULT_MODEL
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int | None = None
    id: str | int | None = None
    extra_body: Mapping[str, object] | None = None


def to_request(item: object) -> ChatRequest:
    """Return the :class:`ChatRequest` for one item of a fan-out's input.

    A ``ChatRequest`` stays as it is, a ``str`` is one user message, and anything else is
    taken as the message list (and checked when it is sent).
    """
    if isinstance(item, ChatRequest):
        return item
    if isinstance(item, str):
        return ChatRequest([{"role": "user", "content": item}])
    return ChatRequest(typing.cast("Messages", item))


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ChatResult:
    """How one request of a fan-out ended.

    Attributes:
        index: The request's position in the input, from 0.
        request: The request.
        text: The whole reply, or the text received before the error (often empty).
        error: The :class:`AuraError` the request ended with, or ``None``.
        attempts: How many times the request was sent (0 if it was never valid, or came
            from the cache).
        elapsed: Seconds from the request's start to its end, retries included.
        finish_reason: Why the reply ended (``"stop"``, ``"length"``...), when the wire says:
            the OpenAI wire does, ``/api/chat`` does not.
        usage: The token counts the server sent with the reply, if it sent any.
        endpoint: The root URL of the server the last attempt went to; ``None`` if none
            was sent (an invalid request, or a reply from the cache).
        tool_calls: The tool calls the reply made (OpenAI wire), or ``None`` if it made none.
        cached: Whether the reply came from the client's cache (``attempts`` is then 0).
        ttft: Seconds from the last attempt's send to its first text; ``None`` if no text
            came, and for a reply from the cache.
        previous_errors: What ended each attempt that was retried, oldest first; ``()``
            when the first attempt was the last. A failed result's ``error`` has them too.
        reasoning: The reasoning the reply sent apart from its text (OpenAI wire), or
            ``None`` if it sent none.
    """

    index: int
    request: ChatRequest
    text: str
    error: AuraError | None
    attempts: int
    elapsed: float
    finish_reason: str | None = None
    usage: Usage | None = None
    endpoint: str | None = None
    tool_calls: list[ToolCall] | None = None
    cached: bool = False
    ttft: float | None = None
    previous_errors: tuple[APIError, ...] = ()
    reasoning: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the request got its whole reply."""
        return self.error is None

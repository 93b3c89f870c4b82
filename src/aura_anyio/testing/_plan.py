"""What the reference server sends for one request, decided before any byte goes out; no I/O.

A :class:`ResponsePlan` is the whole behaviour of one response. The server's connection
handler follows it step by step, so new behaviours (faults such as a connection broken
mid-chunk) are new plan fields plus a few lines in the handler, not a new code path.
"""

from __future__ import annotations

import dataclasses
import enum
import http
import itertools
import json
import typing
from collections.abc import Callable, Iterable, Sequence

from ._chat import (
    WIRE_BY_PATH,
    ReceivedRequest,
    approx_tokens,
    default_reply,
    sanitize_reason,
    split_words,
)
from ._events import EventFraming, json_error
from ._faults import Fault

__all__ = [
    "Ending",
    "Reply",
    "ResponsePlan",
    "ToolCalls",
    "apply_fault",
    "bad_request",
    "plan_response",
    "reply_chunks",
]


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class ToolCalls:
    """A reply that calls tools, for ``ReferenceServer(reply=...)``.

    On ``/v1/chat/completions`` the text goes first, one word per event, then each call as
    an OpenAI-compatible server streams it: id, type and name in one ``delta.tool_calls``
    piece, the arguments in several; the ``finish_reason`` is ``"tool_calls"``. On
    ``/api/chat``, which has no tool calls, only the text is sent.

    Attributes:
        calls: ``(function name, arguments as a JSON text)`` pairs, in order; their ids are
            ``call_0``, ``call_1``...
        text: Text sent before the calls.
    """

    calls: Sequence[tuple[str, str]]
    text: str = ""

    def __post_init__(self) -> None:
        # A tuple: an iterator would be spent by this check, and a list could change.
        object.__setattr__(self, "calls", tuple(self.calls))
        for call in self.calls:
            if not (
                isinstance(call, tuple)
                and len(call) == 2
                and all(isinstance(part, str) for part in call)
            ):
                raise TypeError(f"ToolCalls.calls takes (name, arguments) str pairs, got {call!r}")


REASONING_FIELDS = ("reasoning_content", "reasoning")


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Thinking:
    """A reasoning model's reply, for ``ReferenceServer(reply=...)``.

    On ``/v1/chat/completions`` the reasoning goes first, one word per event in
    ``delta.reasoning_content`` (vLLM's, llama.cpp's and DeepSeek's name) or
    ``delta.reasoning`` (OpenRouter's), then the reply as usual; its words count towards
    ``completion_tokens``. On ``/api/chat``, which has no reasoning, only the reply is sent.

    Attributes:
        reasoning: The thinking.
        reply: The text, or :class:`ToolCalls`, that follows it.
        field: The delta's field for the reasoning: ``"reasoning_content"`` or
            ``"reasoning"``.
    """

    reasoning: str
    reply: str | ToolCalls = ""
    field: str = "reasoning_content"

    def __post_init__(self) -> None:
        if self.field not in REASONING_FIELDS:
            raise ValueError(
                f"Thinking.field must be one of {', '.join(REASONING_FIELDS)}, got {self.field!r}"
            )


#: Computes a reply: a ``str`` is sent one word per chunk, ``bytes`` as one chunk, a sequence
#: one element per chunk, :class:`ToolCalls` as tool calls and :class:`Thinking` as reasoning
#: before the reply.
Reply = Callable[[ReceivedRequest], "str | bytes | Sequence[str | bytes] | ToolCalls | Thinking"]

_ERROR_HEADERS = ((b"content-type", b"text/plain;charset=UTF-8"),)
_JSON = (b"content-type", b"application/json")
_NO_FAULT = Fault()
# A huge error body is sent as many references to one block, so planning it costs no memory.
_BLOCK = b"Error " * 8192
# The one byte that is never valid anywhere in UTF-8.
INVALID_UTF8 = b"\xff"


class Ending(enum.Enum):
    """How a response's body ends."""

    #: The final chunk is sent and the connection can carry the next request.
    END = "end"
    #: Nothing more is sent until the client leaves.
    STALL = "stall"
    #: The connection is reset (TCP RST).
    RESET = "reset"
    #: The connection is closed without the final chunk.
    CLOSE = "close"


@dataclasses.dataclass(frozen=True, slots=True)
class ResponsePlan:
    """One response, byte for byte.

    Attributes:
        status: The status code.
        reason: The reason phrase, already valid for HTTP (see ``sanitize_reason``).
        headers: The headers, in order. Without a ``content-length`` the body is chunked.
        chunks: The body, one element per HTTP chunk (empty elements are skipped: an empty
            chunk would end a chunked body).
        delay: Seconds to wait between two chunks.
        first_delay: Seconds to wait between the head and the first chunk.
        stall_before_head: Send nothing at all, until the client leaves.
        endless: Send ``chunks`` over and over, forever.
        ending: What follows the last chunk.
        events: For the OpenAI-compatible route, how ``chunks`` (the reply's pieces) are
            framed as server-sent events; ``None`` when they go out as they are.
    """

    status: int
    reason: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    chunks: tuple[bytes, ...] = ()
    delay: float = 0.0
    first_delay: float = 0.0
    stall_before_head: bool = False
    endless: bool = False
    ending: Ending = Ending.END
    events: EventFraming | None = None


def _error(
    status: int, reason: str, body: tuple[bytes, ...], *extra: tuple[bytes, bytes]
) -> ResponsePlan:
    length = (b"content-length", str(sum(map(len, body))).encode("ascii"))
    typed = any(name == b"content-type" for name, _ in extra)
    headers = (*(() if typed else _ERROR_HEADERS), length, *extra)
    return ResponsePlan(status, sanitize_reason(reason), headers, body)


def error_body(shape: str, status: int, message: str) -> bytes:
    """An error body of one of :data:`ERROR_SHAPES`, saying ``message`` for ``status``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = f"error_{status}"
    document: object
    if shape == "openai":
        document = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    elif shape == "vllm":
        document = {
            "object": "error",
            "message": message,
            "type": kind,
            "param": None,
            "code": status,
        }
    elif shape == "ollama":
        document = {"error": message}
    elif shape == "fastapi":
        document = {"detail": message}
    elif shape == "fastapi_validation":
        document = {"detail": [{"loc": ["body", "messages"], "msg": message, "type": kind}]}
    else:
        document = {"message": message}
    return json.dumps(document).encode()


def bad_request(reason: str = "Bad Request") -> ResponsePlan:
    """Return a ``400`` response with ``reason`` as its reason phrase."""
    return _error(400, reason, (b"Bad Request",))


def _sized_body(size: int) -> tuple[bytes, ...]:
    full, rest = divmod(size, len(_BLOCK))
    return (_BLOCK,) * full + ((_BLOCK[:rest],) if rest else ())


def _take(chunks: Iterable[bytes], size: int) -> tuple[bytes, ...]:
    """The first ``size`` bytes of ``chunks``, keeping their boundaries."""
    taken: list[bytes] = []
    for chunk in chunks:
        if size <= 0:
            break
        taken.append(chunk[:size])
        size -= len(chunk)
    return tuple(taken)


def _rechunk(chunks: tuple[bytes, ...], size: int) -> tuple[bytes, ...]:
    body = b"".join(chunks)
    return tuple(body[i : i + size] for i in range(0, len(body), size))


_ENDINGS = {"stall_after": Ending.STALL, "reset_after": Ending.RESET, "close_after": Ending.CLOSE}


def apply_fault(plan: ResponsePlan, fault: Fault) -> ResponsePlan:
    """Return ``plan`` changed as ``fault`` says.

    A status fault replaces the response; the body faults apply to a successful reply only
    (an error response stays as it is).
    """
    if fault.stall_before_status:
        return dataclasses.replace(plan, stall_before_head=True)
    if fault.status is not None:
        extra: list[tuple[bytes, bytes]] = []
        if fault.retry_after is not None:
            extra.append((b"retry-after", fault.retry_after.encode("ascii")))
        if fault.location is not None:
            extra.append((b"location", fault.location.encode("ascii")))
        try:
            standard = http.HTTPStatus(fault.status).phrase
        except ValueError:
            standard = "Error"
        size = fault.error_body_bytes
        message = fault.reason or standard
        if fault.error_shape is not None:
            body: tuple[bytes, ...] = (error_body(fault.error_shape, fault.status, message),)
            extra.append(_JSON)
        else:
            body = (b"Error",) if size is None else _sized_body(size)
        return _error(fault.status, message, body, *extra)
    if plan.status != 200:
        return plan
    framing = plan.events
    chunks = tuple(chunk for chunk in plan.chunks if chunk)
    if fault.invalid_utf8:
        chunks = (*chunks[:1], INVALID_UTF8, *chunks[1:])
    endless = fault.endless
    if endless and not chunks:
        chunks = (b" ",)
    ending = Ending.END
    cut = fault.cut
    if cut == "empty_body":  # openchat-ui under load: a 200 and no body at all
        chunks, endless = (), False
    elif cut is not None:
        size = typing.cast("int", getattr(fault, cut))
        source = itertools.cycle(chunks) if endless else chunks
        if cut == "interrupt_after":  # whole pieces, then a clean end
            chunks = tuple(itertools.islice(source, size))
            if framing is not None:
                chunks = framing.interrupted(chunks)
        else:
            chunks = _take(source, size) if framing is None else framing.cut(source, size)
            ending = _ENDINGS[cut]
        endless = False
    elif framing is not None:
        chunks = framing.frame(chunks, endless=endless)
    if fault.chunk_size is not None:
        chunks = _rechunk(chunks, fault.chunk_size)
    delay = plan.delay if fault.drip is None else fault.drip
    return dataclasses.replace(
        plan,
        chunks=chunks,
        delay=delay,
        first_delay=fault.first_chunk_after or 0.0,
        endless=endless,
        ending=ending,
        events=None,
    )


def reply_chunks(result: str | bytes | Sequence[str | bytes]) -> tuple[bytes, ...]:
    """Turn what a :data:`Reply` returned into the body's chunks, UTF-8 encoded.

    Raises:
        TypeError: ``result`` is neither a ``str`` nor a sequence of ``str`` and ``bytes``.
    """
    if isinstance(result, bytes):
        return (result,)
    pieces = split_words(result) if isinstance(result, str) else result
    chunks: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, str):
            chunks.append(piece.encode("utf-8"))
        elif isinstance(piece, bytes):
            chunks.append(piece)
        else:
            raise TypeError(f"a reply chunk must be str or bytes, got {type(piece).__name__}")
    return tuple(chunks)


def _events_plan(
    request: ReceivedRequest,
    pieces: tuple[bytes, ...],
    delay: float,
    calls: tuple[tuple[str, str], ...] = (),
    thinking: Thinking | None = None,
) -> ResponsePlan:
    """The OpenAI-compatible reply: ``max_tokens`` caps it, one piece a token."""
    limit = request.token_limit
    capped = limit is not None and len(pieces) > limit
    if capped:
        pieces = pieces[: int(typing.cast("float", limit))]
        calls = ()  # the cap came first
    framing = EventFraming(
        model=request.model_id or "",
        finish_reason="length" if capped else "tool_calls" if calls else "stop",
        prompt_tokens=sum(approx_tokens(m["content"]) for m in request.kept_messages),
        usage=request.include_usage,
        tool_calls=calls,
        reasoning=() if thinking is None else tuple(split_words(thinking.reasoning)),
        reasoning_field="reasoning_content" if thinking is None else thinking.field,
    )
    headers = ((b"content-type", b"text/event-stream"), (b"transfer-encoding", b"chunked"))
    return ResponsePlan(200, b"OK", headers, pieces, delay, events=framing)


def plan_response(
    request: ReceivedRequest,
    *,
    reply: Reply | None = None,
    delay: float = 0.0,
    fault: Fault | None = None,
) -> ResponsePlan:
    """Decide the response to ``request``, as openchat-ui would answer it, then ``fault``.

    A rejected body, and a ``reply`` that raises, both get ``500`` with the body ``Error`` and
    the detail in the reason phrase, the way openchat-ui reports upstream failures.
    """
    openai = request.wire == "openai"
    if request.path not in WIRE_BY_PATH:
        plan = _error(404, "Not Found", (b"Not Found",))
    elif request.method != "POST":
        plan = _error(405, "Method Not Allowed", (b"Method Not Allowed",), (b"allow", b"POST"))
    elif request.error is not None:
        plan = (
            _error(400, request.error, (json_error(request.error),), _JSON)
            if openai
            else _error(500, request.error, (b"Error",))
        )
    else:
        calls: tuple[tuple[str, str], ...] = ()
        thinking: Thinking | None = None
        try:
            result = (default_reply if reply is None else reply)(request)
            if isinstance(result, Thinking):
                thinking, result = result, result.reply
            if isinstance(result, ToolCalls):
                calls = tuple(result.calls)
                result = result.text
            chunks = reply_chunks(result)
        except Exception as exc:  # a test's reply function reports failures this way
            detail = str(exc) or type(exc).__name__
            plan = (
                _error(500, detail, (json_error(detail, "server_error"),), _JSON)
                if openai
                else _error(500, detail, (b"Error",))
            )
        else:
            plan = (
                _events_plan(request, chunks, delay, calls, thinking)
                if openai
                else ResponsePlan(
                    # No content-type: openchat-ui answers with a bare ReadableStream.
                    200,
                    b"OK",
                    ((b"transfer-encoding", b"chunked"),),
                    chunks,
                    delay,
                )
            )
    plan = apply_fault(plan, fault or _NO_FAULT)
    if request.method == "HEAD":
        plan = dataclasses.replace(plan, chunks=())
    return plan

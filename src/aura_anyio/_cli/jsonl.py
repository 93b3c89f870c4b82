"""The batch file formats of the ``aura`` command: input lines in, result rows out; pure, no I/O.

An input line is a JSON object, ``{"id": ..., "messages": [...]}`` or ``{"id": ..., "prompt":
"...", "system": "..."}``, with optional ``model``, ``temperature``, ``max_tokens`` and
``extra_body``; ``id`` defaults to the line number. A result row is one JSON object per line:
``id``, ``line``, ``ok``, ``text``, ``error`` (``type``, ``message``, ``status_code``) or
null, ``attempts``, ``elapsed``, ``ttft`` (seconds to the first text, or null),
``finish_reason``, ``usage`` and, when the reply made any, ``tool_calls``; when it sent
any, ``reasoning``; when there were retries, ``previous_error_types`` names what ended each
retried attempt.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing

from .._exceptions import APIStatusError, InvalidRequestError
from .._messages import check_unicode
from .._rows import REQUEST_FIELDS, row_request

if typing.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .._messages import ToolCall
    from .._models import ChatRequest, ChatResult
    from .._usage import Usage

__all__ = [
    "BadLine",
    "Row",
    "id_key",
    "line_error_row",
    "ok_ids",
    "parse_line",
    "percentile",
    "result_row",
]


Id = str | int


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class BadLine:
    """An input line that is not a request: its number, its id (if it had a usable one), why."""

    line: int
    id: Id
    reason: str


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One result row, as written to the output file."""

    id: Id
    line: int
    ok: bool
    text: str
    error: dict[str, object] | None
    attempts: int
    elapsed: float
    ttft: float | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] | None = None  # left out of the row when None
    reasoning: str | None = None  # left out of the row when None
    cached: bool = False  # left out of the row when false
    endpoint: str | None = None  # the server, when there are several; else left out
    previous_error_types: tuple[str, ...] = ()  # left out when there were no retries

    def to_json(self) -> str:
        """The row as one line of JSON, without the newline."""
        fields = dataclasses.asdict(self)
        if not self.previous_error_types:
            del fields["previous_error_types"]
        if self.tool_calls is None:
            del fields["tool_calls"]
        if self.reasoning is None:
            del fields["reasoning"]
        if not self.cached:
            del fields["cached"]
        if self.endpoint is None:
            del fields["endpoint"]
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def id_key(value: Id) -> str:
    """A key telling ids apart by type too: ``1`` and ``"1"`` are different requests."""
    return json.dumps(value)


def parse_line(
    text: str, line: int, extra_body: Mapping[str, object] | None = None
) -> ChatRequest | BadLine | None:
    """Read one input line (``line`` counts from 1); ``None`` for a blank line.

    Only the line's shape is checked here; the messages, model, temperature, max_tokens and
    extra_body are checked when the request is sent, and a bad one becomes that request's
    error row. ``extra_body`` holds fields for every line (``--extra-body``); a line's own
    ``extra_body`` fields win over them.
    """
    if not text.strip():
        return None
    try:
        item = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested past the stack
        return BadLine(line, line, f"line {line} is not valid JSON ({exc})")
    if not isinstance(item, dict):
        return BadLine(line, line, f"line {line} must be a JSON object, got {_kind(item)}")
    fields = typing.cast("dict[str, object]", item)
    request_id = fields.get("id", line)
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return BadLine(line, line, f"line {line}: id must be a string or an integer")
    if isinstance(request_id, str):
        try:  # JSON's "\ud800" decodes to a lone surrogate, which no UTF-8 file can hold
            check_unicode("id", request_id)
        except InvalidRequestError as exc:
            return BadLine(line, line, f"line {line}: {exc}")
    unknown = sorted(set(fields) - REQUEST_FIELDS)
    if unknown:
        return BadLine(
            line, request_id, f"line {line}: unknown field {unknown[0]!r} (known: {_known()})"
        )
    request = row_request(fields, request_id, extra_body)
    if isinstance(request, str):
        return BadLine(line, request_id, f"line {line}: {request}")
    return request


def _known() -> str:
    return ", ".join(sorted(REQUEST_FIELDS))


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else "a number"


def result_row(result: ChatResult, line: int, *, name_server: bool = False) -> Row:
    """The row of a finished request of the input's line ``line``; ``name_server`` adds the
    server that answered (a batch over several)."""
    request_id = result.request.id
    assert request_id is not None  # parse_line() gives every request one
    error = result.error
    return Row(
        id=request_id,
        line=line,
        ok=error is None,
        text=result.text,
        error=None
        if error is None
        else {
            "type": type(error).__name__,
            "message": str(error),
            "status_code": error.status_code if isinstance(error, APIStatusError) else None,
        },
        attempts=result.attempts,
        elapsed=round(result.elapsed, 6),
        ttft=None if result.ttft is None else round(result.ttft, 6),
        finish_reason=result.finish_reason,
        usage=result.usage,
        tool_calls=result.tool_calls,
        reasoning=result.reasoning,
        cached=result.cached,
        endpoint=result.endpoint if name_server else None,
        previous_error_types=tuple(type(earlier).__name__ for earlier in result.previous_errors),
    )


def line_error_row(bad: BadLine) -> Row:
    """The row of an input line that could not become a request."""
    return Row(
        id=bad.id,
        line=bad.line,
        ok=False,
        text="",
        error={"type": "InvalidRequestError", "message": bad.reason, "status_code": None},
        attempts=0,
        elapsed=0.0,
    )


def ok_ids(rows: Iterable[str]) -> set[str]:
    """The :func:`id_key` of every id with an ``ok`` row among ``rows`` (output lines).

    A line that is not a whole row (the last one of a batch killed mid-write, say) is
    skipped: its request is simply run again.
    """
    done: set[str] = set()
    for text in rows:
        try:
            row = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if not isinstance(row, dict):
            continue
        fields = typing.cast("dict[str, object]", row)
        if fields.get("ok") is True and "id" in fields:
            value = fields["id"]
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                done.add(id_key(value))
    return done


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values`` (nearest rank), or NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

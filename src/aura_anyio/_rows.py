"""Batches as rows: a request from one row's fields (a JSON line of ``aura batch``, a row of a
Ray dataset), and a result as a row's output fields; pure, no I/O.

A row holds ``messages`` (a list of ``{role, content}``) or ``prompt`` (with an optional
``system``), and optionally ``id``, ``model``, ``temperature``, ``max_tokens`` and
``extra_body``. Only the row's shape is checked here; the values are checked when the request
is sent, and a bad one becomes that request's error, as in any fan-out.
"""

from __future__ import annotations

import math
import typing

from ._models import DEFAULT_MODEL, DEFAULT_TEMPERATURE, ChatRequest

if typing.TYPE_CHECKING:
    from collections.abc import Mapping

    from ._messages import Messages
    from ._models import ChatResult

__all__ = [
    "OUTPUT_FIELDS",
    "OUTPUT_TYPES",
    "REQUEST_FIELDS",
    "dataset_request",
    "output_fields",
    "row_request",
]

REQUEST_FIELDS = frozenset(
    {"id", "messages", "prompt", "system", "model", "temperature", "max_tokens", "extra_body"}
)
# What a Ray dataset's row gains (DESIGN section 8), in this order.
OUTPUT_FIELDS = (
    "text",
    "ok",
    "error",
    "error_type",
    "attempts",
    "elapsed",
    "ttft",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "endpoint",
    "reasoning",
)
# Their Arrow types, by the name of pyarrow's function for each: the same in every batch.
OUTPUT_TYPES = (
    "string",
    "bool_",
    "string",
    "string",
    "int64",
    "float64",
    "float64",
    "string",
    "int64",
    "int64",
    "string",
    "string",
)


def row_request(
    fields: Mapping[str, object],
    request_id: str | int | None,
    extra_body: Mapping[str, object] | None = None,
) -> ChatRequest | str:
    """The request of one row, or why the row's shape makes none.

    ``extra_body`` holds fields for every row; a row's own ``extra_body`` fields win.
    """
    reason = _shape_error(fields)
    if reason is not None:
        return reason
    # The casts only say what the values should be: they are checked when the request is
    # sent, as for any fan-out, and a bad one becomes that request's error.
    return ChatRequest(
        _messages(fields),
        model=typing.cast("str", fields.get("model", DEFAULT_MODEL)),
        temperature=typing.cast("float", fields.get("temperature", DEFAULT_TEMPERATURE)),
        max_tokens=typing.cast("int | None", fields.get("max_tokens")),
        id=request_id,
        extra_body=_extra_body(fields, extra_body),
    )


def dataset_request(row: Mapping[str, object], index: int) -> ChatRequest | str:
    """The request of a dataset's row (``index`` is its place in the batch), or why none.

    A dataset has a value in every column of every row, so an empty one (``None``, or the
    ``NaN`` a column of numbers holds for a missing value) is no value; a whole number of
    ``id`` or ``max_tokens`` read as a float (a column with gaps) is an int; columns other than the
    request's are the caller's, and pass through.
    """
    fields = {
        name: value
        for name, value in row.items()
        if name in REQUEST_FIELDS and value is not None and not _is_nan(value)
    }
    for name in ("id", "max_tokens"):
        number = fields.get(name)
        if isinstance(number, float) and number.is_integer():
            fields[name] = int(number)
    request_id = fields.get("id", index)
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return "id must be a string or an integer"
    return row_request(fields, request_id)


def output_fields(outcome: ChatResult | str) -> tuple[object, ...]:
    """A row's output fields (:data:`OUTPUT_FIELDS`), from its request's result or from why
    the row made no request."""
    if isinstance(outcome, str):
        return ("", False, outcome, "InvalidRequestError", 0, 0.0, *(None,) * 6)
    error = outcome.error
    usage = outcome.usage or {}
    return (
        outcome.text,
        error is None,
        None if error is None else str(error),
        None if error is None else type(error).__name__,
        outcome.attempts,
        outcome.elapsed,
        outcome.ttft,
        outcome.finish_reason,
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        outcome.endpoint,
        outcome.reasoning,
    )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _extra_body(
    fields: Mapping[str, object], common: Mapping[str, object] | None
) -> Mapping[str, object] | None:
    own = fields.get("extra_body")
    if own is None:
        return common
    if common is None or not isinstance(own, dict):
        return typing.cast("Mapping[str, object]", own)  # checked when sent
    return {**common, **typing.cast("dict[str, object]", own)}


def _shape_error(fields: Mapping[str, object]) -> str | None:
    if ("messages" in fields) == ("prompt" in fields):
        return 'give exactly one of "messages" and "prompt"'
    if "prompt" in fields and not isinstance(fields["prompt"], str):
        return "prompt must be a string"
    if "system" in fields:
        if "messages" in fields:
            return 'system goes with "prompt"; put a system message in "messages" instead'
        if not isinstance(fields["system"], str):
            return "system must be a string"
    return None


def _messages(fields: Mapping[str, object]) -> Messages:
    if "messages" in fields:
        return typing.cast("Messages", fields["messages"])
    prompt = typing.cast("str", fields["prompt"])
    if "system" in fields:
        return [
            {"role": "system", "content": typing.cast("str", fields["system"])},
            {"role": "user", "content": prompt},
        ]
    return [{"role": "user", "content": prompt}]

"""Hypothesis strategies; the only place they live."""

from __future__ import annotations

import dataclasses
import itertools
from typing import AnyStr

from hypothesis import strategies as st

from aura_anyio._stored import StoredReply
from aura_anyio.testing import Fault

ROLES = ("system", "user", "assistant")


def message(role: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, str]]:
    """A valid message, possibly with extra keys the split must drop."""
    return st.fixed_dictionaries(
        {"role": role if role is not None else st.sampled_from(ROLES), "content": st.text()},
        optional={"name": st.text(max_size=5)},
    )


@st.composite
def messages(draw: st.DrawFn) -> list[dict[str, str]]:
    """A valid conversation: any messages with at least one user or assistant message."""
    body = draw(st.lists(message(), max_size=12))
    anchor = draw(message(st.sampled_from(("user", "assistant"))))
    body.insert(draw(st.integers(0, len(body))), anchor)
    return body


#: Any str, lone surrogates included (st.text() never draws them).
any_text: st.SearchStrategy[str] = st.text(
    st.characters(codec=None, categories=["Cs", "L", "N", "P", "Z"]), max_size=8
)

json_junk: st.SearchStrategy[object] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(("role", "content", "x")), children, max_size=3)
        | st.tuples(children)
    ),
    max_leaves=12,
)


@st.composite
def chunkings(draw: st.DrawFn, data: AnyStr) -> list[AnyStr]:
    """``data`` cut at drawn split points, down to single bytes (or characters)."""
    if len(data) < 2:
        return [data] if data or draw(st.booleans()) else []
    cuts: list[int] = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=len(data))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(
    str.strip
)
_count = st.none() | st.integers(0, 10_000)


@st.composite
def faults(draw: st.DrawFn) -> Fault:
    """Any valid :class:`Fault`: a status fault, or a cut with body faults."""
    if draw(st.booleans()):
        return Fault(
            status=draw(st.integers(300, 599).filter(lambda status: status != 304)),
            reason=draw(st.none() | _header_text),
            retry_after=draw(st.none() | _header_text),
            location=draw(st.none() | _header_text),
            error_body_bytes=draw(_count),
            times=draw(st.none() | st.integers(1, 5)),
        )
    cut = draw(st.sampled_from((None, "stall_before_status", "stall_after", "reset_after")))
    cuts: dict[str, object] = {}
    if cut == "stall_before_status":
        cuts[cut] = True
    elif cut is not None:
        cuts[cut] = draw(st.integers(0, 10_000))
    body_faults = Fault(
        drip=draw(st.none() | st.floats(0, 10)),
        chunk_size=draw(st.none() | st.integers(1, 64)),
        invalid_utf8=draw(st.booleans()),
        endless=draw(st.booleans()),
        times=draw(st.none() | st.integers(1, 5)),
    )
    return dataclasses.replace(body_faults, **cuts)  # type: ignore[arg-type]


#: Any value JSON can carry (no NaN or infinity, no lone surrogate).
json_values: st.SearchStrategy[object] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


_counts = st.integers(0, 10**9)
#: A usage object as servers send it: the known counts, nested details, fields of their own.
usages = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": _counts,
        "completion_tokens": _counts,
        "total_tokens": _counts,
        "prompt_tokens_details": st.fixed_dictionaries({}, optional={"cached_tokens": _counts}),
        "completion_tokens_details": st.fixed_dictionaries(
            {}, optional={"reasoning_tokens": _counts}
        ),
        "queue_time": st.floats(0, 10),
        "own": st.text(max_size=8),
    },
)


@st.composite
def stored_replies(draw: st.DrawFn) -> StoredReply:
    """A whole reply as the response cache keeps it."""
    call = st.fixed_dictionaries(
        {
            "id": st.text(max_size=6),
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.text(max_size=6), "arguments": st.text(max_size=12)}
            ),
        }
    )
    return StoredReply(
        draw(any_text | st.text()),  # lone surrogates too: a server may cut an emoji pair
        draw(st.none() | st.sampled_from(("stop", "length", "tool_calls"))),
        draw(st.none() | usages),  # type: ignore[arg-type]
        draw(st.none() | st.lists(call, max_size=3)),  # type: ignore[arg-type]
        draw(st.none() | st.text()),
    )

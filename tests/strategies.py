"""Hypothesis strategies; the only place they live."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

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
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at drawn split points, down to single bytes."""
    if len(data) < 2:
        return [data] if data or draw(st.booleans()) else []
    cuts = sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=len(data))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]

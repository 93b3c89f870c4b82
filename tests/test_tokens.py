"""Token estimates for a fan-out's tokens_per_minute, and the counts replies report."""

from __future__ import annotations

import math
import typing

import pytest
from hypothesis import given, strategies as st

from aura_anyio._tokens import estimate_tokens, used_tokens

if typing.TYPE_CHECKING:
    from aura_anyio import Usage


@pytest.mark.parametrize(
    ("messages", "max_tokens", "tokens"),
    [
        ([{"role": "user", "content": "abcd"}], None, 1),
        ([{"role": "user", "content": "abcde"}], None, 2),  # rounded up
        ([{"role": "system", "content": "ab"}, {"role": "user", "content": "cd"}], 10, 11),
        ([{"role": "user", "content": ""}], None, 0),
        (  # the text parts of a list, not the images
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "abcdefgh"},
                        {"type": "image_url", "image_url": {"url": "data:..." * 100}},
                        "not a part",
                    ],
                }
            ],
            None,
            2,
        ),
        ([{"role": "assistant", "content": None, "tool_calls": []}], 5, 5),
    ],
)
def test_a_request_is_four_characters_a_token_plus_its_cap(
    messages: list[dict[str, object]], max_tokens: int | None, tokens: int
) -> None:
    assert estimate_tokens(messages, max_tokens) == tokens


@given(st.lists(st.text(max_size=50), min_size=1, max_size=5), st.none() | st.integers(1, 10**6))
def test_the_estimate_is_the_characters_over_four_rounded_up(
    contents: list[str], max_tokens: int | None
) -> None:
    messages = [{"role": "user", "content": content} for content in contents]
    expected = math.ceil(sum(map(len, contents)) / 4) + (max_tokens or 0)
    assert estimate_tokens(messages, max_tokens) == expected


@pytest.mark.parametrize(
    ("usage", "used"),
    [
        (None, None),
        ({}, None),
        ({"total_tokens": 7, "prompt_tokens": 1, "completion_tokens": 2}, 7),
        ({"prompt_tokens": 3, "completion_tokens": 4}, 7),
        ({"prompt_tokens": 3}, None),
    ],
)
def test_what_a_reply_says_it_used(usage: Usage | None, used: int | None) -> None:
    assert used_tokens(usage) == used

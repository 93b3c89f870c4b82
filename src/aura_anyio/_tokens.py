"""Token counts for a token budget: the estimate before a request, the count after; pure, no I/O.

No tokenizer is at hand (the model is the server's), so a request is estimated as the OpenAI
cookbook's parallel processor does: four characters a token, plus the reply's cap when one
is sent. The server's ``usage``, when it comes, corrects the estimate.
"""

from __future__ import annotations

import math
import typing

from ._exceptions import InvalidRequestError
from ._messages import content_text

if typing.TYPE_CHECKING:
    from ._messages import Messages
    from ._usage import Usage

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "tokens_within", "used_tokens"]

CHARS_PER_TOKEN = 4


def estimate_tokens(messages: Messages, max_tokens: int | None) -> int:
    """The tokens a request may use: its messages' characters / 4, rounded up, plus
    ``max_tokens`` (the most the reply may take) when one is sent."""
    characters = sum(len(content_text(message.get("content"))) for message in messages)
    return math.ceil(characters / CHARS_PER_TOKEN) + (max_tokens or 0)


def tokens_within(budget: float, messages: Messages, max_tokens: int | None) -> int:
    """The estimate of a request's tokens, which must fit in a minute's ``budget``.

    Raises:
        InvalidRequestError: The request needs more than the whole budget.
    """
    tokens = estimate_tokens(messages, max_tokens)
    if tokens > budget:
        raise InvalidRequestError(
            f"this request needs about {tokens} tokens (4 characters a token, plus "
            f"max_tokens), more than tokens_per_minute={budget:g} allows in a minute; "
            "raise the budget or shorten the request"
        )
    return tokens


def used_tokens(usage: Usage | None) -> int | None:
    """The tokens a reply's ``usage`` says it used, or ``None`` if it does not say."""
    if usage is None:
        return None
    total = usage.get("total_tokens")
    if total is not None:
        return total
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if prompt is None or completion is None:
        return None
    return prompt + completion

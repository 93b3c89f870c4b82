"""JSON text to Python values: msgspec's decoder when it is installed, the standard library's
otherwise; pure, no I/O.

A stream on the OpenAI wire carries a JSON object per token. ``json.loads`` takes about 6 µs
for a typical ``chat.completion.chunk`` here, msgspec's decoder under 2 µs; msgspec is
optional (the ``fast`` extra), and nothing else changes with it. Where the two would differ,
the standard library decides: msgspec refuses what ``json`` accepts beyond the JSON standard
(``NaN``, numbers past a float's range, lone surrogates, nesting past its limit), and such a
text goes to ``json.loads``; what both accept they read alike (``tests/test_fastjson.py``).
orjson is not used: it reads an integer past 64 bits as a float.
"""

from __future__ import annotations

import json
import typing

if typing.TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["choose_loads", "msgspec_decoder", "reader"]


def msgspec_decoder() -> Callable[[str], object] | None:
    """msgspec's JSON decoder, or ``None`` if msgspec is not installed."""
    try:
        import msgspec  # optional: the fast extra
    except ImportError:
        return None
    return typing.cast("Callable[[str], object]", msgspec.json.Decoder().decode)


def choose_loads(decode: Callable[[str], object] | None) -> Callable[[str], object]:
    """``json.loads``, or ``decode`` with ``json.loads`` behind it for what it refuses."""
    if decode is None:
        return json.loads

    def loads(text: str) -> object:
        try:
            return decode(text)
        except (ValueError, RecursionError):  # msgspec's DecodeError is a ValueError
            return json.loads(text)

    return loads


_chosen: Callable[[str], object] | None = None


def reader() -> Callable[[str], object]:
    """The function that parses one JSON text, raising ``ValueError`` (or ``RecursionError``)
    as ``json.loads`` does.

    Chosen at the first call, not at import: msgspec takes 50-70 ms to import, which a
    program that never reads the OpenAI wire should not pay.
    """
    global _chosen  # made once, then the same for every reply
    if _chosen is None:
        _chosen = choose_loads(msgspec_decoder())
    return _chosen

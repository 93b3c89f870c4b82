"""What counts as a number in an argument, and the checks built on that; pure, no I/O.

``bool`` is an ``int`` to Python but never a number or a count to a user: ``temperature=True``
is a mistake, and so is ``max_tokens=True``.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from ._exceptions import InvalidRequestError

__all__ = ["check_positive", "is_int", "is_number"]


def is_number(value: object) -> TypeGuard[int | float]:
    """Tell whether ``value`` is a finite ``int`` or ``float`` (and not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> TypeGuard[int]:
    """Tell whether ``value`` is an ``int`` (and not a ``bool``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive(name: str, value: object) -> None:
    """Raise :class:`InvalidRequestError` unless ``value`` is ``None`` or a positive number.

    Args:
        name: The argument's name, as the caller wrote it (``timeout.read``, say).
    """
    if value is not None and (not is_number(value) or value <= 0):
        raise InvalidRequestError(f"{name} must be a positive number or None, got {value!r}")

"""Type predicates shared by the validation rules; pure, no I/O.

``bool`` is an ``int`` to Python but never a number or a count to a user: ``temperature=True``
is a mistake, and so is ``max_tokens=True``.
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ["is_int", "is_number"]


def is_number(value: object) -> TypeGuard[int | float]:
    """Tell whether ``value`` is a finite ``int`` or ``float`` (and not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: object) -> TypeGuard[int]:
    """Tell whether ``value`` is an ``int`` (and not a ``bool``)."""
    return isinstance(value, int) and not isinstance(value, bool)

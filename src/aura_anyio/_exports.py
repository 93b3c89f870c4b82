"""Public-module bookkeeping for the re-exporting ``__init__`` files; pure, no I/O."""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["show_public_module"]


def show_public_module(namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Make each name defined in a private submodule report the public module exporting it.

    Tracebacks, reprs and documentation then show ``aura_anyio.X`` rather than the private
    module it is defined in, as httpx, trio and anyio do.
    """
    module = str(namespace["__name__"])
    for name in names:
        value = namespace[name]
        defined_in = getattr(value, "__module__", None)
        if isinstance(defined_in, str) and defined_in.startswith(f"{module}._"):
            value.__module__ = module

"""The public surface: exactly what __all__ says, documented, final, under public names."""

from __future__ import annotations

import inspect
import sys
import typing

import pytest

import aura_anyio
import aura_anyio.g4f
import aura_anyio.testing

PUBLIC_MODULES = [aura_anyio, aura_anyio.testing, aura_anyio.g4f]
# Constants and type aliases carry no docstring or module of their own.
CONSTANTS = {"MODELS", "Messages", "Requests", "__version__"}  # values and type aliases


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then everything else."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_complete(module: object) -> None:
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert names == sorted(names, key=isort_key)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public | {"__version__"} >= set(names)
    assert public - {"annotations"} <= set(names)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_public_name_is_documented_and_public(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        if name in CONSTANTS or name.isupper():
            continue
        value = getattr(module, name)
        assert inspect.getdoc(value), f"{name} has no docstring"
        assert value.__module__ == module.__name__, name  # type: ignore[attr-defined]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.final marks classes from 3.11")
@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_public_classes_are_final(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        value = getattr(module, name)
        if not inspect.isclass(value) or issubclass(value, BaseException):
            continue
        if getattr(value, "_is_protocol", False) or typing.is_typeddict(value):
            continue
        assert getattr(value, "__final__", False), f"{name} is not @final"


def test_exception_hierarchy() -> None:
    a = aura_anyio
    assert issubclass(a.InvalidRequestError, a.AuraError)
    assert issubclass(a.InvalidRequestError, ValueError)
    for error in (
        a.APIConnectionError,
        a.APIStatusError,
        a.IncompleteStreamError,
        a.ResponseTooLargeError,
    ):
        assert issubclass(error, a.APIError)
    assert issubclass(a.APITimeoutError, a.APIConnectionError)
    assert issubclass(a.RateLimitError, a.APIStatusError)
    assert issubclass(a.ServerError, a.APIStatusError)
    assert issubclass(a.APIError, a.AuraError)

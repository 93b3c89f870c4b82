"""Aura as one of gpt4free's own providers (the ``g4f`` extra).

::

    import g4f
    from aura_anyio.g4f import Aura

    for text in g4f.ChatCompletion.create("", messages, provider=Aura, stream=True):
        print(text, end="")

:class:`aura_anyio.Aura` already has gpt4free's provider methods, but gpt4free streams only
from a subclass of its own ``AsyncGeneratorProvider`` (``ChatCompletion.create_async(...,
stream=True)``), and its newer releases' ``Client`` keeps books on its own providers' classes.
This class is the same provider with gpt4free's ``AsyncGeneratorProvider`` and
``ProviderModelMixin`` as base classes. It was tried with gpt4free 0.3.3.3, the last release
that shipped ``Aura``, and 8.8.6.

The methods are :class:`aura_anyio.Aura`'s, not gpt4free's: ``create_completion`` reads the
reply on an event loop of its own thread, so it needs no ``nest_asyncio`` where a loop already
runs, and closing it half-way closes the response.
"""

from __future__ import annotations

import typing

from ._provider import Provider as _Provider

__all__ = ["Aura"]

if typing.TYPE_CHECKING:
    # gpt4free ships no type information: to type checkers this is aura_anyio.Aura again.
    _Gpt4freeProvider = object
else:
    from g4f.providers import base_provider as _g4f

    class _Gpt4freeProvider(_g4f.AsyncGeneratorProvider, _g4f.ProviderModelMixin):
        """gpt4free's base classes of a provider that lists its models."""


@typing.final
class Aura(_Provider, _Gpt4freeProvider):
    """:class:`aura_anyio.Aura` as a subclass of gpt4free's ``AsyncGeneratorProvider``."""

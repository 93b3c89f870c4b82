"""Test helpers: a reference openchat-ui server on AnyIO and h11, and canned streamed responses.

:class:`ReferenceServer` serves ``POST /api/chat`` over real loopback sockets on asyncio and
Trio, as openchat-ui does; :func:`stream_response` builds streamed ``httpx`` responses with
exact chunk boundaries for ``httpx.MockTransport`` and respx.
"""

from __future__ import annotations

from ._chat import (
    DEFAULT_SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT,
    ReceivedRequest as ReceivedRequest,
    approx_tokens as approx_tokens,
    default_reply as default_reply,
    trim_history as trim_history,
)
from ._server import Outcome as Outcome, ReferenceServer as ReferenceServer
from ._streams import stream_response as stream_response

__all__ = (
    "DEFAULT_SYSTEM_PROMPT",
    "Outcome",
    "ReceivedRequest",
    "ReferenceServer",
    "approx_tokens",
    "default_reply",
    "stream_response",
    "trim_history",
)


def _show_public_module() -> None:
    # Tracebacks and reprs show the public module, not the private one defining the name.
    for name in __all__:
        value = globals()[name]
        if isinstance(value, type) or callable(value):
            value.__module__ = __name__


_show_public_module()
del _show_public_module

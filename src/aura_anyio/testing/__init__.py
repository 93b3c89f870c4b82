"""Test helpers: a reference openchat-ui server on AnyIO and h11, and canned streamed responses.

:class:`ReferenceServer` serves ``POST /api/chat`` over real loopback sockets on asyncio and
Trio, as openchat-ui does; :func:`stream_response` builds streamed ``httpx`` responses with
exact chunk boundaries for ``httpx.MockTransport`` and respx.
"""

from __future__ import annotations

from .._exports import show_public_module as _show_public_module
from ._chat import (
    DEFAULT_SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT,
    ReceivedRequest as ReceivedRequest,
    approx_tokens as approx_tokens,
    default_reply as default_reply,
    trim_history as trim_history,
)
from ._faults import Fault as Fault
from ._server import Outcome as Outcome, ReferenceServer as ReferenceServer
from ._streams import stream_response as stream_response

__all__ = (
    "DEFAULT_SYSTEM_PROMPT",
    "Fault",
    "Outcome",
    "ReceivedRequest",
    "ReferenceServer",
    "approx_tokens",
    "default_reply",
    "stream_response",
    "trim_history",
)


# Tracebacks and reprs show the public module, not the private one defining a name.
_show_public_module(globals(), __all__)
del _show_public_module

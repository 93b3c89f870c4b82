"""Test helpers: a reference server, a mock transport, and canned streamed responses.

:class:`ReferenceServer` serves ``POST /api/chat`` (as openchat-ui does) and
``/v1/chat/completions`` over real loopback sockets on asyncio and Trio, with faults on
demand; :class:`MockTransport` answers an ``AuraClient(transport=...)``'s requests with a
function of yours, no network involved; :func:`stream_response` builds streamed ``httpx``
responses with exact chunk boundaries for ``httpx.MockTransport`` and respx.
"""

from __future__ import annotations

from ._chat import (
    DEFAULT_SYSTEM_PROMPT as DEFAULT_SYSTEM_PROMPT,
    ReceivedRequest as ReceivedRequest,
    approx_tokens as approx_tokens,
    default_reply as default_reply,
    trim_history as trim_history,
)
from ._faults import ERROR_SHAPES as ERROR_SHAPES, Fault as Fault
from ._mock import MockResponse as MockResponse, MockTransport as MockTransport
from ._plan import Thinking as Thinking, ToolCalls as ToolCalls
from ._server import Outcome as Outcome, ReferenceServer as ReferenceServer
from ._streams import stream_response as stream_response

__all__ = (
    "DEFAULT_SYSTEM_PROMPT",
    "ERROR_SHAPES",
    "Fault",
    "MockResponse",
    "MockTransport",
    "Outcome",
    "ReceivedRequest",
    "ReferenceServer",
    "Thinking",
    "ToolCalls",
    "approx_tokens",
    "default_reply",
    "stream_response",
    "trim_history",
)


# Tracebacks and reprs show the public module, not the private one defining a name.
for _name in __all__:
    if getattr(globals()[_name], "__module__", "").startswith(f"{__name__}._"):
        globals()[_name].__module__ = __name__

"""Stream chat replies from OpenChat's ``/api/chat`` on asyncio and Trio, through AnyIO."""

from __future__ import annotations

# The "import X as X" form marks each name as a deliberate re-export for type checkers.
from ._cache import ResponseCache as ResponseCache
from ._client import AuraClient as AuraClient
from ._exceptions import (
    APIConnectionError as APIConnectionError,
    APIError as APIError,
    APIStatusError as APIStatusError,
    APITimeoutError as APITimeoutError,
    AuraError as AuraError,
    AuthenticationError as AuthenticationError,
    BadRequestError as BadRequestError,
    CacheError as CacheError,
    ConflictError as ConflictError,
    EmptyReplyError as EmptyReplyError,
    IncompleteStreamError as IncompleteStreamError,
    InvalidRequestError as InvalidRequestError,
    NotFoundError as NotFoundError,
    PermissionDeniedError as PermissionDeniedError,
    RateLimitError as RateLimitError,
    RequestInfo as RequestInfo,
    ResponseTooLargeError as ResponseTooLargeError,
    ServerError as ServerError,
    UnprocessableEntityError as UnprocessableEntityError,
)
from ._fanout import FanOut as FanOut, FanOutProgress as FanOutProgress, Requests as Requests
from ._messages import (
    FunctionCall as FunctionCall,
    Message as Message,
    Messages as Messages,
    ToolCall as ToolCall,
    split_messages as split_messages,
)
from ._models import (
    MODELS as MODELS,
    ChatRequest as ChatRequest,
    ChatResult as ChatResult,
    ModelSpec as ModelSpec,
    Timeouts as Timeouts,
)
from ._payload import Payload as Payload, build_payload as build_payload
from ._provider import Aura as Aura, WebDriver as WebDriver
from ._ratelimit import Limiter as Limiter, RateLimiter as RateLimiter
from ._retry import RetryPolicy as RetryPolicy
from ._stored import StoredReply as StoredReply
from ._stream import ChatStream as ChatStream
from ._usage import (
    CompletionTokensDetails as CompletionTokensDetails,
    PromptTokensDetails as PromptTokensDetails,
    Usage as Usage,
)
from ._version import __version__ as __version__

__all__ = (
    "MODELS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Aura",
    "AuraClient",
    "AuraError",
    "AuthenticationError",
    "BadRequestError",
    "CacheError",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "CompletionTokensDetails",
    "ConflictError",
    "EmptyReplyError",
    "FanOut",
    "FanOutProgress",
    "FunctionCall",
    "IncompleteStreamError",
    "InvalidRequestError",
    "Limiter",
    "Message",
    "Messages",
    "ModelSpec",
    "NotFoundError",
    "Payload",
    "PermissionDeniedError",
    "PromptTokensDetails",
    "RateLimitError",
    "RateLimiter",
    "RequestInfo",
    "Requests",
    "ResponseCache",
    "ResponseTooLargeError",
    "RetryPolicy",
    "ServerError",
    "StoredReply",
    "Timeouts",
    "ToolCall",
    "UnprocessableEntityError",
    "Usage",
    "WebDriver",
    "__version__",
    "build_payload",
    "split_messages",
)


# Tracebacks and reprs show the public module, not the private one defining a name.
for _name in __all__:
    if getattr(globals()[_name], "__module__", "").startswith(f"{__name__}._"):
        globals()[_name].__module__ = __name__

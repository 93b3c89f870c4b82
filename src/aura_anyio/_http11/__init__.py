"""HTTP/1.1 for the lean transport: requests out, responses in; pure, no I/O.

h11 turns every HTTP chunk into an event and runs its state machine for each. A streamed
reply comes as one chunk per token, so that per-event work was a third of the client's CPU
(``benchmarks/RESULTS.md``). This package instead hands over every body byte that has
arrived in one call, whatever its chunking. Its contract:

- ``request``: the bytes of a ``POST`` with a known body, its head built once per client.
- ``head``: a response head parsed into a :class:`Head`, or a :class:`RemoteProtocolError`.
- ``body``: one reader per framing of RFC 9112 section 6.3, all sharing :class:`BodyReader`.
  Body bytes pass through unchanged: content codings are the client's business.
- ``response``: :class:`ResponseParser` finds the final head, picks the reader, and
  delegates the body to it. Nothing here ever reads a socket.

``tests/test_http11.py`` checks it against h11 with Hypothesis, in any split of the bytes.
"""

from __future__ import annotations

from .body import (
    MAX_LINE_BYTES as MAX_LINE_BYTES,
    BodyReader as BodyReader,
    ChunkedReader as ChunkedReader,
    CloseReader as CloseReader,
    EmptyReader as EmptyReader,
    LengthReader as LengthReader,
)
from .head import (
    TOKEN as TOKEN,
    Head as Head,
    RemoteProtocolError as RemoteProtocolError,
    parse_head as parse_head,
)
from .request import encode_request as encode_request, request_prefix as request_prefix
from .response import (
    MAX_HEAD_BYTES as MAX_HEAD_BYTES,
    ResponseParser as ResponseParser,
    choose_reader as choose_reader,
)

__all__ = (
    "MAX_HEAD_BYTES",
    "MAX_LINE_BYTES",
    "TOKEN",
    "BodyReader",
    "ChunkedReader",
    "CloseReader",
    "EmptyReader",
    "Head",
    "LengthReader",
    "RemoteProtocolError",
    "ResponseParser",
    "choose_reader",
    "encode_request",
    "parse_head",
    "request_prefix",
)

"""Incremental text decoding of a chunked reply; pure, no I/O.

openchat-ui sends one HTTP chunk per upstream token, so a multi-byte UTF-8 character is often
split across two chunks. Decoding each chunk on its own (what the seed did) loses or garbles
those characters; an incremental decoder carries the incomplete tail to the next chunk.
"""

from __future__ import annotations

import codecs
import typing
from email.message import Message

__all__ = ["DEFAULT_ENCODING", "TextDecoder", "charset_from_content_type"]

# openchat-ui sends no Content-Type at all; its body is UTF-8.
DEFAULT_ENCODING = "utf-8"


def charset_from_content_type(content_type: str | None) -> str:
    """Return the codec named by a Content-Type's ``charset``, or UTF-8 if none or unknown."""
    if not content_type:
        return DEFAULT_ENCODING
    header = Message()
    header["content-type"] = content_type
    charset = header.get_param("charset")
    if not isinstance(charset, str):
        return DEFAULT_ENCODING
    try:
        info = codecs.lookup(charset.strip())
    except LookupError:
        return DEFAULT_ENCODING
    # A hostile server could name a bytes-to-bytes codec (base64, zlib) or rot13: text only.
    if not getattr(info, "_is_text_encoding", True):
        return DEFAULT_ENCODING
    return info.name


@typing.final
class TextDecoder:
    """Decode a byte stream piece by piece; the same text comes out under any chunking.

    Invalid bytes become U+FFFD instead of failing: a reply is never lost to one bad byte.
    """

    __slots__ = ("_decoder",)

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")

    def decode(self, data: bytes) -> str:
        """Return the text completed by ``data``; an incomplete character waits for more."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Return what is left at the end of the stream (U+FFFD for a truncated character)."""
        return self._decoder.decode(b"", final=True)

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

    __slots__ = ("_decoder", "_tail")

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        # UTF-8 (nearly every reply) is decoded here with the codec's own function, as its
        # incremental decoder does, without that decoder's Python method around it: this
        # runs once per token. Any other charset has its incremental decoder.
        utf8 = codecs.lookup(encoding).name == "utf-8"
        self._decoder = None if utf8 else codecs.getincrementaldecoder(encoding)(errors="replace")
        self._tail = b""  # the start of a UTF-8 character cut by the end of a piece

    def decode(self, data: bytes) -> str:
        """Return the text completed by ``data``; an incomplete character waits for more."""
        if self._decoder is not None:
            return self._decoder.decode(data)
        if self._tail:
            data = self._tail + data
        text, used = codecs.utf_8_decode(data, "replace", False)
        self._tail = data[used:]
        return text

    def flush(self) -> str:
        """Return what is left at the end of the stream (U+FFFD for a truncated character)."""
        if self._decoder is not None:
            return self._decoder.decode(b"", final=True)
        tail, self._tail = self._tail, b""
        return codecs.utf_8_decode(tail, "replace", True)[0]

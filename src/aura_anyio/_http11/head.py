"""HTTP/1.1 response heads: the status line and header fields; pure, no I/O.

:func:`parse_head` turns the bytes of one head, found by ``response``, into a :class:`Head`.
It is lenient where RFC 9112 lets a recipient be (bare LF line ends, obsolete line folding)
and strict where a lenient reading could be fooled (field names, control characters).
"""

from __future__ import annotations

import dataclasses
import re
import typing

__all__ = ["TOKEN", "Head", "RemoteProtocolError", "parse_head"]

# RFC 9110 section 5.6.2: a token, as in field names. A str pattern, for ``_options`` too.
TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"

_FIELD_NAME = re.compile(TOKEN.encode("ascii"))
_STATUS_LINE = re.compile(rb"HTTP/(\d\.\d) (\d{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
# RFC 9110 section 5.5: visible characters, space and tab, and obs-text.
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


class RemoteProtocolError(Exception):
    """The server's response is not valid HTTP/1.1 (or uses what the client does not speak).

    h11's name for the same fault; the default transport maps it to the neutral
    ``_transports.base.ProtocolError``.
    """


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """A final response's status line and headers.

    ``headers`` maps lower-case names to values decoded as Latin-1, repeated fields joined
    with ``", "``.
    """

    status_code: int
    reason: str
    headers: dict[str, str]
    http_version: str


def parse_head(raw: bytes) -> Head:
    """Parse a response head: its status line and header lines, without the blank line.

    Args:
        raw: The head's bytes, lines ended by CRLF or a bare LF.

    Returns:
        The status line and the headers.

    Raises:
        RemoteProtocolError: The status line or a header line is malformed.
    """
    lines = raw.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None or status[2] < b"100":
        raise RemoteProtocolError(f"invalid status line {lines[0][:100]!r}")
    fields: list[list[bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):  # obsolete line folding continues the previous field
            if not fields:
                raise RemoteProtocolError("a header continuation line before any header")
            joined = fields[-1][1].rstrip(b" \t") + b" " + line.strip(b" \t")
            fields[-1][1] = joined.strip(b" \t")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise RemoteProtocolError(f"invalid header line {line[:100]!r}")
        fields.append([name.lower(), value.strip(b" \t")])
    headers: dict[str, str] = {}
    for name, value in fields:
        if not _FIELD_VALUE.fullmatch(value):
            raise RemoteProtocolError(
                f"invalid characters in the value of header {name.decode()!r}"
            )
        key, text = name.decode("ascii"), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Head(
        status_code=int(status[2]),
        reason=(status[3] or b"").decode("latin-1"),
        headers=headers,
        http_version=status[1].decode("ascii"),
    )

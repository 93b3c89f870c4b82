"""Server-sent events from a byte stream, incrementally; pure, no I/O.

The WHATWG event-stream rules: UTF-8 text (an invalid byte becomes U+FFFD), lines ended by
CRLF, LF or CR, ``field: value`` lines, comments starting with ``:``, and an empty line
dispatching the event; an event without data is not dispatched. Only ``data`` and ``event``
matter to a chat reply. httpx-sse implements the same rules, but only over an
``httpx.Response``, which the lean transport does not make; ``tests/test_sse.py`` checks this
decoder against it under any chunking.
"""

from __future__ import annotations

import codecs
import dataclasses
import typing

__all__ = ["Event", "EventDecoder"]


@typing.final
@dataclasses.dataclass(slots=True)  # not frozen: a frozen dataclass is twice as slow to make
class Event:
    """One dispatched event: its type (``"message"`` by default) and its data lines joined."""

    data: str
    event: str = "message"


@typing.final
class EventDecoder:
    """Feed bytes with :meth:`feed`; each call returns the events they completed."""

    __slots__ = ("_data", "_event", "_line", "_pending_cr", "_started", "_tail")

    def __init__(self) -> None:
        self._tail = b""  # the start of a UTF-8 character cut by the end of a feed
        self._line: list[str] = []  # an incomplete line's pieces, carried to the next feed
        self._pending_cr = False  # the last feed ended in CR: a LF next belongs to it
        self._data: list[str] = []
        self._event = ""
        self._started = False  # whether any text came yet: a byte-order mark may open it

    def feed(self, data: bytes, *, final: bool = False) -> list[Event]:
        """Return the events that ``data`` completed; ``final`` marks the end of the stream.

        At the end, an event that was not followed by an empty line is dropped, as the
        standard says.
        """
        # The UTF-8 codec's own function, as its incremental decoder calls it, without
        # that decoder's Python method around it: this runs once per token.
        if self._tail:
            data = self._tail + data
        text, used = codecs.utf_8_decode(data, "replace", final)
        self._tail = data[used:]
        if not text:
            return []  # nothing decoded yet, or nothing at all: no state changes
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        if (
            text.endswith("\n\n")
            and text.startswith("data:")
            and text.find("\n") == len(text) - 2
            and not self._line
            and not self._data
            and "\r" not in text
        ):
            # One whole event of one data line, as a server sends a token: the lines'
            # loop below would find the same.
            value = text[6:-2] if text.startswith(" ", 5) else text[5:-2]
            event = Event(value, self._event or "message")
            self._event = ""
            return [event]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            # Kept in pieces, joined once the line ends: a line that comes in many reads
            # costs its length, not its length times the reads.
            self._line.append(text)
            return []
        *lines, rest = text.split("\n")
        if self._line:
            lines[0] = "".join(self._line) + lines[0]
        self._line = [rest] if rest else []
        # The lines of a whole buffer in one loop, with no call per line: a stream of
        # chat.completion.chunk events is two lines a token.
        events: list[Event] = []
        data_lines = self._data
        for line in lines:
            if not line:  # the end of an event
                if data_lines:
                    joined = data_lines[0] if len(data_lines) == 1 else "\n".join(data_lines)
                    events.append(Event(joined, self._event or "message"))
                    data_lines = self._data = []
                self._event = ""
            elif line.startswith("data:"):
                data_lines.append(line[6:] if line.startswith(" ", 5) else line[5:])
            elif not line.startswith(":"):  # a comment otherwise
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":  # "data" with no colon: an empty data line
                    data_lines.append(value)
                elif name == "event":
                    self._event = value
                # id and retry matter to reconnecting clients, which a chat reply is not.
        return events

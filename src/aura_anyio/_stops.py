"""Stop sequences cut on the client: the reply ends where the first of them appears.

gpt4free's callers pass ``stop=`` to every provider, and ``/api/chat`` has no such field, so
the provider cuts the text itself. The cut does not depend on how the text was chunked: it is
where a stop sequence first *ends*, as if the text arrived a character at a time (of two that
end at the same place, the longer wins). Text that may still turn out to begin a stop
sequence is held back, so nothing is ever yielded that a later chunk would have cut.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

from ._exceptions import InvalidRequestError

__all__ = ["StopScanner", "stop_sequences"]


def stop_sequences(stop: object) -> tuple[str, ...]:
    """Validate ``stop``: ``None``, a string, or a sequence of non-empty strings."""
    if stop is None:
        return ()
    if stop == "":
        raise InvalidRequestError("stop must be a non-empty string, got ''")
    items: Sequence[object] = [stop] if isinstance(stop, str) else _as_sequence(stop)
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise InvalidRequestError(f"stop[{index}] must be a non-empty string, got {item!r}")
    return tuple(typing.cast("Sequence[str]", items))


def _as_sequence(stop: object) -> Sequence[object]:
    if isinstance(stop, Sequence) and not isinstance(stop, (bytes, bytearray)):
        return typing.cast("Sequence[object]", stop)
    raise InvalidRequestError(
        f"stop must be a string or a list of strings, got {type(stop).__name__}"
    )


class StopScanner:
    """Cut a stream of text at the first stop sequence: ``feed`` each piece, then ``flush``.

    ``feed`` returns the text that is safe to pass on; once :attr:`stopped`, the reply is
    over and the rest of the stream is not wanted.
    """

    __slots__ = ("_held", "_stops", "stopped")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Take the next piece; return what can be passed on now."""
        if self.stopped:
            return ""
        buffer = self._held + text
        cut = self._first_stop(buffer)
        if cut is not None:
            self._held = ""
            self.stopped = True
            return buffer[:cut]
        keep = self._partial_start(buffer)
        self._held = buffer[keep:]
        return buffer[:keep]

    def flush(self) -> str:
        """Return the text held back at the end of the stream."""
        held, self._held = self._held, ""
        return held

    def _first_stop(self, buffer: str) -> int | None:
        """Where the stop sequence that ends first begins, if one is complete."""
        best: tuple[int, int] | None = None
        for stop in self._stops:
            start = buffer.find(stop)
            if start >= 0:
                candidate = (start + len(stop), start)
                if best is None or candidate < best:
                    best = candidate
        return None if best is None else best[1]

    def _partial_start(self, buffer: str) -> int:
        """Where the earliest suffix of ``buffer`` that begins some stop sequence starts."""
        longest = max((len(stop) for stop in self._stops), default=1) - 1
        for start in range(max(0, len(buffer) - longest), len(buffer)):
            tail = buffer[start:]
            if any(stop.startswith(tail) for stop in self._stops):
                return start
        return len(buffer)

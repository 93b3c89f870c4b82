"""The client's own CPU per token above the socket, without the event loop or the kernel.

``paced.py`` counts everything a token costs the client process: the event loop's turn, the
system calls, the wake-up, and aura_anyio's own path. This measures that last part alone: a
connection whose every read returns the next token's HTTP chunk at once (no wait, no system
call) feeds ``client.stream()``, so what is timed is the path from ``ChatStream.__anext__``
down to the read and back: the chunked body's parse, the wire's decoding (UTF-8 text on
``/api/chat``; a server-sent event and its JSON on the OpenAI wire), and every check. The
tokens are ``paced.py``'s: cut inside characters on ``/api/chat``, ``chat.completion.chunk``
events on the OpenAI wire.

The baseline, in the same run, is what a client built on aiohttp does above it with the same
token (aiohttp's own parse is C, and not counted): an incremental UTF-8 decode on
``/api/chat``, and on the OpenAI wire the vLLM-style client's split into events and
``json.loads`` per event (``paced._events``). Each figure is the best of five repeats.
Another version is measured with ``PYTHONPATH=TREE/src python benchmarks/tokens.py``.

    nox -s bench -- tokens
"""

from __future__ import annotations

import argparse
import codecs
import itertools
import socket
import time
import timeit
from typing import TYPE_CHECKING

import anyio

from events import MODEL
from paced import _events, openai_writes, plain_writes

if TYPE_CHECKING:
    from aura_anyio._transports.default import AsyncioStream

TOKENS = 20_000  # per repeat: under max_response_bytes on the OpenAI wire
REPEATS = 5


class _Instant:
    """A connection whose reads return the next write of a reply at once, forever."""

    def __init__(self, head: bytes, tokens: list[bytes], end: bytes, count: int) -> None:
        self._writes = itertools.chain(
            [head], itertools.islice(itertools.cycle(tokens), count), [end]
        )
        # The pool's idle check polls the socket, which must exist: one that never reads.
        self.raw_socket, self._peer = socket.socketpair()
        self.quiet = True

    async def receive_within(self, read_timeout: float | None, max_bytes: int = 65536) -> bytes:
        return next(self._writes)

    async def send_within(self, write_timeout: float | None, item: bytes) -> None:
        pass

    async def aclose(self) -> None:
        self.raw_socket.close()
        self._peer.close()


def _reply(wire: str, count: int) -> _Instant:
    if wire == "plain":
        head, *tokens, end = plain_writes(200)
    else:
        head, *tokens, end = openai_writes(200)
    return _Instant(head, tokens, end, count)


async def _aura(wire: str, count: int) -> float:
    """Seconds of CPU per token for one reply of ``count`` tokens through ``client.stream()``."""
    from aura_anyio import AuraClient
    from aura_anyio._transports import default

    async def connect(host: str, port: int) -> AsyncioStream:
        return _reply(wire, count)  # type: ignore[return-value]

    default.asyncio_connect = connect  # type: ignore[assignment]
    default.on_asyncio = lambda: True
    model = {} if wire == "plain" else {"model": MODEL}
    name = "aura" if wire == "plain" else "openai"
    async with (
        AuraClient("http://127.0.0.1:9", wire=name) as client,
        client.stream([{"role": "user", "content": "x"}], **model) as reply,
    ):
        started = time.process_time()
        async for _ in reply:
            pass
        return (time.process_time() - started) / count


def _baseline(wire: str, count: int) -> float:
    """Seconds of CPU per token for the aiohttp client's own work above aiohttp."""
    _, *frames, _ = plain_writes(200) if wire == "plain" else openai_writes(200)
    # aiohttp hands over each chunk's data, its framing taken off in C.
    tokens = [frame.split(b"\r\n", 1)[1][:-2] for frame in frames]
    feed = itertools.islice(itertools.cycle(tokens), count)
    parts: list[str] = []
    if wire == "plain":
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        return timeit.timeit(lambda: parts.append(decode(next(feed))), number=count) / count
    sse, end = bytearray(), [None, None]

    def one() -> None:
        sse.extend(next(feed))
        _events(sse, parts, end)

    return timeit.timeit(one, number=count) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=TOKENS, help="per repeat")
    args = parser.parse_args()
    print("| wire | aura_anyio (µs a token) | aiohttp client's own (µs a token) | ratio |")
    print("|---|---|---|---|")
    for wire in ("plain", "openai"):
        ours = min(anyio.run(_aura, wire, args.tokens) for _ in range(REPEATS))
        base = min(_baseline(wire, args.tokens) for _ in range(REPEATS))
        print(f"| {wire} | {ours * 1e6:.2f} | {base * 1e6:.2f} | {ours / base:.2f} |")


if __name__ == "__main__":
    main()

"""The chunked body's parse, against h11's, in one run: CPU per read, two ways a reply comes.

- **one read**: a 50-chunk reply (``fanout.py``'s, cut inside characters) that arrived in one
  read, as a fan-out's short replies do;
- **a chunk a read**: 200 token-sized chunks, each read on its own, as a model's tokens come
  (``paced.py``), with the empty call the response makes before each read of the socket.

Each figure is the best of five repeats, per read, for ``ChunkedReader`` (``_http11.body``)
and for h11's client, fed the same bytes after the same head; the ratio is ours to h11's.
Another version of ours is measured with ``PYTHONPATH=TREE/src python benchmarks/chunked.py``.

    nox -s bench -- chunked
"""

from __future__ import annotations

import argparse
import timeit
from typing import TYPE_CHECKING

import h11

from fanout import _reply_bodies

if TYPE_CHECKING:
    from collections.abc import Callable

HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
TOKENS = [f"token{n} ".encode() for n in range(200)]
FRAMES = [b"%x\r\n%s\r\n" % (len(token), token) for token in TOKENS]
END = b"0\r\n\r\n"


def h11_response() -> h11.Connection:
    """An h11 client that has sent its request and read the response head."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(HEAD)
    assert isinstance(connection.next_event(), h11.Response)
    return connection


def h11_body(connection: h11.Connection) -> bytes:
    """Every body byte h11 has for now."""
    pieces = []
    while isinstance(event := connection.next_event(), h11.Data):
        pieces.append(bytes(event.data))
    return b"".join(pieces)


def cases() -> dict[str, tuple[Callable[[], object], Callable[[], object], int]]:
    """For each way: (ours, h11's, reads per call)."""
    from aura_anyio._http11.body import ChunkedReader

    body = _reply_bodies()[0]

    def ours_once() -> bytes:
        return ChunkedReader().read(bytearray(body), False)

    def h11_once() -> bytes:
        connection = h11_response()
        connection.receive_data(body)
        return h11_body(connection)

    def ours_paced() -> list[bytes]:
        reader, buffer, out = ChunkedReader(), bytearray(), []
        for frame in FRAMES:
            reader.read(buffer, False)  # the response asks before every read of the socket
            buffer += frame
            out.append(reader.read(buffer, False))
        return out

    def h11_paced() -> list[bytes]:
        connection, out = h11_response(), []
        for frame in FRAMES:
            h11_body(connection)
            connection.receive_data(frame)
            out.append(h11_body(connection))
        return out

    assert ours_once() == h11_once()
    assert ours_paced() == h11_paced() == TOKENS
    return {
        "one read, 50 chunks": (ours_once, h11_once, 1),
        "a chunk a read, 200 chunks": (ours_paced, h11_paced, len(FRAMES)),
    }


def per_read(func: Callable[[], object], reads: int) -> float:
    number = max(1, 20_000 // reads)
    return min(timeit.repeat(func, number=number, repeat=5)) / number / reads


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print("| reply | ours (µs a read) | h11 (µs a read) | ours / h11 |")
    print("|---|---|---|---|")
    for label, (ours, theirs, reads) in cases().items():
        mine, h11s = per_read(ours, reads), per_read(theirs, reads)
        print(f"| {label} | {mine * 1e6:.2f} | {h11s * 1e6:.2f} | {mine / h11s:.2f} |")


if __name__ == "__main__":
    main()

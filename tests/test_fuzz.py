"""Fuzzing the client with server behaviour drawn by Hypothesis, on every backend and wire.

Whatever the server does (chunking, status, body, where it cuts, stalls or repeats), the
client returns exactly the text that was sent, or raises an AuraError; never anything else,
and never hangs. Text kept from a reply that broke is always a prefix of the reply.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing

import anyio
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aura_anyio import AuraClient, AuraError, EmptyReplyError, RetryPolicy, Timeouts
from aura_anyio.testing import Fault, ReferenceServer

from .helpers import served_in_thread, until
from .strategies import chunkings

if typing.TYPE_CHECKING:
    from collections.abc import Iterator

    from aura_anyio._wire import WireName
    from aura_anyio.testing import ReceivedRequest

pytestmark = pytest.mark.network

RETRIES = RetryPolicy(max_retries=1, initial_delay=0.001, max_delay=0.001, max_retry_after=0.01)
# Only a read timeout ends a stall, so stalls get a short one; nothing else may wait that short.
# The total timeout is a safety net, not a fault's end: a benign reply dripped a byte at a time
# on the OpenAI wire (3 kB) takes some 5 s, 9 s in asyncio's debug mode, more on a busy machine.
TIMEOUTS = Timeouts(connect=5.0, read=5.0, total=60.0)
STALL_TIMEOUTS = Timeouts(connect=5.0, read=0.1, total=60.0)
# max_response_bytes, which an endless body passes quickly; the OpenAI wire frames each piece
# of text in an event of some 190 bytes, so a whole reply there (at most 11 pieces) takes 3 kB.
LIMITS = {"aura": 2000, "openai": 5000}


@st.composite
def server_faults(draw: st.DrawFn) -> Fault:
    """A fault of any kind, or none; stalls are rare, since each costs a read timeout."""
    kind = draw(
        st.sampled_from(["none", "none", "status", "close", "reset", "body", "body", "stall"])
    )
    if kind == "status":
        return Fault(
            status=draw(st.sampled_from([302, 400, 404, 408, 429, 500, 502, 503])),
            retry_after=draw(st.none() | st.sampled_from(["0", "0.001", "junk", "3600"])),
            error_body_bytes=draw(st.none() | st.integers(0, 20_000)),
        )
    endless = draw(st.booleans()) if kind == "body" else False
    body = Fault(
        chunk_size=draw(st.none() | st.integers(1, 7)),
        invalid_utf8=draw(st.booleans()),
        endless=endless,
        # Not with an endless body: dripped a byte at a time, its thousands of pauses would
        # take seconds to reach the limit, and show nothing new.
        drip=None if endless else draw(st.none() | st.just(0.0005)),
    )
    after = draw(st.integers(0, 60))
    if kind == "close":
        return dataclasses.replace(body, close_after=after)
    if kind == "reset":
        return dataclasses.replace(body, reset_after=after)
    if kind == "stall":
        return dataclasses.replace(body, stall_after=after)
    return body


def sent_bytes(reply: bytes, chunks: list[bytes], fault: Fault, limit: int) -> bytes:
    """The text the server sends if nothing cuts it (an endless one up to past ``limit``)."""
    if fault.invalid_utf8:
        first = len(chunks[0]) if chunks else 0
        reply = reply[:first] + b"\xff" + reply[first:]
    if fault.endless:
        reply = (reply or b" ") * (limit // max(1, len(reply)) + 2)
    return reply


def is_benign(fault: Fault) -> bool:
    return fault.status is None and fault.cut is None and not fault.endless


class Replies:
    """One reference server for every example: each example sets the chunks it replies with,
    and asks for its fault by the marker in its prompt (a server started per example would
    add nothing but its start)."""

    server: ReferenceServer

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def reply(self, request: ReceivedRequest) -> list[bytes]:
        return self.chunks


@pytest.fixture
def replies() -> Iterator[Replies]:
    made = Replies()
    # On an event loop in a thread: Hypothesis runs each example on the test's loop anew.
    with served_in_thread(ReferenceServer(reply=made.reply)) as made.server:
        yield made


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    text=st.text(max_size=80),
    fault=server_faults(),
    streamed=st.booleans(),
    wire=st.sampled_from(["aura", "openai"]),
)
async def test_the_client_returns_the_text_sent_or_an_aura_error(
    replies: Replies, data: st.DataObject, text: str, fault: Fault, streamed: bool, wire: WireName
) -> None:
    reply = text.encode()
    if wire == "aura":
        chunks = [chunk for chunk in data.draw(chunkings(reply)) if chunk]
    else:  # an event carries whole characters: its JSON string is text
        cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
        bounds = [0, *cuts, len(text)]
        chunks = [text[a:b].encode() for a, b in itertools.pairwise(bounds) if b > a]
    received = ""
    error: AuraError | None = None
    replies.chunks = chunks
    server = replies.server
    asked = [{"role": "user", "content": f"hi {fault.marker()}"}]
    client = AuraClient(
        server.base_url,
        timeout=STALL_TIMEOUTS if fault.stall_after is not None else TIMEOUTS,
        max_retries=RETRIES,
        max_response_bytes=LIMITS[wire],
        wire=wire,
    )
    # Never hangs: every fault ends within the timeouts.
    with anyio.fail_after(90):
        async with client:
            try:
                if streamed:
                    async with client.stream(asked) as stream:
                        async for piece in stream:
                            received += piece
                else:
                    received = await client.complete(asked)
            except AuraError as exc:
                error = exc
    # And leaves no connection open once the client is closed.
    await until(lambda: server.open_connections == 0)
    expected = sent_bytes(reply, chunks, fault, LIMITS[wire]).decode("utf-8", errors="replace")
    if error is None:
        assert received == expected
    elif isinstance(error, EmptyReplyError):  # no text at all: /api/chat's failure
        assert (wire, expected) == ("aura", "")
    else:
        assert not is_benign(fault), error
        assert expected.startswith(getattr(error, "partial_text", ""))
        assert expected.startswith(received)

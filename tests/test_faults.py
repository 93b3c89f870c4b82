"""Fault injection in aura_anyio.testing: the pure Fault and plan, then the server on the wire."""

from __future__ import annotations

import dataclasses

import anyio
import httpx
import pytest
from hypothesis import given, strategies as st

from aura_anyio import build_payload
from aura_anyio.testing import Fault, Outcome, ReferenceServer, default_reply
from aura_anyio.testing._chat import split_words
from aura_anyio.testing._faults import find_fault, parse_fault
from aura_anyio.testing._plan import Ending, ResponsePlan, apply_fault

from .strategies import faults

pytestmark = pytest.mark.network

REPLY = ResponsePlan(200, b"OK", ((b"transfer-encoding", b"chunked"),), (b"ab", b"\xc3\xa9", b"cd"))


def ask(content: str) -> dict[str, object]:
    return dict(build_payload([{"role": "user", "content": content}]))


# The pure layer: Fault, markers and plans.


@given(faults())
def test_marker_round_trip(fault: Fault) -> None:
    assert parse_fault(f"before {fault.marker()} after") == fault


@given(faults(), st.integers(0, 10_000))
def test_an_interrupt_marker_round_trip(fault: Fault, words: int) -> None:
    # Any fault's body faults and count, with the interrupt as its one cut.
    if fault.status is not None:
        fault = Fault(times=fault.times)
    interrupt = dataclasses.replace(
        fault,
        stall_before_status=False,
        stall_after=None,
        reset_after=None,
        interrupt_after=words,
    )
    assert interrupt.cut == "interrupt_after"
    assert parse_fault(f"before {interrupt.marker()} after") == interrupt


def test_an_interrupt_is_a_cut() -> None:
    assert Fault(interrupt_after=0).marker() == "[[fault interrupt_after=0]]"
    assert parse_fault(Fault(interrupt_after=0).marker()) == Fault(interrupt_after=0)
    assert Fault(interrupt_after=0).cut == "interrupt_after"  # 0 is set: a cut before any word
    fault = Fault(interrupt_after=2, endless=True, times=1)
    assert fault.marker() == "[[fault interrupt_after=2 endless times=1]]"
    assert parse_fault(fault.marker()) == fault
    with pytest.raises(ValueError, match="at most one cut, got close_after and interrupt_after"):
        Fault(interrupt_after=1, close_after=2)
    with pytest.raises(
        ValueError, match=r"Fault\.status replaces the reply; it takes no interrupt"
    ):
        Fault(status=500, interrupt_after=1)


def test_marker_text() -> None:
    fault = Fault(status=429, reason="Rate limit reached", retry_after="2", times=1)
    assert (
        fault.marker() == "[[fault status=429 reason=Rate%20limit%20reached retry_after=2 times=1]]"
    )
    assert Fault(endless=True, drip=0.5).marker() == "[[fault drip=0.5 endless]]"
    assert Fault().marker() == "[[fault]]"
    assert parse_fault("no marker here") is None
    assert parse_fault("[[fault]]") == Fault()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[fault colour=red]]", "unknown fault field 'colour'"),
        ("[[fault status=abc]]", "status='abc' is not a number"),
        ("[[fault drip=inf]]", "drip='inf' is not a number"),
        ("[[fault status]]", "status needs a value"),
        ("[[fault endless=1]]", "the flag endless takes no value"),
        ("[[fault status=200]]", "Fault.status must be from 300 to 599 and not 304, got 200"),
        ("[[fault status=304]]", "Fault.status must be from 300 to 599 and not 304, got 304"),
        ("[[fault status=500 retry_after=%202]]", "not starting or ending with a space"),
        ("[[fault status=500 status=502]]", "the fault field status is given twice"),
        ("[[fault stall_after=-1]]", "Fault.stall_after must be an int >= 0, got -1"),
        ("[[fault chunk_size=0]]", "Fault.chunk_size must be at least 1, got 0"),
        ("[[fault reason=x]]", "Fault.reason needs a status"),
        ("[[fault reason=%0A status=500]]", "Fault.reason must be printable ASCII"),
        (
            "[[fault stall_after=1 reset_after=2]]",
            "at most one cut, got stall_after and reset_after",
        ),
        ("[[fault status=500 endless]]", "it takes no endless"),
        ("[[fault status=500 close_after=3]]", "it takes no close_after"),
        (
            "[[fault interrupt_after=1 close_after=2]]",
            "at most one cut, got close_after and interrupt_after",
        ),
        (
            "[[fault stall_before_status interrupt_after=0]]",
            "at most one cut, got stall_before_status and interrupt_after",
        ),
        ("[[fault status=503 interrupt_after=0]]", "it takes no interrupt_after"),
        ("[[fault interrupt_after=-1]]", "Fault.interrupt_after must be an int >= 0, got -1"),
        ("[[fault interrupt_after=1.5]]", "interrupt_after='1.5' is not a number"),
        ("[[fault interrupt_after]]", "interrupt_after needs a value"),
    ],
)
def test_bad_markers(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_fault(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"times": 0},
        {"drip": -1.0},
        {"drip": True},
        {"endless": 1},
        {"retry_after": 3},
        {"interrupt_after": -1},
        {"interrupt_after": True},
        {"interrupt_after": 1.0},
    ],
)
def test_bad_fault_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=f"Fault.{next(iter(changes))} must be"):
        dataclasses.replace(Fault(), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"messages": "x"},
        {"messages": []},
        {"messages": [3]},
        {"messages": [{"content": 3}]},
    ],
)
def test_no_fault_without_a_last_message_content(body: object) -> None:
    assert find_fault(body) is None


def test_find_fault_reads_the_last_message_only() -> None:
    body: dict[str, object] = dict(ask(Fault(status=500).marker()))
    assert find_fault(body) == (Fault(status=500), Fault(status=500).marker())
    body["messages"] = [{"role": "user", "content": "plain"}]
    assert find_fault(body) is None


def test_status_faults_replace_the_reply() -> None:
    plan = apply_fault(REPLY, Fault(status=429, retry_after="7", reason="Slow down"))
    assert (plan.status, plan.reason, plan.chunks) == (429, b"Slow down", (b"Error",))
    assert (b"retry-after", b"7") in plan.headers
    assert (b"content-length", b"5") in plan.headers
    assert apply_fault(REPLY, Fault(status=599)).reason == b"Error"  # no standard phrase
    moved = apply_fault(REPLY, Fault(status=307, location="http://elsewhere.test/"))
    assert (b"location", b"http://elsewhere.test/") in moved.headers


@given(st.integers(0, 300_000))
def test_error_bodies_of_any_size(size: int) -> None:
    plan = apply_fault(REPLY, Fault(status=500, error_body_bytes=size))
    assert sum(map(len, plan.chunks)) == size
    assert (b"content-length", str(size).encode()) in plan.headers
    assert all(plan.chunks)


@given(faults(), st.lists(st.binary(min_size=1, max_size=8), max_size=6))
def test_body_faults_keep_the_body_a_prefix_of_the_reply(fault: Fault, chunks: list[bytes]) -> None:
    plan = dataclasses.replace(REPLY, chunks=tuple(chunks))
    changed = apply_fault(plan, fault)
    if fault.status is not None:
        assert changed.status == fault.status
        return
    assert changed.stall_before_head is fault.stall_before_status
    if fault.stall_before_status:
        return
    sent = b"".join(changed.chunks)
    body = b"".join(chunks)
    if fault.invalid_utf8:
        first = len(chunks[0]) if chunks else 0
        body = body[:first] + b"\xff" + body[first:]
    size = getattr(fault, fault.cut) if fault.cut else None
    if fault.endless:
        body = (body or b" ") * (len(sent) + 1)
    assert body.startswith(sent)
    assert changed.endless is (fault.endless and size is None)
    if size is not None:
        assert len(sent) == min(size, len(body))
        assert changed.ending is not Ending.END
    if fault.chunk_size is not None:
        assert all(len(chunk) <= fault.chunk_size for chunk in changed.chunks)
    assert changed.delay == (REPLY.delay if fault.drip is None else fault.drip)


@pytest.mark.parametrize(
    ("words", "chunks"),
    [(0, ()), (1, (b"ab",)), (2, (b"ab", b"\xc3\xa9")), (3, REPLY.chunks), (9, REPLY.chunks)],
)
def test_an_interrupt_sends_the_first_n_chunks_then_ends_cleanly(
    words: int, chunks: tuple[bytes, ...]
) -> None:
    plan = apply_fault(REPLY, Fault(interrupt_after=words))
    assert plan == dataclasses.replace(REPLY, chunks=chunks)  # nothing else changes
    assert plan.ending is Ending.END


def test_an_endless_interrupt_takes_n_pieces_of_the_cycle() -> None:
    plan = apply_fault(REPLY, Fault(interrupt_after=5, endless=True))
    assert plan.chunks == (b"ab", b"\xc3\xa9", b"cd", b"ab", b"\xc3\xa9")
    assert (plan.endless, plan.ending) == (False, Ending.END)
    empty = dataclasses.replace(REPLY, chunks=())
    assert apply_fault(empty, Fault(interrupt_after=3, endless=True)).chunks == (b" ",) * 3


def test_an_interrupt_with_other_body_faults() -> None:
    fault = Fault(interrupt_after=2, invalid_utf8=True, chunk_size=1, drip=0.5)
    plan = apply_fault(REPLY, fault)
    # The invalid byte is a piece of its own, after the first.
    assert plan.chunks == (b"a", b"b", b"\xff")
    assert (plan.delay, plan.ending) == (0.5, Ending.END)


@given(faults(), st.lists(st.binary(min_size=1, max_size=8), max_size=6), st.integers(0, 12))
def test_an_interrupt_keeps_whole_chunks_of_the_reply(
    fault: Fault, chunks: list[bytes], words: int
) -> None:
    if fault.status is not None:
        fault = Fault(times=fault.times)
    fault = dataclasses.replace(
        fault,
        stall_before_status=False,
        stall_after=None,
        reset_after=None,
        chunk_size=None,
        invalid_utf8=False,
        interrupt_after=words,
    )
    changed = apply_fault(dataclasses.replace(REPLY, chunks=tuple(chunks)), fault)
    source = (chunks or [b" "]) * (words + 1) if fault.endless else chunks
    assert list(changed.chunks) == source[:words]
    assert (changed.endless, changed.ending, changed.stall_before_head) == (
        False,
        Ending.END,
        False,
    )


def test_an_empty_endless_reply_repeats_a_space() -> None:
    plan = apply_fault(dataclasses.replace(REPLY, chunks=(b"",)), Fault(endless=True))
    assert (plan.chunks, plan.endless) == ((b" ",), True)


def test_body_faults_leave_error_responses_alone() -> None:
    error = dataclasses.replace(REPLY, status=500)
    assert apply_fault(error, Fault(close_after=1, chunk_size=1)) == error


# The server on the wire.


async def post(server: ReferenceServer, content: str) -> tuple[httpx.Response, bytes]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:
        response = await client.post("/api/chat", json=ask(content))
    return response, response.content


async def test_a_marker_applies_its_fault_and_is_recorded() -> None:
    fault = Fault(status=503, retry_after="1")
    async with ReferenceServer() as server:
        response, content = await post(server, f"hello {fault.marker()}")
        plain, _ = await post(server, "hello")
    assert (response.status_code, response.headers["retry-after"], content) == (503, "1", b"Error")
    assert plain.status_code == 200
    assert server.faults == [fault, None]


async def test_times_counts_per_marker_and_a_marker_beats_the_server_fault() -> None:
    once = Fault(status=500, times=1)
    async with ReferenceServer(fault=Fault(status=502, times=2)) as server:
        statuses = [(await post(server, "x"))[0].status_code for _ in range(3)]
        marked = [(await post(server, f"a {once.marker()}"))[0].status_code for _ in range(2)]
        other = [(await post(server, f"b {once.marker()}"))[0].status_code for _ in range(2)]
    assert statuses == [502, 502, 200]
    assert marked == other == [500, 200]


async def test_a_head_request_gets_the_status_fault_without_a_body() -> None:
    async with (
        ReferenceServer(fault=Fault(status=503, error_body_bytes=100)) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        response = await client.head("/api/chat")
        again = await client.head("/api/chat")  # the connection is still usable
    assert (response.status_code, response.content) == (503, b"")
    assert response.headers["content-length"] == "100"
    assert again.status_code == 503


async def test_an_invalid_marker_is_400_with_the_reason() -> None:
    async with ReferenceServer() as server:
        response, _ = await post(server, "[[fault nope]]")
    assert response.status_code == 400
    assert response.reason_phrase.startswith("Invalid fault marker: unknown fault field 'nope'")


def test_server_fault_must_be_a_fault() -> None:
    with pytest.raises(TypeError, match="fault must be a Fault or None, got str"):
        ReferenceServer(fault="500")  # type: ignore[arg-type]


async def read_raw(
    server: ReferenceServer, content: str, *, stall: float = 5.0, enough: int | None = None
) -> tuple[bytes, BaseException | None]:
    """Send one request over a raw socket; return what came back and how reading ended.

    A silence of ``stall`` seconds ends the reading too (with ``TimeoutError``), and so does
    having ``enough`` bytes (with ``None``).
    """
    payload = httpx.Request("POST", f"{server.base_url}/api/chat", json=ask(content))
    head = f"POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-length: {len(payload.content)}\r\n"
    received = b""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(
            head.encode() + b"content-type: application/json\r\n\r\n" + payload.content
        )
        try:
            with anyio.fail_after(stall):
                while enough is None or len(received) < enough:
                    received += await stream.receive()
                return received, None
        except (anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError) as exc:
            return received, exc
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize(
    ("fault", "ending", "outcome"),
    [
        (Fault(close_after=7), anyio.EndOfStream, Outcome.CUT),
        (Fault(reset_after=7), (anyio.BrokenResourceError, anyio.EndOfStream), Outcome.CUT),
        (Fault(stall_after=7), TimeoutError, Outcome.ABORTED),
    ],
    ids=["close", "reset", "stall"],
)
async def test_cuts_after_n_bytes(
    fault: Fault, ending: type[BaseException] | tuple[type[BaseException], ...], outcome: Outcome
) -> None:
    async with ReferenceServer() as server:
        stall = 0.5 if outcome is Outcome.ABORTED else 5.0  # only the stall needs the silence
        received, how = await read_raw(server, fault.marker(), stall=stall)
        await server.wait_until(lambda: server.outcomes == [outcome])
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    data = b"".join(body.split(b"\r\n")[1::2])  # the chunks' data, without their sizes
    assert default_reply(server.requests[0]).encode().startswith(data)
    assert len(data) == 7 or isinstance(how, anyio.BrokenResourceError)  # a reset may drop data
    assert b"0\r\n\r\n" not in body
    assert isinstance(how, ending)


@pytest.mark.parametrize("words", [0, 3, 100])
async def test_an_interrupt_ends_the_body_cleanly_after_n_words(words: int) -> None:
    async with ReferenceServer() as server:
        response, content = await post(server, Fault(interrupt_after=words).marker())
        await server.wait_until(lambda: server.outcomes == [Outcome.COMPLETED])
    words_sent = split_words(default_reply(server.requests[0]))[:words]
    assert response.status_code == 200
    assert content.decode() == "".join(words_sent)


async def test_times_limits_an_interrupt() -> None:
    async with ReferenceServer(fault=Fault(interrupt_after=1, times=1)) as server:
        first, cut = await post(server, "x")
        second, whole = await post(server, "x")
        await server.wait_until(lambda: server.outcomes == [Outcome.COMPLETED] * 2)
    assert (first.status_code, second.status_code) == (200, 200)
    assert cut == b"Hello "
    assert whole.decode() == default_reply(server.requests[1])
    assert server.faults == [Fault(interrupt_after=1, times=1), None]


async def test_stall_before_the_status_line() -> None:
    async with ReferenceServer() as server:
        received, how = await read_raw(server, Fault(stall_before_status=True).marker(), stall=0.5)
        await server.wait_until(lambda: server.outcomes == [Outcome.ABORTED])
    assert received == b""
    assert isinstance(how, TimeoutError)


async def test_an_endless_body_goes_on_until_the_client_leaves() -> None:
    async with ReferenceServer() as server:
        # However slow the machine: read on until that much came, and the body has not ended.
        received, how = await read_raw(
            server, Fault(endless=True, chunk_size=3).marker(), stall=30, enough=20_000
        )
        await server.wait_until(lambda: server.outcomes == [Outcome.ABORTED])
    reply = default_reply(server.requests[0]).encode()
    assert how is None
    assert received.count(b"\r\n3\r\n") > 1000
    assert received.count(reply[:3]) > 10


async def test_drip_invalid_utf8_and_chunk_size() -> None:
    fault = Fault(drip=0.001, chunk_size=1, invalid_utf8=True)
    async with ReferenceServer() as server:
        response, content = await post(server, fault.marker())
    reply = default_reply(server.requests[0]).encode()
    assert content == reply[:6] + b"\xff" + reply[6:]  # after the first word, "Hello "
    assert response.status_code == 200


async def test_a_huge_error_body_is_sent_lazily() -> None:
    async with ReferenceServer() as server:
        response, content = await post(
            server, Fault(status=500, error_body_bytes=3_000_000).marker()
        )
    assert response.headers["content-length"] == "3000000"
    assert len(content) == 3_000_000
    assert content.startswith(b"Error Error")

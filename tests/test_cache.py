"""ResponseCache: its file, and the client answering from it, on every backend and both wires."""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import threading
import typing

import pytest

from aura_anyio import (
    APIError,
    AuraClient,
    CacheError,
    ChatRequest,
    ChatStream,
    IncompleteStreamError,
    InvalidRequestError,
    ResponseCache,
    ServerError,
    Timeouts,
    _cache,
)
from aura_anyio._cache import APPLICATION_ID
from aura_anyio._stored import StoredReply
from aura_anyio.testing import Fault, ReferenceServer, ToolCalls

from .helpers import REPLY

if typing.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from aura_anyio._wire import WireName

KEY = bytes(32)
HELLO = [{"role": "user", "content": "hello"}]


def sqlite_file(path: Path, *statements: str) -> None:
    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


async def test_a_new_file_becomes_a_cache_that_keeps_its_replies(tmp_path: Path) -> None:
    path = tmp_path / "replies.db"
    # A lone surrogate too: half an emoji pair that a server escaped in one event.
    reply = StoredReply("whole ✓ \ud83d", "stop", {"prompt_tokens": 3}, None)
    async with ResponseCache(path) as cache:
        assert "open" in repr(cache)
        assert cache.path == str(path)
        assert await cache.lookup(KEY) is None
        await cache.store(KEY, reply)
        await cache.store(KEY, StoredReply("another"))  # the first whole reply stays
        assert await cache.count() == 1
    assert "closed" in repr(cache)
    await cache.aclose()  # idempotent
    async with ResponseCache(path) as cache:
        assert await cache.lookup(KEY) == reply
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


async def test_an_empty_file_becomes_a_cache(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    async with ResponseCache(path) as cache:
        await cache.store(KEY, StoredReply("t"))
        assert await cache.count() == 1


def corrupt_cache(path: Path) -> None:
    """A cache whose pages past the first are overwritten with junk."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.execute("CREATE TABLE replies (key BLOB PRIMARY KEY, reply TEXT, created REAL)")
    connection.executemany(
        "INSERT INTO replies VALUES (?, ?, 0)",
        [(index.to_bytes(32, "big"), "x" * 500) for index in range(300)],
    )
    connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
    connection.execute("PRAGMA user_version=1")
    connection.commit()
    connection.close()
    data = bytearray(path.read_bytes())
    data[8192:16384] = bytes(range(256)) * 32
    path.write_bytes(bytes(data))


FOREIGN: dict[str, tuple[Callable[[Path], object], str]] = {
    "text": (
        lambda path: path.write_text("id,prompt\n1,hello\n" * 100),
        "it is not one, or it is corrupt",
    ),
    "another program's table": (
        lambda path: sqlite_file(path, "CREATE TABLE notes (body TEXT)"),
        "another program",
    ),
    "another program's mark": (
        lambda path: sqlite_file(path, "PRAGMA application_id=7"),
        "another program",
    ),
    "a later layout": (
        lambda path: sqlite_file(
            path, f"PRAGMA application_id={APPLICATION_ID}", "PRAGMA user_version=2"
        ),
        "later aura_anyio",
    ),
    "corrupt": (corrupt_cache, "corrupt"),
}


@pytest.mark.parametrize("kind", FOREIGN)
async def test_a_file_that_is_not_a_cache_is_refused_and_left_alone(
    tmp_path: Path, kind: str
) -> None:
    make, message = FOREIGN[kind]
    path = tmp_path / "file.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(CacheError, match=message) as caught:
        async with ResponseCache(path):
            pass
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["file.db"]  # no journal or WAL left beside it


async def test_another_programs_database_in_use_is_only_looked_at(tmp_path: Path) -> None:
    # Its WAL holds changes not yet in the main file: a read-write look would move them there.
    path = tmp_path / "theirs.db"
    theirs = sqlite3.connect(path, isolation_level=None)
    theirs.execute("PRAGMA journal_mode=WAL")
    theirs.execute("PRAGMA wal_autocheckpoint=0")
    theirs.execute("CREATE TABLE notes (body TEXT)")
    theirs.executemany("INSERT INTO notes VALUES (?)", [("note",)] * 100)
    try:
        before = path.read_bytes()
        wal = (tmp_path / "theirs.db-wal").read_bytes()
        with pytest.raises(CacheError, match="another program"):
            await ResponseCache(path).open()
        assert path.read_bytes() == before
        assert (tmp_path / "theirs.db-wal").read_bytes() == wal
    finally:
        theirs.close()


def modes_of(database: Path) -> dict[str, int]:
    """The permission bits of a database's files: itself, its -wal and its -shm."""
    return {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in database.parent.iterdir()
        if p.name.startswith(database.name)
    }


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX's")
async def test_a_new_cache_file_is_its_owners_alone_and_an_old_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    old.touch(mode=0o644)
    old.chmod(0o644)  # whatever the umask
    for path in (new, old):
        async with ResponseCache(path) as cache:
            await cache.store(b"k" * 32, StoredReply("a prompt's reply"))
            modes = modes_of(path)
            assert len(modes) == 3  # the database, its -wal and its -shm
            assert set(modes.values()) == ({0o600} if path is new else {0o644})


async def test_a_directory_or_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="it is a directory"):
        await ResponseCache(tmp_path).open()
    with pytest.raises(CacheError, match="cannot open"):
        await ResponseCache(tmp_path / "no" / "such" / "folder.db").open()


@pytest.mark.parametrize("holding", ["a table", "nothing yet"])
async def test_a_file_locked_too_long_is_a_clear_error(tmp_path: Path, holding: str) -> None:
    # Locked with a table in it, the read-only look waits; empty, the transaction does.
    path = tmp_path / "locked.db"
    path.touch()
    holder = sqlite3.connect(path, isolation_level=None)
    if holding == "a table":
        holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CacheError, match="locked by another process"):
            await ResponseCache(path, timeout=0.05).open()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_file_that_turns_out_foreign_in_the_transaction_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another program made the new file its own between its creation and our transaction.
    def foreign(connection: sqlite3.Connection, path: str) -> bool:
        raise CacheError(f"{path} is an SQLite database of another program")

    monkeypatch.setattr(_cache, "_is_ours", foreign)
    path = tmp_path / "new.db"
    with pytest.raises(CacheError, match="another program"):
        await ResponseCache(path).open()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    connection.close()


async def test_a_database_in_memory_cannot_be_shared() -> None:
    with pytest.raises(CacheError, match=r"cannot use WAL for it \(journal mode 'memory'"):
        await ResponseCache(":memory:").open()


@pytest.mark.parametrize(
    ("path", "timeout", "message"),
    [
        (1, 1.0, "path must be a str or os.PathLike, got int"),
        ("x.db", 0, "timeout must be a positive number, got 0"),
        ("x.db", math.nan, "timeout must be a positive number, got nan"),
        ("x.db", True, "timeout must be a positive number, got True"),
    ],
)
def test_bad_arguments_are_refused(path: object, timeout: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        ResponseCache(path, timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.network
async def test_a_cache_is_used_open(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.db")
    with pytest.raises(RuntimeError, match="is not open; use it as `async with"):
        await cache.lookup(KEY)
    async with ReferenceServer() as server, AuraClient(server.base_url, cache=cache) as client:
        with pytest.raises(RuntimeError, match="is not open"):
            await client.complete(HELLO)
        assert server.requests == []
        async with cache:
            with pytest.raises(RuntimeError, match="is open already"):
                await cache.open()
            assert await client.complete(HELLO)
            assert client.cache is cache
    with pytest.raises(InvalidRequestError, match="cache must be a ResponseCache or None, got str"):
        AuraClient(cache="c.db")  # type: ignore[arg-type]


@pytest.mark.network
async def test_a_reply_is_sent_once_then_answered_from_the_cache(
    tmp_path: Path, wire: WireName
) -> None:
    async with (
        ReferenceServer() as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, wire=wire, cache=cache) as client,
    ):
        first = await client.complete(HELLO)
        assert await client.complete(HELLO) == first
        async with client.stream(HELLO) as reply:
            pieces = [piece async for piece in reply]
        assert pieces == [first]  # the whole text, in one piece
        assert (reply.cached, reply.attempts, reply.status_code) == (True, 0, None)
        assert len(server.requests) == 1
        # The key is the request's, not the wording of its fields: the same prompt as a
        # ChatRequest hits, a changed temperature does not.
        results = await client.gather([ChatRequest(HELLO), ChatRequest(HELLO, temperature=0.9)])
        assert [(r.ok, r.cached, r.attempts) for r in results] == [
            (True, True, 0),
            (True, False, 1),
        ]
        assert len(server.requests) == 2
        async with client.stream(HELLO, temperature=0.9) as again:
            assert again.cached
        if wire == "openai":
            assert (reply.finish_reason, reply.usage) == (
                "stop",
                {"prompt_tokens": 1, "completion_tokens": 14, "total_tokens": 15},
            )
        else:
            assert (reply.finish_reason, reply.usage) == (None, None)
    async with (
        ReferenceServer() as other,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(other.base_url, wire=wire, cache=cache) as client,
    ):
        assert await client.complete(HELLO) == first  # another server, another process: a hit
        assert other.requests == []


@pytest.mark.network
async def test_tool_calls_are_replayed(tmp_path: Path) -> None:
    server = ReferenceServer(reply=lambda _: ToolCalls([("f", '{"x": 1}')], text="Look."))
    async with (
        server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, wire="openai", cache=cache) as client,
    ):
        sent, again = await client.gather([ChatRequest(HELLO)] * 2, max_concurrency=1)
        assert again.cached
        assert not sent.cached
        assert (again.text, again.finish_reason) == ("Look.", "tool_calls")
        assert again.tool_calls == sent.tool_calls
        assert again.tool_calls is not None
        assert again.tool_calls[0]["function"] == {"name": "f", "arguments": '{"x": 1}'}


async def read_through(stream: ChatStream) -> None:
    async with stream as reply:
        async for _ in reply:
            pass


@pytest.mark.network
@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(close_after=80),
        Fault(reset_after=80),
        Fault(interrupt_after=2),  # on the aura wire a clean early end, which looks whole
    ],
    ids=["status", "cut", "reset", "interrupted"],
)
async def test_only_whole_replies_are_stored(tmp_path: Path, fault: Fault) -> None:
    async with (
        ReferenceServer(fault=fault, delay=0.001) as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, wire="openai", max_retries=0, cache=cache) as client,
    ):
        with pytest.raises((ServerError, IncompleteStreamError)):
            await client.complete(HELLO)
        with pytest.raises(APIError):
            await read_through(client.stream(HELLO))
        results = await client.gather([HELLO])
        assert not results[0].ok
        assert await cache.count() == 0
        assert len(server.requests) == 3


@pytest.mark.network
async def test_a_reply_left_early_is_not_stored(tmp_path: Path, wire: WireName) -> None:
    async with (
        ReferenceServer(delay=0.001) as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, wire=wire, cache=cache) as client,
    ):
        async with client.stream(HELLO) as reply:
            async for _ in reply:
                break
        assert await cache.count() == 0
        async with client.stream(HELLO) as reply:
            text = "".join([piece async for piece in reply])
            assert [piece async for piece in reply] == []  # stored once
        assert await cache.count() == 1
        assert await client.complete(HELLO) == text
        assert len(server.requests) == 2


@pytest.mark.network
async def test_a_reply_that_broke_is_not_stored_however_long_it_is_read(tmp_path: Path) -> None:
    async with (
        ReferenceServer(fault=Fault(close_after=60), delay=0.001) as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, cache=cache) as client,
        client.stream(HELLO) as reply,
    ):
        with pytest.raises(IncompleteStreamError):
            async for _ in reply:
                pass
        assert reply.text
        with pytest.raises(StopAsyncIteration):
            await reply.__anext__()
        assert await cache.count() == 0


@pytest.mark.network
async def test_identical_requests_in_flight_are_sent_once(tmp_path: Path, wire: WireName) -> None:
    slow = Fault(drip=0.005)
    prompt = f"{slow.marker()} the same"
    async with (
        ReferenceServer() as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, wire=wire, cache=cache) as client,
        client.fan_out([prompt] * 20 + ["another"], max_concurrency=21) as results,
    ):
        finished = [result async for result in results]
        progress = results.progress
    assert all(result.ok for result in finished)
    assert len({result.text for result in finished}) == 2
    said = sorted(request.kept_messages[-1]["content"] for request in server.requests)
    assert said == sorted(["another", prompt])
    assert sum(result.cached for result in finished) == progress.cached == 19
    if wire == "openai":  # a reply from the cache cost no tokens
        sent = [result.usage for result in finished if not result.cached]
        assert progress.prompt_tokens == sum(usage["prompt_tokens"] for usage in sent if usage)


@pytest.mark.network
async def test_when_the_request_in_flight_fails_the_next_one_sends(tmp_path: Path) -> None:
    once = Fault(close_after=40, drip=0.01, times=1)  # a slow failure, then replies
    prompt = f"{once.marker()} the same"
    async with (
        ReferenceServer() as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, max_retries=0, cache=cache) as client,
    ):
        results = await client.gather([prompt] * 3, max_concurrency=3)
    assert sorted((r.ok, r.cached, r.attempts) for r in results) == [
        (False, False, 1),
        (True, False, 1),
        (True, True, 0),
    ]
    assert len(server.requests) == 2


@pytest.mark.network
async def test_a_cache_that_fails_sends_the_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.db"
    async with (
        ReferenceServer() as server,
        ResponseCache(path) as cache,
        AuraClient(server.base_url, cache=cache) as client,
    ):
        sqlite_file(path, "DROP TABLE replies")  # another program breaks the file
        with caplog.at_level(logging.DEBUG, logger="aura_anyio"):
            assert await client.complete(HELLO) == await client.complete(HELLO)
        assert len(server.requests) == 2
        failures = [r for r in caplog.records if "response cache" in r.getMessage()]
        # Reading and storing failed twice each: a warning, then quietly.
        assert [r.levelno for r in failures] == [logging.WARNING] + [logging.DEBUG] * 3
        assert "no such table" in failures[0].getMessage()
        with pytest.raises(CacheError, match="cannot count"):
            await cache.count()


async def test_a_cache_found_corrupt_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[object] = []

    async def corrupt(connection: object, call: object) -> object:
        calls.append(call)
        raise sqlite3.DatabaseError("database disk image is malformed")

    async with ResponseCache(tmp_path / "c.db") as cache:
        monkeypatch.setattr(cache, "_run", corrupt)
        with caplog.at_level(logging.WARNING, logger="aura_anyio"):
            assert await cache.lookup(KEY) is None
            await cache.store(KEY, StoredReply("t"))
            assert await cache.lookup(KEY) is None
        assert len(calls) == 1  # nothing read or written after that
        (record,) = caplog.records
        assert record.levelno == logging.ERROR
        assert "is corrupt" in record.getMessage()
        assert "left as it is" in record.getMessage()


@pytest.mark.network
async def test_a_request_that_waited_for_an_identical_one_gets_its_own_time(
    tmp_path: Path,
) -> None:
    # The first stalls until its total timeout; the others waited as long, and then still
    # have the whole of theirs to be sent and answered in.
    stall = Fault(stall_before_status=True, times=1)
    prompt = f"{stall.marker()} the same"
    async with (
        ReferenceServer() as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(
            server.base_url, timeout=Timeouts(total=1.0), max_retries=0, cache=cache
        ) as client,
    ):
        results = await client.gather([prompt] * 3, max_concurrency=3)
    assert sorted((r.ok, r.cached) for r in results) == [
        (False, False),
        (True, False),
        (True, True),
    ]
    assert len(server.requests) == 2


@pytest.mark.network
async def test_a_batch_run_again_with_ten_lines_edited_sends_ten_requests(
    tmp_path: Path,
) -> None:
    pytest.importorskip("click", reason="the batch runner needs the cli extra")
    from aura_anyio._cli.batch import run_batch

    source = tmp_path / "in.jsonl"
    # 300 lines through 32 workers, then again with one line in thirty edited.
    lines = [{"id": n, "prompt": f"prompt {n}"} for n in range(300)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    async with (
        ReferenceServer() as server,
        ResponseCache(tmp_path / "c.db") as cache,
        AuraClient(server.base_url, cache=cache) as client,
    ):
        first = await run_batch(client, source, tmp_path / "out1.jsonl", concurrency=32)
        assert (first.done, first.failed, first.cached, len(server.requests)) == (300, 0, 0, 300)
        edited = range(0, 300, 30)
        for n in edited:
            lines[n]["prompt"] = f"prompt {n}, edited"
        source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        output = tmp_path / "out2.jsonl"
        second = await run_batch(client, source, output, concurrency=32)
    assert (second.done, second.failed, second.cached) == (300, 0, 290)
    assert len(server.requests) == 310
    assert sorted(request.kept_messages[-1]["content"] for request in server.requests[300:]) == (
        sorted(f"prompt {n}, edited" for n in edited)
    )
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        said = lines[row["id"]]["prompt"]
        assert row["text"] == REPLY.format(said)
        assert row.get("cached", False) == (row["id"] not in edited)
    assert len(second.latencies) == 10  # the requests sent; hits are not the server's latency


async def test_the_cache_runs_its_sqlite_calls_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker thread does the I/O: the event loop's own thread never touches SQLite.
    loop_thread = threading.get_ident()
    seen: list[int] = []
    async with ResponseCache(tmp_path / "c.db") as cache:
        original = cache._run

        async def spy(connection: object, call: Callable[[sqlite3.Connection], object]) -> object:
            def wrapped(sqlite: sqlite3.Connection) -> object:
                seen.append(threading.get_ident())
                return call(sqlite)

            return await original(connection, wrapped)  # type: ignore[arg-type]

        monkeypatch.setattr(cache, "_run", spy)
        await cache.store(KEY, StoredReply("t"))
        assert await cache.lookup(KEY) == StoredReply("t")
    assert seen
    assert loop_thread not in seen

"""ResponseCache: whole replies kept on disk, so that a batch run again pays only for what changed.

SQLite, from the standard library, because it is the well-kept store that several processes
can write at once without a server: in WAL mode readers never wait for the writer, and a
writer waits its turn (``timeout``) instead of failing. The file is marked with an
``application_id`` of its own, so that a file that is not a cache is refused and never
written to. Each call into SQLite runs in a worker thread (``anyio.to_thread``), one at a
time per cache, so the event loop never waits on the disk.

Only whole replies are stored, by the client (``_stream``), once the last byte is read.
Identical requests in flight at once in one process are sent once: :meth:`ResponseCache.claim`
lets the first through and holds the others until its reply is stored (or it failed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import time
import typing
from urllib.parse import quote

import anyio
import anyio.to_thread

from ._exceptions import CacheError, InvalidRequestError
from ._numbers import is_number
from ._stored import StoredReply, decode_reply, encode_reply

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator
    from types import TracebackType

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "ResponseCache", "check_cache"]

logger = logging.getLogger("aura_anyio")

#: The file's mark (``PRAGMA application_id``): "Aura" in ASCII.
APPLICATION_ID = 0x41757261
#: The layout of the file (``PRAGMA user_version``).
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE replies (
    key BLOB PRIMARY KEY,  -- SHA-256 of the canonical request (_stored.request_key)
    reply TEXT NOT NULL,   -- the whole reply as JSON (_stored.encode_reply)
    created REAL NOT NULL  -- when it was stored, in seconds since the epoch
) WITHOUT ROWID
"""

T = typing.TypeVar("T")


@typing.final
class ResponseCache:
    """Whole replies stored in an SQLite file, answered again for the same request.

    ``async with ResponseCache("replies.db") as cache:`` then ``AuraClient(..., cache=cache)``:
    a request sent before with the same wire, model, messages, temperature, max_tokens and
    extra body (whatever the server) is answered from the file, and a reply read to its end is
    stored. Several processes may use one file at once. A client never opens or closes the
    cache it is given.

    Args:
        path: The SQLite file; made if it does not exist.
        timeout: Seconds to wait for another process's write to finish before giving up.

    Raises:
        InvalidRequestError: An argument is invalid.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidRequestError(
                f"path must be a str or os.PathLike, got {type(path).__name__}"
            )
        if not is_number(timeout) or timeout <= 0:
            raise InvalidRequestError(f"timeout must be a positive number, got {timeout!r}")
        self._path = os.fspath(path)
        self._timeout = float(timeout)
        # Two connections, each used by one worker thread at a time: a lookup never waits
        # behind a store that waits for another process's write.
        self._reader: _Connection | None = None
        self._writer: _Connection | None = None
        self._in_flight: dict[bytes, anyio.Event] = {}
        self._warned = False
        self._broken = False  # the file turned out corrupt: left alone from then on

    @property
    def path(self) -> str:
        """The SQLite file."""
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._reader is not None else "closed"
        return f"<ResponseCache {self._path!r} {state}>"

    async def __aenter__(self) -> ResponseCache:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the file, making it a cache if it is new or empty.

        Raises:
            CacheError: The file cannot be opened, is not SQLite, belongs to another program,
                is corrupt, or stayed locked by another process for ``timeout`` seconds; it
                is left as it is.
            RuntimeError: The cache is open already.
        """
        if self._reader is not None:
            raise RuntimeError(f"{self!r} is open already")
        writer, reader = await anyio.to_thread.run_sync(_connect, self._path, self._timeout)
        self._writer = _Connection(writer, anyio.CapacityLimiter(1))
        self._reader = _Connection(reader, anyio.CapacityLimiter(1))
        self._broken = False

    async def aclose(self) -> None:
        """Close the file; idempotent. Shielded from cancellation: it takes a moment."""
        connections = (self._reader, self._writer)
        self._reader = self._writer = None
        with anyio.CancelScope(shield=True):
            for connection in connections:
                if connection is not None:
                    await anyio.to_thread.run_sync(
                        connection.sqlite.close, limiter=connection.limiter
                    )

    async def count(self) -> int:
        """How many replies the file holds.

        Raises:
            CacheError: SQLite failed.
            RuntimeError: The cache is not open.
        """

        def count(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT count(*) FROM replies").fetchone()
            return int(row[0])

        try:
            return await self._run(self._reader, count)
        except sqlite3.Error as exc:
            raise CacheError(f"cannot count the replies in {self._path}: {exc}") from exc

    async def lookup(self, key: bytes) -> StoredReply | None:
        """The reply stored under ``key`` (the request's key, as the client computes it), or
        ``None``; used by the client.

        A failure of SQLite (a disk error, say) is logged as a warning and counts as a miss:
        the request is sent rather than lost.

        Raises:
            RuntimeError: The cache is not open.
        """

        def lookup(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        reader = self._reader
        if self._broken and reader is not None:
            return None
        try:
            stored = await self._run(reader, lookup)
            return None if stored is None else decode_reply(stored)
        except (sqlite3.Error, ValueError) as exc:
            self._failed("reading a reply", "the request goes to the server", exc)
            return None

    async def store(self, key: bytes, reply: StoredReply) -> None:
        """Keep ``reply`` under ``key``, unless a reply is stored there already; used by the
        client.

        A failure of SQLite is logged as a warning: the reply has reached its caller anyway.

        Raises:
            RuntimeError: The cache is not open.
        """
        row = (key, encode_reply(reply), time.time())

        def store(connection: sqlite3.Connection) -> None:
            # The first whole reply wins: another process may have stored one meanwhile.
            connection.execute(
                "INSERT OR IGNORE INTO replies (key, reply, created) VALUES (?, ?, ?)", row
            )

        writer = self._writer
        if self._broken and writer is not None:
            return
        try:
            await self._run(writer, store)
        except sqlite3.Error as exc:
            self._failed("storing a reply", "it will be sent again next time", exc)

    @contextlib.asynccontextmanager
    async def claim(self, key: bytes) -> AsyncGenerator[StoredReply | None]:
        """The stored reply for ``key``, or ``None`` and the right to send the request.

        While one task holds the right, another that claims the same key waits for it to
        end, and then finds the reply it stored (or, if it failed, takes the right itself):
        identical requests in flight at once are sent once. Used by the client.
        """
        while True:
            holder = self._in_flight.get(key)
            if holder is not None:
                await holder.wait()
                continue
            stored = await self.lookup(key)
            if stored is not None or key not in self._in_flight:
                break
        if stored is not None:
            yield stored
            return
        self._in_flight[key] = done = anyio.Event()
        try:
            yield None
        finally:
            del self._in_flight[key]
            done.set()

    async def _run(
        self, connection: _Connection | None, call: Callable[[sqlite3.Connection], T]
    ) -> T:
        if connection is None:
            raise RuntimeError(
                f"{self!r} is not open; use it as `async with ResponseCache(path) as cache:`"
            )
        return await anyio.to_thread.run_sync(call, connection.sqlite, limiter=connection.limiter)

    def _failed(self, doing: str, outcome: str, exc: Exception) -> None:
        if isinstance(exc, sqlite3.DatabaseError) and "malformed" in str(exc):
            # Writing on into a corrupt file could lose what is left in it.
            self._broken = True
            logger.error(
                "response cache %s is corrupt (%s): it is not read or written again in this "
                "run, and is left as it is; requests go to the server",
                self._path,
                exc,
            )
            return
        # Once as a warning, then quietly: a broken disk would otherwise flood the log.
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(level, "response cache %s: %s failed (%s); %s", self._path, doing, exc, outcome)


@typing.final
@dataclasses.dataclass(frozen=True, slots=True)
class _Connection:
    sqlite: sqlite3.Connection
    limiter: anyio.CapacityLimiter


def _connect(path: str, timeout: float) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    """Open ``path`` as a cache, making it one if it is a new or empty database; return a
    connection to write with and one to read with."""
    if os.path.isdir(path):
        raise CacheError(f"cannot use {path} as a response cache: it is a directory")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        # Looked at read-only first: a file that is not a cache is never written to (a
        # read-write connection may roll back another program's journal, or checkpoint
        # its WAL, just by reading).
        _check(_open(f"file:{quote(path)}?mode=ro", path, timeout), path)
    _create_private(path)
    writer = _open(path, path, timeout)
    try:
        _prepare(writer, path)
        reader = _open(path, path, timeout)
    except BaseException:
        writer.close()
        raise
    reader.execute("PRAGMA query_only=1")
    return writer, reader


def _create_private(path: str) -> None:
    """Create ``path`` readable by its owner only (it will hold prompts and replies), unless
    it exists: an existing file's mode is the owner's choice. SQLite gives its ``-wal`` and
    ``-shm`` files the database's mode."""
    if path in ("", ":memory:"):  # SQLite's names for databases that are no file
        return
    # It may exist, or not be possible to make (a missing folder): SQLite then says which.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _open(target: str, path: str, timeout: float) -> sqlite3.Connection:
    try:
        # Autocommit (isolation_level=None): each statement is its own transaction, and the
        # schema's is explicit. check_same_thread=False: worker threads take turns with it.
        return sqlite3.connect(
            target,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=target.startswith("file:"),
        )
    except sqlite3.Error as exc:
        raise CacheError(f"cannot open {path} as a response cache: {exc}") from exc


def _check(probe: sqlite3.Connection, path: str) -> None:
    """Refuse an existing file that is not a cache, or a cache that is corrupt."""
    try:
        with _errors(path):
            if _is_ours(probe, path):
                # About a second a gigabyte: once per run, against losing the file's replies.
                verdict = probe.execute("PRAGMA quick_check(1)").fetchone()[0]
                if verdict != "ok":
                    raise CacheError(
                        f"{path} is a corrupt response cache ({verdict}); it was left as it "
                        "is: pass another path"
                    )
    finally:
        probe.close()


def _prepare(connection: sqlite3.Connection, path: str) -> None:
    """Make the file a cache if it is not one yet (two processes may race to), then WAL."""
    with _errors(path):
        connection.execute("BEGIN IMMEDIATE")
        try:
            if not _is_ours(connection, path):
                connection.execute(_SCHEMA)
                connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
                connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        # Only now that the file is ours: WAL is a property of the file, set once.
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise CacheError(
                f"{path} cannot be a response cache: SQLite cannot use WAL for it (journal "
                f"mode {mode!r}: in memory, or on a network file system?), and several "
                "processes need it to share the file"
            )
        # Per connection. NORMAL in WAL mode: a power cut can lose the last replies
        # stored, never corrupt the file.
        connection.execute("PRAGMA synchronous=NORMAL")


@contextlib.contextmanager
def _errors(path: str) -> Generator[None]:
    """SQLite's errors as :class:`CacheError`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise CacheError(
                f"{path} stayed locked by another process too long ({exc}); "
                "raise ResponseCache(timeout=...)"
            ) from exc
        raise CacheError(
            f"cannot use {path} as a response cache ({exc}): it is not one, or it is corrupt "
            "or read-only; it was left as it is: pass another path"
        ) from exc


def _is_ours(connection: sqlite3.Connection, path: str) -> bool:
    """Whether the file is a cache already; ``False`` for a new, empty database.

    Raises:
        CacheError: The file is another program's database, or a later layout's.
    """
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise CacheError(
                f"{path} is a response cache of a later aura_anyio (layout {version}, this one "
                f"reads {SCHEMA_VERSION}); upgrade aura_anyio or pass another path"
            )
        return True
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id != 0 or version != 0 or tables:
        raise CacheError(
            f"{path} is an SQLite database of another program, not a response cache; it was "
            "left as it is: pass another path"
        )
    return False


def check_cache(cache: object) -> ResponseCache | None:
    """Return ``cache`` if it is a :class:`ResponseCache` or ``None``.

    Raises:
        InvalidRequestError: It is something else.
    """
    if cache is not None and not isinstance(cache, ResponseCache):
        raise InvalidRequestError(
            f"cache must be a ResponseCache or None, got {type(cache).__name__}"
        )
    return cache

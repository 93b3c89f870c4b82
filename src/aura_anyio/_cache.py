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
import logging
import os
import sqlite3
import time
import typing

import anyio
import anyio.to_thread

from ._exceptions import CacheError, InvalidRequestError
from ._numbers import is_number
from ._stored import StoredReply, decode_reply, encode_reply

if typing.TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable
    from types import TracebackType

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "ResponseCache"]

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
        self._connection: sqlite3.Connection | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._in_flight: dict[bytes, anyio.Event] = {}
        self._warned = False

    @property
    def path(self) -> str:
        """The SQLite file."""
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._connection is not None else "closed"
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
        if self._connection is not None:
            raise RuntimeError(f"{self!r} is open already")
        self._limiter = limiter = anyio.CapacityLimiter(1)
        self._connection = await anyio.to_thread.run_sync(
            _connect, self._path, self._timeout, limiter=limiter
        )

    async def aclose(self) -> None:
        """Close the file; idempotent. Shielded from cancellation: it takes a moment."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(connection.close, limiter=self._limiter)

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
            return await self._run(count)
        except sqlite3.Error as exc:
            raise CacheError(f"cannot count the replies in {self._path}: {exc}") from exc

    async def lookup(self, key: bytes) -> StoredReply | None:
        """The reply stored under ``key``, or ``None``; used by the client.

        A failure of SQLite (the file locked for too long, a disk error) is logged as a
        warning and counts as a miss: the request is sent rather than lost.

        Raises:
            RuntimeError: The cache is not open.
        """

        def lookup(connection: sqlite3.Connection) -> str | None:
            row = connection.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        try:
            stored = await self._run(lookup)
            return None if stored is None else decode_reply(stored)
        except (sqlite3.Error, ValueError) as exc:
            self._warn("reading", exc)
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

        try:
            await self._run(store)
        except sqlite3.Error as exc:
            self._warn("storing", exc)

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

    async def _run(self, call: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            raise RuntimeError(
                f"{self!r} is not open; use it as `async with ResponseCache(path) as cache:`"
            )
        return await anyio.to_thread.run_sync(call, connection, limiter=self._limiter)

    def _warn(self, doing: str, exc: Exception) -> None:
        # Once as a warning, then quietly: a broken disk would otherwise flood the log.
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(
            level,
            "response cache %s: %s a reply failed (%s); the request goes to the server",
            self._path,
            doing,
            exc,
        )


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    """Open ``path`` as a cache, making it one if it is a new or empty database."""
    if os.path.isdir(path):
        raise CacheError(f"cannot use {path} as a response cache: it is a directory")
    try:
        # Autocommit (isolation_level=None): each statement is its own transaction, and the
        # schema's is explicit. check_same_thread=False: worker threads take turns with it.
        connection = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise CacheError(f"cannot open {path} as a response cache: {exc}") from exc
    try:
        _prepare(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, path: str) -> None:
    try:
        # Read before anything is written: a file that is not ours stays untouched.
        if not _is_ours(connection, path):
            connection.execute("PRAGMA journal_mode=WAL")
            # Two processes may make the same new file at once: one transaction wins.
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
        # WAL is a property of the file, set once; synchronous is per connection. NORMAL in
        # WAL mode: a power cut can lose the last replies stored, never corrupt the file.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("SELECT count(*) FROM replies WHERE key = x''").fetchone()
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

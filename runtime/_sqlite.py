"""The SQLite store, on aiosqlite: WAL, one writer connection, one reader connection.

Writes go through :class:`~stateward.runtime._store.GroupCommitter`: one ``BEGIN IMMEDIATE``
... ``COMMIT`` per batch, journal rows and resource heads together, so a transition is either
wholly there or not at all. Reads use their own connection, so they only ever see committed
data, never the writer's open transaction.

SQLite errors are translated here, at one boundary: ``SQLITE_BUSY``/``LOCKED`` is transient
and retried; ``SQLITE_FULL``, ``SQLITE_IOERR`` and friends fail the batch with
:class:`~stateward.runtime.StoreUnavailable`.

Opening writes nothing until the file is known to be a stateward database, or an empty one
the caller asked to create: another application's database is refused as it is. Files the
store creates (the database, and the ``-wal`` and ``-shm`` files SQLite gives the same mode)
are readable by their owner only; a file that already exists keeps the mode it has.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import math
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import PurePath
from typing import Any, TypeVar

import aiosqlite

from ._check import (
    check_ids,
    check_text,
)
from ._env import Clock
from ._errors import InvalidArgument, ResourceQuarantined, SchemaError, StoreUnavailable
from ._sql import HEAD_COLUMNS, RECORD_COLUMNS, SqlQueries
from ._store import (
    Loaded,
    Retention,
    Write,
    _rows,
    _Transient,
)

__all__ = ("Durability", "SqliteStore", "open_sqlite_store", "SCHEMA_VERSION")

_T = TypeVar("_T")


class Durability(enum.Enum):
    """How hard a commit waits for the disk."""

    #: fsync on every commit (``synchronous=FULL``): nothing acknowledged is lost, even on a
    #: power cut.
    FULL = "full"
    #: fsync at checkpoints (``synchronous=NORMAL``): a power cut may lose the last commits;
    #: a process crash loses nothing.
    NORMAL = "normal"


#: Forward migrations; the schema version is the number applied.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE resources (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        revision INTEGER NOT NULL,
        updated REAL NOT NULL,
        snapshot BLOB,
        snapshot_revision INTEGER NOT NULL DEFAULT 0,
        snapshot_state TEXT
    ) WITHOUT ROWID;
    CREATE INDEX resources_kind ON resources (kind, id);
    CREATE TABLE journal (
        resource_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        source TEXT NOT NULL,
        event TEXT NOT NULL,
        target TEXT NOT NULL,
        task_id TEXT,
        cause TEXT,
        at REAL NOT NULL,
        payload BLOB,
        PRIMARY KEY (resource_id, sequence)
    ) WITHOUT ROWID;
    CREATE INDEX journal_at ON journal (at, resource_id, sequence);
    CREATE TABLE quarantine (
        resource_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE documents (
        collection TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        resource_id TEXT,
        status TEXT,
        dedupe TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (collection, key)
    ) WITHOUT ROWID;
    CREATE INDEX documents_resource ON documents (collection, resource_id, created, key);
    CREATE INDEX documents_status ON documents (collection, status, created, key);
    CREATE INDEX documents_dedupe ON documents (collection, resource_id, dedupe);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
#: The tables each migration creates: what a database at that version must hold.
_TABLES = tuple(frozenset(re.findall(r"CREATE TABLE (\w+)", m)) for m in _MIGRATIONS)
#: Mode of the files the store creates: the journal holds payloads, for the owner's eyes only.
_FILE_MODE = 0o600
#: Tables named when a foreign database is refused, at most.
_NAMED_TABLES = 5

_INSERT_JOURNAL = (
    "INSERT INTO journal (resource_id, sequence, source, event, target, task_id, cause, at,"
    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# One statement for every head: the snapshot columns change only when a snapshot is given.
_UPSERT_HEAD = """
INSERT INTO resources (id, kind, state, revision, updated, snapshot, snapshot_revision,
                       snapshot_state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state,
    revision = excluded.revision,
    updated = excluded.updated,
    snapshot = coalesce(excluded.snapshot, resources.snapshot),
    snapshot_revision = CASE WHEN excluded.snapshot IS NULL
        THEN resources.snapshot_revision ELSE excluded.snapshot_revision END,
    snapshot_state = CASE WHEN excluded.snapshot IS NULL
        THEN resources.snapshot_state ELSE excluded.snapshot_state END
"""
_UPSERT_DOCUMENT = """
INSERT INTO documents (collection, key, version, resource_id, status, dedupe, created, updated,
                       body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (collection, key) DO UPDATE SET
    version = excluded.version,
    resource_id = excluded.resource_id,
    status = excluded.status,
    dedupe = excluded.dedupe,
    updated = excluded.updated,
    body = excluded.body
"""

_TRANSIENT_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_REASONS = {
    sqlite3.SQLITE_FULL: "disk full",
    sqlite3.SQLITE_IOERR: "I/O error",
    sqlite3.SQLITE_BUSY: "database is locked",
    sqlite3.SQLITE_LOCKED: "database is locked",
    sqlite3.SQLITE_READONLY: "database is read-only",
    sqlite3.SQLITE_CORRUPT: "database file is corrupt",
    sqlite3.SQLITE_CANTOPEN: "cannot open the database file",
    sqlite3.SQLITE_NOTADB: "the file is not an SQLite database",
}
#: Advice of an open that failed, where the reason calls for more than trying again.
_NOT_OURS = (
    "nothing was changed: give the path of a stateward database, or a new path to create one"
)
_OPEN_ADVICE = {
    sqlite3.SQLITE_NOTADB: _NOT_OURS,
    sqlite3.SQLITE_CORRUPT: "nothing was changed: restore the file from a backup, or inspect "
    "it with `stateward inspect`",
}


#: Rows per multi-row statement at most: chunks are powers of two up to this, so a handful
#: of statement texts serve every batch size (and stay in the statement cache).
_CHUNK = 256


@functools.lru_cache(maxsize=64)
def _multirow(statement: str, rows: int) -> str:
    """``statement`` with its single ``VALUES (?, ...)`` row repeated ``rows`` times."""
    head, _, tail = statement.partition("VALUES (")
    row, _, rest = tail.partition(")")
    return f"{head}VALUES " + ",".join([f"({row})"] * rows) + rest


async def _insert_rows(
    db: aiosqlite.Connection, statement: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` with few multi-row statements rather than ``executemany``.

    ``executemany`` binds and steps row by row, taking the GIL back from the event loop
    after every row; one statement of many rows binds once and then runs in SQLite without
    the GIL, so the loop and the writer overlap.
    """
    start = 0
    while start < len(rows):
        size = min(_CHUNK, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        await db.execute(_multirow(statement, size), [v for row in chunk for v in row])
        start += size


def _translate(operation: str, error: sqlite3.Error) -> StoreUnavailable | _Transient:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    reason = _REASONS.get(primary, "database error") if primary is not None else "database error"
    advice = _OPEN_ADVICE.get(primary) if operation == "open" and primary is not None else None
    failure = StoreUnavailable(operation, reason=reason, detail=str(error), advice=advice)
    if primary in _TRANSIENT_CODES:
        return _Transient(failure)
    return failure


def _file_path(path: object) -> str:
    """``path`` as the str of a file name, or InvalidArgument: nothing else reaches the disk."""
    try:
        name = os.fspath(path) if isinstance(path, os.PathLike) else path
        if type(name) is str and name and name != ":memory:" and "\x00" not in name:
            os.fsencode(name)  # a lone surrogate cannot name a file
            return name
    except (TypeError, UnicodeError):
        pass
    raise InvalidArgument(
        "path",
        expected="a file path (a str or os.PathLike of a file name; use MemoryStore for a "
        "store in memory)",
        got=path,
    )


def _is_corrupt(error: StoreUnavailable) -> bool:
    """Whether SQLite failed ``error``'s read because pages of the file are corrupt."""
    cause = error.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_CORRUPT


def _open_failed(reason: str, detail: str = "", *, advice: str) -> StoreUnavailable:
    """The error of an open that failed before SQLite was asked anything, with its advice."""
    return StoreUnavailable("open", reason=reason, detail=detail, advice=advice)


def _claim(path: str, *, create: bool) -> str:
    """Check that ``path`` is a file this process can write, creating it if asked; its URI.

    A new file is made here rather than by SQLite so that it is ``0600`` whatever the umask
    (SQLite gives its ``-wal`` and ``-shm`` files the database's mode). Opening for writing is
    also the test SQLite applies: where it fails, SQLite would quietly open the database
    read-only and every commit would fail; failing here says so at once.
    """
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    try:
        if os.path.isdir(path):
            raise _open_failed(
                f"{path} is a directory",
                advice="nothing was changed: give the path of a database file",
            )
        if create:
            try:
                descriptor = os.open(path, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            except FileExistsError:
                descriptor = os.open(path, flags)
            else:
                with contextlib.suppress(OSError):
                    os.fchmod(descriptor, _FILE_MODE)  # the umask may have taken bits away
        else:
            descriptor = os.open(path, flags)
    except FileNotFoundError as exc:
        if create:
            raise _open_failed(
                f"cannot create {path}",
                str(exc),
                advice="nothing was created: check that its folder exists",
            ) from exc
        raise _open_failed(
            f"{path} does not exist",
            advice="nothing was created: check the path, or pass create=True to make a new "
            "database",
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _open_failed(
                f"{path} is read-only for this process",
                str(exc),
                advice="nothing was changed: make the file writable (stateward writes on "
                "every command), or inspect it with `stateward inspect`",
            ) from exc
        raise _open_failed(
            f"cannot open {path}", str(exc), advice="nothing was changed: check the path"
        ) from exc
    os.close(descriptor)
    # A URI, so that no file name is taken for one of SQLite's special names.
    return f"{PurePath(os.path.abspath(path)).as_uri()}?mode=rw"


class SqliteStore(SqlQueries):
    """A durable store in one SQLite file. Open it with :func:`open_sqlite_store`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        durability: Durability = Durability.FULL,
        clock: Clock | None = None,
        max_batch: int = 1000,
        retries: int = 5,
        backoff: float = 0.01,
        busy_timeout: float = 0.2,
        retention: Retention = Retention(),  # noqa: B008  # frozen, so sharing is safe
    ) -> None:
        name = _file_path(path)
        if type(create) is not bool:
            raise InvalidArgument("create", expected="a bool", got=create)
        if not isinstance(durability, Durability):
            raise InvalidArgument("durability", expected="a Durability", got=durability)
        if not isinstance(busy_timeout, int | float) or not 0 <= busy_timeout < math.inf:
            raise InvalidArgument("busy_timeout", expected="seconds >= 0", got=busy_timeout)
        super().__init__(
            clock=clock,
            max_batch=max_batch,
            retries=retries,
            backoff=backoff,
            retention=retention,
        )
        self.path = name
        self.create = create
        self.durability = durability
        self._busy_ms = int(busy_timeout * 1000)
        self._writer_db: aiosqlite.Connection | None = None
        self._reader_db: aiosqlite.Connection | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> SqliteStore:
        """Open the database, or create it if allowed, and bring its schema up to date.

        Nothing is written before the file is known to be a stateward database, or an
        empty file (or none) with ``create`` set.

        Raises:
            SchemaError: the database was written by a newer stateward.
            StoreUnavailable: the file cannot be opened: missing (without ``create``), a
                directory, read-only, not a database, another application's database, or
                locked for longer than the retries allow.
        """
        uri = _claim(self.path, create=self.create)
        try:
            self._writer_db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            writer = self._writer_db
            await writer.execute(f"PRAGMA busy_timeout={self._busy_ms}")

            async def prepare() -> None:
                await self._guard("open", lambda: self._prepare(writer))

            await self._with_retries(prepare)
            self._reader_db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            await self._reader_db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            rows = await self._reader_db.execute_fetchall(
                "SELECT resource_id, reason FROM quarantine"
            )
            self._quarantined.update({str(r): str(why) for r, why in rows})
        except sqlite3.Error as exc:
            await self._close_connections()
            failure = _translate("open", exc)
            raise (failure.error if isinstance(failure, _Transient) else failure) from exc
        except BaseException:
            await self._close_connections()
            raise
        return self

    async def _prepare(self, db: aiosqlite.Connection) -> None:
        """Check the file is ours (or new), then switch it to WAL and migrate it."""
        found = await self._stored_version(db)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={self.durability.name}")
        if found < SCHEMA_VERSION:
            await self._migrate(db)

    async def _stored_version(self, db: aiosqlite.Connection) -> int:
        """The schema version of the database; raise if it is not a stateward database.

        Only reads. A database without any table is new: 0, when ``create`` allows it.
        """
        rows = await db.execute_fetchall(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        tables = sorted(str(name) for kind, name in rows if kind == "table")
        if not rows:
            if not self.create:
                raise _open_failed(
                    f"{self.path} is empty, not a stateward database",
                    advice="nothing was changed: pass create=True to make it a new database",
                )
            return 0
        if "schema_version" not in tables:
            named = ", ".join(tables[:_NAMED_TABLES]) + (
                ", ..." if len(tables) > _NAMED_TABLES else ""
            )
            listing = f"; its tables: {named}" if tables else ""
            raise self._foreign(f"it has no schema_version table{listing}")
        try:
            versions = await db.execute_fetchall("SELECT max(version) FROM schema_version")
        except sqlite3.OperationalError as exc:
            if "no such column" not in str(exc):
                raise
            raise self._foreign(f"its schema_version table is not stateward's ({exc})") from exc
        [(found,)] = versions  # max() answers one row, NULL for an empty table
        found = 0 if found is None else found
        if type(found) is not int or found < 0:
            raise self._foreign(f"its schema_version table holds {found!r}")
        present = set(tables)
        if found > SCHEMA_VERSION:
            # A newer stateward keeps the first tables; a database with other tables and
            # none of them belongs to someone else.
            if present - {"schema_version"} and not present & _TABLES[0]:
                raise self._foreign(
                    f"its schema_version table says {found}, but it has none of stateward's tables"
                )
            raise SchemaError(self.path, found=found, supported=SCHEMA_VERSION)
        missing = frozenset().union(*_TABLES[:found]) - present
        if missing:
            raise self._foreign(
                f"its schema_version table says {found}, but it lacks stateward's tables "
                + ", ".join(sorted(missing))
            )
        return found

    def _foreign(self, detail: str) -> StoreUnavailable:
        return _open_failed(f"{self.path} is not a stateward database", detail, advice=_NOT_OURS)

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Bring the schema up to date in one write transaction.

        The version is read again inside it: another process may have created or migrated
        the database since it was first read.
        """
        await db.execute("BEGIN IMMEDIATE")
        try:
            found = await self._stored_version(db)
            if found == 0:
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            await db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await db.execute("ROLLBACK")
            raise

    async def aclose(self) -> None:
        """Finish queued writes, then close both connections."""
        await self._stop_writer()
        await self._close_connections()

    async def _close_connections(self) -> None:
        for db in (self._writer_db, self._reader_db):
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    await db.close()
        self._writer_db = self._reader_db = None

    async def __aenter__(self) -> SqliteStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- writing ------------------------------------------------------------------------

    def _db(self, which: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if which is None:
            raise StoreUnavailable("use", reason="the store is closed or was never opened")
        return which

    async def _guard(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except sqlite3.Error as exc:
            raise _translate(operation, exc) from exc

    async def _revisions(self, resource_ids: list[str]) -> dict[str, int]:
        db = self._db(self._reader_db)
        found: dict[str, int] = {}
        for start in range(0, len(resource_ids), 500):
            chunk = resource_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))

            async def query(chunk: list[str] = chunk, marks: str = marks) -> None:
                sql = f"SELECT id, revision FROM resources WHERE id IN ({marks})"
                async with db.execute(sql, chunk) as rows:
                    found.update({str(r): int(v) async for r, v in rows})

            await self._guard("commit", query)
        return found

    async def _write(self, writes: list[Write]) -> int:
        db = self._db(self._writer_db)
        journal_rows, head_rows, document_rows, snapshots = _rows(writes)

        async def transaction() -> int:
            await db.execute("BEGIN IMMEDIATE")
            try:
                await _insert_rows(db, _INSERT_JOURNAL, journal_rows)
                await _insert_rows(db, _UPSERT_HEAD, head_rows)
                await _insert_rows(db, _UPSERT_DOCUMENT, document_rows)
                pruned = 0
                if snapshots and self.retention.keep != math.inf:
                    keep = int(self.retention.keep)
                    cursor = await db.executemany(
                        "DELETE FROM journal WHERE resource_id = ? AND sequence <= ?",
                        [(rid, revision - keep) for rid, revision in snapshots],
                    )
                    pruned = max(cursor.rowcount, 0)
                await db.execute("COMMIT")
                return pruned
            except BaseException:
                # The failed statement may have rolled the transaction back already.
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise

        return await self._guard("commit", transaction)

    async def _document_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        by_collection: dict[str, list[str]] = {}
        for collection, key in keys:
            by_collection.setdefault(collection, []).append(key)
        found: dict[tuple[str, str], int] = {}
        for collection, names in by_collection.items():
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                rows = await self._fetch(
                    "commit",
                    "SELECT key, version FROM documents WHERE collection = ? AND key IN "
                    f"({','.join('?' * len(chunk))})",
                    (collection, *chunk),
                )
                found.update({(collection, str(k)): int(v) for k, v in rows})
        return found

    # -- reading ------------------------------------------------------------------------

    async def _fetch(self, operation: str, sql: str, params: Sequence[Any]) -> list[Any]:
        db = self._db(self._reader_db)

        async def query() -> list[Any]:
            return list(await db.execute_fetchall(sql, params))

        try:
            return await self._guard(operation, query)
        except _Transient as transient:
            raise transient.error from transient.__cause__

    async def load(self, resource_id: str) -> Loaded | None:
        """The stored resource, or None if it was never written.

        Raises:
            ResourceQuarantined: its rows cannot be decoded, or SQLite finds the pages that
                hold them corrupt; every other resource stays readable.
        """
        check_text("resource_id", resource_id)
        try:
            return (await self._load_rows([resource_id], quarantine_raises=True)).get(resource_id)
        except StoreUnavailable as error:
            if not _is_corrupt(error):
                raise
            reason = f"its rows cannot be read: {error.reason} ({error.detail})"
            await self.quarantine(resource_id, reason)
            raise ResourceQuarantined(resource_id, reason=reason) from error

    async def load_many(self, resource_ids: Sequence[str]) -> dict[str, Loaded]:
        """Several resources at once; quarantined ones are left out (and recorded)."""
        ids = check_ids(resource_ids)
        found: dict[str, Loaded] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            try:
                found.update(await self._load_rows(chunk, quarantine_raises=False))
            except StoreUnavailable as error:
                if not _is_corrupt(error):
                    raise
                # A corrupt page fails the whole query: find the resources it holds.
                for resource_id in chunk:
                    try:
                        loaded = await self.load(resource_id)
                    except ResourceQuarantined:
                        continue
                    if loaded is not None:
                        found[resource_id] = loaded
        return found

    async def _load_rows(self, ids: list[str], *, quarantine_raises: bool) -> dict[str, Loaded]:
        if quarantine_raises:
            for resource_id in ids:
                if resource_id in self._quarantined:
                    raise ResourceQuarantined(resource_id, reason=self._quarantined[resource_id])
        marks = ",".join("?" * len(ids))
        heads = await self._fetch(
            "load", f"SELECT {HEAD_COLUMNS} FROM resources WHERE id IN ({marks})", ids
        )
        if not heads:
            return {}
        # Journal tails of every resource in one query: rows after each one's snapshot.
        tails = await self._fetch(
            "load",
            f"SELECT {', '.join('j.' + c.strip() for c in RECORD_COLUMNS.split(','))} "
            f"FROM journal j JOIN resources r ON r.id = j.resource_id "
            f"WHERE r.id IN ({marks}) AND j.sequence > r.snapshot_revision "
            f"ORDER BY j.resource_id, j.sequence",
            ids,
        )
        return await self._assemble(heads, tails, quarantine_raises=quarantine_raises)

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Take a resource out of service, durably: it stays quarantined after a restart."""
        check_text("resource_id", resource_id)
        check_text("reason", reason)
        self._quarantined[resource_id] = reason
        self._log.error("resource quarantined", resource_id=resource_id, reason=reason)
        db = self._db(self._reader_db)

        async def record() -> None:
            await db.execute(
                "INSERT OR REPLACE INTO quarantine (resource_id, reason) VALUES (?, ?)",
                (resource_id, reason),
            )

        try:
            await self._guard("quarantine", record)
        except (StoreUnavailable, _Transient) as exc:
            # The quarantine holds in memory; it is re-detected on the next open anyway.
            self._log.warning("quarantine not persisted", resource_id=resource_id, error=str(exc))


def open_sqlite_store(
    path: str | os.PathLike[str],
    *,
    create: bool = True,
    durability: Durability = Durability.FULL,
    clock: Clock | None = None,
    max_batch: int = 1000,
    retries: int = 5,
    backoff: float = 0.01,
    busy_timeout: float = 0.2,
    retention: Retention = Retention(),  # noqa: B008  # frozen, so sharing is safe
) -> SqliteStore:
    """A SQLite store to open with ``async with``; see :class:`SqliteStore` for the options.

    Args:
        path: the database file.
        create: make a new database where the file is missing or empty (the default);
            with False, only an existing stateward database is opened.
        durability: ``FULL`` (fsync every commit, the default) or ``NORMAL``.
        clock: for retry backoff.
        max_batch: transitions per transaction at most (group commit).
        retries: how often a locked database is retried before the batch fails.
        backoff: the first retry's delay in seconds; doubled each time.
        busy_timeout: how long SQLite itself waits on a lock per attempt.
        retention: how much journal to keep; all of it by default.
    """
    return SqliteStore(
        path,
        create=create,
        durability=durability,
        clock=clock,
        max_batch=max_batch,
        retries=retries,
        backoff=backoff,
        busy_timeout=busy_timeout,
        retention=retention,
    )

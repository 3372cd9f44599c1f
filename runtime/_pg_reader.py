"""The read-only :class:`~stateward.runtime.StoreReader` of a PostgreSQL store's schema.

:func:`open_postgres_reader` (reached through ``open_store_reader("postgresql://...")``)
connects with asyncpg and opens one ``REPEATABLE READ READ ONLY`` transaction: every read sees
the snapshot of its first statement, a writer's open transaction is invisible, and the server
refuses any write. The reader's interface is synchronous, as the SQLite one is, so asyncpg
runs on an event loop of its own in a private thread, whether or not the caller has a loop.

Columns are typed in PostgreSQL, so a cell's type follows from its column; texts and bytes are
read bounded in SQL, as the SQLite reader reads them, so that a huge row never crosses the
network whole.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from ._errors import InvalidArgument, SchemaError, StoreUnavailable
from ._postgres import _SCHEMA_NAME, _TABLES, POSTGRES_SCHEMA_VERSION, redact_dsn, tables_in

try:
    import asyncpg
except ImportError:  # the `postgres` extra is not installed: the reader says so
    asyncpg = None
from ._reader import ReadFailure, StoreReader, _Kind
from ._sql import numbered

#: Nothing public: the reader is reached through ``open_store_reader(dsn)``.
__all__: tuple[str, ...] = ()

_T = TypeVar("_T")

#: The type :class:`~stateward.runtime.RawCell` names for a non-null value of each kind.
_TYPES: dict[_Kind, str] = {
    "text": "text",
    "optional": "text",
    "integer": "integer",
    "number": "real",
    "raw": "blob",
}


#: What the driver raises when a statement or the connection fails.
_DRIVER_ERRORS = (
    (
        TimeoutError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
    )
    if asyncpg is not None
    else ()
)


class _Thread:
    """An event loop running in a daemon thread, for one reader's connection."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="stateward-pg-reader", daemon=True
        )
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _unreadable(where: str, error: BaseException) -> StoreUnavailable:
    failure = StoreUnavailable(
        "read",
        reason=ReadFailure.UNREADABLE,
        detail=f"{where}: {type(error).__name__}: {error}",
        advice="check the server, then run it again",
    )
    failure.__cause__ = error
    return failure


class _PostgresEngine:
    """One connection inside its read-only transaction, driven from the caller's thread."""

    def __init__(self, thread: _Thread, db: Any, where: str) -> None:
        self._thread = thread
        self._db = db
        self._where = where

    def bounded(self, column: str, kind: _Kind, limit: int) -> str:
        null = f"CASE WHEN {column} IS NULL THEN 'null' ELSE '{_TYPES[kind]}' END"
        if kind == "raw":
            return f"{null}, coalesce(octet_length({column}), 0), substr({column}, 1, {limit})"
        if kind in ("text", "optional"):
            # At most ``limit`` characters are encoded, then cut to ``limit`` bytes.
            head = f"substr(convert_to(left({column}, {limit}), 'UTF8'), 1, {limit})"
            return f"{null}, coalesce(octet_length({column}), 0), {head}"
        return f"{null}, 0, {column}"

    def _run(self, work: Coroutine[Any, Any, _T]) -> _T:
        try:
            return self._thread.run(work)
        except _DRIVER_ERRORS as exc:
            raise _unreadable(self._where, exc) from exc

    def rows(self, sql: str, arguments: Sequence[Any]) -> list[Sequence[Any]]:
        return list(self._run(self._db.fetch(numbered(sql), *arguments)))

    def stream(self, sql: str, arguments: Sequence[Any]) -> Iterator[Sequence[Any]]:
        cursor = self._run(self._cursor(numbered(sql), arguments))
        while (row := self._run(cursor.fetchrow())) is not None:
            yield row

    async def _cursor(self, sql: str, arguments: Sequence[Any]) -> Any:
        return await self._db.cursor(sql, *arguments)

    def close(self) -> None:
        try:
            self._thread.run(self._db.close(timeout=2))
        except Exception:  # a server that is gone: the socket is dropped all the same
            self._db.terminate()
        finally:
            self._thread.stop()


async def _begin(dsn: str, schema: str, timeout: float) -> Any:
    """A connection inside a read-only transaction on ``schema``."""
    db = await asyncpg.connect(
        dsn,
        timeout=timeout,
        command_timeout=timeout + 30,
        server_settings={"search_path": schema, "application_name": "stateward inspect"},
    )
    try:
        await db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    except BaseException:
        db.terminate()
        raise
    return db


async def _version(db: Any, schema: str, where: str) -> int:
    """The schema's version, its tables checked; raise when it is not a stateward schema."""
    tables = await tables_in(db, schema)
    advice = "name the schema a PostgresStore wrote (--schema)"
    if "schema_version" not in tables:
        listing = ", ".join(sorted(tables))
        detail = f"schema {schema!r} " + (
            f"has no schema_version: {listing}" if tables else "holds no tables"
        )
        raise StoreUnavailable(
            "read", reason=ReadFailure.NOT_STATEWARD, detail=detail, advice=advice
        )
    found = await db.fetchval("SELECT max(version) FROM schema_version")
    if found is None or found <= 0:
        raise StoreUnavailable(
            "read",
            reason=ReadFailure.UNFINISHED,
            detail=f"schema {schema!r}",
            advice="open it once with a PostgresStore, which creates the schema",
        )
    if found > POSTGRES_SCHEMA_VERSION:
        raise SchemaError(where, found=int(found), supported=POSTGRES_SCHEMA_VERSION)
    missing = sorted(_TABLES - tables)
    if missing:
        raise StoreUnavailable(
            "read",
            reason=ReadFailure.MISSING_TABLES,
            detail=f"schema {schema!r} lacks " + ", ".join(missing),
            advice=advice,
        )
    return int(found)


def open_postgres_reader(dsn: str, *, schema: str, text_bytes: int, timeout: float) -> StoreReader:
    """A :class:`~stateward.runtime.StoreReader` of ``schema`` in the database at ``dsn``.

    Raises:
        StoreUnavailable: asyncpg is not installed; the server cannot be reached or refuses
            the login (``ReadFailure.CANNOT_CONNECT``); the schema is not a stateward one.
        SchemaError: a newer stateward wrote the schema.
        InvalidArgument: ``schema`` is no schema name, or asyncpg cannot parse ``dsn``.
    """
    if asyncpg is None:
        raise StoreUnavailable(
            "read",
            reason="the PostgreSQL driver asyncpg is not installed",
            advice="install stateward[postgres]",
        )
    if type(schema) is not str or not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidArgument(
            "schema",
            expected="a schema name of lowercase letters, digits and _ (at most 63)",
            got=schema,
        )
    shown = redact_dsn(dsn)
    where = f"schema {schema!r} of {shown}"
    thread = _Thread()
    try:
        db = thread.run(_begin(dsn, schema, max(timeout, 1.0)))
    except ValueError as exc:  # asyncpg cannot parse the DSN
        thread.stop()
        expected = f"a DSN asyncpg can parse ({exc})"
        raise InvalidArgument("dsn", expected=expected, got=shown) from exc
    except _DRIVER_ERRORS as exc:
        thread.stop()
        failure = StoreUnavailable(
            "read",
            reason=ReadFailure.CANNOT_CONNECT,
            detail=f"{type(exc).__name__}: {exc}",
            advice="check that the server runs, and the DSN's host, port, user and database",
        )
        raise failure from exc
    engine = _PostgresEngine(thread, db, where)
    try:
        version = engine._run(_version(db, schema, where))
    except BaseException:
        engine.close()
        raise
    return StoreReader(
        shown,
        engine,
        version,
        text_bytes,
        schema=schema,
        latest_version=POSTGRES_SCHEMA_VERSION,
        documents_since=1,
    )

"""A read-only reader of a store: the offline view of what a store wrote.

This module reads a SQLite store's file; :mod:`stateward.runtime._pg_reader` gives the same
:class:`StoreReader` over a PostgreSQL schema (``open_store_reader("postgresql://...")``).

:func:`open_store_reader` opens the file read-only (``file:...?mode=ro``, plus
``PRAGMA query_only``): it never takes a write lock, never creates a missing file and works on
a file or folder the process cannot write. Everything a reader returns comes from one read
transaction: in WAL mode a consistent snapshot of what was committed when it opened, where a
writer's open transaction is invisible.

The file may hold rows no stateward wrote: the schema admits text where an integer belongs,
bytes that are not UTF-8, values of any size. Every column is read bounded, in SQL (its type,
its size, and ``substr`` of at most so many bytes), so a row of 40 MB never enters memory
whole. A row is always returned: a field that cannot be decoded is None and its reason is in
the row's ``errors``; a text that was cut says so in its ``cut`` (bytes not read) and ends
with ``… [N bytes cut]``. Payloads and bodies are returned as :class:`RawCell` for the caller
to decode: the reader never decodes them.

Failures are :class:`~stateward.runtime.StoreUnavailable` with a :class:`ReadFailure` as
their ``reason``, or :class:`~stateward.runtime.SchemaError` for a newer schema.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import os
import sqlite3
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import TracebackType
from typing import Any, Literal, Protocol

from ._errors import InvalidArgument, SchemaError, StoreUnavailable
from ._postgres import is_dsn
from ._sqlite import _TABLES, SCHEMA_VERSION, _file_path

__all__ = (
    "DocumentRow",
    "HeadRow",
    "JournalRow",
    "RawCell",
    "ReadFailure",
    "RowCounts",
    "StoreReader",
    "open_store_reader",
)

#: Bytes read of a text column unless the reader is told otherwise.
TEXT_BYTES = 1024
#: Bytes read of a payload or document body unless a call says otherwise.
BLOB_BYTES = 65_536
#: The largest ``limit`` SQLite takes.
_MAX_ROWS = 2**63 - 1


class ReadFailure(enum.StrEnum):
    """Why :func:`open_store_reader` or a read failed: the ``reason`` of its StoreUnavailable.

    Its ``detail`` is the path (for PostgreSQL: the schema and DSN, or the DSN and the
    driver's error), except for ``BAD_VERSION`` (what the schema_version table
    holds, e.g. ``text 'abc'``) and ``MISSING_TABLES`` (the tables, comma-separated); the
    SQLite error, where there was one, is the ``__cause__``.
    """

    MISSING = "no such file"
    DIRECTORY = "a directory"
    NOT_A_FILE = "not a regular file"
    CANNOT_OPEN = "cannot open the database file"
    NOT_SQLITE = "the file is not an SQLite database"
    LOCKED = "database is locked"
    NOT_STATEWARD = "not a stateward database"
    BAD_VERSION = "schema_version holds no version number"
    UNFINISHED = "schema creation never finished"
    MISSING_TABLES = "stateward tables are missing"
    UNREADABLE = "the file cannot be read"
    CANNOT_CONNECT = "cannot connect to the PostgreSQL server"


_ADVICE = {
    ReadFailure.MISSING: "nothing was created: give the path of a database a SqliteStore wrote",
    ReadFailure.DIRECTORY: "give the path of a database file a SqliteStore wrote",
    ReadFailure.NOT_A_FILE: "give the path of a database file a SqliteStore wrote",
    ReadFailure.CANNOT_OPEN: "check its permissions",
    ReadFailure.LOCKED: "try again; stateward's own databases use WAL, where readers never wait",
    ReadFailure.UNFINISHED: "open it once with a SqliteStore, which creates the schema",
}
_FOREIGN = "give the path of a database a SqliteStore wrote"


def _failure(
    reason: ReadFailure, detail: str, cause: BaseException | None = None
) -> StoreUnavailable:
    error = StoreUnavailable(
        "read", reason=reason, detail=detail, advice=_ADVICE.get(reason, _FOREIGN)
    )
    error.__cause__ = cause
    return error


def _translate(path: str, error: sqlite3.Error) -> StoreUnavailable:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_NOTADB:
        return _failure(ReadFailure.NOT_SQLITE, path, error)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return _failure(ReadFailure.LOCKED, path, error)
    if primary == sqlite3.SQLITE_CANTOPEN:
        return _failure(ReadFailure.CANNOT_OPEN, path, error)
    return _failure(ReadFailure.UNREADABLE, path, error)


# --- bounded cells -----------------------------------------------------------------------


def _bounded(column: str, limit: int) -> str:
    """SQL for three values of ``column``: its type, its size in bytes, and the column
    itself with at most ``limit`` bytes of a text or blob (read as bytes, decoded here)."""
    return (
        f"typeof({column}), length(CAST({column} AS BLOB)), "
        f"CASE WHEN typeof({column}) IN ('text', 'blob') "
        f"THEN substr(CAST({column} AS BLOB), 1, {int(limit)}) ELSE {column} END"
    )


@dataclass(frozen=True, slots=True)
class RawCell:
    """One column as read, undecoded: SQLite's type for it, its size, and its bounded value.

    Attributes:
        type: ``null``, ``integer``, ``real``, ``text`` or ``blob``.
        size: its size in bytes (of a text or blob; 0 for null).
        data: an int or a float, or the bytes read of a text or blob (at most the bound).
    """

    type: str
    size: int
    data: int | float | bytes | None

    @classmethod
    def _read(cls, row: Sequence[Any], start: int) -> RawCell:
        kind, size, data = row[start : start + 3]
        if kind in ("text", "blob") and data is None:
            data = b""  # ``substr`` of an empty text or blob is null
        return cls(str(kind), size or 0, data)

    @property
    def whole(self) -> bool:
        """All of a text or blob was read."""
        return not isinstance(self.data, bytes) or len(self.data) >= self.size

    def describe(self) -> str:
        """What the value is, for a message: ``text 'abc'``, ``a real 1.5``, ``null``, ..."""
        if self.type == "null":
            return "null"
        if self.type == "integer":
            return f"an integer {self.data!r}"
        if self.type == "real":
            return f"a real {self.data!r}"
        if self.type == "text" and isinstance(self.data, bytes):
            shown = self.data[:40].decode("utf-8", errors="backslashreplace")
            return f"text {shown!r}" + ("…" if self.size > 40 else "")
        return f"a blob of {self.size:,} bytes"


_Kind = Literal["text", "optional", "integer", "number", "raw"]


@dataclass(frozen=True, slots=True)
class _Column:
    """A column read bounded: the field it becomes, how it is decoded, its SQL."""

    name: str
    kind: _Kind
    sql: str | None = None


class Engine(Protocol):
    """How a :class:`StoreReader` reads one database, in one read-only transaction.

    SQL comes with ``?`` placeholders; rows are sequences of cells as :meth:`bounded` asked.
    Failures are :class:`~stateward.runtime.StoreUnavailable`.
    """

    def bounded(self, column: str, kind: _Kind, limit: int) -> str:
        """SQL for three values of ``column`` (of a column of ``kind``): its type as
        :class:`RawCell` names it, its size in bytes, and its value with at most ``limit``
        bytes of a text or blob (as bytes)."""
        ...

    def rows(self, sql: str, arguments: Sequence[Any]) -> list[Sequence[Any]]: ...

    def stream(self, sql: str, arguments: Sequence[Any]) -> Iterator[Sequence[Any]]:
        """The rows of ``sql``, read as they are iterated."""
        ...

    def close(self) -> None: ...


def _select(
    engine: Engine, columns: Sequence[_Column], source: str, limits: Mapping[str, int]
) -> str:
    """A query of ``columns`` from ``source``, each read bounded (``limits`` by kind)."""
    cells = ", ".join(engine.bounded(c.sql or c.name, c.kind, limits[c.kind]) for c in columns)
    return f"SELECT {cells} FROM {source}"


def _where(*filters: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
    """``WHERE`` (or nothing) of the ``(condition, argument)`` pairs whose argument is set."""
    chosen = [(condition, argument) for condition, argument in filters if argument is not None]
    if not chosen:
        return "", ()
    return "WHERE " + " AND ".join(c for c, _ in chosen), tuple(a for _, a in chosen)


class _Fields:
    """The columns of one row, decoded by kind into :attr:`values`, errors and cuts noted."""

    def __init__(self, columns: Sequence[_Column], row: Sequence[Any]) -> None:
        self._cells = {c.name: RawCell._read(row, 3 * i) for i, c in enumerate(columns)}
        self.errors: dict[str, str] = {}
        self.cut: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        for column in columns:
            name = column.name
            if column.kind == "raw":
                self.values[name] = self._cells[name]
            elif column.kind == "integer":
                self.values[name] = self._integer(name)
            elif column.kind == "number":
                self.values[name] = self._number(name)
            else:
                self.values[name] = self._text(name, optional=column.kind == "optional")

    def _bad(self, name: str, problem: str) -> None:
        self.errors[name] = f"{name} {problem}"

    def _text(self, name: str, *, optional: bool) -> str | None:
        cell = self._cells[name]
        if cell.type == "null" and optional:
            return None
        if cell.type != "text" or not isinstance(cell.data, bytes):
            self._bad(name, f"is {cell.describe()}, expected text")
            return None
        try:
            text: str = codecs.getincrementaldecoder("utf-8")().decode(cell.data, final=cell.whole)
        except UnicodeDecodeError:
            shown = repr(cell.data[:40]) + ("…" if cell.size > 40 else "")
            self._bad(name, f"is not UTF-8: {shown}")
            return None
        if not cell.whole:
            cut = cell.size - len(cell.data)
            self.cut[name] = cut
            text += f"… [{cut:,} bytes cut]"
        return text

    def _integer(self, name: str) -> int | None:
        cell = self._cells[name]
        if cell.type != "integer" or not isinstance(cell.data, int):
            self._bad(name, f"is {cell.describe()}, expected an integer")
            return None
        return cell.data

    def _number(self, name: str) -> float | None:
        cell = self._cells[name]
        if cell.type not in ("integer", "real") or not isinstance(cell.data, int | float):
            self._bad(name, f"is {cell.describe()}, expected a number")
            return None
        return float(cell.data)


# --- rows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeadRow:
    """A resource head as read; a field that cannot be decoded is None, its reason in
    ``errors``; ``cut`` holds the bytes not read of each text that was cut."""

    id: str | None
    kind: str | None
    state: str | None
    revision: int | None
    updated: float | None
    quarantined: str | None
    errors: Mapping[str, str] = field(default_factory=dict)
    cut: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JournalRow:
    """A journal record as read; its payload undecoded (msgpack, or null). Fields as
    :class:`HeadRow`'s."""

    sequence: int | None
    source: str | None
    event: str | None
    target: str | None
    task_id: str | None
    cause: str | None
    at: float | None
    payload: RawCell
    errors: Mapping[str, str] = field(default_factory=dict)
    cut: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A document as read: its indexed columns and its undecoded body. Fields as
    :class:`HeadRow`'s."""

    key: str | None
    resource_id: str | None
    status: str | None
    created: float | None
    updated: float | None
    body: RawCell
    errors: Mapping[str, str] = field(default_factory=dict)
    cut: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RowCounts:
    """How many rows each table of the store holds."""

    resources: int
    journal: int
    documents: int
    quarantined: int


_HEAD_COLUMNS = (
    _Column("id", "text", sql="r.id"),
    _Column("kind", "text", sql="r.kind"),
    _Column("state", "text", sql="r.state"),
    _Column("revision", "integer", sql="r.revision"),
    _Column("updated", "number", sql="r.updated"),
    _Column("quarantined", "optional", sql="q.reason"),
)
_JOURNAL_COLUMNS = (
    _Column("sequence", "integer"),
    _Column("source", "text"),
    _Column("event", "text"),
    _Column("target", "text"),
    _Column("task_id", "optional"),
    _Column("cause", "optional"),
    _Column("at", "number"),
    _Column("payload", "raw"),
)
_DOCUMENT_COLUMNS = (
    _Column("key", "text"),
    _Column("resource_id", "optional"),
    _Column("status", "optional"),
    _Column("created", "number"),
    _Column("updated", "number"),
    _Column("body", "raw"),
)
_HEADS = "resources r LEFT JOIN quarantine q ON q.resource_id = r.id"


def _check_limit(limit: object, name: str = "limit") -> int:
    if type(limit) is not int or not 1 <= limit <= _MAX_ROWS:
        raise InvalidArgument(name, expected="an int from 1 to 2**63 - 1", got=limit)
    return limit


def _check_text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if type(value) is not str:
        raise InvalidArgument(name, expected="a str" + (" or None" if optional else ""), got=value)
    return value


class StoreReader:
    """A read-only view of one store, in one read transaction.

    Open it with :func:`open_store_reader` and close it (``with`` does); every call reads
    the same snapshot. Lists are newest first where they are of time, and take a ``limit``.

    Attributes:
        path: the database file, or the PostgreSQL DSN (without its password).
        schema: the PostgreSQL schema read; None for a SQLite file.
        schema_version: the schema version the store holds (1 to :attr:`latest_version`).
        latest_version: the schema version this stateward writes for such a store.
    """

    def __init__(
        self,
        path: str,
        engine: Engine,
        version: int,
        text_bytes: int,
        *,
        schema: str | None = None,
        latest_version: int = SCHEMA_VERSION,
        documents_since: int = 2,
    ) -> None:
        self.path = path
        self.schema = schema
        self.schema_version = version
        self.latest_version = latest_version
        self._engine: Engine | None = engine
        self._text_bytes = text_bytes
        self._documents_since = documents_since

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """End the read transaction and close the connection; later calls fail."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open_engine(self) -> Engine:
        if self._engine is None:
            raise StoreUnavailable("read", reason="the reader is closed")
        return self._engine

    def _rows(self, sql: str, arguments: Sequence[Any] = ()) -> list[Any]:
        return self._open_engine().rows(sql, arguments)

    def _stream(self, sql: str, arguments: Sequence[Any]) -> Iterator[Any]:
        engine = self._open_engine()
        for row in engine.stream(sql, arguments):
            yield row
            if self._engine is None:
                raise StoreUnavailable("read", reason="the reader is closed")

    def _count(self, sql: str, arguments: Sequence[Any] = ()) -> int:
        [(found,)] = self._rows(sql, arguments)
        return int(found)

    def _limits(self, raw: int) -> dict[str, int]:
        text = self._text_bytes
        return {"text": text, "optional": text, "integer": text, "number": text, "raw": raw}

    def _select(self, columns: Sequence[_Column], source: str, raw: int) -> str:
        return _select(self._open_engine(), columns, source, self._limits(raw))

    @property
    def has_documents(self) -> bool:
        """Whether the schema has documents (SQLite's version 2 on); without, there are none."""
        return self.schema_version >= self._documents_since

    # -- resources ----------------------------------------------------------------------

    def _heads(self, where: str, arguments: Sequence[Any]) -> list[HeadRow]:
        sql = f"{self._select(_HEAD_COLUMNS, _HEADS, 0)} {where}"
        found = []
        for row in self._rows(sql, arguments):
            fields = _Fields(_HEAD_COLUMNS, row)
            found.append(HeadRow(**fields.values, errors=fields.errors, cut=fields.cut))
        return found

    def heads(self, *, kind: str | None = None, limit: int = 1000) -> tuple[HeadRow, ...]:
        """Resource heads ordered by id, of one ``kind`` or all, at most ``limit``."""
        _check_text("kind", kind, optional=True)
        _check_limit(limit)
        where, arguments = _where(("r.kind = ?", kind))
        return tuple(self._heads(f"{where} ORDER BY r.id LIMIT ?", (*arguments, limit)))

    def head(self, resource_id: str) -> HeadRow | None:
        """One resource's head, or None when no such resource is stored."""
        _check_text("resource_id", resource_id)
        found = self._heads("WHERE r.id = ?", (resource_id,))
        return found[0] if found else None

    def journal(
        self, resource_id: str, *, limit: int = 100, payload_bytes: int = BLOB_BYTES
    ) -> tuple[JournalRow, ...]:
        """One resource's last ``limit`` journal records, newest first; payloads read up to
        ``payload_bytes``."""
        _check_text("resource_id", resource_id)
        _check_limit(limit)
        _check_limit(payload_bytes, "payload_bytes")
        sql = self._select(_JOURNAL_COLUMNS, "journal", payload_bytes)
        found = []
        for row in self._rows(
            f"{sql} WHERE resource_id = ? ORDER BY sequence DESC LIMIT ?", (resource_id, limit)
        ):
            fields = _Fields(_JOURNAL_COLUMNS, row)
            found.append(JournalRow(**fields.values, errors=fields.errors, cut=fields.cut))
        return tuple(found)

    def journal_count(self, resource_id: str) -> int:
        """How many journal records one resource has."""
        _check_text("resource_id", resource_id)
        return self._count("SELECT count(*) FROM journal WHERE resource_id = ?", (resource_id,))

    # -- documents ----------------------------------------------------------------------

    def _documents(
        self, where: str, arguments: Sequence[Any], body_bytes: int
    ) -> Iterator[DocumentRow]:
        _check_limit(body_bytes, "body_bytes")
        if not self.has_documents:
            return iter(())
        sql = f"{self._select(_DOCUMENT_COLUMNS, 'documents', body_bytes)} {where}"
        return (self._document(row) for row in self._stream(sql, arguments))

    @staticmethod
    def _document(row: Sequence[Any]) -> DocumentRow:
        fields = _Fields(_DOCUMENT_COLUMNS, row)
        return DocumentRow(**fields.values, errors=fields.errors, cut=fields.cut)

    def document(
        self, collection: str, key: str, *, body_bytes: int = BLOB_BYTES
    ) -> DocumentRow | None:
        """One document, or None; its body read up to ``body_bytes``."""
        _check_text("collection", collection)
        _check_text("key", key)
        found = self._documents("WHERE collection = ? AND key = ?", (collection, key), body_bytes)
        return next(found, None)

    def documents(
        self,
        collection: str,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        body_bytes: int = BLOB_BYTES,
        oldest_first: bool = False,
    ) -> Iterator[DocumentRow]:
        """Documents of a collection matching every field given, newest first (by created,
        then key; oldest first when asked), at most ``limit``; bodies read up to
        ``body_bytes``.

        Rows are read as they are iterated, so that only one body is in memory at a time;
        iterate before the reader closes.
        """
        where, arguments = self._document_filter(collection, resource_id, status)
        _check_limit(limit)
        order = "ASC" if oldest_first else "DESC"
        return self._documents(
            f"{where} ORDER BY created {order}, key {order} LIMIT ?",
            (*arguments, limit),
            body_bytes,
        )

    def document_count(
        self, collection: str, *, resource_id: str | None = None, status: str | None = None
    ) -> int:
        """How many documents of a collection match every field given."""
        where, arguments = self._document_filter(collection, resource_id, status)
        if not self.has_documents:
            return 0
        return self._count(f"SELECT count(*) FROM documents {where}", arguments)

    @staticmethod
    def _document_filter(
        collection: str, resource_id: str | None, status: str | None
    ) -> tuple[str, tuple[object, ...]]:
        _check_text("collection", collection)
        _check_text("resource_id", resource_id, optional=True)
        _check_text("status", status, optional=True)
        return _where(
            ("collection = ?", collection), ("resource_id = ?", resource_id), ("status = ?", status)
        )

    # -- whole tables -------------------------------------------------------------------

    def counts(self) -> RowCounts:
        """How many rows each table holds."""
        documents = self._count("SELECT count(*) FROM documents") if self.has_documents else 0
        return RowCounts(
            resources=self._count("SELECT count(*) FROM resources"),
            journal=self._count("SELECT count(*) FROM journal"),
            documents=documents,
            quarantined=self._count("SELECT count(*) FROM quarantine"),
        )


class _SqliteEngine:
    """A read-only sqlite3 connection inside its read transaction."""

    def __init__(self, path: str, db: sqlite3.Connection) -> None:
        self._path = path
        self._db = db

    def bounded(self, column: str, kind: _Kind, limit: int) -> str:
        return _bounded(column, limit)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _translate(self._path, exc) from exc

    def rows(self, sql: str, arguments: Sequence[Any]) -> list[Sequence[Any]]:
        with self._translated():
            return self._db.execute(sql, arguments).fetchall()

    def stream(self, sql: str, arguments: Sequence[Any]) -> Iterator[Sequence[Any]]:
        with self._translated():
            cursor = self._db.execute(sql, arguments)
            while (row := cursor.fetchone()) is not None:
                yield row

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")  # a read transaction: nothing to keep
        self._db.close()


def _check_file(path: str) -> None:
    """Refuse a path that is no regular file before SQLite sees it (a FIFO would block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise _failure(ReadFailure.MISSING, path) from None
    except OSError as exc:
        raise _failure(ReadFailure.CANNOT_OPEN, path, exc) from exc
    if stat.S_ISDIR(mode):
        raise _failure(ReadFailure.DIRECTORY, path)
    if not stat.S_ISREG(mode):
        raise _failure(ReadFailure.NOT_A_FILE, path)


def _schema_version(db: sqlite3.Connection, path: str) -> int:
    """The schema version the file holds, its tables checked; raise when it is not ours."""
    try:
        row = db.execute(
            f"SELECT {_bounded('m', 40)} FROM (SELECT max(version) AS m FROM schema_version)"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise _failure(ReadFailure.NOT_STATEWARD, path, exc) from exc
    version = RawCell._read(row, 0)
    if version.type not in ("integer", "null") or not isinstance(version.data, int | None):
        raise _failure(ReadFailure.BAD_VERSION, version.describe())
    found = version.data or 0
    if found > SCHEMA_VERSION:
        raise SchemaError(path, found=found, supported=SCHEMA_VERSION)
    if found <= 0:
        raise _failure(ReadFailure.UNFINISHED, path)
    tables = {
        str(name) for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    missing = sorted(frozenset().union(*_TABLES[:found]) - tables)
    if missing:
        raise _failure(ReadFailure.MISSING_TABLES, ", ".join(missing))
    return found


#: Failures of a read-only open of a WAL database whose -shm file cannot be created.
_NO_SHM = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN})


def _begin(uri: str, name: str, busy_timeout: float) -> tuple[sqlite3.Connection, int]:
    """A read-only connection to ``uri`` inside a read transaction, and its schema version."""
    try:
        db = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _failure(ReadFailure.CANNOT_OPEN, name, exc) from exc
    try:
        db.execute("PRAGMA query_only = ON")
        db.execute("BEGIN")
        return db, _schema_version(db, name)
    except sqlite3.Error as exc:
        db.close()
        raise _translate(name, exc) from exc
    except BaseException:
        db.close()
        raise


def open_store_reader(
    path: str | os.PathLike[str],
    *,
    text_bytes: int = TEXT_BYTES,
    busy_timeout: float = 2.0,
    schema: str = "stateward",
) -> StoreReader:
    """Open a store read-only, in one read transaction; close the reader after.

    Args:
        path: the SQLite file (never created, written or locked for writing), or the DSN of
            a PostgreSQL database (``postgresql://user@host:port/database``), read in one
            ``REPEATABLE READ READ ONLY`` transaction.
        text_bytes: bytes read of a text column at most (ids, states, causes, ...).
        busy_timeout: seconds to wait for a lock (only a rollback-journal database being
            written has one; in WAL mode readers never wait), or for a PostgreSQL server to
            answer.
        schema: the PostgreSQL schema the store wrote (``stateward`` unless it was told).

    Raises:
        StoreUnavailable: the store cannot be read; its ``reason`` is a :class:`ReadFailure`.
        SchemaError: a newer stateward wrote the store.
        InvalidArgument: ``path`` names no file, or an option is out of range.
    """
    _check_limit(text_bytes, "text_bytes")
    if not isinstance(busy_timeout, int | float) or not 0 <= busy_timeout < 1e9:
        raise InvalidArgument("busy_timeout", expected="seconds >= 0", got=busy_timeout)
    if isinstance(path, str) and is_dsn(path):
        from ._pg_reader import open_postgres_reader

        return open_postgres_reader(
            path, schema=schema, text_bytes=text_bytes, timeout=busy_timeout
        )
    if schema != "stateward":
        raise InvalidArgument("schema", expected="only with a PostgreSQL DSN", got=schema)
    name = _file_path(path)
    _check_file(name)
    uri = f"{PurePath(os.path.abspath(name)).as_uri()}?mode=ro"
    try:
        db, version = _begin(uri, name, busy_timeout)
    except StoreUnavailable as error:
        cause = error.__cause__
        code = getattr(cause, "sqlite_errorcode", 0)
        primary = code & 0xFF if isinstance(code, int) else 0
        if primary not in _NO_SHM or os.path.exists(name + "-wal"):
            raise
        # A WAL database in a folder this process cannot write, closed cleanly: SQLite
        # cannot create the -shm file a reader needs. Without a -wal file there is no writer
        # (one would have made it) and the file alone is the database: read it immutable.
        db, version = _begin(f"{uri}&immutable=1", name, busy_timeout)
    return StoreReader(name, _SqliteEngine(name, db), version, text_bytes)

"""The PostgreSQL store, on asyncpg: one writer connection, one reader connection.

A batch is one statement: a ``WITH`` of multi-row inserts (``unnest`` of one array a column),
an upsert of the heads and documents, and the retention's delete, which PostgreSQL runs as
one transaction and commits before answering; with ``synchronous_commit`` on (``FULL``, the
default) the commit is on the server's disk first. So a batch costs one round trip.

Errors are translated here, at one boundary. A lost connection (the backend terminated, the
server restarted), a statement timeout, a serialization failure or too many connections is
transient: the connection is dropped, opened again and the batch retried. A commit whose
connection was lost has an unknown outcome: before it is retried or reported, the stored
revisions of its resources are read again, and a batch found stored counts as committed. A
value PostgreSQL refuses (a NUL character in text) fails that write alone; a full disk or a
refused login fails the batch with :class:`~stateward.runtime.StoreUnavailable`.

The tables live in their own schema (``stateward`` by default), created on first open;
another application's tables in that schema are refused, and so is a newer schema.
"""

from __future__ import annotations

import asyncio
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

try:
    import asyncpg
except ImportError:  # the `postgres` extra is not installed: PostgresStore says so
    asyncpg = None

from ._check import (
    check_ids,
    check_text,
)
from ._env import Clock
from ._errors import InvalidArgument, ResourceQuarantined, SchemaError, StoreUnavailable
from ._sql import HEAD_COLUMNS, RECORD_COLUMNS, SqlQueries, numbered
from ._sqlite import Durability
from ._store import (
    Loaded,
    Retention,
    Write,
    _rows,
    _Transient,
)

__all__ = (
    "PostgresStore",
    "open_postgres_store",
    "redact_dsn",
    "is_dsn",
    "POSTGRES_SCHEMA_VERSION",
)

_T = TypeVar("_T")

#: Forward migrations; the schema version is the number applied. Ids and keys compare in
#: byte order (``COLLATE "C"``), as SQLite compares them, so pages come in the same order.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE resources (
        id text COLLATE "C" PRIMARY KEY,
        kind text COLLATE "C" NOT NULL,
        state text NOT NULL,
        revision bigint NOT NULL,
        updated double precision NOT NULL,
        snapshot bytea,
        snapshot_revision bigint NOT NULL DEFAULT 0,
        snapshot_state text
    );
    CREATE INDEX resources_kind ON resources (kind, id);
    CREATE TABLE journal (
        resource_id text COLLATE "C" NOT NULL,
        sequence bigint NOT NULL,
        source text NOT NULL,
        event text NOT NULL,
        target text NOT NULL,
        task_id text,
        cause text,
        at double precision NOT NULL,
        payload bytea,
        PRIMARY KEY (resource_id, sequence)
    );
    CREATE INDEX journal_at ON journal (at, resource_id, sequence);
    CREATE TABLE quarantine (
        resource_id text COLLATE "C" PRIMARY KEY,
        reason text NOT NULL
    );
    CREATE TABLE documents (
        collection text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        resource_id text COLLATE "C",
        status text COLLATE "C",
        dedupe text COLLATE "C",
        created double precision NOT NULL,
        updated double precision NOT NULL,
        body bytea NOT NULL,
        PRIMARY KEY (collection, key)
    );
    CREATE INDEX documents_resource ON documents (collection, resource_id, created, key);
    CREATE INDEX documents_status ON documents (collection, status, created, key);
    CREATE INDEX documents_dedupe ON documents (collection, resource_id, dedupe);
    """,
)
POSTGRES_SCHEMA_VERSION = len(_MIGRATIONS)
_TABLES = frozenset(re.findall(r"CREATE TABLE (\w+)", "".join(_MIGRATIONS)))
#: Taken (for the transaction) by whoever creates or migrates a schema.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('stateward.schema:' || $1))"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# The whole batch in one statement. Its parts see the same snapshot; rows the retention
# would delete at once are not inserted (see PostgresStore._write).
_WRITE_BATCH = """
WITH journal_rows AS (
    INSERT INTO journal (resource_id, sequence, source, event, target, task_id, cause, at,
                         payload)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::float8[], $9::bytea[])
), heads AS (
    INSERT INTO resources AS r (id, kind, state, revision, updated, snapshot,
                                snapshot_revision, snapshot_state)
    SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::bigint[], $14::float8[],
                         $15::bytea[], $16::bigint[], $17::text[])
    ON CONFLICT (id) DO UPDATE SET
        state = excluded.state,
        revision = excluded.revision,
        updated = excluded.updated,
        snapshot = coalesce(excluded.snapshot, r.snapshot),
        snapshot_revision = CASE WHEN excluded.snapshot IS NULL
            THEN r.snapshot_revision ELSE excluded.snapshot_revision END,
        snapshot_state = CASE WHEN excluded.snapshot IS NULL
            THEN r.snapshot_state ELSE excluded.snapshot_state END
), docs AS (
    INSERT INTO documents (collection, key, version, resource_id, status, dedupe, created,
                           updated, body)
    SELECT * FROM unnest($18::text[], $19::text[], $20::bigint[], $21::text[], $22::text[],
                         $23::text[], $24::float8[], $25::float8[], $26::bytea[])
    ON CONFLICT (collection, key) DO UPDATE SET
        version = excluded.version,
        resource_id = excluded.resource_id,
        status = excluded.status,
        dedupe = excluded.dedupe,
        updated = excluded.updated,
        body = excluded.body
), pruned AS (
    DELETE FROM journal j USING unnest($27::text[], $28::bigint[]) AS p (id, upto)
    WHERE j.resource_id = p.id AND j.sequence <= p.upto
    RETURNING 1
)
SELECT count(*) FROM pruned
"""

#: SQLSTATEs worth retrying: the connection is gone or refused for now (class 08, shutdown,
#: starting up), a statement timeout, a serialization failure or deadlock, too many clients.
_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "57014", "40001", "40P01", "53300"})
_REASONS = {
    "53100": "disk full",
    "53200": "out of memory",
    "53300": "too many connections",
    "57014": "statement timeout",
    "57P01": "the server is shutting down",
    "57P02": "the server is shutting down",
    "57P03": "the server is starting up",
    "40001": "serialization failure",
    "40P01": "deadlock",
    "28P01": "password authentication failed",
    "28000": "login refused",
    "3D000": "the database does not exist",
    "25006": "the server is read-only (a standby?)",
}
_OPEN_ADVICE = {
    "28P01": "nothing was changed: check the user and password of the DSN",
    "28000": "nothing was changed: check the user of the DSN and the server's pg_hba.conf",
    "3D000": "nothing was changed: create the database (createdb) or fix the DSN's database",
}
#: Data PostgreSQL refuses although the store's checks let it through (a NUL in text).
_DATA_CLASSES = ("22", "23", "54")


def is_dsn(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def tables_in(db: asyncpg.Connection, schema: str) -> set[str]:
    """The names of the tables ``schema`` holds (none when it does not exist)."""
    rows = await db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {str(name) for (name,) in rows}


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password hidden, for messages and logs.

    Raises:
        InvalidArgument: ``dsn`` is not a str.
    """
    if type(dsn) is not str:
        raise InvalidArgument("dsn", expected="a str (a PostgreSQL DSN)", got=dsn)
    try:
        parts = urllib.parse.urlsplit(dsn)
        if parts.password is None:
            return dsn
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))
    except ValueError:
        return "<a DSN that cannot be parsed>"


def _lost(error: BaseException) -> bool:
    """Whether ``error`` means the connection is gone (or unusable) rather than a refusal."""
    if isinstance(error, asyncpg.PostgresError):
        state = error.sqlstate or ""
        return state.startswith("08") or state in ("57P01", "57P02", "57P03")
    # InternalClientError: the protocol is in a state no statement can use (a backend that
    # was terminated under a statement in flight).
    return isinstance(
        error, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError | TimeoutError
    )


def _translate(operation: str, error: BaseException) -> StoreUnavailable | _Transient | None:
    """The typed failure of ``error``; None for data PostgreSQL refused (the caller's fault)."""
    state = getattr(error, "sqlstate", None) or ""
    if state.startswith(_DATA_CLASSES):
        return None
    if _lost(error):
        lost = "cannot connect to the server" if operation == "open" else "connection lost"
        reason = _REASONS.get(state, lost)
    else:
        reason = _REASONS.get(state, "database error")
    advice = _OPEN_ADVICE.get(state) if operation == "open" else None
    failure = StoreUnavailable(
        operation, reason=reason, detail=f"{type(error).__name__}: {error}", advice=advice
    )
    if _lost(error) or state in _TRANSIENT_STATES:
        return _Transient(failure)
    return failure


class _Link:
    """One connection, opened on first use and again after it was lost.

    A connection runs one statement at a time: callers take ``lock`` around their use.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self.connection: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> asyncpg.Connection:
        if self.connection is None or self.connection.is_closed():
            self.connection = None
            self.connection = await asyncpg.connect(**self._options)
        return self.connection

    def drop(self) -> None:
        """Forget the connection without waiting for a server that may be gone."""
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                connection.terminate()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """``rows`` as one list per column (``unnest`` takes an array a column)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _last_of_each(rows: list[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """Rows with one per key (the first ``width`` columns): an upsert may touch a row once.

    The last row of a key wins; a head keeps the newest snapshot of the batch, and a
    document the ``created`` of its first version.
    """
    merged: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        key = row[:width]
        earlier = merged.get(key)
        if earlier is not None:
            if width == 1 and row[5] is None:  # a head without a snapshot of its own
                row = (*row[:5], *earlier[5:])
            elif width == 2:  # a document
                row = (*row[:6], earlier[6], *row[7:])
        merged[key] = row
    return list(merged.values())


class PostgresStore(SqlQueries):
    """A durable store in a PostgreSQL database. Open it with :func:`open_postgres_store`."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "stateward",
        create: bool = True,
        durability: Durability = Durability.FULL,
        clock: Clock | None = None,
        max_batch: int = 1000,
        retries: int = 6,
        backoff: float = 0.05,
        connect_timeout: float = 5.0,
        statement_timeout: float = 30.0,
        retention: Retention = Retention(),  # noqa: B008  # frozen, so sharing is safe
    ) -> None:
        if asyncpg is None:
            raise StoreUnavailable(
                "open",
                reason="the PostgreSQL driver asyncpg is not installed",
                advice="nothing was opened: install stateward[postgres]",
            )
        if type(dsn) is not str or not dsn or "\x00" in dsn:
            shown = redact_dsn(dsn) if type(dsn) is str else dsn
            raise InvalidArgument(
                "dsn", expected="a PostgreSQL DSN (postgresql://user@host:port/db)", got=shown
            )
        if type(schema) is not str or not _SCHEMA_NAME.fullmatch(schema):
            raise InvalidArgument(
                "schema",
                expected="a schema name of lowercase letters, digits and _ (at most 63)",
                got=schema,
            )
        if type(create) is not bool:
            raise InvalidArgument("create", expected="a bool", got=create)
        if not isinstance(durability, Durability):
            raise InvalidArgument("durability", expected="a Durability", got=durability)
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
        ):
            if not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InvalidArgument(name, expected="seconds > 0", got=value)
        super().__init__(
            clock=clock, max_batch=max_batch, retries=retries, backoff=backoff, retention=retention
        )
        self.dsn = redact_dsn(dsn)
        self.schema = schema
        self.create = create
        self.durability = durability
        settings = {
            "search_path": schema,
            "application_name": "stateward",
            "synchronous_commit": "on" if durability is Durability.FULL else "off",
            "statement_timeout": str(int(statement_timeout * 1000)),
        }
        options = {
            "dsn": dsn,
            "timeout": connect_timeout,
            # A server that stops answering (without closing) is given up client-side too.
            "command_timeout": statement_timeout + connect_timeout,
            "server_settings": settings,
        }
        self._writer_link = _Link(options)
        self._reader_link = _Link(options)
        self._open = False
        # The batch whose connection was lost as it committed: was it stored or not?
        self._unsure: list[Write] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn!r}, schema={self.schema!r})"

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> PostgresStore:
        """Connect, create the schema if allowed, and bring it up to date.

        Raises:
            SchemaError: the schema was written by a newer stateward.
            StoreUnavailable: the server cannot be reached (after the retries), refuses the
                login, lacks the database; or the schema is missing (without ``create``) or
                holds another application's tables.
        """
        try:
            await self._with_retries(lambda: self._guard("open", self._writer_link, self._prepare))
            rows = await self._fetch("open", "SELECT resource_id, reason FROM quarantine", ())
        except ValueError as exc:  # asyncpg cannot parse the DSN
            await self._close_connections()
            raise InvalidArgument(
                "dsn", expected=f"a PostgreSQL DSN asyncpg can parse ({exc})", got=self.dsn
            ) from exc
        except BaseException:
            await self._close_connections()
            raise
        self._quarantined.update({str(r): str(why) for r, why in rows})
        self._open = True
        return self

    async def _prepare(self, db: asyncpg.Connection) -> None:
        if await self._stored_version(db) < POSTGRES_SCHEMA_VERSION:
            async with db.transaction():
                await db.execute(_MIGRATION_LOCK, self.schema)
                found = await self._stored_version(db)  # another process may have migrated
                if found == 0:
                    await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await db.execute("CREATE TABLE schema_version (version integer NOT NULL)")
                for version in range(found + 1, POSTGRES_SCHEMA_VERSION + 1):
                    await db.execute(_MIGRATIONS[version - 1])
                    await db.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    async def _stored_version(self, db: asyncpg.Connection) -> int:
        """The schema's version; 0 for a schema to create; raise if it is not ours."""
        tables = await tables_in(db, self.schema)
        where = f"schema {self.schema!r} of {self.dsn}"
        if not tables:
            if not self.create:
                raise StoreUnavailable(
                    "open",
                    reason=f"{where} holds no stateward tables",
                    advice="nothing was changed: pass create=True to create them, or name the "
                    "schema a store wrote",
                )
            return 0
        if "schema_version" not in tables:
            listing = ", ".join(sorted(tables)[:5])
            raise StoreUnavailable(
                "open",
                reason=f"{where} is not a stateward schema",
                detail=f"it has no schema_version table; its tables: {listing}",
                advice="nothing was changed: name another schema (schema=...) for stateward",
            )
        found = await db.fetchval("SELECT max(version) FROM schema_version")
        found = 0 if found is None else int(found)
        if found > POSTGRES_SCHEMA_VERSION:
            raise SchemaError(where, found=found, supported=POSTGRES_SCHEMA_VERSION)
        missing = _TABLES - tables if found else frozenset()
        if missing:
            raise StoreUnavailable(
                "open",
                reason=f"{where} is not a stateward schema",
                detail=f"its schema_version says {found}, but it lacks "
                + ", ".join(sorted(missing)),
                advice="nothing was changed: name another schema (schema=...) for stateward",
            )
        return found

    async def aclose(self) -> None:
        """Finish queued writes, then close both connections."""
        await self._stop_writer()
        await self._close_connections()

    async def _close_connections(self) -> None:
        self._open = False
        await self._writer_link.close()
        await self._reader_link.close()

    async def __aenter__(self) -> PostgresStore:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the one boundary ---------------------------------------------------------------

    async def _guard(
        self,
        operation: str,
        link: _Link,
        call: Callable[[asyncpg.Connection], Awaitable[_T]],
    ) -> _T:
        """Run ``call`` on ``link``'s connection, its failures translated."""
        try:
            async with link.lock:
                return await call(await link.get())
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if _lost(exc):
                link.drop()
            failure = _translate(operation, exc)
            if failure is None:
                raise
            raise failure from exc

    async def _fetch(self, operation: str, sql: str, params: Sequence[Any]) -> list[Any]:
        """Rows of a read on the reader connection (``?`` placeholders or ``$n``)."""
        statement = numbered(sql)

        async def query(db: asyncpg.Connection) -> list[Any]:
            return list(await db.fetch(statement, *params))

        rows: list[Any] = await self._read(operation, query, params)
        return rows

    async def _read(
        self, operation: str, call: Callable[[asyncpg.Connection], Awaitable[_T]], params: Any
    ) -> _T:
        """``call`` on the reader connection, reconnecting as a commit does.

        A value PostgreSQL cannot take (a NUL in text) is the caller's InvalidArgument.
        """
        if not self._open and operation != "open":
            raise StoreUnavailable("use", reason="the store is closed or was never opened")
        try:
            result: _T = await self._with_retries(
                lambda: self._guard(operation, self._reader_link, call)
            )
        except asyncpg.PostgresError as exc:
            raise InvalidArgument(
                "query", expected=f"values PostgreSQL can store ({exc})", got=tuple(params)
            ) from exc
        return result

    # -- writing ------------------------------------------------------------------------

    async def _revisions(self, resource_ids: list[str]) -> dict[str, int]:
        # Text with a NUL cannot be stored, so it is not asked for: its write fails alone.
        resource_ids = [r for r in resource_ids if "\x00" not in r]
        rows = await self._fetch_for_commit(
            "SELECT id, revision FROM resources WHERE id = ANY($1::text[])", resource_ids
        )
        return {str(r): int(v) for r, v in rows}

    async def _document_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        keys = [(c, k) for c, k in keys if "\x00" not in c + k]
        rows = await self._fetch_for_commit(
            "SELECT d.collection, d.key, d.version FROM documents d "
            "JOIN unnest($1::text[], $2::text[]) AS k (c, k) ON d.collection = k.c "
            "AND d.key = k.k",
            [c for c, _ in keys],
            [k for _, k in keys],
        )
        return {(str(c), str(k)): int(v) for c, k, v in rows}

    async def _fetch_for_commit(self, sql: str, *params: Any) -> list[Any]:
        """A read of the write path: transient failures are the committer's to retry."""

        async def query(db: asyncpg.Connection) -> list[Any]:
            return list(await db.fetch(sql, *params))

        return await self._guard("commit", self._reader_link, query)

    async def _write(self, writes: list[Write]) -> int:
        # The retry of a batch whose commit was cut off: _landed raises while the server
        # cannot say whether it was stored.
        if self._unsure is writes and await self._landed(writes):
            self._unsure = None
            return 0
        self._unsure = None
        journal_rows, head_rows, document_rows, snapshots = _rows(writes)
        prune: list[tuple[str, int]] = []
        skipped = 0
        if snapshots and self.retention.keep != math.inf:
            keep = int(self.retention.keep)
            bounds = {rid: revision - keep for rid, revision in snapshots}
            prune = list(bounds.items())
            kept = [r for r in journal_rows if r[1] > bounds.get(r[0], -1)]
            skipped, journal_rows = len(journal_rows) - len(kept), kept
        heads = _last_of_each(head_rows, 1)
        documents = _last_of_each(document_rows, 2)
        arguments = [
            *_columns(journal_rows, 9),
            *_columns(heads, 8),
            *_columns(documents, 9),
            *_columns(prune, 2),
        ]

        async def transaction(db: asyncpg.Connection) -> int:
            return int(await db.fetchval(_WRITE_BATCH, *arguments))

        try:
            return skipped + await self._guard("commit", self._writer_link, transaction)
        except _Transient as transient:
            if _lost(transient.__cause__ or transient):
                self._unsure = writes
            raise

    async def _landed(self, writes: list[Write]) -> bool:
        """Whether the batch whose connection was lost is stored: read its revisions again.

        Raises:
            _Transient: the server cannot be asked yet; the batch stays unresolved.
        """
        expected: dict[str, int] = {}
        versions: dict[tuple[str, str], int] = {}
        for write in writes:
            if write.record is not None:
                expected[write.record.resource_id] = write.record.sequence
            for d in write.documents:
                versions[d.collection, d.key] = d.version
        try:
            stored = await self._revisions(list(expected)) if expected else {}
            stored_versions = await self._document_versions(list(versions)) if versions else {}
        except _Transient as transient:
            error = transient.error
            raise _Transient(
                StoreUnavailable(
                    "commit",
                    reason="connection lost as the batch committed, and the server cannot be "
                    "asked whether it was stored",
                    detail=error.detail,
                    advice="the outcome is unknown: read the resources again once the server "
                    "is back (the store does so before its next write of them)",
                )
            ) from transient.__cause__
        found = [stored.get(rid, 0) >= sequence for rid, sequence in expected.items()]
        found += [stored_versions.get(k, 0) >= v for k, v in versions.items()]
        self._log.warning(
            "commit outcome resolved after a lost connection",
            writes=len(writes),
            stored=all(found),
        )
        return all(found)

    # -- reading ------------------------------------------------------------------------

    async def load(self, resource_id: str) -> Loaded | None:
        """The stored resource, or None if it was never written.

        Raises:
            ResourceQuarantined: its rows cannot be decoded; every other resource stays
                readable.
        """
        check_text("resource_id", resource_id)
        if resource_id in self._quarantined:
            raise ResourceQuarantined(resource_id, reason=self._quarantined[resource_id])
        found = await self._load_rows([resource_id], quarantine_raises=True)
        return found.get(resource_id)

    async def load_many(self, resource_ids: Sequence[str]) -> dict[str, Loaded]:
        """Several resources at once; quarantined ones are left out (and recorded)."""
        ids = check_ids(resource_ids)
        found: dict[str, Loaded] = {}
        for start in range(0, len(ids), 2000):
            found.update(await self._load_rows(ids[start : start + 2000], quarantine_raises=False))
        return found

    async def _load_rows(self, ids: list[str], *, quarantine_raises: bool) -> dict[str, Loaded]:
        # Heads and tails from one snapshot: a commit between them cannot tear a resource.
        async def read(db: asyncpg.Connection) -> tuple[list[Any], list[Any]]:
            async with db.transaction(isolation="repeatable_read", readonly=True):
                heads = await db.fetch(
                    f"SELECT {HEAD_COLUMNS} FROM resources WHERE id = ANY($1::text[])", ids
                )
                if not heads:
                    return [], []
                tails = await db.fetch(
                    f"SELECT {', '.join('j.' + c.strip() for c in RECORD_COLUMNS.split(','))} "
                    "FROM journal j JOIN resources r ON r.id = j.resource_id "
                    "WHERE r.id = ANY($1::text[]) AND j.sequence > r.snapshot_revision "
                    "ORDER BY j.resource_id, j.sequence",
                    ids,
                )
                return list(heads), list(tails)

        heads, tails = await self._read("load", read, ids)
        return await self._assemble(heads, tails, quarantine_raises=quarantine_raises)

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Take a resource out of service, durably: it stays quarantined after a restart."""
        check_text("resource_id", resource_id)
        check_text("reason", reason)
        self._quarantined[resource_id] = reason
        self._log.error("resource quarantined", resource_id=resource_id, reason=reason)
        try:
            await self._fetch(
                "quarantine",
                "INSERT INTO quarantine (resource_id, reason) VALUES ($1, $2) "
                "ON CONFLICT (resource_id) DO UPDATE SET reason = excluded.reason",
                (resource_id, reason.replace("\x00", "\\0")),
            )
        except (StoreUnavailable, InvalidArgument) as exc:
            # The quarantine holds in memory; it is re-detected on the next open anyway.
            self._log.warning("quarantine not persisted", resource_id=resource_id, error=str(exc))


def open_postgres_store(
    dsn: str,
    *,
    schema: str = "stateward",
    create: bool = True,
    durability: Durability = Durability.FULL,
    clock: Clock | None = None,
    max_batch: int = 1000,
    retries: int = 6,
    backoff: float = 0.05,
    connect_timeout: float = 5.0,
    statement_timeout: float = 30.0,
    retention: Retention = Retention(),  # noqa: B008  # frozen, so sharing is safe
) -> PostgresStore:
    """A PostgreSQL store to open with ``async with``; see :class:`PostgresStore`.

    Args:
        dsn: where the database is, ``postgresql://user[:password]@host:port/database``
            (libpq's keywords and ``PG*`` environment variables apply as asyncpg reads them).
        schema: the schema that holds stateward's tables; one per store image.
        create: create the schema and its tables where they are missing (the default).
        durability: ``FULL`` (``synchronous_commit=on``: a commit is on the server's disk
            before it is acknowledged, the default) or ``NORMAL`` (``off``: a server crash may
            lose the last commits, never a client crash).
        clock: for retry backoff.
        max_batch: transitions per transaction at most (group commit).
        retries: how often a transient failure (a lost connection, a statement timeout) is
            retried before the batch fails; the default rides out a server restart of about
            three seconds.
        backoff: the first retry's delay in seconds; doubled each time.
        connect_timeout: seconds to wait for a connection.
        statement_timeout: seconds a statement may run on the server.
        retention: how much journal to keep; all of it by default.
    """
    return PostgresStore(
        dsn,
        schema=schema,
        create=create,
        durability=durability,
        clock=clock,
        max_batch=max_batch,
        retries=retries,
        backoff=backoff,
        connect_timeout=connect_timeout,
        statement_timeout=statement_timeout,
        retention=retention,
    )

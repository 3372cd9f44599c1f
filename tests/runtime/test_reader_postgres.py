"""The store reader on a PostgreSQL schema: the same rows as on SQLite, one read-only snapshot,
bounded cells, and typed failures."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from stateward.runtime import (
    POSTGRES_SCHEMA_VERSION,
    Document,
    InvalidArgument,
    ReadFailure,
    SchemaError,
    Store,
    StoreReader,
    StoreUnavailable,
    TransitionRecord,
    Write,
    open_postgres_store,
    open_sqlite_store,
    open_store_reader,
    redact_dsn,
)
from stateward.testing import PostgresServer


async def fill(store: Store) -> None:
    """Two lamps (lamp-1 with three transitions, lamp-2 quarantined) and three tasks."""

    def flip(resource_id: str, sequence: int, payload: object = None) -> TransitionRecord:
        return TransitionRecord(
            resource_id, sequence, "off", "flip", "on", None, None, float(sequence), payload
        )

    def task(key: str, resource_id: str, status: str, created: float) -> Document:
        return Document("task", key, 1, b"\x80", resource_id, status, None, created, created)

    for sequence in (1, 2, 3):
        await store.commit(Write("lamp", flip("lamp-1", sequence, {"n": sequence})))
    tasks = (
        task("t-1", "lamp-1", "succeeded", 1.0),
        task("t-2", "lamp-1", "parked", 2.0),
        task("t-3", "lamp-2", "parked", 3.0),
    )
    await store.commit(Write("lamp", flip("lamp-2", 1), documents=tasks))
    await store.quarantine("lamp-2", "a bad record")


@pytest.fixture
async def schema(postgres: PostgresServer, postgres_schema: str) -> str:
    """A schema holding the lamps."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await fill(store)
    return postgres_schema


def everything(reader: StoreReader) -> list[Any]:
    """Every view the reader has of the lamps, without the path."""
    return [
        reader.heads(),
        reader.heads(kind="lamp", limit=1),
        reader.heads(kind="door"),
        reader.head("lamp-2"),
        reader.head("lamp-9"),
        reader.journal("lamp-1"),
        reader.journal("lamp-1", limit=2, payload_bytes=2),
        reader.journal_count("lamp-1"),
        list(reader.documents("task")),
        list(reader.documents("task", status="parked", oldest_first=True)),
        list(reader.documents("task", resource_id="lamp-1", limit=1, body_bytes=1)),
        reader.document("task", "t-2"),
        reader.document("task", "t-9"),
        reader.document_count("task"),
        reader.document_count("task", resource_id="lamp-1", status="parked"),
        reader.counts(),
    ]


async def test_reads_what_the_sqlite_reader_reads(
    postgres: PostgresServer, schema: str, tmp_path: Path
) -> None:
    """The same writes read back the same heads, journal, documents and counts."""
    path = tmp_path / "lamps.db"
    async with open_sqlite_store(path) as store:
        await fill(store)
    with open_store_reader(path) as reader:
        expected = everything(reader)
    with open_store_reader(postgres.dsn, schema=schema) as reader:
        assert (reader.schema, reader.schema_version) == (schema, POSTGRES_SCHEMA_VERSION)
        assert reader.latest_version == POSTGRES_SCHEMA_VERSION
        assert reader.has_documents
        assert everything(reader) == expected
    assert expected[3].quarantined == "a bad record"
    assert [r.sequence for r in expected[5]] == [3, 2, 1]


async def test_reads_one_snapshot_and_writes_nothing(postgres: PostgresServer, schema: str) -> None:
    """A commit after the reader opened is not seen; the reader's transaction refuses writes."""
    with open_store_reader(postgres.dsn, schema=schema) as reader:
        assert reader.journal_count("lamp-1") == 3
        async with open_postgres_store(postgres.dsn, schema=schema) as store:
            later = TransitionRecord("lamp-1", 4, "on", "flip", "off", None, None, 4.0, None)
            await store.commit(Write("lamp", later))
        assert reader.journal_count("lamp-1") == 3
        assert reader.head("lamp-1").revision == 3  # type: ignore[union-attr]
        with pytest.raises(StoreUnavailable) as info:
            reader._rows("DELETE FROM journal")
        assert info.value.reason == ReadFailure.UNREADABLE
        assert "read-only" in str(info.value)
    with open_store_reader(postgres.dsn, schema=schema) as reader:
        assert reader.journal_count("lamp-1") == 4


def test_cells_are_read_bounded(postgres: PostgresServer, schema: str) -> None:
    """A huge state and payload cross the network cut to the bounds, and say so."""
    state = "é" * 100_000  # 200,000 bytes
    postgres.execute("UPDATE resources SET state = $1 WHERE id = 'lamp-2'", state, schema=schema)
    postgres.execute(
        "UPDATE journal SET payload = $1 WHERE resource_id = 'lamp-1' AND sequence = 3",
        b"\x01" * 50_000,
        schema=schema,
    )
    with open_store_reader(postgres.dsn, schema=schema, text_bytes=11) as reader:
        head = reader.head("lamp-2")
        newest = reader.journal("lamp-1", limit=1, payload_bytes=100)[0]
    assert head is not None
    assert head.state == "é" * 5 + "… [199,989 bytes cut]"
    assert head.cut == {"state": 199_989, "quarantined": 1}
    assert (newest.payload.type, newest.payload.size) == ("blob", 50_000)
    assert newest.payload.data == b"\x01" * 100
    assert not newest.payload.whole


async def test_reads_from_inside_a_running_event_loop(
    postgres: PostgresServer, schema: str
) -> None:
    """The reader runs its driver on a loop of its own, so async code can call it."""
    assert asyncio.get_running_loop() is not None
    with open_store_reader(postgres.dsn, schema=schema) as reader:
        assert [h.id for h in reader.heads()] == ["lamp-1", "lamp-2"]


def test_a_closed_reader_refuses_reads(postgres: PostgresServer, schema: str) -> None:
    """After close, calls and iterations in progress fail with a typed error."""
    reader = open_store_reader(postgres.dsn, schema=schema)
    documents = reader.documents("task")
    assert next(documents).key == "t-3"
    reader.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        next(documents)
    with pytest.raises(StoreUnavailable, match="closed"):
        reader.heads()


def test_a_lost_connection_is_a_typed_failure(postgres: PostgresServer, schema: str) -> None:
    """The server terminating the reader's backend fails the next read as UNREADABLE."""
    with open_store_reader(postgres.dsn, schema=schema) as reader:
        postgres.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'stateward inspect'"
        )
        with pytest.raises(StoreUnavailable) as info:
            reader.heads()
    assert info.value.reason == ReadFailure.UNREADABLE


def reason_of(dsn: str, schema: str = "stateward") -> StoreUnavailable:
    with pytest.raises(StoreUnavailable) as info:
        open_store_reader(dsn, schema=schema).close()
    return info.value


def with_password(dsn: str, password: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    user, _, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{password}@{host}"))


def test_an_unreachable_server_is_cannot_connect(postgres: PostgresServer) -> None:
    """A closed port or a missing database: CANNOT_CONNECT, the password never shown."""
    parts = urllib.parse.urlsplit(with_password(postgres.dsn, "s3cret"))
    closed = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + ":1"))
    missing = urllib.parse.urlunsplit(parts._replace(path="/no_such_database"))
    for dsn in (closed, missing):
        error = reason_of(dsn)
        assert error.reason == ReadFailure.CANNOT_CONNECT
        assert "s3cret" not in str(error)
        assert "check that the server runs" in str(error)


def test_foreign_and_unfinished_schemas_are_refused(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    """No tables, no schema_version, an empty version, missing tables: each its reason."""
    assert reason_of(postgres.dsn, postgres_schema).reason == ReadFailure.NOT_STATEWARD
    postgres.execute(f'CREATE SCHEMA "{postgres_schema}"')
    postgres.execute("CREATE TABLE orders (id int)", schema=postgres_schema)
    error = reason_of(postgres.dsn, postgres_schema)
    assert error.reason == ReadFailure.NOT_STATEWARD
    assert "orders" in str(error)
    postgres.execute("CREATE TABLE schema_version (version integer)", schema=postgres_schema)
    assert reason_of(postgres.dsn, postgres_schema).reason == ReadFailure.UNFINISHED
    postgres.execute("INSERT INTO schema_version VALUES (1)", schema=postgres_schema)
    error = reason_of(postgres.dsn, postgres_schema)
    assert error.reason == ReadFailure.MISSING_TABLES
    assert "journal" in str(error)


def test_a_newer_schema_is_refused(postgres: PostgresServer, schema: str) -> None:
    """A schema a newer stateward wrote is a SchemaError, as in the store."""
    postgres.execute(
        "INSERT INTO schema_version VALUES ($1)", POSTGRES_SCHEMA_VERSION + 1, schema=schema
    )
    with pytest.raises(SchemaError) as info:
        open_store_reader(postgres.dsn, schema=schema)
    assert info.value.found == POSTGRES_SCHEMA_VERSION + 1


def test_bad_arguments_are_typed(postgres: PostgresServer) -> None:
    """A schema that is no name, or a DSN asyncpg cannot parse: InvalidArgument."""
    with pytest.raises(InvalidArgument, match="schema"):
        open_store_reader(postgres.dsn, schema='x"; DROP')
    with pytest.raises(InvalidArgument, match="dsn"):
        open_store_reader("postgresql://host:notaport/db")


def test_a_schema_is_only_for_a_dsn(tmp_path: Path) -> None:
    """A file has no schemas: naming one is an InvalidArgument, not ignored."""
    with pytest.raises(InvalidArgument, match="only with a PostgreSQL DSN"):
        open_store_reader(tmp_path / "state.db", schema="other")


def test_redact_dsn_hides_the_password_and_types_its_input() -> None:
    """The password becomes ***; what is no str is an InvalidArgument."""
    assert (
        redact_dsn("postgresql://app:s3cret@db:5432/cloud") == "postgresql://app:***@db:5432/cloud"
    )
    assert redact_dsn("postgresql://app@db/cloud") == "postgresql://app@db/cloud"
    with pytest.raises(InvalidArgument, match="dsn"):
        redact_dsn(123)  # type: ignore[arg-type]

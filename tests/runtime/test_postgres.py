"""PostgresStore on a real server: its schema, its typed errors, and the server's faults.

The contract it shares with the other stores runs in test_store.py, test_store_faults.py and
test_store_queries.py. Here: what only a server can do to a store. Its backend is terminated
(``pg_terminate_backend``) while a batch waits, a statement outlives ``statement_timeout``,
the server is killed (``pg_ctl stop -m immediate``) and started again, and the reply to a
commit is lost after the server committed. Nothing acknowledged is lost, nothing is written
twice, and the store reconnects on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from stateward.runtime import (
    Document,
    InvalidArgument,
    PostgresStore,
    ResourceQuarantined,
    RevisionConflict,
    SchemaError,
    StoreUnavailable,
    TransitionRecord,
    Write,
    open_postgres_store,
)
from stateward.runtime._postgres import POSTGRES_SCHEMA_VERSION, _translate
from stateward.testing import PostgresServer


def write(resource_id: str, sequence: int, cause: str | None = None) -> Write:
    """A deposit Write of ``resource_id`` at revision ``sequence``, with a snapshot at 1."""
    record = TransitionRecord(resource_id, sequence, "open", "deposit", "open", None, cause, 1.0)
    return Write("account", record, b"\x80" if sequence == 1 else None)


def journal(server: PostgresServer, schema: str) -> list[tuple[Any, ...]]:
    """Every (resource, sequence) row of the journal, as the server holds it."""
    return server.execute(
        "SELECT resource_id, sequence FROM journal ORDER BY resource_id, sequence", schema=schema
    )


@contextlib.asynccontextmanager
async def holding(
    server: PostgresServer, schema: str, sql: str
) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, on ``schema``, in a transaction that ran ``sql``."""
    connection = await asyncpg.connect(server.dsn, server_settings={"search_path": schema})
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(sql)
        try:
            yield connection
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


# -- schema ------------------------------------------------------------------------------


async def test_open_creates_the_schema_at_the_current_version(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await store.commit(write("acct-1", 1))
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert loaded.revision == 1
    versions = postgres.execute("SELECT version FROM schema_version", schema=postgres_schema)
    assert versions == [(v,) for v in range(1, POSTGRES_SCHEMA_VERSION + 1)]


async def test_a_newer_schema_is_refused_and_left_alone(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await store.commit(write("acct-1", 1))
    newer = POSTGRES_SCHEMA_VERSION + 1
    postgres.execute("INSERT INTO schema_version VALUES ($1)", newer, schema=postgres_schema)
    with pytest.raises(SchemaError) as caught:
        async with open_postgres_store(postgres.dsn, schema=postgres_schema):
            pass
    assert (caught.value.found, caught.value.supported) == (newer, POSTGRES_SCHEMA_VERSION)
    assert journal(postgres, postgres_schema) == [("acct-1", 1)]


async def test_another_applications_schema_is_refused_untouched(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    postgres.execute(f'CREATE SCHEMA "{postgres_schema}"')
    postgres.execute("CREATE TABLE orders (id int)", schema=postgres_schema)
    with pytest.raises(StoreUnavailable, match="not a stateward schema") as caught:
        async with open_postgres_store(postgres.dsn, schema=postgres_schema):
            pass
    assert "orders" in str(caught.value)
    tables = postgres.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
        postgres_schema,
    )
    assert tables == [("orders",)]


async def test_create_false_does_not_create_a_missing_schema(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    with pytest.raises(StoreUnavailable, match="holds no stateward tables"):
        async with open_postgres_store(postgres.dsn, schema=postgres_schema, create=False):
            pass
    found = postgres.execute(
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", postgres_schema
    )
    assert found == []


async def test_two_stores_opening_a_new_schema_at_once_both_open(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    """The migration lock makes one create the tables and the other find them."""
    first = open_postgres_store(postgres.dsn, schema=postgres_schema)
    second = open_postgres_store(postgres.dsn, schema=postgres_schema)
    await asyncio.gather(first.open(), second.open())
    try:
        await first.commit(write("acct-1", 1))
        loaded = await second.load("acct-1")
        assert loaded is not None
        assert loaded.revision == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_quarantine_outlives_the_store(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await store.commit(write("acct-1", 1))
        await store.commit(write("acct-2", 1))
        await store.quarantine("acct-1", "its snapshot cannot be decoded")
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        with pytest.raises(ResourceQuarantined, match="cannot be decoded"):
            await store.load("acct-1")
        with pytest.raises(ResourceQuarantined):
            await store.commit(write("acct-1", 2))
        assert (await store.load("acct-2")) is not None
        summaries = {s.resource_id: s.quarantined for s in await store.resources()}
        assert summaries == {"acct-1": "its snapshot cannot be decoded", "acct-2": None}


# -- typed errors at open -----------------------------------------------------------------


async def test_an_unreachable_server_is_store_unavailable_with_the_password_hidden() -> None:
    store = open_postgres_store(
        "postgresql://app:s3cret@127.0.0.1:1/db", retries=1, backoff=0.01, connect_timeout=1
    )
    with pytest.raises(StoreUnavailable, match="cannot connect to the server") as caught:
        await store.open()
    assert caught.value.attempts == 2
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(store)
    assert "app:***@127.0.0.1:1" in repr(store)


async def test_a_dsn_the_driver_cannot_parse_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="dsn") as caught:
        await open_postgres_store("postgresql://u@h:notaport/db").open()
    assert "notaport" in str(caught.value)
    with pytest.raises(InvalidArgument, match="schema"):
        open_postgres_store("postgresql://u@h/db", schema="Robert'); DROP TABLE x;--")


async def test_a_missing_database_says_to_create_it(postgres: PostgresServer) -> None:
    dsn = postgres.dsn.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StoreUnavailable, match="does not exist") as caught:
        await open_postgres_store(dsn, retries=0).open()
    assert "createdb" in str(caught.value)


# -- data PostgreSQL refuses --------------------------------------------------------------


async def test_text_postgresql_refuses_fails_that_write_alone(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    """A NUL in text passes every check SQLite needs; PostgreSQL refuses it for one write."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        futures = [
            store.submit(write("acct-1", 1)),
            store.submit(write("acct-2", 1, cause="a\x00b")),
            store.submit(write("acct-3", 1)),
            store.submit(write("acct-2", 2)),
        ]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert outcomes[0] is None
        assert outcomes[2] is None
        assert isinstance(outcomes[1], InvalidArgument)
        assert isinstance(outcomes[3], RevisionConflict)  # its base never landed
        assert not store.statistics().degraded
        await store.commit(write("acct-2", 1, cause="fixed"))
    assert journal(postgres, postgres_schema) == [("acct-1", 1), ("acct-2", 1), ("acct-3", 1)]


async def test_a_document_key_with_a_nul_fails_alone(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    good = Document("task", "t-1", 1, b"\x80", resource_id="acct-1")
    bad = Document("task", "t\x002", 1, b"\x80", resource_id="acct-1")
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        outcomes = await asyncio.gather(
            store.submit(Write(documents=(good,))),
            store.submit(Write(documents=(bad,))),
            return_exceptions=True,
        )
        assert outcomes[0] is None
        assert isinstance(outcomes[1], InvalidArgument)
        assert await store.get_document("task", "t-1") == good
        with pytest.raises(InvalidArgument):
            await store.get_document("task", "t\x002")


# -- the server's faults ------------------------------------------------------------------


async def test_a_terminated_backend_mid_batch_is_reconnected_and_nothing_lost(
    postgres: PostgresServer, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch waits on a lock; its backend is terminated; the retry commits it once."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await asyncio.gather(*(store.commit(write(f"acct-{i}", 1)) for i in range(10)))
        async with holding(postgres, postgres_schema, "LOCK TABLE journal IN EXCLUSIVE MODE"):
            batch = [asyncio.ensure_future(store.commit(write(f"acct-{i}", 2))) for i in range(10)]
            await asyncio.sleep(0.3)
            assert not any(f.done() for f in batch)
            with caplog.at_level(logging.WARNING, "stateward.store"):
                assert postgres.terminate_store_connections() >= 1
                await asyncio.sleep(0.3)  # the retry is queued behind the lock again
        await asyncio.gather(*batch)
        stats = store.statistics()
        assert stats.retries >= 1
        assert not stats.degraded
    assert "commit outcome resolved after a lost connection" in caplog.text
    assert journal(postgres, postgres_schema) == sorted(
        (f"acct-{i}", s) for i in range(10) for s in (1, 2)
    )


async def test_a_commit_whose_reply_is_lost_is_resolved_not_written_twice(
    postgres: PostgresServer, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server commits, the connection dies before the reply: the store re-reads the
    revisions, finds the batch stored, and acknowledges it without writing it again."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await store.commit(write("acct-1", 1))
        link = store._writer_link
        real_get = link.get

        class ReplyLost:
            """The writer connection, whose next batch commits and then loses its reply."""

            def __init__(self, connection: asyncpg.Connection) -> None:
                self.connection = connection

            async def fetchval(self, *args: Any) -> Any:
                await self.connection.fetchval(*args)
                self.connection.terminate()
                link.get = real_get  # type: ignore[method-assign]
                raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

        async def get() -> Any:
            return ReplyLost(await real_get())

        link.get = get  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, "stateward.store"):
            await store.commit(write("acct-1", 2))
            await store.commit(write("acct-1", 3))
        assert store.statistics().commits == 3
    assert "stored=True" in caplog.text or "'stored': True" in caplog.text
    assert journal(postgres, postgres_schema) == [("acct-1", 1), ("acct-1", 2), ("acct-1", 3)]


async def test_a_statement_timeout_is_retried_then_fails_typed_and_the_store_goes_on(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    async with open_postgres_store(
        postgres.dsn, schema=postgres_schema, statement_timeout=0.2, retries=1, backoff=0.01
    ) as store:
        await store.commit(write("acct-1", 1))
        async with holding(postgres, postgres_schema, "LOCK TABLE journal IN EXCLUSIVE MODE"):
            with pytest.raises(StoreUnavailable, match="statement timeout") as caught:
                await store.commit(write("acct-1", 2))
        assert caught.value.attempts == 2
        assert store.statistics().degraded
        await store.commit(write("acct-1", 2))  # the revision is read again, and it is 1
        assert not store.statistics().degraded
    assert journal(postgres, postgres_schema) == [("acct-1", 1), ("acct-1", 2)]


async def test_a_killed_server_loses_nothing_acknowledged_and_the_store_reconnects(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    """``pg_ctl stop -m immediate`` while commits flow; the server starts again; the same
    store, in the same process, commits again and reads what it acknowledged."""
    acknowledged: list[tuple[str, int]] = []
    store = open_postgres_store(postgres.dsn, schema=postgres_schema, retries=12, backoff=0.05)
    async with store:
        for i in range(50):
            await store.commit(write(f"acct-{i}", 1))
            acknowledged.append((f"acct-{i}", 1))
        await asyncio.to_thread(postgres.control, "kill")
        try:
            during = asyncio.ensure_future(store.commit(write("acct-0", 2)))
            await asyncio.sleep(0.2)
            assert not during.done()
        finally:
            await asyncio.to_thread(postgres.control, "start")
        await during
        acknowledged.append(("acct-0", 2))
        loaded = await store.load("acct-0")
        assert loaded is not None
        assert loaded.revision == 2
        assert store.statistics().retries >= 1
    assert journal(postgres, postgres_schema) == sorted(acknowledged)


async def test_a_store_outlasting_its_retries_fails_typed_then_recovers(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    store = open_postgres_store(postgres.dsn, schema=postgres_schema, retries=1, backoff=0.01)
    async with store:
        await store.commit(write("acct-1", 1))
        await asyncio.to_thread(postgres.control, "stop")
        try:
            with pytest.raises(StoreUnavailable) as caught:
                await store.commit(write("acct-1", 2))
            assert caught.value.attempts == 2
            with pytest.raises(StoreUnavailable):
                await store.load("acct-1")
        finally:
            await asyncio.to_thread(postgres.control, "start")
        await store.commit(write("acct-1", 2))
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert loaded.revision == 2


async def test_concurrent_reads_and_commits_share_the_connections(
    postgres: PostgresServer, postgres_schema: str
) -> None:
    """Reads run one at a time on the reader connection, however many callers there are."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema) as store:
        await asyncio.gather(*(store.commit(write(f"acct-{i}", 1)) for i in range(100)))
        reads = [store.load(f"acct-{i}") for i in range(100)]
        commits = [store.commit(write(f"acct-{i}", 2)) for i in range(100)]
        results = await asyncio.gather(*reads, *commits)
        assert all(loaded is not None for loaded in results[:100])
        assert len(await store.resources()) == 100


@pytest.mark.parametrize(
    ("error", "transient", "reason"),
    [
        (asyncpg.DiskFullError("no space left on device"), False, "disk full"),
        (asyncpg.QueryCanceledError("canceling statement"), True, "statement timeout"),
        (asyncpg.AdminShutdownError("terminating connection"), True, "shutting down"),
        (asyncpg.TooManyConnectionsError("sorry, too many clients"), True, "too many"),
        (asyncpg.SerializationError("could not serialize"), True, "serialization"),
        (asyncpg.ReadOnlySQLTransactionError("read-only"), False, "read-only"),
        (ConnectionResetError("reset by peer"), True, "connection lost"),
    ],
)
def test_server_errors_translate_to_typed_failures(
    error: BaseException, transient: bool, reason: str
) -> None:
    """Faults a test server cannot be made to raise on demand (a full disk) map as the
    faults it can."""
    failure = _translate("commit", error)
    assert failure is not None
    typed = getattr(failure, "error", failure)
    assert isinstance(typed, StoreUnavailable)
    assert reason in typed.reason
    assert (typed is not failure) is transient


def test_store_without_the_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stateward.runtime._postgres.asyncpg", None)
    with pytest.raises(StoreUnavailable, match=r"stateward\[postgres\]"):
        PostgresStore("postgresql://u@h/db")

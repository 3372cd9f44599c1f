"""The PostgreSQL rows: they run at tiny sizes on the test server, clean up after themselves,
and are skipped with a clear note without a server."""

from __future__ import annotations

import pytest

from stateward.bench import ROWS, TINY_SIZES, run_rows
from stateward.bench._pg_rows import SCHEMA_PREFIX, SERVER_VARIABLE, build_pg_recovery_schema
from stateward.bench._store_rows import Probe, expected_resource, resource_id, tally_actor
from stateward.runtime import open_actor_system, open_postgres_store
from stateward.testing import PostgresServer

PG_ROW_NAMES = ("pg.durable_transition", "pg.recovery", "pg.recovery_eager")


def _bench_schemas(postgres: PostgresServer) -> list[str]:
    rows = postgres.execute(
        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", SCHEMA_PREFIX
    )
    return [name for (name,) in rows]


def test_pg_rows_run_against_the_server(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row runs at tiny sizes, reports both sides, and drops every schema it made."""
    monkeypatch.setenv(SERVER_VARIABLE, postgres.dsn)
    report = run_rows(ROWS.select(["pg.*"]), TINY_SIZES)
    assert report.skipped == ()
    assert tuple(r.name for r in report.results) == PG_ROW_NAMES
    durable, lazy, eager = report.results
    for result in report.results:
        assert result.value > 0
        assert result.baseline_value > 0
        assert result.details["server"] == postgres.dsn
        assert "size_note" in result.details
    assert durable.goal is not None
    assert durable.baseline.startswith("raw asyncpg")
    assert float(str(durable.details["avg_batch_size"])) >= 1
    assert durable.p99 is not None
    assert lazy.p50 is not None
    assert str(eager.details["checked_resource"]).startswith("res-")
    assert lazy.details["first_messages"] == TINY_SIZES.recovery_asks
    assert _bench_schemas(postgres) == []


def test_pg_rows_are_skipped_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the variable, each row is skipped with a note saying how to run it."""
    monkeypatch.delenv(SERVER_VARIABLE, raising=False)
    report = run_rows(ROWS.select(["pg.*"]), TINY_SIZES)
    assert report.results == ()
    assert [s.name for s in report.skipped] == list(PG_ROW_NAMES)
    assert all(SERVER_VARIABLE in s.reason for s in report.skipped)


def test_pg_rows_are_skipped_when_the_server_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that refuses connections is a skip note, its password hidden."""
    monkeypatch.setenv(SERVER_VARIABLE, "postgresql://bench:s3cret@127.0.0.1:1/postgres")
    report = run_rows(ROWS.select(["pg.durable_transition"]), TINY_SIZES)
    [skipped] = report.skipped
    assert "cannot reach the PostgreSQL server at postgresql://bench:***@127.0.0.1:1" in (
        skipped.reason
    )
    assert "s3cret" not in skipped.reason


@pytest.mark.parametrize("eager", [False, True])
async def test_recovery_builder_rows_restore_through_the_real_store(
    postgres: PostgresServer, postgres_schema: str, eager: bool
) -> None:
    """The rows COPY writes restore, lazily or eagerly, to what their journal adds up to."""
    async with open_postgres_store(postgres.dsn, schema=postgres_schema):
        pass
    await build_pg_recovery_schema(postgres.dsn, postgres_schema, 6)
    actor = tally_actor()
    async with (
        open_postgres_store(postgres.dsn, schema=postgres_schema) as store,
        open_actor_system(store=store) as system,
    ):
        assert await system.restore({actor.machine.name: actor}, eager=eager) == 6
        for index in (0, 5):
            reply = await system.lookup(resource_id(index)).ask(Probe())
            assert tuple(reply) == expected_resource(index)

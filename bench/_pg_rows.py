"""The PostgreSQL rows: the store rows' workloads on a real server, against raw asyncpg.

``pg.durable_transition`` is ``store.durable_transition`` on a
:class:`~stateward.runtime.PostgresStore` (``Durability.FULL``: ``synchronous_commit=on``).
Its baseline is a raw asyncpg loop writing the rows the store writes for each transition (one
journal row, one head upsert) as one multi-row statement of :data:`RAW_BATCH` transitions per
transaction, the fastest way asyncpg has to insert them, on the same server in the same run.

``pg.recovery`` and ``pg.recovery_eager`` restore the database of the ``store.recovery`` rows
from PostgreSQL: it is built once per run (the real store creates the schema, then ``COPY``
loads the rows an :class:`~stateward.runtime.FSMActor` would have written), and the baseline
reads the same rows with raw asyncpg on one connection.

The server is the one :data:`SERVER_VARIABLE` names; without it the rows are skipped. Each
round runs in a schema of its own, dropped afterwards. As in :mod:`stateward.bench._store_rows`,
the baselines use the bench's own SQL, never the subject's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec

from ._harness import Comparison, Goal, Round, Row, Sizes, compare, loop_runner
from ._stateward import STATEWARD, cycle_machine
from ._store_rows import (
    HEAD_CONFLICT,
    RAW_BATCH,
    RECOVERY_GOAL_RESOURCES,
    RECOVERY_HISTORY,
    RECOVERY_SEED,
    SELECT_HEAD,
    SELECT_HEADS,
    SELECT_LISTING,
    SELECT_TAIL,
    SELECT_TAILS,
    DurableOutcome,
    chosen_resources,
    cycle_step,
    durable_comparison,
    durable_round,
    eager_restore_round,
    lazy_restore_round,
    recovery_rows,
    resource_id,
    tally_actor,
)

__all__ = (
    "PG_ROWS",
    "SERVER_VARIABLE",
    "build_pg_recovery_schema",
    "raw_pg_durable_round",
    "raw_pg_lazy_read_round",
    "raw_pg_eager_read_round",
)

#: The environment variable holding the DSN of the server the rows run on.
SERVER_VARIABLE = "STATEWARD_BENCH_POSTGRES"
#: Every schema the rows create starts so; the rows drop them when done.
SCHEMA_PREFIX = "stateward_bench_"

DURABLE_SUBJECT = f"{STATEWARD} (PostgresStore, FULL)"
RAW_WRITER = "raw asyncpg (unnest, 1k/txn)"
RAW_READER = "raw asyncpg read"

_RAW_WRITE = (
    """
WITH journal_rows AS (
    INSERT INTO journal (resource_id, sequence, source, event, target, task_id, cause, at,
                         payload)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::float8[], $9::bytea[])
)
INSERT INTO resources (id, kind, state, revision, updated, snapshot, snapshot_revision,
                       snapshot_state)
SELECT * FROM unnest($10::text[], $11::text[], $12::text[], $13::bigint[], $14::float8[],
                     $15::bytea[], $16::bigint[], $17::text[])"""
    + HEAD_CONFLICT
)
_JOURNAL_COLUMNS = (
    "resource_id",
    "sequence",
    "source",
    "event",
    "target",
    "task_id",
    "cause",
    "at",
    "payload",
)
_HEAD_COLUMNS = (
    "id",
    "kind",
    "state",
    "revision",
    "updated",
    "snapshot",
    "snapshot_revision",
    "snapshot_state",
)
# The SQLite rows' reads, with PostgreSQL's placeholder.
_SELECT_HEAD = SELECT_HEAD.replace("?", "$1")
_SELECT_TAIL = SELECT_TAIL.replace("?", "$1")

_encoder = msgspec.msgpack.Encoder()


def _server() -> str | None:
    return os.environ.get(SERVER_VARIABLE) or None


async def _connect(dsn: str, schema: str | None = None) -> Any:
    import asyncpg

    settings = {"search_path": schema} if schema is not None else None
    return await asyncpg.connect(dsn, timeout=5, server_settings=settings)


async def _ping(dsn: str) -> None:
    db = await _connect(dsn)
    await db.close()


def _unavailable() -> str | None:
    """Why the rows cannot run here: no server named, or it cannot be reached."""
    from stateward.runtime import redact_dsn

    dsn = _server()
    if dsn is None:
        return (
            f"no PostgreSQL server: set {SERVER_VARIABLE}=postgresql://user@host:port/database "
            "to run it (the README's PostgreSQL section starts one)"
        )
    try:
        asyncio.run(_ping(dsn))
    except Exception as exc:  # any failure to connect is the note, never a traceback
        return f"cannot reach the PostgreSQL server at {redact_dsn(dsn)}: {exc}"
    return None


async def _drop(dsn: str, schema: str) -> None:
    db = await _connect(dsn)
    try:
        await db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await db.close()


async def _create(dsn: str, schema: str) -> str:
    """A fresh ``schema`` holding the store's tables, created by the real store."""
    from stateward.runtime import open_postgres_store

    await _drop(dsn, schema)
    async with open_postgres_store(dsn, schema=schema):
        pass
    return schema


# --- pg.durable_transition -----------------------------------------------------------------


async def raw_pg_durable_round(dsn: str, schema: str, *, actors: int, transitions: int) -> Round:
    """Transitions per second of raw asyncpg writing the store's rows for each one.

    Per transition: the journal row and the head upsert (the same snapshot cadence as
    :class:`~stateward.runtime.FSMActor`), :data:`RAW_BATCH` transitions per statement and
    transaction, ``synchronous_commit=on``. Set-up (untimed) writes every first transition.
    """
    from stateward.runtime import FSMActor, NoData

    kind = cycle_machine().name
    every = FSMActor.snapshot_every
    snapshot = _encoder.encode(NoData())
    ids = [f"vm-{i:06d}" for i in range(actors)]
    db = await _connect(dsn, schema)
    try:
        statement = await db.prepare(_RAW_WRITE)

        async def write(sequence: int, step: int) -> None:
            source, event, target = cycle_step(step)
            snap = snapshot if sequence == 1 or sequence % every == 0 else None
            for first in range(0, actors, RAW_BATCH):
                chunk = ids[first : first + RAW_BATCH]
                now = time.time()
                journal = [
                    (rid, sequence, source, event, target, None, None, now, None) for rid in chunk
                ]
                heads = [
                    (rid, kind, target, sequence, now, snap, sequence, target) for rid in chunk
                ]
                await statement.fetch(*zip(*journal, strict=True), *zip(*heads, strict=True))

        await write(1, 0)
        start = time.perf_counter()
        for step in range(1, transitions + 1):
            await write(step + 1, step)
        elapsed = time.perf_counter() - start
        written = await db.fetchval("SELECT count(*) FROM journal")
    finally:
        await db.close()
    if written != actors * (transitions + 1):
        raise AssertionError(f"expected {actors * (transitions + 1)} journal rows, got {written}")
    return Round(actors * transitions / elapsed)


def _measure_durable(sizes: Sizes) -> Comparison:
    from stateward.runtime import Durability, open_postgres_store, redact_dsn

    dsn = _server()
    assert dsn is not None  # the row is skipped without a server
    actors, transitions = sizes.durable_actors, sizes.durable_transitions
    outcomes: list[DurableOutcome] = []
    numbers = itertools.count()
    with loop_runner() as runner:

        async def subject_round() -> Round:
            schema = await _create(dsn, f"{SCHEMA_PREFIX}durable_{next(numbers)}")
            try:
                outcome = await durable_round(
                    lambda: open_postgres_store(
                        dsn, schema=schema, durability=Durability.FULL, max_batch=RAW_BATCH
                    ),
                    actors=actors,
                    transitions=transitions,
                )
            finally:
                await _drop(dsn, schema)
            outcomes.append(outcome)
            return outcome.round

        async def baseline_round() -> Round:
            schema = await _create(dsn, f"{SCHEMA_PREFIX}durable_{next(numbers)}")
            try:
                return await raw_pg_durable_round(
                    dsn, schema, actors=actors, transitions=transitions
                )
            finally:
                await _drop(dsn, schema)

        return durable_comparison(
            sizes,
            (DURABLE_SUBJECT, lambda: runner.run(subject_round())),
            (RAW_WRITER, lambda: runner.run(baseline_round())),
            outcomes,
            {"durability": "FULL (synchronous_commit=on)", "server": redact_dsn(dsn)},
        )


# --- pg.recovery / pg.recovery_eager -------------------------------------------------------


async def build_pg_recovery_schema(
    dsn: str, schema: str, resources: int, *, history: int = RECOVERY_HISTORY
) -> None:
    """Fill ``schema`` (made by the real store) with ``resources`` resources of ``history``
    transitions each, by ``COPY``, then ``ANALYZE`` it; a fixture, never timed."""
    journal, heads = recovery_rows(resources, history, tally_actor().snapshot_every)
    db = await _connect(dsn, schema)
    try:
        async with db.transaction():
            await db.copy_records_to_table("journal", records=journal, columns=_JOURNAL_COLUMNS)
            await db.copy_records_to_table("resources", records=heads, columns=_HEAD_COLUMNS)
        await db.execute("ANALYZE journal")
        await db.execute("ANALYZE resources")
    finally:
        await db.close()


async def raw_pg_lazy_read_round(
    dsn: str, schema: str, *, resources: int, indexes: Sequence[int]
) -> Round:
    """Seconds for raw asyncpg to connect and read what a lazy restore reads: the listing of
    every resource, then the head (with snapshot) and journal tail of each chosen one."""
    start = time.perf_counter()
    db = await _connect(dsn, schema)
    try:
        listing = await db.fetch(SELECT_LISTING)
        head, tail = await db.prepare(_SELECT_HEAD), await db.prepare(_SELECT_TAIL)
        loaded = [
            (await head.fetchrow(resource_id(i)), await tail.fetch(resource_id(i))) for i in indexes
        ]
        elapsed = time.perf_counter() - start
    finally:
        await db.close()
    if len(listing) != resources or any(row is None or not rows for row, rows in loaded):
        raise AssertionError("the raw reader did not find the rows the builder wrote")
    return Round(elapsed)


async def raw_pg_eager_read_round(dsn: str, schema: str, *, resources: int) -> Round:
    """Seconds for raw asyncpg to connect and read every head and every journal tail."""
    start = time.perf_counter()
    db = await _connect(dsn, schema)
    try:
        heads = await db.fetch(SELECT_HEADS)
        tails = await db.fetch(SELECT_TAILS)
        elapsed = time.perf_counter() - start
    finally:
        await db.close()
    if len(heads) != resources or not tails:
        raise AssertionError("the raw reader did not find the rows the builder wrote")
    return Round(elapsed)


_Subject = Callable[[Callable[[], Any]], Coroutine[Any, Any, Round]]
_Baseline = Callable[[str, str], Coroutine[Any, Any, Round]]


def _recovery_pair(
    sizes: Sizes, subject: _Subject, baseline: _Baseline, details: dict[str, object]
) -> Comparison:
    from stateward.runtime import open_postgres_store, redact_dsn

    dsn = _server()
    assert dsn is not None  # the row is skipped without a server
    resources = sizes.recovery_resources
    schema = f"{SCHEMA_PREFIX}recovery_{resources}"
    with loop_runner() as runner:
        try:
            start = time.perf_counter()
            runner.run(_create(dsn, schema))
            runner.run(build_pg_recovery_schema(dsn, schema, resources))
            build_seconds = time.perf_counter() - start
            subject_side, baseline_side = compare(
                (
                    f"{STATEWARD} (PostgresStore, restore)",
                    lambda: runner.run(subject(lambda: open_postgres_store(dsn, schema=schema))),
                ),
                (RAW_READER, lambda: runner.run(baseline(dsn, schema))),
                rounds=sizes.store_rounds,
                warmup_rounds=sizes.warmup_rounds,
                higher_is_better=False,
            )
        finally:
            runner.run(_drop(dsn, schema))
    built: dict[str, object] = {
        "resources": resources,
        "journal_rows_per_resource": RECOVERY_HISTORY,
        "build_seconds_untimed": build_seconds,
        "server": redact_dsn(dsn),
        **details,
    }
    if resources != RECOVERY_GOAL_RESOURCES:
        built["size_note"] = (
            f"{sizes.name} sizes: {resources:,} resources (the full run uses "
            f"{RECOVERY_GOAL_RESOURCES:,})"
        )
    return Comparison(subject=subject_side, baseline=baseline_side, details=built)


def _measure_lazy_recovery(sizes: Sizes) -> Comparison:
    resources, indexes = sizes.recovery_resources, chosen_resources(sizes)
    return _recovery_pair(
        sizes,
        lambda open_store: lazy_restore_round(open_store, resources=resources, indexes=indexes),
        lambda dsn, schema: raw_pg_lazy_read_round(
            dsn, schema, resources=resources, indexes=indexes
        ),
        {"first_messages": len(indexes), "seed": RECOVERY_SEED, "concurrent": True},
    )


def _measure_eager_recovery(sizes: Sizes) -> Comparison:
    resources = sizes.recovery_resources
    check = chosen_resources(sizes)[0]
    return _recovery_pair(
        sizes,
        lambda open_store: eager_restore_round(open_store, resources=resources, check=check),
        lambda dsn, schema: raw_pg_eager_read_round(dsn, schema, resources=resources),
        {"checked_resource": resource_id(check)},
    )


#: The PostgreSQL rows, in report order.
PG_ROWS = (
    Row(
        name="pg.durable_transition",
        unit="transition/s",
        higher_is_better=True,
        measure=_measure_durable,
        summary="store.durable_transition on PostgreSQL (synchronous_commit=on) vs raw asyncpg",
        goal=Goal.min_ratio(0.3),
        requires=("asyncpg",),
        unavailable=_unavailable,
    ),
    Row(
        name="pg.recovery",
        unit="s",
        higher_is_better=False,
        measure=_measure_lazy_recovery,
        summary="restore lazily from PostgreSQL, serve the first message of 1,000 resources",
        requires=("asyncpg",),
        unavailable=_unavailable,
    ),
    Row(
        name="pg.recovery_eager",
        unit="s",
        higher_is_better=False,
        measure=_measure_eager_recovery,
        summary="restore from PostgreSQL and rebuild every resource (restore(eager=True))",
        requires=("asyncpg",),
        unavailable=_unavailable,
    ),
)

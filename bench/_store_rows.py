"""The durable store rows: committed transitions on a real SQLite file, and recovery.

``store.durable_transition`` drives durable :class:`~stateward.runtime.FSMActor` instances on a
:class:`~stateward.runtime.SqliteStore` (WAL, ``Durability.FULL``) with concurrent asks; every
ask returns only once its transition is committed. The baseline is a raw ``sqlite3`` loop that
writes the very rows the store writes for each transition (one journal row, one head upsert)
in transactions of :data:`RAW_BATCH`, with the same pragmas, on the same disk, in the same run.

``store.recovery`` and ``store.recovery_eager`` reopen a database of many resources and time
how long it takes to serve the first message to some of them (lazy restore) or to rebuild every
one of them (eager restore). The database is built once per run and size, outside every timed
section, by a fast path: the real store creates the schema, then raw ``sqlite3`` bulk-inserts
the rows an :class:`~stateward.runtime.FSMActor` would have written (msgpack payloads, msgspec
snapshots of the actor's ``data_type``). The baseline reads the same rows with raw ``sqlite3``.

Only the public API of :mod:`stateward.runtime` is used, imported inside the functions (as in
:mod:`stateward.bench._stateward`). The SQL below is the bench's own copy of what the store
writes: a baseline must not call into the subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ._baselines import CYCLE_EVENTS, CYCLE_STATES
from ._harness import FULL_SIZES, Comparison, Goal, Round, Row, Sizes, compare, loop_runner
from ._stateward import STATEWARD, cycle_machine

if TYPE_CHECKING:
    from stateward.runtime import FSMActor

__all__ = (
    "STORE_ROWS",
    "DurableOutcome",
    "release_databases",
    "RAW_BATCH",
    "DURABLE_CLIENTS",
    "RECOVERY_HISTORY",
    "Tally",
    "Probe",
    "tally_actor",
    "resource_id",
    "expected_resource",
    "build_recovery_database",
    "StoreOpener",
    "durable_round",
    "durable_comparison",
    "durable_transition_round",
    "lazy_restore_round",
    "eager_restore_round",
    "recovery_rows",
    "HEAD_CONFLICT",
    "SELECT_LISTING",
    "SELECT_HEAD",
    "SELECT_HEADS",
    "SELECT_TAIL",
    "SELECT_TAILS",
    "cycle_step",
    "chosen_resources",
    "raw_durable_round",
    "lazy_recovery_round",
    "eager_recovery_round",
    "raw_lazy_read_round",
    "raw_eager_read_round",
)

#: The subject's name in the store rows.
DURABLE_SUBJECT = f"{STATEWARD} (SqliteStore, FULL)"
#: The baseline of ``store.durable_transition``.
RAW_WRITER = "raw sqlite3 (FULL, 1k/txn)"
#: The baseline of the recovery rows.
RAW_READER = "raw sqlite3 read"

#: Transitions per transaction of the raw writer, and ``max_batch`` of the store (its default).
RAW_BATCH = 1000
#: Client tasks driving the durable actors; each one asks its share of the actors in turn.
#: Equal to ``max_batch``: with more asks in flight than one transaction takes, the store's
#: aiosqlite thread and the event loop fight over the GIL and throughput drops (measured:
#: 1,000 clients ≈52 k/s, 2,000 ≈42 k/s on 2 cores), so more would not be a fair workload.
DURABLE_CLIENTS = 1000
#: Transitions every resource of the recovery database went through (its journal length).
RECOVERY_HISTORY = 3
#: Seeds the choice of the resources asked after a lazy restore.
RECOVERY_SEED = 20_260_601
#: The recovery goals are stated for this many resources; smaller runs say so.
RECOVERY_GOAL_RESOURCES = FULL_SIZES.recovery_resources
#: ``store.recovery`` goal: seconds to open and serve the first message to the chosen ones.
LAZY_GOAL_SECONDS = 1.0
#: ``store.recovery_eager`` goal: seconds to open and rebuild every resource.
EAGER_GOAL_SECONDS = 5.0
#: ``updated``/``at`` of the recovery database's first transition; fixed, so builds repeat.
_EPOCH = 1_750_000_000.0

_INSERT_JOURNAL = (
    "INSERT INTO journal (resource_id, sequence, source, event, target, task_id, cause, at,"
    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: How a head row replaces the stored one (SQLite's and PostgreSQL's syntax alike).
HEAD_CONFLICT = """
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
_UPSERT_HEAD = (
    "INSERT INTO resources (id, kind, state, revision, updated, snapshot, snapshot_revision,"
    " snapshot_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)" + HEAD_CONFLICT
)
_INSERT_HEAD = (
    "INSERT INTO resources (id, kind, state, revision, updated, snapshot, snapshot_revision,"
    " snapshot_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_LISTING = "SELECT id, kind, state, revision, updated FROM resources ORDER BY id"
SELECT_HEAD = (
    "SELECT id, kind, state, revision, updated, snapshot, snapshot_revision, snapshot_state"
    " FROM resources WHERE id = ?"
)
SELECT_HEADS = (
    "SELECT id, kind, state, revision, updated, snapshot, snapshot_revision, snapshot_state"
    " FROM resources ORDER BY id"
)
SELECT_TAIL = (
    "SELECT j.resource_id, j.sequence, j.source, j.event, j.target, j.task_id, j.cause, j.at,"
    " j.payload FROM journal j JOIN resources r ON r.id = j.resource_id"
    " WHERE r.id = ? AND j.sequence > r.snapshot_revision ORDER BY j.sequence"
)
SELECT_TAILS = (
    "SELECT j.resource_id, j.sequence, j.source, j.event, j.target, j.task_id, j.cause, j.at,"
    " j.payload FROM journal j JOIN resources r ON r.id = j.resource_id"
    " WHERE j.sequence > r.snapshot_revision ORDER BY j.resource_id, j.sequence"
)

_encoder = msgspec.msgpack.Encoder()

#: Opens the store a round runs on: ``async with open_store() as store``.
StoreOpener = Callable[[], contextlib.AbstractAsyncContextManager[Any]]


def _kind() -> str:
    return cycle_machine().name


def cycle_step(step: int) -> tuple[str, str, str]:
    """Source, event and target of the ``step``-th transition (0-based) around the loop."""
    count = len(CYCLE_STATES)
    return CYCLE_STATES[step % count], CYCLE_EVENTS[step % count], CYCLE_STATES[(step + 1) % count]


def _discard(path: Path) -> None:
    """Remove a database and its WAL files."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


async def _create_schema(path: Path) -> None:
    """Create ``path`` with the real store, so that the schema and migrations are its own."""
    from stateward.runtime import Durability, open_sqlite_store

    async with open_sqlite_store(path, durability=Durability.FULL):
        pass


def _raw_connection(path: Path, *, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db


# --- store.durable_transition --------------------------------------------------------------


def _cycle_actor() -> type[FSMActor]:
    from stateward.runtime import FSMActor

    cycle_definition = cycle_machine()

    class DurableCycle(FSMActor):
        machine = cycle_definition

    return DurableCycle


@dataclass(frozen=True, slots=True)
class DurableOutcome:
    """One round of ``store.durable_transition``: the round and the store's group size."""

    round: Round
    batch_size: float
    largest_batch: int


async def durable_transition_round(
    path: Path, *, actors: int, transitions: int, clients: int = DURABLE_CLIENTS
) -> DurableOutcome:
    """Committed transitions per second of ``actors`` durable FSM actors on a fresh file.

    See :func:`durable_round`; the store is a :class:`~stateward.runtime.SqliteStore` on
    ``path`` (``Durability.FULL``, ``max_batch`` :data:`RAW_BATCH`).
    """
    from stateward.runtime import Durability, open_sqlite_store

    return await durable_round(
        lambda: open_sqlite_store(path, durability=Durability.FULL, max_batch=RAW_BATCH),
        actors=actors,
        transitions=transitions,
        clients=clients,
    )


async def durable_round(
    open_store: StoreOpener, *, actors: int, transitions: int, clients: int = DURABLE_CLIENTS
) -> DurableOutcome:
    """Committed transitions per second of ``actors`` durable FSM actors on a fresh store.

    Every actor first makes one untimed transition (its head and first snapshot are written,
    as the baseline's set-up does). Then ``clients`` tasks each ask their share of the actors
    in turn, ``transitions`` times around, every ask awaited until committed.
    """
    from stateward.runtime import open_actor_system

    actor = _cycle_actor()
    addresses = [f"vm-{i:06d}" for i in range(actors)]
    lanes = max(1, min(clients, actors))
    latencies: list[list[float]] = [[] for _ in range(lanes)]
    async with open_store() as store, open_actor_system(store=store) as system:
        refs = [system.spawn(actor, address=address) for address in addresses]
        await asyncio.gather(*(ref.ask(CYCLE_EVENTS[0]) for ref in refs))
        before = store.statistics()

        async def client(lane: int) -> None:
            mine = refs[lane::lanes]
            record = latencies[lane].append
            clock = time.perf_counter
            for step in range(1, transitions + 1):
                event = cycle_step(step)[1]
                for ref in mine:
                    sent = clock()
                    await ref.ask(event)
                    record(clock() - sent)

        # Tasks are created before the clock starts; they first run at the gather below.
        tasks = [asyncio.create_task(client(lane)) for lane in range(lanes)]
        start = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        after = store.statistics()
    commits = after.commits - before.commits
    if commits != actors * transitions:
        raise AssertionError(f"expected {actors * transitions} commits, the store made {commits}")
    return DurableOutcome(
        Round(commits / elapsed, [lat for lane in latencies for lat in lane]),
        commits / max(1, after.batches - before.batches),
        after.largest_batch,
    )


async def raw_durable_round(path: Path, *, actors: int, transitions: int) -> Round:
    """Transitions per second of a raw sqlite3 loop writing the store's rows for each one.

    Per transition: the journal row and the head upsert the store writes (the same SQL, the
    same snapshot cadence), ``RAW_BATCH`` transitions per ``BEGIN IMMEDIATE``/``COMMIT``,
    WAL with ``synchronous=FULL``. Set-up (untimed) writes every resource's first transition.
    """
    from stateward.runtime import FSMActor, NoData

    await _create_schema(path)
    kind = _kind()
    every = FSMActor.snapshot_every
    snapshot = _encoder.encode(NoData())
    ids = [f"vm-{i:06d}" for i in range(actors)]
    db = _raw_connection(path, synchronous="FULL")
    try:

        def write(sequence: int, step: int) -> None:
            source, event, target = cycle_step(step)
            snap = snapshot if sequence == 1 or sequence % every == 0 else None
            for first in range(0, actors, RAW_BATCH):
                chunk = ids[first : first + RAW_BATCH]
                now = time.time()
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    _INSERT_JOURNAL,
                    [
                        (rid, sequence, source, event, target, None, None, now, None)
                        for rid in chunk
                    ],
                )
                db.executemany(
                    _UPSERT_HEAD,
                    [(rid, kind, target, sequence, now, snap, sequence, target) for rid in chunk],
                )
                db.execute("COMMIT")

        write(1, 0)
        start = time.perf_counter()
        for step in range(1, transitions + 1):
            write(step + 1, step)
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    return Round(actors * transitions / elapsed)


def _measure_durable(sizes: Sizes) -> Comparison:
    actors, transitions = sizes.durable_actors, sizes.durable_transitions
    outcomes: list[DurableOutcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as directory,
        loop_runner() as runner,
    ):
        numbers = itertools.count()

        def fresh() -> Path:
            return Path(directory) / f"durable-{next(numbers)}.db"

        def subject() -> Round:
            path = fresh()
            outcome = runner.run(
                durable_transition_round(path, actors=actors, transitions=transitions)
            )
            _discard(path)
            outcomes.append(outcome)
            return outcome.round

        def baseline() -> Round:
            path = fresh()
            round_ = runner.run(raw_durable_round(path, actors=actors, transitions=transitions))
            _discard(path)
            return round_

        return durable_comparison(
            sizes,
            (DURABLE_SUBJECT, subject),
            (RAW_WRITER, baseline),
            outcomes,
            {"durability": "FULL", "temp_dir": tempfile.gettempdir()},
        )


def durable_comparison(
    sizes: Sizes,
    subject: tuple[str, Callable[[], Round]],
    baseline: tuple[str, Callable[[], Round]],
    outcomes: Sequence[DurableOutcome],
    details: dict[str, object],
) -> Comparison:
    """Both sides of a durable-transition row, and its details (plus ``details``).

    ``outcomes`` fills as the subject's rounds run: one per round, warm-up first.
    """
    actors, transitions = sizes.durable_actors, sizes.durable_transitions
    subject_side, baseline_side = compare(
        subject,
        baseline,
        rounds=sizes.store_rounds,
        warmup_rounds=sizes.warmup_rounds,
        higher_is_better=True,
    )
    measured = outcomes[sizes.warmup_rounds :]
    details = {
        "actors": actors,
        "transitions_per_actor": transitions,
        "transitions_per_round": actors * transitions,
        "clients": min(DURABLE_CLIENTS, actors),
        "max_batch": RAW_BATCH,
        "raw_rows_per_transaction": RAW_BATCH,
        "avg_batch_size": statistics.fmean(o.batch_size for o in measured),
        "largest_batch": max(o.largest_batch for o in measured),
        **details,
    }
    if actors != FULL_SIZES.durable_actors:
        details["size_note"] = (
            f"{sizes.name} sizes: {actors:,} actors (the full run uses "
            f"{FULL_SIZES.durable_actors:,})"
        )
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


# --- store.recovery / store.recovery_eager -------------------------------------------------


class Tally(msgspec.Struct, frozen=True):
    """The data of a recovery resource: transitions seen, sum of their payloads, last event."""

    count: int = 0
    total: int = 0
    last: str = ""


def _tallied(data: Tally, event: str, payload: Any) -> Tally:
    return Tally(data.count + 1, data.total + int(payload["n"]), event)


@dataclass(frozen=True, slots=True)
class Probe:
    """A read-only message: the resource answers ``(state, revision, data)``."""


_PROBE = Probe()


def tally_actor() -> type[FSMActor]:
    """The durable actor of the recovery database: the cycle machine, :class:`Tally` data."""
    from stateward.runtime import FSMActor, TransitionRecord

    cycle_definition = cycle_machine()

    class TallyResource(FSMActor):
        machine = cycle_definition
        data_type = Tally

        def apply(self, data: Any, record: TransitionRecord) -> Any:
            return _tallied(data, record.event, record.payload)

        async def receive(self, message: Any) -> Any:
            if isinstance(message, Probe):
                return self.state, self.revision, self.data
            return await super().receive(message)

    return TallyResource


def resource_id(index: int) -> str:
    """The id of the ``index``-th resource of the recovery database."""
    return f"res-{index:07d}"


def _payload(index: int, sequence: int) -> dict[str, int]:
    return {"n": index + sequence}


def _snapshot_revision(history: int, every: int) -> int:
    """The last revision FSMActor snapshots at: the first, then every ``every``."""
    return max([1, *(s for s in range(1, history + 1) if s % every == 0)])


def expected_resource(index: int, *, history: int = RECOVERY_HISTORY) -> tuple[str, int, Tally]:
    """What the ``index``-th resource must rebuild to: state, revision and data."""
    data = Tally()
    for sequence in range(1, history + 1):
        data = _tallied(data, cycle_step(sequence - 1)[1], _payload(index, sequence))
    return cycle_step(history - 1)[2], history, data


def recovery_rows(
    resources: int, history: int, every: int
) -> tuple[Iterator[tuple[object, ...]], Iterator[tuple[object, ...]]]:
    """Journal rows and heads exactly as an FSMActor and the store would have written them."""
    kind = _kind()
    snapshot_at = _snapshot_revision(history, every)

    def journal() -> Iterator[tuple[object, ...]]:
        for index in range(resources):
            rid = resource_id(index)
            for sequence in range(1, history + 1):
                source, event, target = cycle_step(sequence - 1)
                payload = _encoder.encode(_payload(index, sequence))
                at = _EPOCH + index * 1e-3 + sequence
                yield rid, sequence, source, event, target, None, None, at, payload

    def heads() -> Iterator[tuple[object, ...]]:
        for index in range(resources):
            data = Tally()
            for sequence in range(1, snapshot_at + 1):
                data = _tallied(data, cycle_step(sequence - 1)[1], _payload(index, sequence))
            state = cycle_step(history - 1)[2]
            updated = _EPOCH + index * 1e-3 + history
            snapshot = _encoder.encode(data)
            yield (
                resource_id(index),
                kind,
                state,
                history,
                updated,
                snapshot,
                snapshot_at,
                cycle_step(snapshot_at - 1)[2],
            )

    return journal(), heads()


async def build_recovery_database(
    path: Path, resources: int, *, history: int = RECOVERY_HISTORY
) -> None:
    """Create ``path`` holding ``resources`` resources of ``history`` transitions each.

    The real store creates the schema; the rows are then bulk-inserted with raw sqlite3 in
    one transaction without fsync (a fixture, never timed), then checkpointed into the main
    file so that every reader starts from the same on-disk shape.
    """
    if history < 1:
        raise ValueError(f"history must be >= 1, got {history}")
    await _create_schema(path)
    journal, heads = recovery_rows(resources, history, tally_actor().snapshot_every)
    db = _raw_connection(path, synchronous="OFF")
    try:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_INSERT_JOURNAL, journal)
        db.executemany(_INSERT_HEAD, heads)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


class _RecoveryDatabases:
    """The recovery databases of this run, one per size, built on first use.

    Both recovery rows read the same database, so it is built once per run; the temporary
    directory is removed when the process exits (or when :meth:`clear` is called).
    """

    def __init__(self) -> None:
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._built: dict[int, tuple[Path, float]] = {}

    async def get(self, resources: int) -> tuple[Path, float]:
        """The database of ``resources`` resources, and the seconds its build took."""
        built = self._built.get(resources)
        if built is None:
            if self._directory is None:
                self._directory = tempfile.TemporaryDirectory(prefix="stateward-bench-")
            path = Path(self._directory.name) / f"recovery-{resources}.db"
            start = time.perf_counter()
            await build_recovery_database(path, resources)
            built = self._built[resources] = (path, time.perf_counter() - start)
        return built

    def clear(self) -> None:
        if self._directory is not None:
            self._directory.cleanup()
        self._directory = None
        self._built.clear()


#: Shared by the two recovery rows of one run (see :class:`_RecoveryDatabases`).
_DATABASES = _RecoveryDatabases()


def _check_replies(indexes: Sequence[int], replies: Sequence[Any]) -> None:
    """Every restored resource must answer exactly what its journal adds up to."""
    for index, reply in zip(indexes, replies, strict=True):
        expected = expected_resource(index)
        if tuple(reply) != expected:
            raise AssertionError(
                f"{resource_id(index)} restored as {reply!r}, expected {expected!r}"
            )


async def lazy_recovery_round(path: Path, *, resources: int, indexes: Sequence[int]) -> Round:
    """Seconds to open ``path``, restore lazily and answer one probe from each of ``indexes``
    (see :func:`lazy_restore_round`)."""
    from stateward.runtime import open_sqlite_store

    return await lazy_restore_round(
        lambda: open_sqlite_store(path), resources=resources, indexes=indexes
    )


async def lazy_restore_round(
    open_store: StoreOpener, *, resources: int, indexes: Sequence[int]
) -> Round:
    """Seconds to open the store, restore lazily and answer one probe from each of ``indexes``.

    The probes are sent together (the first requests after a restart); each one activates
    its resource, which loads itself from the store. Per-probe latencies are kept. After the
    clock stops, every reply is checked against what the resource's journal adds up to.
    """
    from stateward.runtime import open_actor_system

    actor = tally_actor()
    kind = _kind()
    clock = time.perf_counter
    latencies = [0.0] * len(indexes)

    async def first(slot: int, address: str, system: Any) -> Any:
        sent = clock()
        reply = await system.lookup(address).ask(_PROBE)
        latencies[slot] = clock() - sent
        return reply

    start = clock()
    async with open_store() as store, open_actor_system(store=store) as system:
        restored = await system.restore({kind: actor})
        replies = await asyncio.gather(
            *(first(slot, resource_id(i), system) for slot, i in enumerate(indexes))
        )
        elapsed = clock() - start
    if restored != resources:
        raise AssertionError(f"restored {restored} resources, expected {resources}")
    _check_replies(indexes, replies)
    return Round(elapsed, latencies)


async def eager_recovery_round(path: Path, *, resources: int, check: int) -> Round:
    """Seconds to open ``path`` and rebuild every resource (see :func:`eager_restore_round`)."""
    from stateward.runtime import open_sqlite_store

    return await eager_restore_round(
        lambda: open_sqlite_store(path), resources=resources, check=check
    )


async def eager_restore_round(open_store: StoreOpener, *, resources: int, check: int) -> Round:
    """Seconds to open the store and rebuild every resource (``restore(eager=True)``)."""
    from stateward.runtime import open_actor_system

    actor = tally_actor()
    kind = _kind()
    start = time.perf_counter()
    async with open_store() as store, open_actor_system(store=store) as system:
        restored = await system.restore({kind: actor}, eager=True)
        elapsed = time.perf_counter() - start
        reply = await system.lookup(resource_id(check)).ask(_PROBE)
    if restored != resources:
        raise AssertionError(f"restored {restored} resources, expected {resources}")
    _check_replies([check], [reply])
    return Round(elapsed)


def raw_lazy_read_round(path: Path, *, resources: int, indexes: Sequence[int]) -> Round:
    """Seconds for raw sqlite3 to read what a lazy restore reads.

    The listing of every resource, then the head (with snapshot) and journal tail of each
    chosen one. Nothing is decoded: this is the floor of the reads alone.
    """
    start = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        listing = db.execute(SELECT_LISTING).fetchall()
        loaded = [
            (
                db.execute(SELECT_HEAD, (resource_id(i),)).fetchone(),
                db.execute(SELECT_TAIL, (resource_id(i),)).fetchall(),
            )
            for i in indexes
        ]
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    if len(listing) != resources or any(head is None or not tail for head, tail in loaded):
        raise AssertionError("the raw reader did not find the rows the builder wrote")
    return Round(elapsed)


def raw_eager_read_round(path: Path, *, resources: int) -> Round:
    """Seconds for raw sqlite3 to read every head (with snapshot) and every journal tail."""
    start = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        heads = db.execute(SELECT_HEADS).fetchall()
        tails = db.execute(SELECT_TAILS).fetchall()
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    if len(heads) != resources or not tails:
        raise AssertionError("the raw reader did not find the rows the builder wrote")
    return Round(elapsed)


def _recovery_details(sizes: Sizes, build_seconds: float) -> tuple[dict[str, object], str | None]:
    resources = sizes.recovery_resources
    details: dict[str, object] = {
        "resources": resources,
        "journal_rows_per_resource": RECOVERY_HISTORY,
        "build_seconds_untimed": build_seconds,
        "page_cache": "warm (the database was just built and read)",
    }
    waived = None
    if resources != RECOVERY_GOAL_RESOURCES:
        note = (
            f"{sizes.name} sizes: {resources:,} resources (the goal is stated for "
            f"{RECOVERY_GOAL_RESOURCES:,})"
        )
        details["size_note"] = note
        waived = note
    return details, waived


def _recovery_pair(
    sizes: Sizes,
    subject: Callable[[Path], Coroutine[Any, Any, Round]],
    baseline: Callable[[Path], Round],
    details: dict[str, object],
) -> Comparison:
    with loop_runner() as runner:
        path, build_seconds = runner.run(_DATABASES.get(sizes.recovery_resources))
        built, waived = _recovery_details(sizes, build_seconds)
        subject_side, baseline_side = compare(
            (f"{STATEWARD} (SqliteStore, restore)", lambda: runner.run(subject(path))),
            (RAW_READER, lambda: baseline(path)),
            rounds=sizes.store_rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=False,
        )
    return Comparison(
        subject=subject_side,
        baseline=baseline_side,
        details={**built, **details},
        waive_goal=waived,
    )


def chosen_resources(sizes: Sizes) -> list[int]:
    count = min(sizes.recovery_asks, sizes.recovery_resources)
    return random.Random(RECOVERY_SEED).sample(range(sizes.recovery_resources), count)


def _measure_lazy_recovery(sizes: Sizes) -> Comparison:
    resources, indexes = sizes.recovery_resources, chosen_resources(sizes)
    return _recovery_pair(
        sizes,
        lambda path: lazy_recovery_round(path, resources=resources, indexes=indexes),
        lambda path: raw_lazy_read_round(path, resources=resources, indexes=indexes),
        {"first_messages": len(indexes), "seed": RECOVERY_SEED, "concurrent": True},
    )


def _measure_eager_recovery(sizes: Sizes) -> Comparison:
    resources = sizes.recovery_resources
    check = chosen_resources(sizes)[0]
    return _recovery_pair(
        sizes,
        lambda path: eager_recovery_round(path, resources=resources, check=check),
        lambda path: raw_eager_read_round(path, resources=resources),
        {"checked_resource": resource_id(check)},
    )


def release_databases() -> None:
    """Remove the recovery databases built so far in this process."""
    with contextlib.suppress(OSError):
        _DATABASES.clear()


#: The store rows, in report order.
STORE_ROWS = (
    Row(
        name="store.durable_transition",
        unit="transition/s",
        higher_is_better=True,
        measure=_measure_durable,
        summary="concurrent asks to durable FSM actors, each committed (FULL) before its reply",
        goal=Goal.min_ratio(0.4),
    ),
    Row(
        name="store.recovery",
        unit="s",
        higher_is_better=False,
        measure=_measure_lazy_recovery,
        summary="open a database, restore lazily, serve the first message of 1,000 resources",
        goal=Goal.max_value(LAZY_GOAL_SECONDS),
    ),
    Row(
        name="store.recovery_eager",
        unit="s",
        higher_is_better=False,
        measure=_measure_eager_recovery,
        summary="open a database and rebuild every resource (restore(eager=True))",
        goal=Goal.max_value(EAGER_GOAL_SECONDS),
    ),
)

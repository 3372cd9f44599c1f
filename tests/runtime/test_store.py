"""The store contract, run against MemoryStore, SqliteStore and PostgresStore, and FSMActor on each.

Every test here takes the ``open_store`` factory: ``async with open_store(**options) as store``
opens the store under test. Each call opens the same durable image again, as a process that
restarts would: a new SqliteStore on the same file, a new PostgresStore on the same schema of
the test server (``postgres`` fixture), or a new MemoryStore over the rows of the previous
one. SQLite-only behaviour (schema, durable quarantine, raw bytes) comes last.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stateward.runtime import (
    SCHEMA_VERSION,
    ActorCrashed,
    Durability,
    Fire,
    FSMActor,
    InvalidArgument,
    InvalidCommand,
    Machine,
    MemoryStore,
    ResourceQuarantined,
    Retention,
    RevisionConflict,
    SchemaError,
    SqliteStore,
    StartReason,
    StateKind,
    Store,
    Transition,
    TransitionRecord,
    Write,
    open_actor_system,
    open_postgres_store,
    open_sqlite_store,
)
from stateward.testing import PostgresServer

# --------------------------------------------------------------------------------------------
# The store under test


class StoreFactory:
    """Opens the store under test; every call reopens the same durable image."""

    def __init__(
        self, name: str, path: Path, postgres: tuple[PostgresServer, str] | None = None
    ) -> None:
        self.name = name
        self.path = path
        self.postgres = postgres
        self._image: MemoryStore | None = None

    def __call__(self, **options: Any) -> AbstractAsyncContextManager[Store]:
        if self.name == "sqlite":
            return open_sqlite_store(self.path, durability=Durability.NORMAL, **options)
        if self.postgres is not None:
            server, schema = self.postgres
            return open_postgres_store(
                server.dsn, schema=schema, durability=Durability.NORMAL, **options
            )
        return self._open_memory(**options)

    @contextlib.asynccontextmanager
    async def _open_memory(self, **options: Any) -> AsyncIterator[Store]:
        store = MemoryStore(**options)
        if self._image is not None:
            # A restarted process finds the rows and journal of the last one, and nothing else:
            # no revision cache, no counters, no in-memory quarantine.
            store._rows = self._image._rows
            store._journal = self._image._journal
        async with store:
            yield store
        self._image = store

    def corrupt_last_journal_row(self, store: Store, resource_id: str) -> None:
        """Make the payload of the newest journal row of ``resource_id`` undecodable."""
        if isinstance(store, MemoryStore):
            store.corrupt(resource_id)
            return
        if self.postgres is not None:
            server, schema = self.postgres
            server.execute(
                "UPDATE journal SET payload = '\\xc1'::bytea WHERE resource_id = $1 AND sequence "
                "= (SELECT max(sequence) FROM journal WHERE resource_id = $1)",
                resource_id,
                schema=schema,
            )
            return
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute(
                "UPDATE journal SET payload = x'c1' WHERE resource_id = ? AND sequence = "
                "(SELECT max(sequence) FROM journal WHERE resource_id = ?)",
                (resource_id, resource_id),
            )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory opening a MemoryStore, a SqliteStore under ``tmp_path``, or a PostgresStore
    on a fresh schema of the test server."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        schema = request.getfixturevalue("postgres_schema")
        return StoreFactory("postgres", tmp_path / "unused", (server, schema))
    return StoreFactory(request.param, tmp_path / "stateward.db")


def record(
    resource_id: str,
    sequence: int,
    *,
    source: str = "open",
    event: str = "deposit",
    target: str = "open",
    at: float = 1000.0,
    payload: Any = None,
) -> TransitionRecord:
    """A transition record with defaults for the fields a test does not care about."""
    return TransitionRecord(resource_id, sequence, source, event, target, None, None, at, payload)


def write(
    resource_id: str, sequence: int, *, snapshot: bytes | None = None, **fields: Any
) -> Write:
    """A Write of kind ``account`` for ``record(resource_id, sequence, **fields)``."""
    kind = fields.pop("kind", "account")
    return Write(kind, record(resource_id, sequence, **fields), snapshot)


SNAPSHOT = msgspec.msgpack.encode({"balance": 0})


# --------------------------------------------------------------------------------------------
# Round trip


async def test_commit_and_load_round_trip(open_store: StoreFactory) -> None:
    """load returns the head, the last snapshot and the journal tail after it, as plain data."""
    async with open_store() as store:
        first = write("acct-1", 1, snapshot=SNAPSHOT, at=1.0, payload={"amount": 1})
        await store.commit(first)
        await store.commit(write("acct-1", 2, at=2.0, payload={"amount": 2, "tags": ("a", "b")}))
        await store.commit(write("acct-1", 3, event="close", target="closed", at=3.0))

    async with open_store() as store:
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert (loaded.resource_id, loaded.kind, loaded.state, loaded.revision, loaded.updated) == (
            "acct-1",
            "account",
            "closed",
            3,
            3.0,
        )
        assert (loaded.snapshot, loaded.snapshot_revision, loaded.snapshot_state) == (
            SNAPSHOT,
            1,
            "open",
        )
        assert loaded.tail == (
            record("acct-1", 2, at=2.0, payload={"amount": 2, "tags": ["a", "b"]}),
            record("acct-1", 3, event="close", target="closed", at=3.0),
        )


async def test_first_write_without_a_snapshot_loads_from_the_journal(
    open_store: StoreFactory,
) -> None:
    """A resource whose first write has no snapshot loads with no snapshot and a full tail."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1, payload={"amount": 7}))
        await store.commit(write("acct-1", 2, payload={"amount": 8}))
    async with open_store() as store:
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert (loaded.snapshot, loaded.snapshot_revision, loaded.snapshot_state) == (None, 0, None)
        assert [r.payload for r in loaded.tail] == [{"amount": 7}, {"amount": 8}]


async def test_load_of_an_unknown_resource_is_none(open_store: StoreFactory) -> None:
    """load of a resource never written returns None; load_many leaves it out."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1, snapshot=SNAPSHOT))
        assert await store.load("nobody") is None
        assert list(await store.load_many(["nobody", "acct-1"])) == ["acct-1"]


# --------------------------------------------------------------------------------------------
# Revision checks


async def test_stale_write_is_a_revision_conflict_and_changes_nothing(
    open_store: StoreFactory,
) -> None:
    """A write replacing a revision the store does not hold raises RevisionConflict."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1, snapshot=SNAPSHOT))
        await store.commit(write("acct-1", 2))
    async with open_store() as store:
        with pytest.raises(
            RevisionConflict,
            match=r"^acct-1: write expected to replace revision 1, but the store holds revision 2;"
            r" the writer is stale and must reload$",
        ) as info:
            await store.commit(write("acct-1", 2, event="close", target="closed"))
        assert (info.value.resource_id, info.value.expected, info.value.actual) == ("acct-1", 1, 2)
        with pytest.raises(
            RevisionConflict, match=r"replace revision 4, but the store holds revision 2;"
        ):
            await store.commit(write("acct-1", 5))
        with pytest.raises(RevisionConflict, match=r"^acct-2: .* but the store holds revision 0;"):
            await store.commit(write("acct-2", 2))

        loaded = await store.load("acct-1")
        assert loaded is not None
        assert (loaded.state, loaded.revision) == ("open", 2)
        assert [r.sequence for r in await store.history("acct-1")] == [1, 2]
        assert await store.load("acct-2") is None
        stats = store.statistics()
        assert (stats.conflicts, stats.commits) == (3, 0)


async def test_conflict_in_a_batch_fails_alone(open_store: StoreFactory) -> None:
    """In one transaction, a conflicting write fails while the others commit, in order."""
    async with open_store() as store:
        results = await asyncio.gather(
            store.commit(write("acct-1", 1, snapshot=SNAPSHOT)),
            store.commit(write("acct-2", 3)),
            store.commit(write("acct-1", 2)),
            store.commit(write("acct-3", 1, snapshot=SNAPSHOT)),
            return_exceptions=True,
        )
        assert results[0] is None
        assert isinstance(results[1], RevisionConflict)
        assert results[1].resource_id == "acct-2"
        assert list(results[2:]) == [None, None]
        stats = store.statistics()
        assert (stats.batches, stats.commits, stats.conflicts) == (1, 3, 1)
        assert [r.sequence for r in await store.history("acct-1")] == [1, 2]
        assert await store.load("acct-2") is None


async def test_cancelled_conflicting_write_does_not_fail_its_batch(
    open_store: StoreFactory,
) -> None:
    """A conflicting write whose committer was cancelled does not fail the rest of its batch."""
    async with open_store() as store:
        good = asyncio.ensure_future(store.commit(write("acct-1", 1, snapshot=SNAPSHOT)))
        stale = asyncio.ensure_future(store.commit(write("acct-2", 3)))
        await asyncio.sleep(0)  # both are queued; the writer has not run yet
        stale.cancel()
        await good
        assert [r.sequence for r in await store.history("acct-1")] == [1]
        assert store.statistics().failures == 0


# --------------------------------------------------------------------------------------------
# Group commit


async def test_concurrent_commits_share_transactions(open_store: StoreFactory) -> None:
    """500 concurrent commits of different resources go into far fewer transactions."""
    async with open_store() as store:
        await asyncio.gather(
            *(store.commit(write(f"acct-{i:03}", 1, snapshot=SNAPSHOT)) for i in range(500))
        )
        stats = store.statistics()
        assert stats.commits == 500
        assert stats.batches <= 5
        assert stats.largest_batch > 100
        assert stats.pending == 0
        assert len(await store.resources()) == 500


async def test_max_batch_bounds_a_transaction(open_store: StoreFactory) -> None:
    """No transaction carries more than max_batch writes."""
    async with open_store(max_batch=64) as store:
        await asyncio.gather(
            *(store.commit(write(f"acct-{i:03}", 1, snapshot=SNAPSHOT)) for i in range(500))
        )
        stats = store.statistics()
        assert stats.commits == 500
        assert stats.largest_batch == 64
        assert stats.batches >= math.ceil(500 / 64)


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_max_batch_is_validated(value: object) -> None:
    """max_batch must be an int >= 1."""
    with pytest.raises(InvalidArgument, match=r"^max_batch: expected an int >= 1, got "):
        MemoryStore(max_batch=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^max_batch: expected an int >= 1, got "):
        SqliteStore("unused.db", max_batch=value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Reading: history and listings


async def test_history_pages_by_sequence(open_store: StoreFactory) -> None:
    """history returns one resource's records after ``after``, at most ``limit``, oldest first."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1, snapshot=SNAPSHOT))
        await store.commit(write("acct-2", 1, snapshot=SNAPSHOT))
        for sequence in range(2, 8):
            await store.commit(write("acct-1", sequence, payload={"n": sequence}))
        pages = []
        after = 0
        while page := await store.history("acct-1", after=after, limit=3):
            pages.append([r.sequence for r in page])
            after = page[-1].sequence
        assert pages == [[1, 2, 3], [4, 5, 6], [7]]
        assert (await store.history("acct-1", after=6))[0].payload == {"n": 7}
        assert await store.history("nobody") == ()


async def test_history_between_pages_by_time_with_a_cursor(open_store: StoreFactory) -> None:
    """history_between returns records in [start, end) by (at, resource, sequence), paged."""
    async with open_store() as store:
        await store.commit(write("b", 1, snapshot=SNAPSHOT, at=10.0))
        await store.commit(write("a", 1, snapshot=SNAPSHOT, at=10.0))
        await store.commit(write("a", 2, at=11.0))
        await store.commit(write("b", 2, at=12.0))
        await store.commit(write("a", 3, at=13.0))
        await store.commit(write("a", 4, at=5.0))  # clocks may step back; at orders the page
        seen = []
        cursor: tuple[float, str, int] | None = None
        while page := await store.history_between(10.0, 13.0, after=cursor, limit=2):
            seen.append([(r.at, r.resource_id, r.sequence) for r in page])
            last = page[-1]
            cursor = (last.at, last.resource_id, last.sequence)
        assert seen == [
            [(10.0, "a", 1), (10.0, "b", 1)],
            [(11.0, "a", 2), (12.0, "b", 2)],
        ]
        assert [r.sequence for r in await store.history_between(0.0, 100.0)] == [4, 1, 1, 2, 2, 3]


async def test_resources_pages_by_id_and_filters_by_kind(open_store: StoreFactory) -> None:
    """resources lists heads ordered by id after ``after``, filtered by ``kind``."""
    async with open_store() as store:
        for i in range(5):
            kind = "disk" if i % 2 else "account"
            await store.commit(write(f"r-{i}", 1, snapshot=SNAPSHOT, kind=kind, at=float(i)))
        first = await store.resources(limit=2)
        assert [s.resource_id for s in first] == ["r-0", "r-1"]
        rest = await store.resources(after="r-1", limit=10)
        assert [s.resource_id for s in rest] == ["r-2", "r-3", "r-4"]
        disks = await store.resources(kind="disk")
        assert [(s.resource_id, s.kind, s.state, s.revision) for s in disks] == [
            ("r-1", "disk", "open", 1),
            ("r-3", "disk", "open", 1),
        ]
        assert disks[0].updated == 1.0
        assert disks[0].quarantined is None
        assert await store.resources(kind="volume") == ()


@pytest.mark.parametrize("limit", [0, -3, True, 2.0])
@pytest.mark.parametrize("call", ["history", "history_between", "resources"])
async def test_page_limit_is_validated(open_store: StoreFactory, call: str, limit: Any) -> None:
    """Every paged read refuses a limit that is not an int >= 1."""
    async with open_store() as store:
        reads: dict[str, Callable[[], Any]] = {
            "history": lambda: store.history("acct-1", limit=limit),
            "history_between": lambda: store.history_between(0.0, 1.0, limit=limit),
            "resources": lambda: store.resources(limit=limit),
        }
        with pytest.raises(InvalidArgument, match=r"^limit: expected an int >= 1, got "):
            await reads[call]()


# --------------------------------------------------------------------------------------------
# Retention


async def commit_ten(store: Store) -> None:
    """Commit revisions 1..10 of acct-1, with snapshots at 1, 5 and 10."""
    for sequence in range(1, 11):
        snapshot = SNAPSHOT if sequence in (1, 5, 10) else None
        await store.commit(write("acct-1", sequence, snapshot=snapshot))


async def test_retention_prunes_journal_before_the_snapshot(open_store: StoreFactory) -> None:
    """Retention(keep=2) keeps two journal rows before each new snapshot and counts the rest."""
    async with open_store(retention=Retention(keep=2)) as store:
        await commit_ten(store)
        assert [r.sequence for r in await store.history("acct-1")] == [9, 10]
        assert store.statistics().pruned == 8
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert (loaded.revision, loaded.snapshot_revision, loaded.tail) == (10, 10, ())


async def test_default_retention_keeps_the_whole_journal(open_store: StoreFactory) -> None:
    """By default no journal row is ever pruned."""
    async with open_store() as store:
        await commit_ten(store)
        assert [r.sequence for r in await store.history("acct-1")] == list(range(1, 11))
        assert store.statistics().pruned == 0


@pytest.mark.parametrize("keep", [-1, 1.5, "2", math.nan])
def test_retention_is_validated(keep: Any) -> None:
    """Retention.keep must be an int >= 0 or math.inf."""
    with pytest.raises(InvalidArgument, match=r"^keep: expected an int >= 0 or math.inf, got "):
        Retention(keep=keep)


# --------------------------------------------------------------------------------------------
# FSMActor on each store

ACCOUNT = Machine(
    "account",
    states={"open": StateKind.STABLE, "frozen": StateKind.STABLE, "closed": StateKind.TERMINAL},
    initial="open",
    transitions=[
        Transition("open", "deposit", "open"),
        Transition("open", "freeze", "frozen"),
        Transition("frozen", "thaw", "open"),
        Transition("open", "close", "closed"),
    ],
)


class Ledger(msgspec.Struct):
    """An account's data."""

    balance: int = 0
    memos: list[str] = []


@dataclass(frozen=True)
class Probe:
    """Asks an Account for its state, revision, data and why its incarnation started."""


@dataclass(frozen=True)
class Scribble:
    """Makes an Account change its data in memory without committing anything."""


@dataclass(frozen=True)
class Boom:
    """Makes an Account's handler raise: a crash."""


class Account(FSMActor):
    """An FSM actor whose data is a Ledger that deposits add to."""

    machine = ACCOUNT
    data_type = Ledger
    snapshot_every = 3

    async def rehydrate(self, reason: StartReason) -> None:
        self.started_by = reason
        await super().rehydrate(reason)

    def apply(self, data: Ledger, record: TransitionRecord) -> Ledger:
        if record.event != "deposit":
            return data
        return Ledger(
            data.balance + record.payload["amount"], [*data.memos, record.payload["memo"]]
        )

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Probe):
            return self.state, self.revision, self.data, self.started_by
        if isinstance(message, Scribble):
            self.data = Ledger(-1, ["scribbled"])
            return None
        if isinstance(message, Boom):
            raise RuntimeError("boom")
        return await super().receive(message)


def deposit(amount: int, memo: str = "") -> Fire:
    """The command that deposits ``amount``."""
    return Fire("deposit", payload={"amount": amount, "memo": memo or f"+{amount}"})


async def test_data_survives_a_system_restart(open_store: StoreFactory) -> None:
    """State, revision and data applied by ``apply`` come back in a new system on the store."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        for amount in (5, 10, 20, 40):
            await ref.ask(deposit(amount))
        await ref.ask("freeze")

    async with open_store() as store, open_actor_system(store=store) as system:
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert (loaded.revision, loaded.snapshot_revision, len(loaded.tail)) == (5, 3, 2)
        ref = system.spawn(Account, address="acct-1")
        assert await ref.ask(Probe()) == (
            "frozen",
            5,
            Ledger(75, ["+5", "+10", "+20", "+40"]),
            StartReason.SPAWN,
        )
        assert (await ref.ask("thaw")).sequence == 6


async def seed_accounts(open_store: StoreFactory, count: int) -> None:
    """Give accounts acct-0.. one deposit each, i+1 units, through a system on the store."""
    async with open_store() as store, open_actor_system(store=store) as system:
        for i in range(count):
            await system.spawn(Account, address=f"acct-{i}").ask(deposit(i + 1))


async def test_lazy_restore_registers_passivated_actors(open_store: StoreFactory) -> None:
    """restore() registers each stored resource passivated; it loads on its first message."""
    await seed_accounts(open_store, 3)
    async with open_store() as store, open_actor_system(store=store) as system:
        assert await system.restore({"account": Account}) == 3
        stats = system.statistics()
        assert (stats.actors, stats.live, stats.passivated) == (3, 0, 3)
        state = await system.lookup("acct-2").ask(Probe())
        assert state == ("open", 1, Ledger(3, ["+3"]), StartReason.REACTIVATE)
        assert system.statistics().live == 1


async def test_eager_restore_loads_every_actor_before_returning(open_store: StoreFactory) -> None:
    """restore(eager=True) rebuilds every actor's state before it returns."""
    await seed_accounts(open_store, 3)
    async with open_store() as store, open_actor_system(store=store) as system:
        assert await system.restore({"account": Account}, eager=True) == 3
        stats = system.statistics()
        assert (stats.actors, stats.live, stats.busy, stats.crashes) == (3, 3, 0, 0)
        for i in range(3):
            actor = system.lookup(f"acct-{i}")._cell.live.actor  # type: ignore[union-attr]
            assert isinstance(actor, Account)
            assert (actor.revision, actor.data) == (1, Ledger(i + 1, [f"+{i + 1}"]))
        assert (await system.lookup("acct-1").ask(deposit(1))).sequence == 2


async def test_restore_skips_unknown_kinds_and_quarantined_resources(
    open_store: StoreFactory,
) -> None:
    """restore registers only kinds it was given and skips quarantined resources."""
    await seed_accounts(open_store, 3)
    async with open_store() as store:
        await store.commit(write("disk-1", 1, snapshot=SNAPSHOT, kind="disk"))
        await store.quarantine("acct-1", "inspected by hand")
        async with open_actor_system(store=store) as system:
            for eager in (False, True):
                assert await system.restore({"account": Account}, eager=eager) == (
                    0 if eager else 2
                )
            assert sorted(s.resource_id for s in await store.resources()) == [
                "acct-0",
                "acct-1",
                "acct-2",
                "disk-1",
            ]
            assert ("acct-0" in system, "acct-1" in system, "disk-1" in system) == (
                True,
                False,
                False,
            )


async def test_restart_rehydrates_from_the_store_and_drops_memory(open_store: StoreFactory) -> None:
    """A restarted incarnation loads from the store; uncommitted in-memory changes are gone."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(5))
        await ref.ask(deposit(6))
        await ref.ask(Scribble())
        assert (await ref.ask(Probe()))[2] == Ledger(-1, ["scribbled"])
        with pytest.raises(ActorCrashed, match=r"crashed handling Boom: RuntimeError: boom"):
            await ref.ask(Boom())
        assert await ref.ask(Probe()) == ("open", 2, Ledger(11, ["+5", "+6"]), StartReason.RESTART)


async def test_passivation_round_trip_reloads_from_the_store(open_store: StoreFactory) -> None:
    """A reactivated actor has the stored state, not what its last incarnation held."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        for amount in (1, 2, 3, 4):
            await ref.ask(deposit(amount))
        await ref.ask(Scribble())
        assert await system.passivate("acct-1") is True
        assert await ref.ask(Probe()) == (
            "open",
            4,
            Ledger(10, ["+1", "+2", "+3", "+4"]),
            StartReason.REACTIVATE,
        )


async def test_stale_incarnation_conflicts_crashes_and_reloads(open_store: StoreFactory) -> None:
    """A write from a stale incarnation conflicts, crashes it, and the restart reloads."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(5))
        # Another writer (a newer incarnation elsewhere) moves the resource on.
        await store.commit(write("acct-1", 2, payload={"amount": 100, "memo": "elsewhere"}))
        with pytest.raises(ActorCrashed, match=r"RevisionConflict: acct-1: write expected") as info:
            await ref.ask(deposit(1))
        assert isinstance(info.value.__cause__, RevisionConflict)
        assert await ref.ask(Probe()) == (
            "open",
            2,
            Ledger(105, ["+5", "elsewhere"]),
            StartReason.RESTART,
        )
        assert (await ref.ask(deposit(1))).sequence == 3
        stats = system.statistics()
        assert (stats.crashes, stats.restarts) == (1, 1)


# --------------------------------------------------------------------------------------------
# Corruption and quarantine


async def test_corrupt_resource_is_quarantined_and_others_keep_working(
    open_store: StoreFactory,
) -> None:
    """An undecodable journal row quarantines that resource alone; asking it says why."""
    async with open_store() as store, open_actor_system(store=store) as system:
        for i in range(3):
            ref = system.spawn(Account, address=f"acct-{i}")
            await ref.ask(deposit(1))
            await ref.ask(deposit(2))
    async with open_store() as store:
        open_store.corrupt_last_journal_row(store, "acct-1")
        async with open_actor_system(store=store) as system:
            assert await system.restore({"account": Account}) == 3
            with pytest.raises(
                ResourceQuarantined,
                match=r"^resource acct-1 is quarantined: journal row 2 cannot be decoded",
            ) as info:
                await system.lookup("acct-1").ask(Probe())
            assert info.value.resource_id == "acct-1"
            assert "acct-1" not in system
            for other in ("acct-0", "acct-2"):
                assert (await system.lookup(other).ask(deposit(3))).sequence == 3
            assert store.statistics().quarantined == 1
            assert system.statistics().crashes == 0
            assert sorted(await store.load_many(["acct-0", "acct-1", "acct-2"])) == [
                "acct-0",
                "acct-2",
            ]
            summaries = {s.resource_id: s.quarantined for s in await store.resources()}
            assert summaries["acct-0"] is None
            assert summaries["acct-1"] is not None
            assert "cannot be decoded" in summaries["acct-1"]


async def seed_two_deposits_and_corrupt_one(open_store: StoreFactory) -> None:
    """Give acct-0..2 two deposits each through a system, then corrupt acct-1's last row."""
    async with open_store() as store, open_actor_system(store=store) as system:
        for i in range(3):
            ref = system.spawn(Account, address=f"acct-{i}")
            await ref.ask(deposit(1))
            await ref.ask(deposit(2))
    async with open_store() as store:
        open_store.corrupt_last_journal_row(store, "acct-1")


async def test_eager_restore_leaves_out_a_corrupt_resource(open_store: StoreFactory) -> None:
    """restore(eager=True) skips a resource found corrupt while loading; the rest go live."""
    await seed_two_deposits_and_corrupt_one(open_store)
    async with open_store() as store, open_actor_system(store=store) as system:
        await system.restore({"account": Account}, eager=True)
        assert "acct-1" not in system
        stats = system.statistics()
        assert (stats.actors, stats.live, stats.crashes) == (2, 2, 0)
        assert store.statistics().quarantined == 1


async def test_eager_restore_does_not_count_a_corrupt_resource(open_store: StoreFactory) -> None:
    """restore(eager=True) returns only the resources it registered, not a corrupt one."""
    await seed_two_deposits_and_corrupt_one(open_store)
    async with open_store() as store, open_actor_system(store=store) as system:
        assert await system.restore({"account": Account}, eager=True) == 2


async def test_quarantine_of_a_live_resource_stops_its_commits(open_store: StoreFactory) -> None:
    """A resource quarantined while its actor is live refuses commits and is taken out."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1))
        await store.quarantine("acct-1", "found bad by an operator")
        with pytest.raises(ActorCrashed, match=r"found bad by an operator") as info:
            await ref.ask(deposit(2))
        assert isinstance(info.value.__cause__, ResourceQuarantined)
        with pytest.raises(ResourceQuarantined, match=r"^resource acct-1 is quarantined: found"):
            await ref.ask(Probe())  # waits for the restart, which finds it quarantined
        with pytest.raises(ResourceQuarantined, match=r"quarantined: found bad by an operator"):
            await ref.ask(Probe())  # and so does every later ask: it is out of service
        assert "acct-1" not in system
        assert [r.sequence for r in await store.history("acct-1")] == [1]


async def test_stored_state_the_machine_lacks_quarantines(open_store: StoreFactory) -> None:
    """A stored state that is not in the actor's machine quarantines the resource."""
    async with open_store() as store, open_actor_system(store=store) as system:
        await store.commit(write("acct-1", 1, snapshot=SNAPSHOT, target="melted"))
        with pytest.raises(
            ResourceQuarantined,
            match=r"^resource acct-1 is quarantined: stored data does not fit Account: .*melted",
        ):
            await system.spawn(Account, address="acct-1").ask(Probe())
        assert system.statistics().crashes == 0


async def test_waiting_askers_of_a_quarantined_actor_learn_why(open_store: StoreFactory) -> None:
    """Every ask queued on a resource that turns out quarantined fails with the reason."""
    await seed_accounts(open_store, 1)
    async with open_store() as store:
        await store.commit(write("acct-0", 2, payload={"amount": 1, "memo": "x"}))
        open_store.corrupt_last_journal_row(store, "acct-0")
        async with open_actor_system(store=store) as system:
            ref = system.spawn(Account, address="acct-0", passivated=True)
            results = await asyncio.gather(
                ref.ask(Probe()), ref.ask(deposit(1)), return_exceptions=True
            )
            assert all(isinstance(r, ResourceQuarantined) for r in results)
            with pytest.raises(ResourceQuarantined, match=r"quarantined: journal row 2"):
                await ref.ask(Probe())


class Misfit(FSMActor):
    """An account actor whose data type no longer fits what was stored."""

    machine = ACCOUNT
    data_type = msgspec.defstruct("Misfit", [("balance", str)])


async def test_data_that_does_not_fit_data_type_quarantines(open_store: StoreFactory) -> None:
    """A snapshot that does not decode as data_type quarantines the resource, not crashes it."""
    await seed_accounts(open_store, 1)
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Misfit, address="acct-0")
        with pytest.raises(
            ResourceQuarantined,
            match=r"^resource acct-0 is quarantined: stored data does not fit Misfit: "
            r"Expected `str`, got `int` - at `\$.balance`$",
        ):
            await ref.ask(Probe())
        assert store.statistics().quarantined == 1
        assert system.statistics().crashes == 0
        with pytest.raises(ResourceQuarantined):
            await store.load("acct-0")


# --------------------------------------------------------------------------------------------
# Encoding


class LedgerV2(msgspec.Struct):
    """Ledger with a field added later, with a default."""

    balance: int = 0
    memos: list[str] = []
    currency: str = "EUR"


class AccountV2(FSMActor):
    """The next version of Account: its data gained a field."""

    machine = ACCOUNT
    data_type = LedgerV2

    def apply(self, data: LedgerV2, record: TransitionRecord) -> LedgerV2:
        if record.event != "deposit":
            return data
        amount, memo = record.payload["amount"], record.payload["memo"]
        return LedgerV2(data.balance + amount, [*data.memos, memo], data.currency)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Probe):
            return self.revision, self.data
        return await super().receive(message)


async def test_added_field_with_default_reads_old_snapshots(open_store: StoreFactory) -> None:
    """Data stored by an older data_type loads into one with an added defaulted field."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        for amount in (1, 2, 3, 4):
            await ref.ask(deposit(amount))
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(AccountV2, address="acct-1")
        assert await ref.ask(Probe()) == (4, LedgerV2(10, ["+1", "+2", "+3", "+4"], "EUR"))


async def test_snapshot_is_msgpack_of_the_data(open_store: StoreFactory) -> None:
    """Snapshots are msgpack of the data's fields: readable by any decoder, never pickle."""
    async with open_store() as store, open_actor_system(store=store) as system:
        await system.spawn(Account, address="acct-1").ask(deposit(5, "first"))
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert loaded.snapshot is not None
        assert msgspec.msgpack.decode(loaded.snapshot) == {"balance": 5, "memos": ["first"]}


async def test_payload_that_is_not_plain_data_is_refused(open_store: StoreFactory) -> None:
    """A payload msgpack cannot carry is refused with InvalidCommand and nothing is stored."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        with pytest.raises(
            InvalidCommand,
            match=r"^acct-1 refused a command: expected a payload of plain data .*, got object",
        ):
            await ref.ask(Fire("deposit", payload=object()))
        assert await store.load("acct-1") is None
        assert system.statistics().crashes == 0


# --------------------------------------------------------------------------------------------
# SQLite only: schema, durable quarantine, raw rows


def pickled_files(directory: Path) -> list[str]:
    """Files in ``directory`` that hold a pickle stream (protocol 4 or 5 frame header)."""
    return [
        f.name
        for f in directory.iterdir()
        if b"\x80\x04\x95" in f.read_bytes() or b"\x80\x05\x95" in f.read_bytes()
    ]


def sqlite_rows(path: Path, sql: str) -> list[Any]:
    """Rows of ``sql`` read with a separate sqlite3 connection."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def test_fresh_database_gets_the_schema_version(tmp_path: Path) -> None:
    """A new database records each migration once; reopening keeps data, re-applies nothing."""
    path = tmp_path / "fresh.db"
    async with open_sqlite_store(path) as store:
        await store.commit(write("acct-1", 1, snapshot=SNAPSHOT))
    applied = [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert sqlite_rows(path, "SELECT version FROM schema_version ORDER BY version") == applied
    async with open_sqlite_store(path) as store:
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert loaded.revision == 1
    assert sqlite_rows(path, "SELECT version FROM schema_version ORDER BY version") == applied
    assert sqlite_rows(path, "PRAGMA journal_mode") == [("wal",)]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database from a newer stateward raises SchemaError saying what to do."""
    path = tmp_path / "newer.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(
        SchemaError,
        match=rf"^database {path} has schema version {SCHEMA_VERSION + 1}, but this stateward "
        rf"supports up to {SCHEMA_VERSION}; it was written by a newer stateward: "
        r"upgrade to open it$",
    ) as info:
        async with open_sqlite_store(path):
            pass
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert sqlite_rows(path, "SELECT name FROM sqlite_master WHERE name = 'journal'") == []


async def test_quarantine_survives_a_reopen(tmp_path: Path) -> None:
    """A resource quarantined for a corrupt snapshot stays quarantined after reopening."""
    path = tmp_path / "q.db"
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        for address in ("acct-1", "acct-2"):
            await system.spawn(Account, address=address).ask(deposit(1))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE resources SET snapshot = x'c1c1c1' WHERE id = 'acct-1'")
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        with pytest.raises(ResourceQuarantined, match=r"^resource acct-1 is quarantined: "):
            await system.spawn(Account, address="acct-1").ask(Probe())
        assert (await system.spawn(Account, address="acct-2").ask(deposit(1))).sequence == 2
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        assert store.statistics().quarantined == 1
        with pytest.raises(ResourceQuarantined, match=r"stored data does not fit Account"):
            await store.load("acct-1")
        assert await system.restore({"account": Account}) == 1
        assert "acct-1" not in system
        assert sqlite_rows(path, "SELECT resource_id FROM quarantine") == [("acct-1",)]


async def test_rows_hold_msgpack_never_pickle(tmp_path: Path) -> None:
    """Snapshot and payload columns decode as msgpack; no pickle stream is in the file."""
    path = tmp_path / "bytes.db"
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(5, "first"))
        await ref.ask(deposit(6, "second"))
    [(snapshot,)] = sqlite_rows(path, "SELECT snapshot FROM resources")
    assert msgspec.msgpack.decode(snapshot) == {"balance": 5, "memos": ["first"]}
    payloads = sqlite_rows(path, "SELECT payload FROM journal ORDER BY sequence")
    assert [msgspec.msgpack.decode(p) for (p,) in payloads] == [
        {"amount": 5, "memo": "first"},
        {"amount": 6, "memo": "second"},
    ]
    assert pickled_files(tmp_path) == []

"""Store faults: a full disk, a locked database, I/O errors, transient failures, closing.

SQLite faults are real: the writer connection's ``max_page_count`` makes the file full, and a
second sqlite3 connection holding ``BEGIN IMMEDIATE`` locks it. MemoryStore's
``fail_writes`` stands in where a real fault cannot be made on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stateward.runtime import (
    CommitFailed,
    Environment,
    Fire,
    FSMActor,
    Machine,
    MemoryStore,
    RealClock,
    SqliteStore,
    StateKind,
    Store,
    StoreUnavailable,
    Transition,
    TransitionRecord,
    VirtualClock,
    Write,
    open_actor_system,
    open_postgres_store,
    open_sqlite_store,
)

ACCOUNT = Machine(
    "account",
    states={"open": StateKind.STABLE, "closed": StateKind.TERMINAL},
    initial="open",
    transitions=[Transition("open", "deposit", "open"), Transition("open", "close", "closed")],
)


class Ledger(msgspec.Struct):
    """An account's data."""

    balance: int = 0
    memos: list[str] = []


class Account(FSMActor):
    """An FSM actor whose deposits add to its Ledger."""

    machine = ACCOUNT
    data_type = Ledger

    def apply(self, data: Ledger, record: TransitionRecord) -> Ledger:
        if record.event != "deposit":
            return data
        return Ledger(
            data.balance + record.payload["amount"], [*data.memos, record.payload["memo"]]
        )

    async def receive(self, message: Any) -> Any:
        if message == "data":
            return self.revision, self.data
        return await super().receive(message)


def deposit(amount: int, memo: str = "") -> Fire:
    """The command that deposits ``amount``, with a memo."""
    return Fire("deposit", payload={"amount": amount, "memo": memo})


def write(resource_id: str, sequence: int) -> Write:
    """A deposit Write of ``resource_id`` at revision ``sequence``."""
    record = TransitionRecord(resource_id, sequence, "open", "deposit", "open", None, None, 1.0)
    return Write("account", record, b"\x80" if sequence == 1 else None)


def writer_db(store: SqliteStore) -> Any:
    """The store's writer connection, where PRAGMAs limit the file."""
    db = store._writer_db
    assert db is not None
    return db


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the database's write lock from a separate connection for the block."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")


# --------------------------------------------------------------------------------------------
# Disk full


async def test_disk_full_fails_the_command_and_recovers(tmp_path: Path) -> None:
    """A full disk fails asks with CommitFailed, marks the store degraded, then recovers."""
    path = tmp_path / "full.db"
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1, "small"))
        db = writer_db(store)
        [(pages,)] = await db.execute_fetchall("PRAGMA page_count")
        await db.execute(f"PRAGMA max_page_count = {pages}")

        big = deposit(2, "x" * 50_000)  # needs new pages for the journal row
        for _ in range(2):
            with pytest.raises(
                CommitFailed,
                match=r"^acct-1: `deposit` was not committed \(disk full\); "
                r"it stays at revision 1, retry the command \(a write that reached the disk all "
                r"the same is found by the next command\)$",
            ) as info:
                await ref.ask(big)
            cause = info.value.__cause__
            assert isinstance(cause, StoreUnavailable)
            assert (cause.operation, cause.reason, cause.attempts) == ("commit", "disk full", 1)
            assert str(cause).startswith(
                "store commit failed: disk full (database or disk is full)"
            )
        assert system.statistics().store_degraded is True
        stats = store.statistics()
        assert (stats.failures, stats.retries, stats.degraded) == (2, 0, True)
        loaded = await store.load("acct-1")
        assert loaded is not None
        assert loaded.revision == 1
        assert await ref.ask("data") == (1, Ledger(1, ["small"]))

        await db.execute("PRAGMA max_page_count = 1073741823")
        assert (await ref.ask(big)).sequence == 2
        assert system.statistics().store_degraded is False
        assert await ref.ask("data") == (2, Ledger(3, ["small", "x" * 50_000]))
    async with open_sqlite_store(path) as store:
        assert [r.sequence for r in await store.history("acct-1")] == [1, 2]


# --------------------------------------------------------------------------------------------
# Database locked


async def test_locked_database_is_retried_then_fails_then_recovers(tmp_path: Path) -> None:
    """A lock held elsewhere is retried `retries` times, fails the ask, and clears after."""
    path = tmp_path / "locked.db"
    store = open_sqlite_store(path, busy_timeout=0.01, retries=3, backoff=0.001)
    async with store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1))
        with locked(path):
            with pytest.raises(
                CommitFailed, match=r"\(database is locked\); it stays at revision 1"
            ):
                await ref.ask(deposit(2))
            assert system.statistics().store_degraded is True
        stats = store.statistics()
        assert (stats.retries, stats.failures) == (3, 1)

        assert (await ref.ask(deposit(2))).sequence == 2
        assert system.statistics().store_degraded is False
        assert store.statistics().retries == 3


async def test_lock_error_says_how_often_it_was_tried(tmp_path: Path) -> None:
    """The StoreUnavailable of a lock names the reason and the number of attempts."""
    path = tmp_path / "locked.db"
    async with open_sqlite_store(path, busy_timeout=0, retries=2, backoff=0) as store:
        await store.commit(write("acct-1", 1))
        with (
            locked(path),
            pytest.raises(
                StoreUnavailable,
                match=r"^store commit failed after 3 attempts: database is locked "
                r"\(database is locked\); nothing was written \(unless the failure came as the "
                r"transaction committed\), the store retries on the next command and recovers "
                r"when the cause is gone$",
            ) as info,
        ):
            await store.commit(write("acct-1", 2))
        assert (info.value.reason, info.value.attempts) == ("database is locked", 3)
        await store.commit(write("acct-1", 2))
        assert [r.sequence for r in await store.history("acct-1")] == [1, 2]


def private_links(error: BaseException) -> list[str]:
    """Names of private classes (``_Name``) in ``error``'s cause and context chain."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found:
        found.append(current)
        current = current.__cause__ or current.__context__
    return [type(e).__name__ for e in found if type(e).__name__.startswith("_")]


async def test_lock_error_is_caused_by_the_sqlite_error(tmp_path: Path) -> None:
    """A commit that stays locked is caused by sqlite3's error; no private class is chained."""
    path = tmp_path / "locked.db"
    async with open_sqlite_store(path, busy_timeout=0, retries=1, backoff=0) as store:
        await store.commit(write("acct-1", 1))
        with locked(path), pytest.raises(StoreUnavailable) as info:
            await store.commit(write("acct-1", 2))
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert private_links(info.value) == []


async def test_locked_new_database_fails_open_after_retries(tmp_path: Path) -> None:
    """A lock that outlasts the retries fails open with open advice and the sqlite3 cause."""
    path = tmp_path / "locked.db"
    store = open_sqlite_store(path, busy_timeout=0, retries=2, backoff=0)
    with locked(path), pytest.raises(StoreUnavailable) as info:
        await store.open()
    error = info.value
    assert str(error).startswith(
        "store open failed after 3 attempts: database is locked (database is locked); "
        "nothing was opened"
    )
    assert "retries on the next command" not in str(error)
    assert isinstance(error.__cause__, sqlite3.OperationalError)
    assert private_links(error) == []
    async with store:  # the lock is gone: the same store opens
        await store.commit(write("acct-1", 1))


async def test_read_failure_cause_is_the_sqlite_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that stays locked raises StoreUnavailable caused by sqlite3, not a private class."""
    async with open_sqlite_store(tmp_path / "r.db") as store:
        reader = store._reader_db
        assert reader is not None
        # A WAL reader is not blocked by writers: the lock is made up where SQLite answers.
        busy = sqlite3.OperationalError("database is locked")
        busy.sqlite_errorcode = sqlite3.SQLITE_BUSY

        async def locked_read(*_: object) -> list[Any]:
            raise busy

        monkeypatch.setattr(reader, "execute_fetchall", locked_read)
        with pytest.raises(
            StoreUnavailable, match=r"^store history failed: database is locked"
        ) as info:
            await store.history("acct-1")
        assert info.value.__cause__ is busy
        assert private_links(info.value) == []


class BackoffClock(RealClock):
    """The real clock, with an event set when the store first sleeps to back off."""

    def __init__(self) -> None:
        self.backing_off = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.backing_off.set()
        await super().sleep(seconds)


async def test_writes_queued_behind_a_lock_commit_once_it_clears(tmp_path: Path) -> None:
    """Commits that arrive while a batch is being retried go together into the next one."""
    path = tmp_path / "locked.db"
    clock = BackoffClock()
    store = open_sqlite_store(path, clock=clock, busy_timeout=0.005, retries=50, backoff=0.001)
    async with store:
        await store.commit(write("acct-0", 1))
        with locked(path):
            first = asyncio.ensure_future(store.commit(write("acct-1", 1)))
            await clock.backing_off.wait()
            rest = [asyncio.ensure_future(store.commit(write(f"acct-{i}", 1))) for i in (2, 3)]
            await asyncio.sleep(0)  # both are queued behind the batch being retried
        await asyncio.gather(first, *rest)
        assert len(await store.resources()) == 4
        stats = store.statistics()
        assert (stats.batches, stats.largest_batch, stats.failures) == (3, 2, 0)
        assert stats.retries >= 1


# --------------------------------------------------------------------------------------------
# MemoryStore faults: I/O errors and transient failures


def virtual_env() -> Environment:
    """A seeded environment on the running virtual-time loop's clock."""
    return Environment(clock=VirtualClock.current(), seed=1)


@pytest.mark.virtual_time
async def test_io_error_fails_the_command_and_the_actor_goes_on() -> None:
    """An I/O error fails the ask with CommitFailed; the actor keeps its state and continues."""
    store = MemoryStore(clock=VirtualClock.current())
    async with store, open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1, "a"))
        store.fail_writes(1, reason="I/O error")
        with pytest.raises(
            CommitFailed, match=r"`deposit` was not committed \(I/O error\)"
        ) as info:
            await ref.ask(deposit(2, "b"))
        assert isinstance(info.value.__cause__, StoreUnavailable)
        assert info.value.__cause__.reason == "I/O error"
        assert system.statistics().store_degraded is True
        assert await ref.ask("data") == (1, Ledger(1, ["a"]))

        assert (await ref.ask(deposit(3, "c"))).sequence == 2
        assert await ref.ask("data") == (2, Ledger(4, ["a", "c"]))
        assert system.statistics().store_degraded is False
        assert system.statistics().crashes == 0


@pytest.mark.virtual_time
async def test_transient_failures_within_the_budget_succeed() -> None:
    """Transient failures fewer than `retries` are retried with doubling backoff, unseen."""
    clock = VirtualClock.current()
    store = MemoryStore(clock=clock, retries=5, backoff=0.5)
    async with store, open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1))
        store.fail_writes(2, transient=True)
        started = clock.monotonic()
        assert (await ref.ask(deposit(2))).sequence == 2
        assert clock.monotonic() - started == 0.5 + 1.0
        stats = store.statistics()
        assert (stats.retries, stats.failures, stats.degraded, stats.commits) == (2, 0, False, 2)


@pytest.mark.virtual_time
async def test_transient_failures_beyond_the_budget_fail() -> None:
    """More transient failures than `retries` fail the commit after retries + 1 attempts."""
    clock = VirtualClock.current()
    store = MemoryStore(clock=clock, retries=3, backoff=1.0)
    async with store:
        store.fail_writes(4, reason="database is locked", transient=True)
        started = clock.monotonic()
        with pytest.raises(
            StoreUnavailable, match=r"^store commit failed after 4 attempts: database is locked;"
        ) as info:
            await store.commit(write("acct-1", 1))
        assert info.value.attempts == 4
        assert clock.monotonic() - started == 1.0 + 2.0 + 4.0
        stats = store.statistics()
        assert (stats.retries, stats.failures, stats.degraded) == (3, 1, True)
        await store.commit(write("acct-1", 1))
        assert store.statistics().degraded is False


@pytest.mark.virtual_time
async def test_failed_batch_fails_every_write_in_it() -> None:
    """A lasting failure fails all writes of its batch; none of them is stored."""
    store = MemoryStore(clock=VirtualClock.current())
    async with store:
        store.fail_writes(1)
        results = await asyncio.gather(
            *(store.commit(write(f"acct-{i}", 1)) for i in range(3)), return_exceptions=True
        )
        assert [type(r) for r in results] == [StoreUnavailable] * 3
        assert store.statistics().failures == 3
        assert await store.resources() == ()


# --------------------------------------------------------------------------------------------
# A closed store


class Opener:
    """Opens a MemoryStore, a SqliteStore under a test's tmp_path, or a PostgresStore."""

    def __init__(self, name: str, path: Path, dsn: str = "", schema: str = "") -> None:
        self.name = name
        self.path = path
        self.dsn, self.schema = dsn, schema
        self._image: MemoryStore | None = None

    def __call__(self) -> AbstractAsyncContextManager[Store]:
        if self.name == "sqlite":
            return open_sqlite_store(self.path)
        if self.name == "postgres":
            return open_postgres_store(self.dsn, schema=self.schema)
        return self._memory()

    @contextlib.asynccontextmanager
    async def _memory(self) -> AsyncIterator[Store]:
        store = MemoryStore()
        if self._image is not None:
            store._rows, store._journal = self._image._rows, self._image._journal
        async with store:
            yield store
        self._image = store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A factory opening a MemoryStore, a SqliteStore or a PostgresStore; each call reopens
    the same data."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        return Opener("postgres", tmp_path, server.dsn, request.getfixturevalue("postgres_schema"))
    return Opener(request.param, tmp_path / "closing.db")


async def test_commit_to_a_closed_store_is_refused(open_store: Opener) -> None:
    """A commit after aclose raises StoreUnavailable at once instead of waiting forever."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1))
    with pytest.raises(
        StoreUnavailable, match=r"^store commit failed: the store is closed; nothing was written"
    ):
        await store.commit(write("acct-1", 2))


async def test_ask_on_a_closed_store_is_commit_failed(open_store: Opener) -> None:
    """An actor whose store was closed answers CommitFailed and keeps its revision."""
    async with open_store() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Account, address="acct-1")
        await ref.ask(deposit(1))
        await store.aclose()  # type: ignore[attr-defined]
        with pytest.raises(CommitFailed, match=r"\(the store is closed\); it stays at revision 1"):
            await ref.ask(deposit(2))
        assert await ref.ask("data") == (1, Ledger(1, [""]))


async def test_close_finishes_a_commit_in_flight(open_store: Opener) -> None:
    """aclose lets a commit the writer already took finish: it succeeds and is stored."""
    async with open_store() as store:
        await store.commit(write("acct-1", 1))
        task = asyncio.ensure_future(store.commit(write("acct-1", 2)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert store.statistics().pending == 0  # taken by the writer, not yet committed
        assert not task.done()
        await store.aclose()  # type: ignore[attr-defined]
        assert task.done()
        await task
    async with open_store() as store:
        assert [r.sequence for r in await store.history("acct-1")] == [1, 2]


async def test_close_finishes_queued_commits(open_store: Opener) -> None:
    """aclose commits every write queued before it, then refuses new ones."""
    async with open_store() as store:
        tasks = [asyncio.ensure_future(store.commit(write(f"acct-{i}", 1))) for i in range(20)]
        await asyncio.sleep(0)
        await store.aclose()  # type: ignore[attr-defined]
        assert all(t.done() for t in tasks)
        await asyncio.gather(*tasks)
    async with open_store() as store:
        assert len(await store.resources()) == 20

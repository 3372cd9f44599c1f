"""Crash safety with real processes: SIGKILL a busy child, then audit the store it used.

``crash_child.py`` drives 200 durable FSM actors on one store (a SQLite file, or a schema of
the test PostgreSQL server) and prints a line for each acknowledged transition. Each test
kills it at seeded random instants (after a random number of acknowledgements, or after a
random delay that may land during start-up or recovery), several times on the same store, and
after every kill checks, with plain ``sqlite3`` or SQL of its own on the server and an
independent replay of the journal, that nothing acknowledged was lost and nothing is half
applied. A last child restores everything and reports what the runtime rebuilt, which must
match the replay. On PostgreSQL, the *server* is killed too (``pg_ctl stop -m immediate``)
while a child commits: the child's store reconnects when it is back, and the audit finds
every transition acknowledged before and after.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import msgspec
import pytest
from crash_child import CYCLE, SNAPSHOT_EVERY, Tally, fold

from stateward.runtime import TransitionRecord
from stateward.testing import PostgresServer

CHILD = Path(__file__).with_name("crash_child.py")
SEEDS = (7, 1234, 98765)
#: Kills per seed, all on the same database file.
KILLS = 10
#: The most acknowledgements a child gets before a count-triggered kill (~20 k/s here).
MAX_ACKS = 4000
#: Time-triggered kills land before this (during start-up, recovery or the schema's
#: creation: start-up takes ~0.15 s here) or between it and MAX_DELAY.
EARLY = 0.2
MAX_DELAY = 0.5
#: A child that has not been killed after this long is stuck: kill it and fail.
WATCHDOG = 30.0


class Tables(NamedTuple):
    """A store's rows as the audit reads them, without stateward."""

    names: set[str]
    heads: list[tuple[Any, ...]]
    journal: list[tuple[Any, ...]]
    quarantined: list[tuple[Any, ...]]


_HEADS = (
    "SELECT id, kind, state, revision, updated, snapshot, snapshot_revision, snapshot_state "
    "FROM resources ORDER BY id"
)
_JOURNAL = (
    "SELECT resource_id, sequence, source, event, target, task_id, cause, at, payload "
    "FROM journal ORDER BY resource_id, sequence"
)
_QUARANTINE = "SELECT resource_id, reason FROM quarantine"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the children keep their store, and how the audit reads it back."""

    where: str
    options: tuple[str, ...]
    read: Callable[[], Tables]


def sqlite_target(db: Path) -> Target:
    """A SQLite file, read with plain ``sqlite3``."""

    def read() -> Tables:
        if not db.exists():
            return Tables(set(), [], [], [])
        con = sqlite3.connect(db)
        try:
            con.execute("PRAGMA query_only = ON")
            names = {name for (name,) in con.execute("SELECT name FROM sqlite_master")}
            if "resources" not in names:
                return Tables(names, [], [], [])
            return Tables(
                names,
                con.execute(_HEADS).fetchall(),
                con.execute(_JOURNAL).fetchall(),
                con.execute(_QUARANTINE).fetchall(),
            )
        finally:
            con.close()

    return Target(str(db), (), read)


def postgres_target(server: PostgresServer, schema: str, *, retries: int = 6) -> Target:
    """A schema of the test server, read over a connection of the audit's own."""

    def read() -> Tables:
        names = {
            str(name)
            for (name,) in server.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                schema,
            )
        }
        if "resources" not in names:
            return Tables(names, [], [], [])
        return Tables(
            names,
            server.execute(_HEADS, schema=schema),
            server.execute(_JOURNAL, schema=schema),
            server.execute(_QUARANTINE, schema=schema),
        )

    return Target(server.dsn, ("--schema", schema, "--retries", str(retries)), read)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged transition, as the child printed it."""

    resource_id: str
    sequence: int
    source: str
    event: str
    target: str
    payload: Any
    task_id: str | None


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource as the audit rebuilt it from the journal alone."""

    state: str
    revision: int
    data: Tally


@dataclass(frozen=True, slots=True)
class Run:
    """What one child run printed and how it ended."""

    acks: list[Ack]
    ready: bool
    returncode: int
    watchdog_fired: bool
    stderr: str


def _child(target: Target, seed: int, round_: int, *, verify: bool, stderr: IO[bytes]) -> Any:
    args = [sys.executable, str(CHILD), target.where, str(seed), str(round_), *target.options]
    if verify:
        args.append("--verify")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _ack(message: dict[str, Any]) -> Ack:
    return Ack(
        message["r"],
        message["seq"],
        message["source"],
        message["event"],
        message["target"],
        message["payload"],
        message["task"],
    )


def _run_and_kill(target: Target, seed: int, round_: int, rng: random.Random, tmp: Path) -> Run:
    """Start a child and SIGKILL it after a seeded number of acks or a seeded delay."""
    by_count = rng.random() < 0.5
    kill_after_acks = rng.randint(1, MAX_ACKS) if by_count else None
    early = rng.random() < 0.4
    delay = WATCHDOG if by_count else rng.uniform(*((0.0, EARLY) if early else (EARLY, MAX_DELAY)))
    watchdog_fired = threading.Event()
    err_path = tmp / f"child-{seed}-{round_}.err"
    acks: list[Ack] = []
    ready = False
    with err_path.open("wb") as err:
        proc = _child(target, seed, round_, verify=False, stderr=err)

        def kill() -> None:
            if by_count:
                watchdog_fired.set()
            proc.send_signal(signal.SIGKILL)

        timer = threading.Timer(delay, kill)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.endswith("\n"):
                    break  # cut off by the kill: never acknowledged
                message = json.loads(line)
                if message["t"] == "ready":
                    ready = True
                    continue
                acks.append(_ack(message))
                if kill_after_acks is not None and len(acks) == kill_after_acks:
                    proc.send_signal(signal.SIGKILL)
            # Lines the child wrote before dying are acknowledged too; the loop read them all.
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    return Run(
        acks, ready, proc.returncode, watchdog_fired.is_set(), err_path.read_text(errors="replace")
    )


def _record(row: tuple[Any, ...]) -> TransitionRecord:
    payload = msgspec.msgpack.decode(row[8]) if row[8] is not None else None
    return TransitionRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], payload)


def _replay(records: list[TransitionRecord], start: Tally | None = None) -> Tally:
    data = start if start is not None else Tally()
    for record in records:
        data = fold(data, record)
    return data


def _audit(target: Target, acked: dict[tuple[str, int], Ack]) -> dict[str, Resource]:
    """Check every invariant of the store against the acks; return the replayed resources."""
    tables, heads, rows, quarantined = target.read()
    if "resources" not in tables:
        # Killed before the schema's migration committed: it must have written nothing.
        assert not acked, "acknowledged transitions but the schema is missing"
        assert tables <= {"schema_version"}, tables
        return {}
    assert quarantined == []
    journals: dict[str, list[TransitionRecord]] = {}
    for row in rows:
        journals.setdefault(row[0], []).append(_record(row))
    head_ids = {head[0] for head in heads}
    assert set(journals) <= head_ids, f"journal rows without a head: {set(journals) - head_ids}"

    replayed: dict[str, Resource] = {}
    for rid, kind, state, revision, updated, snapshot, snap_revision, snap_state in heads:
        journal = journals.get(rid, [])
        where = f"{rid} (revision {revision}, snapshot at {snap_revision})"
        assert kind == CYCLE.name, where
        # Contiguous 1..revision: no row beyond the head, no head without its row.
        assert revision >= 1, where
        assert [r.sequence for r in journal] == list(range(1, revision + 1)), where
        previous = CYCLE.initial
        for record in journal:
            assert record.source == previous, f"{where}: row {record.sequence} breaks the chain"
            assert CYCLE.target(record.source, record.event) == record.target, where
            previous = record.target
        assert state == journal[-1].target, where
        assert updated == journal[-1].at, where
        # The snapshot is the latest one the actor takes (on the first transition, then
        # every SNAPSHOT_EVERY), and it is what replaying the journal up to it gives.
        assert snapshot is not None, where
        assert snap_revision <= revision, where
        assert snap_revision == max(1, revision - revision % SNAPSHOT_EVERY), where
        assert snap_state == journal[snap_revision - 1].target, where
        decoded = msgspec.msgpack.decode(snapshot, type=Tally)
        assert decoded == _replay(journal[:snap_revision]), where
        whole = _replay(journal)
        assert _replay(journal[snap_revision:], decoded) == whole, where
        assert whole.count == revision, where
        replayed[rid] = Resource(state, revision, whole)

    for (rid, sequence), ack in acked.items():
        assert rid in journals, f"acknowledged {ack} but {rid} has no journal"
        assert sequence <= len(journals[rid]), f"acknowledged {ack} was lost"
        stored = journals[rid][sequence - 1]
        got = Ack(
            stored.resource_id,
            stored.sequence,
            stored.source,
            stored.event,
            stored.target,
            stored.payload,
            stored.task_id,
        )
        assert got == ack, "the journal differs from what was acknowledged"
    return replayed


def _verify(target: Target, seed: int, tmp: Path) -> tuple[int, dict[str, Resource]]:
    """Run a child that only restores, and return what the runtime rebuilt."""
    err_path = tmp / f"verify-{seed}.err"
    with err_path.open("wb") as err:
        proc = _child(target, seed, KILLS, verify=True, stderr=err)
        try:
            out, _ = proc.communicate(timeout=WATCHDOG)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err_path.read_text(errors="replace")
    restored = -1
    found: dict[str, Resource] = {}
    for line in out.splitlines():
        message = json.loads(line)
        if message["t"] == "ready":
            restored = message["restored"]
        elif message["t"] == "state":
            data = msgspec.convert(message["data"], Tally)
            found[message["r"]] = Resource(message["state"], message["revision"], data)
    return restored, found


@pytest.mark.parametrize(
    ("store", "seed"), [*(("sqlite", seed) for seed in SEEDS), ("postgres", SEEDS[0])]
)
def test_sigkill_loses_nothing_acknowledged(
    store: str, seed: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Repeated SIGKILLs of a busy child lose no acknowledged transition and half-apply none."""
    rng = random.Random(seed)
    if store == "postgres":
        server = request.getfixturevalue("postgres")
        target = postgres_target(server, request.getfixturevalue("postgres_schema"))
    else:
        target = sqlite_target(tmp_path / "crash.db")
    acked: dict[tuple[str, int], Ack] = {}
    revisions: dict[str, int] = {}
    total_acks = 0
    for round_ in range(KILLS):
        run = _run_and_kill(target, seed, round_, rng, tmp_path)
        context = f"seed {seed} round {round_}: {run.stderr[-2000:]}"
        assert not run.watchdog_fired, f"the child never reached its kill point; {context}"
        assert run.returncode == -signal.SIGKILL, context
        first: dict[str, int] = {}
        for ack in run.acks:
            key = (ack.resource_id, ack.sequence)
            assert key not in acked, f"revision acknowledged twice: {ack}; {context}"
            acked[key] = ack
            first.setdefault(ack.resource_id, ack.sequence)
        # Each resource continued from the revision the previous run left in the store.
        for rid, sequence in first.items():
            assert sequence == revisions.get(rid, 0) + 1, f"{rid}; {context}"
        total_acks += len(run.acks)
        replayed = _audit(target, acked)
        revisions = {rid: resource.revision for rid, resource in replayed.items()}
    assert total_acks > 0
    restored, rebuilt = _verify(target, seed, tmp_path)
    assert restored == len(replayed)
    assert {rid: rebuilt[rid] for rid in replayed} == replayed


#: Acknowledgements read before the server is killed, and committed after it is back.
BEFORE_KILL = 500
AFTER_RESTART = 500


def test_a_killed_server_loses_nothing_acknowledged_and_the_child_reconnects(
    postgres: PostgresServer, postgres_schema: str, tmp_path: Path
) -> None:
    """``pg_ctl stop -m immediate`` under a busy child, then start: the same child goes on
    committing once the server is back, and nothing it acknowledged is lost."""
    target = postgres_target(postgres, postgres_schema, retries=12)
    acked: dict[tuple[str, int], Ack] = {}
    stored_at_restart: set[tuple[str, int]] | None = None
    after = 0
    err_path = tmp_path / "server-kill.err"
    with err_path.open("wb") as err:
        proc = _child(target, SEEDS[0], 0, verify=False, stderr=err)
        watchdog = threading.Timer(WATCHDOG * 2, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                message = json.loads(line)
                if message["t"] != "ack":
                    continue
                ack = _ack(message)
                key = (ack.resource_id, ack.sequence)
                assert key not in acked, ack
                acked[key] = ack
                if stored_at_restart is None and len(acked) >= BEFORE_KILL:
                    postgres.control("kill")
                    postgres.control("start")
                    # What the server held when it came back: an ack of anything else was
                    # committed after the restart, by the reconnected store.
                    stored_at_restart = {
                        (str(r), int(s))
                        for r, s in postgres.execute(
                            "SELECT resource_id, sequence FROM journal", schema=postgres_schema
                        )
                    }
                elif stored_at_restart is not None and key not in stored_at_restart:
                    after += 1
                    if after >= AFTER_RESTART:
                        proc.send_signal(signal.SIGKILL)
                        break
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    stderr = err_path.read_text(errors="replace")[-2000:]
    assert after >= AFTER_RESTART, f"the child did not commit after the restart: {stderr}"
    assert proc.returncode == -signal.SIGKILL, stderr
    replayed = _audit(target, acked)
    restored, rebuilt = _verify(target, SEEDS[0], tmp_path)
    assert restored == len(replayed)
    assert {rid: rebuilt[rid] for rid in replayed} == replayed

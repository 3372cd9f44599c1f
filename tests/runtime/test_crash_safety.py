"""Crash safety with real processes: SIGKILL a busy child, then audit the SQLite file.

``crash_child.py`` drives 200 durable FSM actors on one SQLite file and prints a line for each
acknowledged transition. Each test kills it at seeded random instants (after a random number
of acknowledgements, or after a random delay that may land during start-up or recovery),
several times on the same file, and after every kill checks, with plain ``sqlite3`` and an
independent replay of the journal, that nothing acknowledged was lost and nothing is half
applied. A last child restores everything and reports what the runtime rebuilt, which must
match the replay.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest
from crash_child import CYCLE, SNAPSHOT_EVERY, Tally, fold

from stateward.runtime import TransitionRecord

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


def _child(db: Path, seed: int, round_: int, *, verify: bool, stderr: IO[bytes]) -> Any:
    args = [sys.executable, str(CHILD), str(db), str(seed), str(round_)]
    if verify:
        args.append("--verify")
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)


def _run_and_kill(db: Path, seed: int, round_: int, rng: random.Random, tmp: Path) -> Run:
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
        proc = _child(db, seed, round_, verify=False, stderr=err)

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
                acks.append(
                    Ack(
                        message["r"],
                        message["seq"],
                        message["source"],
                        message["event"],
                        message["target"],
                        message["payload"],
                        message["task"],
                    )
                )
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


def _audit(db: Path, acked: dict[tuple[str, int], Ack]) -> dict[str, Resource]:
    """Check every invariant of the file against the acks; return the replayed resources."""
    if not db.exists():
        assert not acked, "acknowledged transitions but the database was never created"
        return {}
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA query_only = ON")
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master")}
        if "resources" not in tables:
            # Killed before the schema's migration committed: it must have written nothing.
            assert not acked, "acknowledged transitions but the schema is missing"
            assert tables <= {"schema_version"}, tables
            return {}
        heads = con.execute(
            "SELECT id, kind, state, revision, updated, snapshot, snapshot_revision, "
            "snapshot_state FROM resources ORDER BY id"
        ).fetchall()
        rows = con.execute(
            "SELECT resource_id, sequence, source, event, target, task_id, cause, at, payload "
            "FROM journal ORDER BY resource_id, sequence"
        ).fetchall()
        quarantined = con.execute("SELECT resource_id, reason FROM quarantine").fetchall()
    finally:
        con.close()
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


def _verify(db: Path, seed: int, tmp: Path) -> tuple[int, dict[str, Resource]]:
    """Run a child that only restores, and return what the runtime rebuilt."""
    err_path = tmp / f"verify-{seed}.err"
    with err_path.open("wb") as err:
        proc = _child(db, seed, KILLS, verify=True, stderr=err)
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


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_loses_nothing_acknowledged(seed: int, tmp_path: Path) -> None:
    """Repeated SIGKILLs of a busy child lose no acknowledged transition and half-apply none."""
    rng = random.Random(seed)
    db = tmp_path / "crash.db"
    acked: dict[tuple[str, int], Ack] = {}
    revisions: dict[str, int] = {}
    total_acks = 0
    for round_ in range(KILLS):
        run = _run_and_kill(db, seed, round_, rng, tmp_path)
        context = f"seed {seed} round {round_}: {run.stderr[-2000:]}"
        assert not run.watchdog_fired, f"the child never reached its kill point; {context}"
        assert run.returncode == -signal.SIGKILL, context
        first: dict[str, int] = {}
        for ack in run.acks:
            key = (ack.resource_id, ack.sequence)
            assert key not in acked, f"revision acknowledged twice: {ack}; {context}"
            acked[key] = ack
            first.setdefault(ack.resource_id, ack.sequence)
        # Each resource continued from the revision the previous run left in the file.
        for rid, sequence in first.items():
            assert sequence == revisions.get(rid, 0) + 1, f"{rid}; {context}"
        total_acks += len(run.acks)
        replayed = _audit(db, acked)
        revisions = {rid: resource.revision for rid, resource in replayed.items()}
    assert total_acks > 0
    restored, rebuilt = _verify(db, seed, tmp_path)
    assert restored == len(replayed)
    assert {rid: rebuilt[rid] for rid in replayed} == replayed

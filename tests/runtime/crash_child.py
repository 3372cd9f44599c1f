"""A process for ``test_crash_safety``: durable FSM actors on a store, killed at any instant.

Run as ``python crash_child.py DB SEED ROUND [--resources N] [--verify] [--schema S]
[--retries N]``. It opens the SQLite store at ``DB`` (``Durability.FULL``), or the PostgreSQL
store in schema ``S`` when ``DB`` is a ``postgresql://`` DSN, restores every resource already
stored, spawns the missing ones, and then drives all of them at once with asks. Every
*acknowledged* command (the ask returned, so the runtime says the transition is durable)
becomes one JSON line on stdout, flushed at once; the parent kills the process with SIGKILL
whenever it likes and then checks that every acknowledged line is in the database.

With ``--verify`` it only restores, reports each resource's state, revision and data as the
runtime rebuilt them, and exits cleanly.

The module also holds what parent and child must share: the machine, the data type and the
pure :func:`fold` that ``apply`` uses, so the parent can replay the journal independently.

Lines on stdout (one JSON object each, key ``t`` says which):

- ``{"t": "ready", "restored": N, "resources": M}``: recovery finished; commands start.
- ``{"t": "ack", "r": ID, "seq": S, "source": A, "event": E, "target": B, "payload": P,
  "task": T}``: one acknowledged transition.
- ``{"t": "state", "r": ID, "state": X, "revision": S, "data": {...}}``: with ``--verify``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from typing import Any

import msgspec
import structlog

from stateward.runtime import (
    DriveTo,
    Fire,
    FSMActor,
    Machine,
    PostgresStore,
    SqliteStore,
    StateKind,
    Transition,
    TransitionRecord,
    open_actor_system,
    open_postgres_store,
    open_sqlite_store,
)

#: Resources the child drives unless told otherwise.
RESOURCES = 200
#: Snapshot period: small, so that loads use both a snapshot and a journal tail.
SNAPSHOT_EVERY = 3
#: Commands per resource after which a child that was never killed stops by itself.
MAX_COMMANDS = 5000
#: The checksum's modulus (a Mersenne prime), keeping it a small int that msgpack carries.
MODULUS = 2**61 - 1

CYCLE = Machine(
    "cycle",
    states={
        "idle": StateKind.STABLE,
        "running": StateKind.STABLE,
        "paused": StateKind.STABLE,
        "draining": StateKind.TRANSITIONAL,
    },
    initial="idle",
    transitions=[
        Transition("idle", "start", "running"),
        Transition("running", "pause", "paused"),
        Transition("paused", "resume", "running"),
        Transition("running", "drain", "draining"),
        Transition("draining", "drained", "idle"),
        Transition("paused", "reset", "idle"),
    ],
)


class Tally(msgspec.Struct, frozen=True):
    """What a resource folds out of its transitions.

    Attributes:
        count: transitions applied.
        checksum: an order-sensitive hash of every (sequence, event, payload) applied.
        last_event: the event of the last transition applied.
        last_sequence: the sequence of the last transition applied.
    """

    count: int = 0
    checksum: int = 0
    last_event: str = ""
    last_sequence: int = 0


def fold(data: Tally, record: TransitionRecord) -> Tally:
    """The data after ``record``: pure, so the parent can replay a journal with it.

    Args:
        data: the data before.
        record: the transition; its payload, when there is one, is ``{"n": int, ...}``.

    Returns:
        The data after.
    """
    n = record.payload["n"] if isinstance(record.payload, dict) else 0
    mixed = data.checksum * 1_000_003 + record.sequence * 7_919 + len(record.event) * 31 + n
    return Tally(data.count + 1, mixed % MODULUS, record.event, record.sequence)


class Probe(msgspec.Struct, frozen=True):
    """Asks a :class:`Cycler` for its state, revision and data."""


class Cycler(FSMActor):
    """A durable actor over :data:`CYCLE` whose data is a :class:`Tally`."""

    machine = CYCLE
    data_type = Tally
    snapshot_every = SNAPSHOT_EVERY

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """Fold the record into the tally."""
        return fold(data, record)

    async def receive(self, message: Any) -> Any:
        """Answer a :class:`Probe`; anything else is a command."""
        if isinstance(message, Probe):
            return self.state, self.revision, self.data
        return await super().receive(message)


def resource_ids(count: int) -> list[str]:
    """The ids of the resources a child with ``count`` resources drives."""
    return [f"res-{i:04d}" for i in range(count)]


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _ack(record: TransitionRecord) -> None:
    _emit(
        {
            "t": "ack",
            "r": record.resource_id,
            "seq": record.sequence,
            "source": record.source,
            "event": record.event,
            "target": record.target,
            "payload": record.payload,
            "task": record.task_id,
        }
    )


async def _drive(ref: Any, resource_id: str, state: str, rng: random.Random, tag: str) -> None:
    for command in range(MAX_COMMANDS):
        task_id = f"{tag}-{command}"
        message: Fire | DriveTo
        if rng.random() < 0.1:
            goal = rng.choice([s for s in CYCLE.states if s != state])
            message = DriveTo(goal, task_id=task_id, cause="crash-test")
        else:
            event = rng.choice(CYCLE.allowed(state))
            payload = {"n": rng.randrange(1 << 40), "from": resource_id}
            message = Fire(event, payload=payload, task_id=task_id, cause="crash-test")
        reply = await ref.ask(message)
        records: tuple[TransitionRecord, ...] = reply if isinstance(reply, tuple) else (reply,)
        for record in records:
            _ack(record)
        if records:
            state = records[-1].target


def open_store(db: str, *, schema: str, retries: int) -> PostgresStore | SqliteStore:
    """The store at ``db``: a PostgreSQL DSN (in ``schema``, ``retries`` its budget for a
    restarting server) or a SQLite file."""
    if db.startswith(("postgresql://", "postgres://")):
        return open_postgres_store(db, schema=schema, retries=retries)
    return open_sqlite_store(db)


async def run(
    db: str,
    seed: int,
    round_: int,
    *,
    resources: int,
    verify: bool,
    schema: str = "stateward",
    retries: int = 6,
) -> None:
    """Restore, then drive every resource until killed (or report them, with ``verify``).

    Args:
        db: the SQLite file, or a PostgreSQL DSN.
        seed: the test's seed; with ``round_`` it seeds every resource's command stream.
        round_: which run on this file this is.
        resources: how many resources to drive.
        verify: restore and report instead of driving.
        schema: the PostgreSQL schema.
        retries: the PostgreSQL store's budget for transient failures.
    """
    async with (
        open_store(db, schema=schema, retries=retries) as store,
        open_actor_system(store=store, ask_timeout=60.0) as system,
    ):
        restored = await system.restore({CYCLE.name: Cycler}, eager=True)
        ids = resource_ids(resources)
        refs = [
            system.lookup(rid) if rid in system else system.spawn(Cycler, address=rid)
            for rid in ids
        ]
        probes = await asyncio.gather(*(ref.ask(Probe()) for ref in refs))
        _emit({"t": "ready", "restored": restored, "resources": len(refs)})
        if verify:
            for rid, (state, revision, data) in zip(ids, probes, strict=True):
                _emit(
                    {
                        "t": "state",
                        "r": rid,
                        "state": state,
                        "revision": revision,
                        "data": msgspec.to_builtins(data),
                    }
                )
            return
        await asyncio.gather(
            *(
                _drive(ref, rid, state, random.Random(f"{seed}:{round_}:{rid}"), f"{round_}")
                for ref, rid, (state, _, _) in zip(refs, ids, probes, strict=True)
            )
        )


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("seed", type=int)
    parser.add_argument("round", type=int)
    parser.add_argument("--resources", type=int, default=RESOURCES)
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--schema", default="stateward")
    parser.add_argument("--retries", type=int, default=6)
    args = parser.parse_args()
    # stdout carries acknowledgements only: the runtime's log lines go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(
        run(
            args.db,
            args.seed,
            args.round,
            resources=args.resources,
            verify=args.verify,
            schema=args.schema,
            retries=args.retries,
        )
    )


if __name__ == "__main__":
    main()

"""The fleet rows: the cloud domain end to end, against bare flows and bare actors.

``fleet.boot`` boots instances to ``active`` on :data:`FLEET_HOSTS` hosts through the
embedding API (:class:`~stateward.actors.Fleet` on a SQLite file, ``Durability.FULL``, a
:class:`~stateward.actors.FakeDriver` with zero latency). Every boot is the whole domain path:
the instance actor journals ``boot``, the boot flow schedules (filters and weighers over every
host's status), claims on the chosen host's actor, allocates a port, attaches volumes (none),
spawns and powers on (the task's record committed with the ``boot`` transition and at its
end, every instance transition journaled). The boots are submitted by
:data:`FLEET_CLIENTS` client tasks at most; each client submits a boot
(``fleet.instances.boot``), waits for its task to end (``fleet.tasks.wait``) and takes the
next. A boot's latency is submit to task succeeded. The baseline is the same number of
``flow.boot_durable`` flows (:func:`~stateward.bench._flow_rows.stateward_durable_round`:
6 idempotent no-op steps on SQLite FULL, all submitted at once), so the ratio is what the
domain costs over bare durable flows. ``fleet.boot.commits`` and ``fleet.boot.rows`` count
the store writes and rows of a boot on an in-memory fleet, against one 6-step flow whose
steps each commit their start. After the clock stops, every instance is checked
``active`` on a host, and every host's usage against the instances placed on it.

``fleet.resident_memory`` is the traced memory a fleet holds per registered instance after
``Fleet.open`` restored a database of booted instances. The database is built outside every
timed section: a few instances are booted for real, then raw ``sqlite3`` replicates their
rows (the instance's head, its journal and its boot task record, and the host's claim rows
and snapshot) under fresh ids, in the exact shape the store wrote them. A round opens a fleet
on the big database and on the template-only copy, under ``tracemalloc``, and divides the
difference by the instances the big one adds, so the fleet's fixed cost (store, engine, flows,
hosts) cancels out. The baseline is the per-actor memory of the bare ``asyncio.Queue`` actor
of ``actor.idle_memory``.

Only the public API of :mod:`stateward.actors`, :mod:`stateward.flows` and
:mod:`stateward.runtime` is used, imported inside the functions. The SQL below is the bench's
own copy of what the store writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import math
import re
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ._baselines import BARE_ACTOR, bare_idle_memory_round, settle
from ._flow_rows import FLOW_STEPS, quiet_logs, stateward_durable_round
from ._harness import FULL_SIZES, Comparison, Goal, Round, Row, Side, Sizes, compare, loop_runner
from ._stateward import STATEWARD
from ._store_rows import DURABLE_CLIENTS

if TYPE_CHECKING:
    from stateward.actors import Fleet

__all__ = (
    "FLEET_ROWS",
    "FLEET_HOSTS",
    "FLEET_CLIENTS",
    "FLAVOR",
    "IMAGE",
    "BootOutcome",
    "host_id",
    "instance_id",
    "fleet_boot_round",
    "build_fleet_database",
    "fleet_memory_round",
)

#: Hosts of every fleet row.
FLEET_HOSTS = 100
#: Client tasks submitting boots, each one boot at a time (as ``store.durable_transition``
#: bounds its clients: as many boots in flight as one group commit takes).
FLEET_CLIENTS = DURABLE_CLIENTS
#: The flavor booted: (name, vcpus, ram_mb, disk_gb).
FLAVOR = ("m1.tiny", 1, 512, 1)
#: The image booted.
IMAGE = "cirros"
#: Each host's capacity (vcpus, ram_mb, disk_gb) at Nova's default allocation ratios (16 for
#: CPU, 1.5 for RAM, 1.0 for disk): room for :data:`HOST_ROOM` tiny instances. Concurrent
#: placements read the same host statuses, so they all rank the same emptiest host first (a
#: thundering herd, as in Nova); a host that can take every boot in flight on top of its fair
#: share means no claim is ever refused and nothing runs out of room.
HOST_CAPACITY = (80, 409_600, 1_200)
#: Instances per host the capacity holds (the disk and the RAM are the tightest).
HOST_ROOM = 1_200
#: Boots per side of the unmeasured warm-up round (a full-size warm-up would double the row).
WARMUP_BOOTS = 200
#: Instances booted for real to template the resident-memory database.
TEMPLATE_BOOTS = 4
#: The goals, as the issue states them.
BOOT_GOAL_RATIO = 0.6
BOOT_GOAL_PER_SECOND = 2000.0
MEMORY_GOAL_BYTES = 1024.0

#: The subjects' names.
BOOT_SUBJECT = f"{STATEWARD} Fleet (SqliteStore, FULL, FakeDriver)"
MEMORY_SUBJECT = f"{STATEWARD} Fleet (restored instances)"
#: The baseline of ``fleet.boot``.
FLOWS_BASELINE = f"{STATEWARD} FlowEngine, {FLOW_STEPS}-step no-op flows (SqliteStore, FULL)"

_INSERT_RESOURCE = (
    "INSERT OR REPLACE INTO resources (id, kind, state, revision, updated, snapshot,"
    " snapshot_revision, snapshot_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_JOURNAL = (
    "INSERT INTO journal (resource_id, sequence, source, event, target, task_id, cause, at,"
    " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_DOCUMENT = (
    "INSERT INTO documents (collection, key, version, resource_id, status, dedupe, created,"
    " updated, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_RESOURCE = (
    "SELECT id, kind, state, revision, updated, snapshot, snapshot_revision, snapshot_state"
    " FROM resources WHERE id = ?"
)
_SELECT_JOURNAL = (
    "SELECT resource_id, sequence, source, event, target, task_id, cause, at, payload"
    " FROM journal WHERE resource_id = ? ORDER BY sequence"
)
_SELECT_SPAN = (
    "SELECT resource_id, sequence, source, event, target, task_id, cause, at, payload"
    " FROM journal WHERE resource_id = ? AND sequence > ? AND sequence <= ? ORDER BY sequence"
)
_SELECT_DOCUMENTS = (
    "SELECT collection, key, version, resource_id, status, dedupe, created, updated, body"
    " FROM documents WHERE resource_id = ?"
)
#: Seconds between the replicated instances' timestamps (keeps them ordered and distinct).
_TIME_STEP = 1e-4

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def host_id(index: int) -> str:
    """The id of the ``index``-th host."""
    return f"h-{index:03d}"


def instance_id(index: int) -> str:
    """The id of the ``index``-th instance."""
    return f"i-{index:06d}"


def _discard(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _check_room(boots: int, clients: int) -> None:
    if math.ceil(boots / FLEET_HOSTS) + clients > HOST_ROOM:
        raise ValueError(
            f"{boots} boots by {clients} clients may not fit on {FLEET_HOSTS} hosts of "
            f"{HOST_ROOM} instances; raise HOST_CAPACITY"
        )


async def _add_hosts(fleet: Fleet) -> None:
    from stateward.actors import Capacity, Flavor

    await fleet.flavors.add(Flavor(*FLAVOR))
    await fleet.images.add(IMAGE)
    capacity = Capacity(*HOST_CAPACITY)
    for index in range(FLEET_HOSTS):
        await fleet.hosts.add(host_id(index), capacity=capacity)


async def _check_fleet(fleet: Fleet, ids: Sequence[str]) -> None:
    """Every instance ``active`` on a host; each host's usage is what its instances claim."""
    placed: Counter[str] = Counter()
    for name in ids:
        status = await fleet.instances.get(name)
        if status.vm_state != "active" or status.task_state is not None or status.host_id is None:
            raise AssertionError(
                f"{name} ended {status.state} on {status.host_id}, expected active on a host"
            )
        placed[status.host_id] += 1
    _, vcpus, ram_mb, disk_gb = FLAVOR
    total = 0
    for index in range(FLEET_HOSTS):
        host = await fleet.hosts.get(host_id(index))
        count = placed[host.id]
        expected = (vcpus * count, ram_mb * count, disk_gb * count)
        usage = (host.usage.vcpus, host.usage.ram_mb, host.usage.disk_gb)
        if usage != expected or len(host.claims) != count:
            raise AssertionError(
                f"{host.id} uses {usage} with {len(host.claims)} claims, expected "
                f"{expected} for its {count} instances"
            )
        total += count
    if total != len(ids):
        raise AssertionError(f"hosts hold {total} instances, expected {len(ids)}")


# --- fleet.boot ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BootOutcome:
    """One ``fleet.boot`` round: the round, the commits (and rows) it took, and the hosts'
    spread."""

    round: Round
    commits: int
    most_on_a_host: int
    rows: int = 0


async def fleet_boot_round(
    path: Path | None, *, boots: int, clients: int = FLEET_CLIENTS
) -> BootOutcome:
    """Boots per second of ``boots`` instances on a fresh fleet at ``path`` (in memory when
    None).

    The fleet, its hosts, flavor and image are set up untimed. ``clients`` tasks (created
    before the clock starts) each boot one instance, wait for its task and take the next.
    After the clock stops, every instance and every host is checked.
    """
    from stateward.actors import FakeDriver, Fleet
    from stateward.flows import TaskStatus
    from stateward.runtime import Durability

    _check_room(boots, clients)
    ids = [instance_id(i) for i in range(boots)]
    latencies = [0.0] * boots
    failed: list[str] = []
    clock = time.perf_counter
    async with Fleet.open(path, driver=FakeDriver(), durability=Durability.FULL) as fleet:
        await _add_hosts(fleet)
        todo = iter(range(boots))
        boot, wait = fleet.instances.boot, fleet.tasks.wait
        flavor = FLAVOR[0]

        async def client() -> None:
            for index in todo:
                sent = clock()
                record = await boot(ids[index], flavor=flavor, image=IMAGE)
                record = await wait(record.id)
                latencies[index] = clock() - sent
                if record.status is not TaskStatus.SUCCEEDED:
                    failed.append(f"{ids[index]}: {record.status.value}")

        tasks = [asyncio.create_task(client()) for _ in range(max(1, min(clients, boots)))]
        before = fleet.store.statistics()
        start = clock()
        await asyncio.gather(*tasks)
        elapsed = clock() - start
        after = fleet.store.statistics()
        if failed:
            raise AssertionError(f"{len(failed)} boots did not succeed: {failed[:5]}")
        await _check_fleet(fleet, ids)
        spread = [len((await fleet.hosts.get(host_id(h))).claims) for h in range(FLEET_HOSTS)]
    return BootOutcome(
        Round(boots / elapsed, latencies),
        after.commits - before.commits,
        max(spread),
        after.rows - before.rows,
    )


@contextlib.contextmanager
def _scratch() -> Iterator[tuple[asyncio.Runner, Callable[[str], Path]]]:
    """An event loop for the rounds, logs silenced, and fresh database paths in a
    temporary directory removed afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as directory,
        quiet_logs(),
        loop_runner() as runner,
    ):
        numbers = itertools.count()

        def fresh(prefix: str) -> Path:
            return Path(directory) / f"{prefix}-{next(numbers)}.db"

        yield runner, fresh


def _measure_boot(sizes: Sizes) -> Comparison:
    boots = sizes.fleet_boots
    outcomes: list[BootOutcome] = []
    with _scratch() as (runner, fresh):

        def fleet_side(count: int) -> Round:
            path = fresh("fleet")
            try:
                outcome = runner.run(fleet_boot_round(path, boots=count))
            finally:
                _discard(path)
            outcomes.append(outcome)
            return outcome.round

        def flows_side(count: int) -> Round:
            path = fresh("flows")
            try:
                return runner.run(stateward_durable_round(path, flows=count)).round
            finally:
                _discard(path)

        # One smaller warm-up round per side (imports, caches, allocator pools); a warm-up
        # of the full 10,000 boots would double the row for nothing.
        warmup = min(boots, WARMUP_BOOTS)
        if sizes.warmup_rounds:
            fleet_side(warmup)
            flows_side(warmup)
            outcomes.clear()
        subject_side, baseline_side = compare(
            (BOOT_SUBJECT, lambda: fleet_side(boots)),
            (FLOWS_BASELINE, lambda: flows_side(boots)),
            rounds=sizes.fleet_rounds,
            warmup_rounds=0,
            higher_is_better=True,
        )
    details: dict[str, object] = {
        "boots": boots,
        "hosts": FLEET_HOSTS,
        "clients": max(1, min(FLEET_CLIENTS, boots)),
        "scheduler_weigher": "spread (the default)",
        "flavor": FLAVOR[0],
        "host_capacity": dict(zip(("vcpus", "ram_mb", "disk_gb"), HOST_CAPACITY, strict=True)),
        "most_instances_on_a_host": max(o.most_on_a_host for o in outcomes),
        "commits_per_boot": sum(o.commits for o in outcomes) / (boots * len(outcomes)),
        "durability": "FULL (WAL)",
        "driver": "FakeDriver, zero latency",
        "baseline_flows": boots,
        "baseline_submission": "all flows at once, one per resource (flow.boot_durable)",
        "warmup": f"one round of {warmup:,} boots and {warmup:,} flows per side",
        "latency": "submit to task succeeded",
        "absolute_goal": f"≥ {BOOT_GOAL_PER_SECOND:,.0f} boot/s",
        "absolute_goal_met": subject_side.value >= BOOT_GOAL_PER_SECOND,
        "ratio_goal": f"ratio ≥ {BOOT_GOAL_RATIO:g}",
        "checked": "every instance active on a host; every host's usage = its instances",
        "logging": "silenced",
        "temp_dir": tempfile.gettempdir(),
    }
    if boots != FULL_SIZES.fleet_boots:
        details["size_note"] = (
            f"{sizes.name} sizes: {boots:,} boots per round (the goal is stated for "
            f"{FULL_SIZES.fleet_boots:,}; fewer boots leave fewer claims per host)"
        )
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


# --- fleet.resident_memory -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Template:
    """The rows a real boot wrote for one instance, and the ids to replace in them."""

    instance: tuple[Any, ...]
    journal: list[tuple[Any, ...]]
    documents: list[tuple[Any, ...]]
    claim: tuple[Any, ...]
    tokens: dict[str, Callable[[int], str]]


def _swap(value: Any, pattern: re.Pattern[str], table: dict[str, str]) -> Any:
    """``value`` with every template id in its strings replaced (recursively)."""
    if isinstance(value, str):
        return pattern.sub(lambda m: table[m.group(0)], value)
    if isinstance(value, list):
        return [_swap(v, pattern, table) for v in value]
    if isinstance(value, dict):
        return {_swap(k, pattern, table): _swap(v, pattern, table) for k, v in value.items()}
    return value


def _swap_blob(blob: bytes | None, pattern: re.Pattern[str], table: dict[str, str]) -> Any:
    if blob is None:
        return None
    return _encoder.encode(_swap(_decoder.decode(blob), pattern, table))


def _templates(db: sqlite3.Connection, count: int) -> list[_Template]:
    templates = []
    for index in range(count):
        name = instance_id(index)
        instance = db.execute(_SELECT_RESOURCE, (name,)).fetchone()
        journal = db.execute(_SELECT_JOURNAL, (name,)).fetchall()
        documents = db.execute(_SELECT_DOCUMENTS, (name,)).fetchall()
        scheduled = next(row for row in journal if row[3] == "scheduled")
        networked = next(row for row in journal if row[3] == "networked")
        task = str(scheduled[5])
        host = str(_decoder.decode(scheduled[8])["host"])
        claim = next(
            row
            for row in db.execute(_SELECT_JOURNAL, (host,))
            if row[3] == "claim" and row[5] == task
        )
        tokens: dict[str, Callable[[int], str]] = {
            name: instance_id,
            task: lambda n: f"task-{n:016x}",
            host: lambda n: host_id(n % FLEET_HOSTS),
        }
        for port in _decoder.decode(networked[8])["ports"]:
            prefix = str(port).rsplit("-", 1)[0]
            tokens[str(port)] = functools.partial(_port_id, prefix)
        templates.append(_Template(instance, journal, documents, claim, tokens))
    return templates


def _port_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index + 1:07d}"


def _fold_host(snapshot: dict[str, Any], rows: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """A host's snapshot data after ``rows`` (claims, releases and heartbeats only)."""
    claims = dict(snapshot["claims"])
    for row in rows:
        event, payload = row[3], _decoder.decode(row[8])
        if event == "claim":
            claims[payload["claim_id"]] = payload
        elif event == "release":
            claims.pop(str(payload), None)
        elif event == "heartbeat":
            snapshot = {**snapshot, "last_heartbeat": float(payload)}
        elif event != "configure":
            raise AssertionError(f"unexpected host event {event} in the template database")
    return {**snapshot, "claims": claims}


def _replicate(path: Path, instances: int, every: int) -> None:
    """Add instances ``TEMPLATE_BOOTS`` .. ``instances - 1`` to ``path`` with raw sqlite3."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        templates = _templates(db, TEMPLATE_BOOTS)
        heads: list[tuple[Any, ...]] = []
        journal: list[tuple[Any, ...]] = []
        documents: list[tuple[Any, ...]] = []
        claims: dict[str, list[tuple[Any, ...]]] = {host_id(h): [] for h in range(FLEET_HOSTS)}
        for n in range(TEMPLATE_BOOTS, instances):
            template = templates[n % TEMPLATE_BOOTS]
            table = {old: new(n) for old, new in template.tokens.items()}
            pattern = re.compile("|".join(re.escape(t) for t in sorted(table, key=len)[::-1]))
            shift = (n - n % TEMPLATE_BOOTS) * _TIME_STEP
            rid, kind, state, revision, updated, snap, snap_rev, snap_state = template.instance
            heads.append(
                (
                    table[rid],
                    kind,
                    state,
                    revision,
                    updated + shift,
                    _swap_blob(snap, pattern, table),
                    snap_rev,
                    snap_state,
                )
            )
            for rid, seq, source, event, target, task, cause, at, payload in template.journal:
                journal.append(
                    (
                        table[rid],
                        seq,
                        source,
                        event,
                        target,
                        None if task is None else table[task],
                        cause,
                        at + shift,
                        _swap_blob(payload, pattern, table),
                    )
                )
            for (
                collection,
                key,
                version,
                rid,
                status,
                dedupe,
                created,
                upd,
                body,
            ) in template.documents:
                documents.append(
                    (
                        collection,
                        table[key],
                        version,
                        table[rid],
                        status,
                        dedupe,
                        created + shift,
                        upd + shift,
                        _swap_blob(body, pattern, table),
                    )
                )
            host = host_id(n % FLEET_HOSTS)
            _, _, source, event, target, task, cause, at, payload = template.claim
            claims[host].append(
                (host, 0, source, event, target, table[task], cause, at + shift, payload, table)
            )
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_INSERT_RESOURCE, heads)
        db.executemany(_INSERT_JOURNAL, journal)
        db.executemany(_INSERT_DOCUMENT, documents)
        for host, added in claims.items():
            head = db.execute(_SELECT_RESOURCE, (host,)).fetchone()
            rid, kind, state, revision, updated, snap, snap_rev, snap_state = head
            rows = []
            for offset, (_, _, source, event, target, task, cause, at, payload, table) in enumerate(
                added, start=1
            ):
                pattern = re.compile("|".join(re.escape(t) for t in sorted(table, key=len)[::-1]))
                rows.append(
                    (
                        host,
                        revision + offset,
                        source,
                        event,
                        target,
                        task,
                        cause,
                        at,
                        _swap_blob(payload, pattern, table),
                    )
                )
            db.executemany(_INSERT_JOURNAL, rows)
            last = revision + len(rows)
            # FSMActor snapshots on the first transition and every ``snapshot_every``.
            snapshot_at = max(
                [snap_rev, *(s for s in range(revision + 1, last + 1) if s % every == 0)]
            )
            if snapshot_at > snap_rev:
                tail = db.execute(_SELECT_SPAN, (host, snap_rev, snapshot_at)).fetchall()
                snap = _encoder.encode(_fold_host(_decoder.decode(snap), tail))
                snap_rev, snap_state = snapshot_at, state
            if rows:
                updated = max(updated, rows[-1][7])
            db.execute(
                _INSERT_RESOURCE, (rid, kind, state, last, updated, snap, snap_rev, snap_state)
            )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def build_fleet_database(path: Path, instances: int) -> Path:
    """Create ``path`` holding a fleet of ``instances`` active instances on the fleet's hosts.

    :data:`TEMPLATE_BOOTS` instances are booted for real (on the template hosts, in order, so
    that instance ``n`` is on host ``n % FLEET_HOSTS``); the rest are replicated from them with
    raw sqlite3. Returns a copy of the template-only database (the fixed-cost reference).
    """
    from stateward.actors import FakeDriver, Fleet, HostActor
    from stateward.flows import TaskStatus

    if instances < TEMPLATE_BOOTS:
        raise ValueError(f"instances must be >= {TEMPLATE_BOOTS}, got {instances}")
    async with Fleet.open(path, driver=FakeDriver()) as fleet:
        await _add_hosts(fleet)
        for index in range(TEMPLATE_BOOTS):
            record = await fleet.instances.boot(instance_id(index), flavor=FLAVOR[0], image=IMAGE)
            record = await fleet.tasks.wait(record.id)
            status = await fleet.instances.get(instance_id(index))
            if record.status is not TaskStatus.SUCCEEDED or status.host_id != host_id(index):
                raise AssertionError(
                    f"template boot {index} ended {record.status} on {status.host_id}, expected "
                    f"succeeded on {host_id(index)}"
                )
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    reference = path.with_name(path.stem + "-template.db")
    shutil.copyfile(path, reference)
    _replicate(path, instances, HostActor.snapshot_every)
    return reference


async def _opened_growth(path: Path, *, check: int = 0) -> tuple[int, int, int]:
    """Traced bytes a fleet holds once open on ``path``; its actors, and the passivated ones.

    With ``check`` (the database's instance count), some instances and every host are read
    back after the measurement, to be sure the fleet restored what the builder wrote.
    """
    from stateward.actors import FakeDriver, Fleet

    driver = FakeDriver()
    await settle()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        async with Fleet.open(path, driver=driver, reconcile=False) as fleet:
            await settle()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
            statistics = fleet.system.statistics()
            tracemalloc.stop()
            if check:
                await _add_catalog(fleet)
                sample = sorted({0, TEMPLATE_BOOTS, check // 2, check - 1})
                await _check_some(fleet, [instance_id(i) for i in sample], check)
    finally:
        tracemalloc.stop()
    return grown, statistics.actors, statistics.passivated


@dataclass(frozen=True, slots=True)
class MemoryOutcome:
    """One ``fleet.resident_memory`` round, with the actor counts seen once open."""

    round: Round
    actors: int
    passivated: int


async def fleet_memory_round(path: Path, reference: Path, *, instances: int) -> MemoryOutcome:
    """Bytes per instance: (open ``path`` minus open ``reference``) / the instances it adds."""
    big, actors, passivated = await _opened_growth(path, check=instances)
    small, _, _ = await _opened_growth(reference)
    return MemoryOutcome(Round((big - small) / (instances - TEMPLATE_BOOTS)), actors, passivated)


async def _add_catalog(fleet: Fleet) -> None:
    from stateward.actors import Flavor

    await fleet.flavors.add(Flavor(*FLAVOR))
    await fleet.images.add(IMAGE)


async def _check_some(fleet: Fleet, ids: Sequence[str], instances: int) -> None:
    for name in ids:
        status = await fleet.instances.get(name)
        expected = host_id(int(name.split("-")[1]) % FLEET_HOSTS)
        if status.vm_state != "active" or status.host_id != expected:
            raise AssertionError(f"{name} restored {status.state} on {status.host_id}")
        last = await fleet.tasks.last_fault(name)
        if last is not None:
            raise AssertionError(f"{name} restored with fault {last.id}")
    _, vcpus, _, _ = FLAVOR
    total = 0
    for index in range(FLEET_HOSTS):
        host = await fleet.hosts.get(host_id(index))
        count = len(range(index, instances, FLEET_HOSTS))
        if len(host.claims) != count or host.usage.vcpus != vcpus * count:
            raise AssertionError(f"{host.id} restored {len(host.claims)} claims, expected {count}")
        total += len(host.claims)
    if total != instances:
        raise AssertionError(f"hosts restored {total} claims, expected {instances}")


def _measure_memory(sizes: Sizes) -> Comparison:
    instances = sizes.fleet_instances
    outcomes: list[MemoryOutcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as directory,
        quiet_logs(),
        loop_runner() as runner,
    ):
        path = Path(directory) / f"fleet-{instances}.db"
        start = time.perf_counter()
        reference = runner.run(build_fleet_database(path, instances))
        build_seconds = time.perf_counter() - start

        def subject() -> Round:
            outcome = runner.run(fleet_memory_round(path, reference, instances=instances))
            outcomes.append(outcome)
            return outcome.round

        subject_side, baseline_side = compare(
            (MEMORY_SUBJECT, subject),
            (BARE_ACTOR, lambda: runner.run(bare_idle_memory_round(instances))),
            rounds=sizes.fleet_memory_rounds,
            warmup_rounds=0,
            higher_is_better=False,
            how="median",
        )
    last = outcomes[-1]
    details: dict[str, object] = {
        "instances": instances,
        "hosts": FLEET_HOSTS,
        "template_boots": TEMPLATE_BOOTS,
        "build_seconds_untimed": build_seconds,
        "actors_after_open": last.actors,
        "passivated_after_open": last.passivated,
        "reconcile": "off (the fixture's FakeDriver has no hypervisor state to compare)",
        "method": "tracemalloc growth of Fleet.open on the database minus on its "
        "template-only copy, per added instance",
        "baseline": "actor.idle_memory's bare asyncio.Queue actor, per actor",
        "checked": "sampled instances active on their hosts; every host's claims",
    }
    if instances != FULL_SIZES.fleet_instances:
        details["size_note"] = (
            f"{sizes.name} sizes: {instances:,} instances (the goal is stated for "
            f"{FULL_SIZES.fleet_instances:,})"
        )
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


# --- fleet.move ----------------------------------------------------------------------------

#: Instances moved per round, as a share of the boots of ``fleet.boot`` at the same size.
MOVE_SHARE = 4
#: The baseline of ``fleet.move``: as many boots on the same fleet setup, in the same run.
MOVE_BASELINE = f"{STATEWARD} fleet.boot of as many instances (same setup)"


@dataclass(frozen=True, slots=True)
class MoveOutcome:
    """One ``fleet.move`` round: the round and the commits it took."""

    round: Round
    commits: int


async def fleet_move_round(path: Path, *, moves: int, clients: int = FLEET_CLIENTS) -> MoveOutcome:
    """Cold migrations per second of ``moves`` active instances on a fresh fleet.

    The instances are booted untimed; then ``clients`` tasks each migrate one instance,
    wait for its task and take the next. After the clock stops every instance is checked
    active on a host other than its first, with its migration completed and every host's
    usage equal to its instances' claims (no claim left behind on a source).
    """
    from stateward.actors import FakeDriver, Fleet
    from stateward.flows import TaskStatus
    from stateward.runtime import Durability

    _check_room(moves, clients)
    ids = [instance_id(i) for i in range(moves)]
    latencies = [0.0] * moves
    failed: list[str] = []
    clock = time.perf_counter
    async with Fleet.open(path, driver=FakeDriver(), durability=Durability.FULL) as fleet:
        await _add_hosts(fleet)
        workers = max(1, min(clients, moves))

        async def run(act: Callable[[str], Any], measure: bool) -> None:
            todo = iter(range(moves))

            async def client() -> None:
                for index in todo:
                    sent = clock()
                    record = await fleet.tasks.wait((await act(ids[index])).id)
                    if measure:
                        latencies[index] = clock() - sent
                    if record.status is not TaskStatus.SUCCEEDED:
                        failed.append(f"{ids[index]}: {record.status.value}")

            await asyncio.gather(*[asyncio.create_task(client()) for _ in range(workers)])

        await run(lambda name: fleet.instances.boot(name, flavor=FLAVOR[0], image=IMAGE), False)
        first = {name: (await fleet.instances.get(name)).host_id for name in ids}
        before = fleet.store.statistics().commits
        start = clock()
        await run(fleet.instances.migrate, True)
        elapsed = clock() - start
        commits = fleet.store.statistics().commits - before
        if failed:
            raise AssertionError(f"{len(failed)} boots or moves did not succeed: {failed[:5]}")
        await _check_fleet(fleet, ids)
        for name in ids:
            status = await fleet.instances.get(name)
            if status.host_id == first[name] or status.migration_id is None:
                raise AssertionError(f"{name} did not move from {first[name]}")
            migration = await fleet.migrations.get(status.migration_id)
            if migration.state != "completed":
                raise AssertionError(f"{name}'s migration ended {migration.state}")
    return MoveOutcome(Round(moves / elapsed, latencies), commits)


def _measure_move(sizes: Sizes) -> Comparison:
    moves = max(1, sizes.fleet_boots // MOVE_SHARE)
    outcomes: list[MoveOutcome] = []
    with _scratch() as (runner, fresh):

        def move_side() -> Round:
            path = fresh("move")
            try:
                outcome = runner.run(fleet_move_round(path, moves=moves))
            finally:
                _discard(path)
            outcomes.append(outcome)
            return outcome.round

        def boot_side() -> Round:
            path = fresh("boot")
            try:
                return runner.run(fleet_boot_round(path, boots=moves)).round
            finally:
                _discard(path)

        subject_side, baseline_side = compare(
            (f"{STATEWARD} cold migrations (SqliteStore, FULL, FakeDriver)", move_side),
            (MOVE_BASELINE, boot_side),
            rounds=sizes.fleet_rounds,
            warmup_rounds=sizes.warmup_rounds and 1,
            higher_is_better=True,
        )
    measured = outcomes[-sizes.fleet_rounds :] if sizes.fleet_rounds else outcomes
    details: dict[str, object] = {
        "moves": moves,
        "hosts": FLEET_HOSTS,
        "clients": max(1, min(FLEET_CLIENTS, moves)),
        "commits_per_move": sum(o.commits for o in measured) / (moves * max(1, len(measured))),
        "steps": "begin, claim destination, stop, prepare, transfer, switch, finish, "
        "clean up source, end (each move also a migration resource)",
        "durability": "FULL (WAL)",
        "driver": "FakeDriver, zero latency",
        "latency": "submit to task succeeded",
        "checked": "every instance active on another host, its migration completed, every "
        "host's usage = its instances",
        "logging": "silenced",
    }
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


# --- fleet.drain ---------------------------------------------------------------------------

#: Instances on the drained host at full size (the quick sizes drain as many as they boot).
DRAIN_INSTANCES = 100
#: Moves in flight at once in ``fleet.drain``.
DRAIN_CONCURRENCY = 10
#: Seconds each FakeDriver call takes while the drain is timed.
DRAIN_LATENCY = 0.01
DRAIN_GOAL_RATIO = 5.0
MOVE_GOAL_RATIO = 0.5
#: The baseline of ``fleet.drain``.
DRAIN_BASELINE = f"{STATEWARD} the same live migrations, one at a time"


async def fleet_drain_round(path: Path, *, instances: int, concurrency: int) -> float:
    """Seconds to move ``instances`` running instances off one host by live migration.

    The instances are booted untimed onto ``h-0`` (the other hosts are added after them);
    then the driver's calls take :data:`DRAIN_LATENCY` seconds each and the clock runs
    while ``fleet.hosts.drain("h-0", concurrency=concurrency)`` runs to its end, or, with
    ``concurrency=0``, while each instance is live-migrated and waited for in turn. After
    the clock stops the host is checked empty and every instance active elsewhere with its
    migration completed.
    """
    from stateward.actors import Capacity, FakeDriver, Fleet
    from stateward.flows import TaskStatus
    from stateward.runtime import Durability

    ids = [instance_id(i) for i in range(instances)]
    capacity = Capacity(*HOST_CAPACITY)
    driver = FakeDriver()
    async with Fleet.open(path, driver=driver, durability=Durability.FULL) as fleet:
        await _add_catalog(fleet)
        await fleet.hosts.add(host_id(0), capacity=capacity)
        boots = [await fleet.instances.boot(n, flavor=FLAVOR[0], image=IMAGE) for n in ids]
        for record in boots:
            await fleet.tasks.wait(record.id)
        for h in range(1, FLEET_HOSTS):
            await fleet.hosts.add(host_id(h), capacity=capacity)
        driver.latency = DRAIN_LATENCY
        start = time.perf_counter()
        if concurrency:
            record = await fleet.hosts.drain(host_id(0), concurrency=concurrency)
            drain = await fleet.tasks.wait(record.id)
            if drain.status is not TaskStatus.SUCCEEDED:
                raise AssertionError(f"the drain ended {drain.status}: {drain.error_message}")
        else:
            for name in ids:
                record = await fleet.tasks.wait((await fleet.instances.live_migrate(name)).id)
                if record.status is not TaskStatus.SUCCEEDED:
                    raise AssertionError(f"{name}'s live migration ended {record.status}")
        elapsed = time.perf_counter() - start
        driver.latency = 0.0
        if (await fleet.hosts.get(host_id(0))).claims:
            raise AssertionError("the drained host still holds claims")
        for name in ids:
            status = await fleet.instances.get(name)
            migration = await fleet.migrations.get(status.migration_id or "")
            if status.host_id == host_id(0) or status.vm_state != "active":
                raise AssertionError(f"{name} is {status.vm_state} on {status.host_id}")
            if (migration.kind, migration.state) != ("live_migrate", "completed"):
                raise AssertionError(f"{name}'s migration is {migration.kind} {migration.state}")
    return elapsed


def _measure_drain(sizes: Sizes) -> Comparison:
    instances = max(1, min(DRAIN_INSTANCES, sizes.fleet_boots // 10))
    with _scratch() as (runner, fresh):

        def side(concurrency: int) -> Callable[[], Round]:
            def run() -> Round:
                path = fresh("drain")
                try:
                    seconds = runner.run(
                        fleet_drain_round(path, instances=instances, concurrency=concurrency)
                    )
                finally:
                    _discard(path)
                return Round(seconds)

            return run

        subject_side, baseline_side = compare(
            (
                f"{STATEWARD} fleet.hosts.drain, concurrency {DRAIN_CONCURRENCY}",
                side(DRAIN_CONCURRENCY),
            ),
            (DRAIN_BASELINE, side(0)),
            rounds=sizes.fleet_rounds,
            warmup_rounds=0,
            higher_is_better=False,
        )
    details: dict[str, object] = {
        "instances": instances,
        "hosts": FLEET_HOSTS,
        "concurrency": DRAIN_CONCURRENCY,
        "driver": f"FakeDriver, {DRAIN_LATENCY * 1000:g} ms per call",
        "durability": "FULL (WAL)",
        "checked": "the host empty, every instance active elsewhere, its live migration completed",
    }
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


# --- fleet.boot.commits and fleet.boot.rows ------------------------------------------------

#: Boots per side of the count rows: the counts per boot are exact at any size.
COUNT_BOOTS = 200
#: What a boot may write at most (the goals): awaited commits, and journal and document rows.
BOOT_COMMITS_GOAL = 4.0
BOOT_ROWS_GOAL = 7.0
#: The count rows' baseline.
COUNT_BASELINE = f"one {FLOW_STEPS}-step flow, every step's start committed"


def _count_boots() -> tuple[BootOutcome, Any]:
    """One round of :data:`COUNT_BOOTS` boots on an in-memory fleet, and one of as many
    bare flows whose steps all commit their starts (MemoryStore: the counts do not depend on
    the disk)."""
    from ._flow_rows import stateward_memory_round

    with quiet_logs(), loop_runner() as runner:
        boots = runner.run(fleet_boot_round(None, boots=COUNT_BOOTS))
        flows = runner.run(stateward_memory_round(flows=COUNT_BOOTS, fail=False, idempotent=False))
    return boots, flows


def _measure_count(field: str) -> Callable[[Sizes], Comparison]:
    def measure(sizes: Sizes) -> Comparison:
        boots, flows = _count_boots()
        subject = getattr(boots, field) / COUNT_BOOTS
        baseline = getattr(flows, field) / COUNT_BOOTS
        return Comparison(
            subject=Side(
                name=f"{STATEWARD} Fleet boot (MemoryStore)", value=subject, rounds=(subject,)
            ),
            baseline=Side(name=COUNT_BASELINE, value=baseline, rounds=(baseline,)),
            details={
                "boots": COUNT_BOOTS,
                "hosts": FLEET_HOSTS,
                "counted": "store writes (each awaited by its writer) per boot"
                if field == "commits"
                else "journal and document rows per boot (snapshots not counted)",
                "path": "boot transition with the task's first record; the host's claim; "
                "the scheduled, networked and volumes_attached progress transitions (told, "
                "not awaited by the flow); the task's end; the spawned transition",
            },
        )

    return measure


#: The fleet rows, in report order.
FLEET_ROWS = (
    Row(
        name="fleet.boot.commits",
        unit="commit/boot",
        higher_is_better=False,
        measure=_measure_count("commits"),
        summary="store writes per boot (instance, host and task together) vs one "
        f"{FLOW_STEPS}-step flow with every step's start committed (a deterministic count)",
        goal=Goal.max_value(BOOT_COMMITS_GOAL),
    ),
    Row(
        name="fleet.boot.rows",
        unit="row/boot",
        higher_is_better=False,
        measure=_measure_count("rows"),
        summary="journal and document rows per boot vs one "
        f"{FLOW_STEPS}-step flow with every step's start committed (a deterministic count)",
        goal=Goal.max_value(BOOT_ROWS_GOAL),
    ),
    Row(
        name="fleet.boot",
        unit="boot/s",
        higher_is_better=True,
        measure=_measure_boot,
        summary=f"instances booted to active on {FLEET_HOSTS} hosts (SQLite FULL, FakeDriver) "
        f"vs as many {FLOW_STEPS}-step durable no-op flows",
        goal=Goal.min_ratio(BOOT_GOAL_RATIO),
    ),
    Row(
        name="fleet.move",
        unit="move/s",
        higher_is_better=True,
        measure=_measure_move,
        summary=f"active instances cold-migrated on {FLEET_HOSTS} hosts (SQLite FULL, "
        "FakeDriver) vs as many boots on the same setup",
        goal=Goal.min_ratio(MOVE_GOAL_RATIO),
    ),
    Row(
        name="fleet.drain",
        unit="s",
        higher_is_better=False,
        measure=_measure_drain,
        summary=f"seconds to drain a host of live instances {DRAIN_CONCURRENCY} at a time "
        f"(FakeDriver {DRAIN_LATENCY * 1000:g} ms per call) vs the same moves one at a time",
        goal=Goal.min_ratio(DRAIN_GOAL_RATIO),
    ),
    Row(
        name="fleet.resident_memory",
        unit="B/instance",
        higher_is_better=False,
        measure=_measure_memory,
        summary="traced bytes per instance a fleet holds after restoring a booted database",
        goal=Goal.max_value(MEMORY_GOAL_BYTES),
    ),
)

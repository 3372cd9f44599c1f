"""``crash_at_every_commit``: every crash point is reached exactly, and what a restarted
process finds is checked at each, for a user's own machine and for a fleet's boot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet
from stateward.flows import TaskStatus
from stateward.runtime import (
    Environment,
    Fire,
    FSMActor,
    InvalidArgument,
    LifecycleError,
    Machine,
    MemoryStore,
    Request,
    StateKind,
    Transition,
    TransitionRecord,
    open_actor_system,
)
from stateward.testing import Crash, Nondeterministic, crash_at_every_commit

COUNTER = Machine(
    "counter",
    initial="idle",
    states={"idle": StateKind.STABLE, "counting": StateKind.STABLE},
    transitions=[
        Transition("idle", "add", "counting"),
        Transition("counting", "add", "counting"),
    ],
)


class Count(msgspec.Struct):
    total: int = 0


@dataclass(frozen=True)
class Total(Request[int]):
    """The counter's total."""


class Counter(FSMActor):
    machine = COUNTER
    data_type = Count
    snapshot_every = 3  # some crash points fall between snapshots, some right after one

    def apply(self, data: Count, record: TransitionRecord) -> Count:
        return Count(data.total + record.payload)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Total):
            return self.data.total
        return await super().receive(message)


AMOUNTS = (1, 2, 4, 8, 16)


async def _count(store: MemoryStore, env: Environment) -> None:
    async with open_actor_system(store=store, env=env) as system:
        counter = system.spawn(Counter, address="c-1")
        for amount in AMOUNTS:
            await counter.ask(Fire("add", payload=amount))


def test_every_crash_point_leaves_exactly_the_commits_before_it() -> None:
    """After a crash at commit k the reopened counter holds the first k amounts, no more,
    no fewer: the crash lands exactly after commit k and recovery replays what is stored."""
    seen: list[tuple[int, int | None, bool]] = []

    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        async with open_actor_system(store=store, env=env) as system:
            await system.restore({"counter": Counter})
            total = await system.lookup("c-1").ask(Total()) if "c-1" in system else None
            seen.append((crash.after, total, crash.finished))

    commits = crash_at_every_commit(_count, check)
    assert commits == len(AMOUNTS)
    expected = [(0, None, False)] + [
        (k, sum(AMOUNTS[:k]), k == len(AMOUNTS)) for k in range(1, len(AMOUNTS) + 1)
    ]
    assert seen == expected


def test_a_scenario_that_commits_differently_each_run_is_reported() -> None:
    """Crash points mean nothing when the work is not reproducible: say so."""
    runs = iter(range(100))

    async def unstable(store: MemoryStore, env: Environment) -> None:
        async with open_actor_system(store=store, env=env) as system:
            counter = system.spawn(Counter, address="c-1")
            for _ in range(3 if next(runs) == 0 else 1):
                await counter.ask(Fire("add", payload=1))

    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        pass

    with pytest.raises(Nondeterministic, match="made 3 commits on its first run, and 1"):
        crash_at_every_commit(unstable, check)


def test_the_limit_guards_against_endless_scenarios() -> None:
    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        pass

    with pytest.raises(InvalidArgument, match="at most 2 commits"):
        crash_at_every_commit(_count, check, limit=2)


async def test_it_refuses_to_run_inside_an_event_loop() -> None:
    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        pass

    with pytest.raises(LifecycleError, match="plain function"):
        crash_at_every_commit(_count, check)


def test_a_boot_crashed_after_any_commit_recovers_to_a_consistent_fleet() -> None:
    """A fleet booting one instance, killed after each of its commits: on reopen and
    recovery the boot ends (or never started), the instance runs on the driver exactly when
    the fleet places it, its host holds exactly its claim, and reconcile finds nothing."""
    outside: dict[str, FakeDriver] = {}  # the hypervisor outlives the process
    outcomes: set[str] = set()

    async def boot(store: MemoryStore, env: Environment) -> None:
        driver = outside["driver"] = FakeDriver(env=env)
        async with Fleet.open(store=store, driver=driver, env=env) as fleet:
            await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
            await fleet.images.add("cirros")
            await fleet.hosts.add("h-1", capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
            task = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
            await fleet.tasks.wait(task.id)

    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        driver = outside["driver"]
        async with Fleet.open(store=store, driver=driver, env=env) as fleet:
            report = await fleet.recover()
            again = await fleet.reconcile()
            assert (again.orphans, again.ghosts) == ((), ()), crash
            described = {i.id for i in (await driver.describe()).instances}
            hosts = await fleet.hosts.list()
            claims = [c.instance_id for h in hosts for c in h.claims]
            if "web-1" not in fleet.system:
                assert described == set(), crash
                assert claims == [], crash
                outcomes.add("never started")
                return
            status = await fleet.instances.get("web-1")
            records = await fleet.tasks.list("web-1")
            assert all(r.status.is_terminal for r in records), (crash, records)
            assert claims == (["web-1"] if status.host_id is not None else []), (crash, status)
            assert ("web-1" in described) == (status.host_id is not None), (crash, status, report)
            if crash.finished:
                assert status.state == "active"
                assert records[0].status is TaskStatus.SUCCEEDED
            outcomes.add(status.state)

    commits = crash_at_every_commit(boot, check)
    assert commits >= 5  # host, boot intent, claim, progress, completion at the least
    assert {"never started", "active"} <= outcomes


def test_asyncio_is_left_clean() -> None:
    """The helper's loops are all closed: a new one starts as usual afterwards."""

    async def check(store: MemoryStore, env: Environment, crash: Crash) -> None:
        pass

    crash_at_every_commit(_count, check)
    assert asyncio.run(asyncio.sleep(0, result=7)) == 7

"""The fleet's lifecycle: façade calls only while open, one ``async with`` per fleet."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from stateward.actors import (
    Capacity,
    Configure,
    FakeDriver,
    Flavor,
    Fleet,
    FleetNotOpen,
    HostActor,
    Operation,
)
from stateward.runtime import (
    Environment,
    LifecycleError,
    MemoryStore,
    StatewardError,
    TransitionRecord,
    VirtualClock,
    Write,
    open_actor_system,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)

#: One call of every façade of a fleet, as a coroutine (or a plain call for a sync one).
CALLS: dict[str, Callable[[Fleet], Any]] = {
    "hosts.add": lambda f: f.hosts.add("h-1", capacity=HOST_SIZE),
    "hosts.get": lambda f: f.hosts.get("h-1"),
    "hosts.list": lambda f: f.hosts.list(),
    "hosts.command": lambda f: f.hosts.command("h-1", "disable"),
    "hosts.heartbeat": lambda f: f.hosts.heartbeat("h-1"),
    "hosts.heartbeat_all": lambda f: f.hosts.heartbeat_all(),
    "hosts.ids": lambda f: f.hosts.ids(),
    "hosts.set_agent": lambda f: f.hosts.set_agent("h-1", alive=False),
    "instances.boot": lambda f: f.instances.boot("web-1", flavor="m1.small", image="cirros"),
    "instances.act": lambda f: f.instances.act("web-1", "stop"),
    "instances.stop": lambda f: f.instances.stop("web-1"),
    "instances.get": lambda f: f.instances.get("web-1"),
    "instances.list": lambda f: f.instances.list(),
    "instances.summaries": lambda f: f.instances.summaries(),
    "tasks.get": lambda f: f.tasks.get("task-1"),
    "tasks.wait": lambda f: f.tasks.wait("task-1"),
    "tasks.list": lambda f: f.tasks.list("web-1"),
    "tasks.last_fault": lambda f: f.tasks.last_fault("web-1"),
    "tasks.actions": lambda f: f.tasks.actions("web-1"),
    "tasks.parked": lambda f: f.tasks.parked(),
    "flavors.add": lambda f: f.flavors.add(SMALL),
    "images.add": lambda f: f.images.add("cirros"),
    "subscribe": lambda f: f.subscribe("instance.#"),
    "reconcile": lambda f: f.reconcile(),
    "resume": lambda f: f.resume(),
    "recover": lambda f: f.recover(),
}


async def call(fleet: Fleet, name: str) -> None:
    """Make the call ``name`` on ``fleet``, awaiting it when it is a coroutine."""
    result = CALLS[name](fleet)
    if isinstance(result, Awaitable):
        await result


def new_fleet() -> Fleet:
    """A fleet in memory, not open yet."""
    return Fleet.open(driver=FakeDriver())


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_call_before_open_is_a_lifecycle_error(name: str) -> None:
    """Every façade call on a fleet not yet opened raises FleetNotOpen, naming the call."""
    fleet = new_fleet()
    with pytest.raises(FleetNotOpen, match="not open yet") as caught:
        await call(fleet, name)
    assert isinstance(caught.value, LifecycleError)
    assert caught.value.state == "not open yet"


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_call_after_close_is_a_lifecycle_error(name: str) -> None:
    """Every façade call on a closed fleet raises FleetNotOpen, not a lookup error."""
    fleet = new_fleet()
    async with fleet:
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
    with pytest.raises(FleetNotOpen, match="closed"):
        await call(fleet, name)


async def test_a_second_async_with_on_an_open_fleet_is_refused() -> None:
    """Entering an open fleet again raises FleetNotOpen and opens no second actor system:
    the fleet goes on working, and closes its one system."""
    fleet = new_fleet()
    async with fleet:
        system = fleet.system
        with pytest.raises(FleetNotOpen, match="opened once"):
            async with fleet:
                pytest.fail("entered twice")  # pragma: no cover
        assert fleet.system is system
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
    assert not system.is_running


async def test_a_closed_fleet_cannot_be_opened_again() -> None:
    """A fleet is opened once: entering it after close raises FleetNotOpen."""
    fleet = new_fleet()
    async with fleet:
        pass
    with pytest.raises(FleetNotOpen, match="opened once"):
        async with fleet:
            pytest.fail("reopened")  # pragma: no cover


async def test_a_fleet_whose_open_failed_is_closed(tmp_path: Path) -> None:
    """A fleet whose open failed leaves nothing running and refuses calls as closed."""
    fleet = Fleet.open(tmp_path / "missing" / "cloud.db", driver=FakeDriver())
    with pytest.raises(StatewardError):
        async with fleet:
            pytest.fail("opened")  # pragma: no cover
    with pytest.raises(FleetNotOpen, match="closed"):
        await fleet.hosts.list()


async def test_reopening_a_healthy_fleet_logs_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fleet reopened on a database with hosts and instances restores both kinds without
    a "resources not restored" warning (or any warning)."""
    path = tmp_path / "cloud.db"
    driver = FakeDriver()
    async with Fleet.open(path, driver=driver) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
    caplog.set_level(logging.DEBUG, logger="stateward")
    async with Fleet.open(path, driver=driver) as fleet:
        assert [s.id for s in await fleet.hosts.list()] == ["h-1"]
        assert (await fleet.instances.get("web-1")).state == "active"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


async def test_restore_warns_about_a_kind_no_call_restores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Resources of a kind that no restore call names are still a warning from each call,
    naming the kind and how many; the hosts the first call restored are not named."""
    store = MemoryStore()
    async with open_actor_system(store=store) as system:
        for address in ("h-1", "h-2"):
            await system.spawn(HostActor, address=address).ask(
                Configure(HOST_SIZE, 16.0, 1.5, 1.0, "nova")
            )
        record = TransitionRecord("x-1", 1, "new", "make", "made", None, None, 0.0)
        await store.submit(Write(kind="gadget", record=record))
    caplog.set_level(logging.WARNING, logger="stateward.system")
    async with open_actor_system(store=store) as system:
        assert await system.restore({"host": HostActor}) == 2
        assert await system.restore({"host": HostActor}) == 0
    warnings = [r.getMessage() for r in caplog.records if "not restored" in r.getMessage()]
    assert len(warnings) == 2
    assert all("unknown_kinds={'gadget': 1}" in w for w in warnings)


async def test_restore_passivates_each_kind_after_its_own_idle_time() -> None:
    """``idle_after`` by kind: instances of a reopened fleet passivate after the fleet's
    ``idle_after``, hosts (whose heartbeats are not journaled) never do."""
    store = MemoryStore()
    async with Fleet.open(store=store, driver=FakeDriver()) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
    async with Fleet.open(store=store, driver=FakeDriver(), idle_after=7.0) as fleet:
        specs = {a: fleet.system._cell(a).spec.idle_after for a in ("h-1", "web-1")}
    assert specs == {"h-1": math.inf, "web-1": 7.0}


async def test_the_fleet_logs_through_the_standard_logger(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the fleet logs (here: the repairs of a reconciliation) goes to the standard
    logger ``stateward.fleet``, and nothing to stdout or stderr."""
    driver = FakeDriver()
    await driver.spawn("orphan:spawn", "orphan-1", host="h-1", image="cirros")
    caplog.set_level(logging.INFO, logger="stateward.fleet")
    async with Fleet.open(driver=driver) as fleet:
        assert fleet.last_reconcile is not None
        assert fleet.last_reconcile.orphans == ("orphan-1",)
    [record] = [r for r in caplog.records if r.name == "stateward.fleet"]
    assert record.levelno == logging.WARNING
    assert "reconciled with the driver" in record.getMessage()
    assert capsys.readouterr() == ("", "")


@pytest.mark.virtual_time
async def test_no_task_outlives_a_closed_fleet() -> None:
    """A fleet closed with builds in flight, a delete cancelling one of them and heartbeats
    due leaves no task running: every watcher, canceller, flow and the heartbeat loop has
    ended when its ``async with`` block has."""
    env = Environment(clock=VirtualClock.current(), seed=5)
    driver = FakeDriver(env=env, latency={Operation.SPAWN: 30.0})
    before = asyncio.all_tasks()
    async with Fleet.open(driver=driver, env=env, heartbeat_interval=1.0) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        builds = [
            await fleet.instances.boot(f"web-{n}", flavor="m1.small", image="cirros")
            for n in range(3)
        ]
        await fleet.instances.delete("web-0")  # cancels web-0's build, off its actor
        await env.clock.sleep(2.5)  # the builds spawn, heartbeats are sent
        running = asyncio.all_tasks() - before
        assert len(running) > len(builds), running  # watchers, flows and heartbeats at least
    assert asyncio.all_tasks() - before == set()

"""Draining a host: every instance moved off it, live or cold, a bounded number at a time,
each move a task of its own and the drain a summary task on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stateward.actors import (
    Capacity,
    DrainIncomplete,
    FakeDriver,
    Flavor,
    Fleet,
    Operation,
    UnknownName,
)
from stateward.flows import TaskRecord, TaskStatus
from stateward.runtime import Environment, InvalidArgument, VirtualClock

SMALL = Flavor("m1.small", vcpus=1, ram_mb=1024, disk_gb=10)
HOST_SIZE = Capacity(vcpus=16, ram_mb=32768, disk_gb=400)


class _CountingDriver(FakeDriver):
    """Counts the transfers in flight at once."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.in_flight = 0
        self.most = 0
        self.transfers: list[tuple[str, bool]] = []

    async def transfer(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int, live: bool
    ) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await super().transfer(
                op_id, instance_id, destination=destination, epoch=epoch, live=live
            )
            self.transfers.append((instance_id, live))
        finally:
            self.in_flight -= 1


async def _fleet(fleet: Fleet, hosts: int = 3) -> None:
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    for n in range(hosts):
        await fleet.hosts.add(f"h-{n}", capacity=HOST_SIZE)


async def _boot_on(fleet: Fleet, host: str, names: list[str]) -> None:
    """Boot ``names`` onto ``host`` (the others disabled meanwhile)."""
    others = [h for h in fleet.hosts.ids() if h != host]
    for other in others:
        await fleet.hosts.command(other, "disable")
    for name in names:
        record = await fleet.instances.boot(name, flavor="m1.small", image="cirros")
        assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED
    for other in others:
        await fleet.hosts.command(other, "enable")


def _outcome(record: TaskRecord) -> dict[str, Any]:
    result: dict[str, Any] = record.step("move_all").result
    return result


async def test_a_drain_moves_every_instance_off_the_host_live_or_cold(tmp_path: Path) -> None:
    driver = _CountingDriver()
    async with Fleet.open(tmp_path / "cloud.db", driver=driver) as fleet:
        await _fleet(fleet)
        names = [f"vm-{n}" for n in range(6)]
        await _boot_on(fleet, "h-0", names)
        await fleet.tasks.wait((await fleet.instances.stop("vm-5")).id)
        record = await fleet.hosts.drain("h-0", concurrency=3)
        assert record.resource_id == "h-0"
        done = await fleet.tasks.wait(record.id, timeout=600)
        assert done.status is TaskStatus.SUCCEEDED, done
        outcome = _outcome(done)
        assert outcome["moved"] == names
        assert outcome["failed"] == {}
        for name in names:
            status = await fleet.instances.get(name)
            assert status.host_id in ("h-1", "h-2"), status
            move = await fleet.tasks.get(outcome["tasks"][name])
            assert move.resource_id == name
            assert move.status is TaskStatus.SUCCEEDED
            migration = await fleet.migrations.get(status.migration_id or "")
            assert migration.kind == ("migrate" if name == "vm-5" else "live_migrate")
            assert migration.state == "completed"
        assert (await fleet.instances.get("vm-5")).vm_state == "stopped"
        drained = await fleet.hosts.get("h-0")
        assert drained.claims == ()
        assert drained.state == "disabled"  # cordoned, and it stays so
        # Nothing new lands on it.
        record = await fleet.instances.boot("late", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
        assert (await fleet.instances.get("late")).host_id != "h-0"
    assert sorted(driver.transfers) == [(n, n != "vm-5") for n in names]


@pytest.mark.virtual_time
async def test_a_drain_runs_at_most_concurrency_moves_at_once() -> None:
    clock = VirtualClock.current()
    driver = _CountingDriver(env=Environment(clock=clock), latency=0.01)
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock)) as fleet:
        await _fleet(fleet, hosts=4)
        names = [f"vm-{n:02}" for n in range(12)]
        await _boot_on(fleet, "h-0", names)
        done = await fleet.tasks.wait((await fleet.hosts.drain("h-0", concurrency=4)).id)
        assert done.status is TaskStatus.SUCCEEDED, done
        assert _outcome(done)["moved"] == names
    assert driver.most == 4  # bounded, and used


async def test_instances_no_move_can_start_from_stay_and_are_named(tmp_path: Path) -> None:
    async with Fleet.open(tmp_path / "cloud.db", driver=FakeDriver()) as fleet:
        await _fleet(fleet)
        await _boot_on(fleet, "h-0", ["vm-0", "vm-1", "vm-2"])
        await fleet.tasks.wait((await fleet.instances.pause("vm-1")).id)
        done = await fleet.tasks.wait((await fleet.hosts.drain("h-0")).id)
        assert done.status is TaskStatus.REVERTED  # a fault; its steps have nothing to undo
        assert done.error_type == DrainIncomplete.__name__
        assert "vm-1" in (done.error_message or "")
        outcome = _outcome(done)
        assert outcome["moved"] == ["vm-0", "vm-2"]
        assert list(outcome["failed"]) == ["vm-1"]
        assert (await fleet.instances.get("vm-1")).host_id == "h-0"
        # Unpaused, a second drain moves it; the moved ones are not moved again.
        await fleet.tasks.wait((await fleet.instances.unpause("vm-1")).id)
        again = await fleet.tasks.wait((await fleet.hosts.drain("h-0")).id)
        assert again.status is TaskStatus.SUCCEEDED, again
        assert _outcome(again)["moved"] == ["vm-1"]
        assert len(await fleet.migrations.list("vm-0")) == 1


async def test_a_failed_move_is_named_and_the_instance_keeps_running_on_the_host() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        await _boot_on(fleet, "h-0", ["vm-0", "vm-1"])
        driver.failures = {Operation.TRANSFER: 1.0}
        done = await fleet.tasks.wait((await fleet.hosts.drain("h-0")).id)
        assert done.status is TaskStatus.REVERTED  # a fault; its steps have nothing to undo
        assert sorted(_outcome(done)["failed"]) == ["vm-0", "vm-1"]
        for name in ("vm-0", "vm-1"):
            status = await fleet.instances.get(name)
            assert (status.host_id, status.vm_state) == ("h-0", "active")
            assert driver.where(name) is not None
        claims = {h.id: sorted(c.instance_id for c in h.claims) for h in await fleet.hosts.list()}
        assert claims == {"h-0": ["vm-0", "vm-1"], "h-1": [], "h-2": []}


async def test_a_drain_with_a_key_is_submitted_once() -> None:
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await _fleet(fleet)
        await _boot_on(fleet, "h-0", ["vm-0"])
        first = await fleet.hosts.drain("h-0", idempotency_key="drain-h0")
        second = await fleet.hosts.drain("h-0", idempotency_key="drain-h0")
        assert second.id == first.id
        await fleet.tasks.wait(first.id)
        assert len(await fleet.migrations.list("vm-0")) == 1


@pytest.mark.virtual_time
async def test_bad_drains_are_refused_with_what_to_do() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock)) as fleet:
        await _fleet(fleet)
        with pytest.raises(UnknownName):
            await fleet.hosts.drain("h-9")
        for concurrency in (0, 1001, 2.5, True):
            with pytest.raises(InvalidArgument, match="concurrency"):
                await fleet.hosts.drain("h-0", concurrency=concurrency)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="live"):
            await fleet.hosts.drain("h-0", live="yes")  # type: ignore[arg-type]
        driver.host_down("h-1")
        fleet.hosts.set_agent("h-1", alive=False)
        while (await fleet.hosts.get("h-1")).up:
            await clock.sleep(10)
        with pytest.raises(InvalidArgument, match="evacuate"):
            await fleet.hosts.drain("h-1")
        assert (await fleet.hosts.get("h-1")).state == "enabled"  # refused: not cordoned
        assert await fleet.tasks.list("h-1") == ()


@pytest.mark.virtual_time
async def test_an_instance_busy_with_another_task_is_waited_for_then_moved() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock), latency={Operation.POWER_OFF: 30.0})
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock)) as fleet:
        await _fleet(fleet)
        await _boot_on(fleet, "h-0", ["vm-0"])
        stopping = await fleet.instances.stop("vm-0")
        done = await fleet.tasks.wait((await fleet.hosts.drain("h-0")).id)
        assert done.status is TaskStatus.SUCCEEDED, done
        assert (await fleet.tasks.get(stopping.id)).status is TaskStatus.SUCCEEDED
        status = await fleet.instances.get("vm-0")
        assert (status.vm_state, status.host_id) in (("stopped", "h-1"), ("stopped", "h-2"))
        # It stopped before the drain reached it: so the move was cold.
        assert [m.kind for m in await fleet.migrations.list("vm-0")] == ["migrate"]

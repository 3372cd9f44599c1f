"""A deleted instance's name can be booted again; the old generation's history stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateward.actors import Capacity, DuplicateName, FakeDriver, Flavor, Fleet, Power
from stateward.flows import TaskStatus

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)


async def setup(fleet: Fleet) -> None:
    """A catalog and one host."""
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    await fleet.images.add("ubuntu")
    await fleet.hosts.add("h-1", capacity=HOST_SIZE)


async def succeeded(fleet: Fleet, task_id: str) -> str:
    """Wait for the task and check it succeeded; its id."""
    assert (await fleet.tasks.wait(task_id)).status is TaskStatus.SUCCEEDED
    return task_id


async def test_a_deleted_name_boots_a_new_generation() -> None:
    """Boot, delete and boot web-1 again: the new instance is built from the new boot only
    (image, no fault), the old boot's and delete's task records are still found by their
    ids, the instance's task list and journal hold both generations, and only the new
    one holds capacity."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        old_boot = await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")).id
        )
        old_delete = await succeeded(fleet, (await fleet.instances.delete("web-1")).id)
        assert (await fleet.instances.get("web-1")).allowed == ("boot",)
        new_boot = await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="ubuntu")).id
        )
        status = await fleet.instances.get("web-1")
        assert (status.state, status.image, status.power) == ("active", "ubuntu", Power.RUNNING)
        assert status.fault is None
        assert (await fleet.tasks.get(old_boot)).resource_id == "web-1"
        assert (await fleet.tasks.get(old_delete)).status is TaskStatus.SUCCEEDED
        listed = [t.id for t in await fleet.tasks.list("web-1")]
        assert listed == [new_boot, old_delete, old_boot]
        journal = await fleet.store.history("web-1", limit=1000)
        boots = [(r.source, r.task_id) for r in journal if r.event == "boot"]
        assert boots == [("new", old_boot), ("deleted", new_boot)]
        host = await fleet.hosts.get("h-1")
        assert [c.task_id for c in host.claims] == [new_boot]


async def test_a_live_name_is_still_taken() -> None:
    """Booting a name whose instance is not deleted is DuplicateName, and changes nothing."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")).id
        )
        before = await fleet.instances.get("web-1")
        with pytest.raises(DuplicateName, match="an instance named 'web-1' exists already"):
            await fleet.instances.boot("web-1", flavor="m1.small", image="ubuntu")
        assert await fleet.instances.get("web-1") == before


async def test_a_deleted_name_boots_again_after_a_reopen(tmp_path: Path) -> None:
    """Deleted, then the fleet reopens on its SQLite file: reconciling finds nothing to
    repair, the name boots again, and after another reopen the new generation is active,
    reconciled as live (neither orphan nor ghost), with the old tasks still readable."""
    path = tmp_path / "cloud.db"
    driver = FakeDriver()
    async with Fleet.open(path, driver=driver) as fleet:
        await setup(fleet)
        old_boot = await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")).id
        )
        await succeeded(fleet, (await fleet.instances.delete("web-1")).id)
    async with Fleet.open(path, driver=driver) as fleet:
        assert fleet.last_reconcile is not None
        assert fleet.last_reconcile.tasks == ()
        assert (await fleet.instances.get("web-1")).state == "deleted"
        new_boot = await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="ubuntu")).id
        )
    async with Fleet.open(path, driver=driver) as fleet:
        assert fleet.last_reconcile is not None
        assert fleet.last_reconcile.tasks == ()
        status = await fleet.instances.get("web-1")
        assert (status.state, status.image, status.task_id) == ("active", "ubuntu", None)
        assert (await fleet.tasks.get(old_boot)).status is TaskStatus.SUCCEEDED
        assert (await fleet.tasks.get(new_boot)).status is TaskStatus.SUCCEEDED
    assert [i.id for i in (await driver.describe()).instances] == ["web-1"]


async def test_reconcile_repairs_the_old_generation_before_the_new_one(tmp_path: Path) -> None:
    """A VM of the deleted generation left on the hypervisor is an orphan to the reconcile
    of the next open, and destroyed; the name then boots, and a second reconcile counts the
    new instance as live, not as the old orphan."""
    path = tmp_path / "cloud.db"
    driver = FakeDriver()
    async with Fleet.open(path, driver=driver) as fleet:
        await setup(fleet)
        await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")).id
        )
        await succeeded(fleet, (await fleet.instances.delete("web-1")).id)
    await driver.spawn("stray:spawn", "web-1", host="h-1", image="cirros")
    async with Fleet.open(path, driver=driver) as fleet:
        assert fleet.last_reconcile is not None
        assert fleet.last_reconcile.orphans == ("web-1",)
        await succeeded(
            fleet, (await fleet.instances.boot("web-1", flavor="m1.small", image="ubuntu")).id
        )
        report = await fleet.reconcile()
        assert (report.orphans, report.ghosts, report.tasks) == ((), (), ())
        assert (await fleet.instances.get("web-1")).state == "active"

"""A cold or live migration cut after every one of its commits: the next process opens the durable
image, resumes, and finds exactly one owner, claims where the owner is, and nothing left on
the source once the move completed."""

from __future__ import annotations

import functools

import pytest

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet, GuestRole
from stateward.flows import TaskStatus
from stateward.runtime import Environment, MemoryStore
from stateward.testing import Crash, crash_at_every_commit

#: The hypervisor of each run: it outlives the process that drives it.
_drivers: list[FakeDriver] = []


async def _scenario(store: MemoryStore, env: Environment, *, live: bool) -> None:
    driver = FakeDriver(env=env)
    _drivers.append(driver)
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        for host in ("h-0", "h-1"):
            await fleet.hosts.add(host, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
        await fleet.tasks.wait((await fleet.instances.move("web-1", live=live)).id)


async def _check(store: MemoryStore, env: Environment, crash: Crash) -> None:
    driver = _drivers[-1]
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.recover()
        for _ in range(600):
            if all(not i.task_state for i in await fleet.instances.list()):
                break
            await env.clock.sleep(1)
        instances = {i.id: i for i in await fleet.instances.list()}
        web = instances.get("web-1")
        claims = {h.id: [c.instance_id for c in h.claims] for h in await fleet.hosts.list()}
        view = await driver.describe()
        guests = [g for g in view.guests if g.instance_id == "web-1"]
        where = f"after commit {crash.after} of {crash.of}"
        if web is None or web.host_id is None:
            assert all("web-1" not in names for names in claims.values()), where
            return
        assert web.task_state is None, (where, web.state)
        current = driver.where("web-1")
        assert current is not None, where
        # Exactly one owner: the database and the hypervisor agree on host and epoch.
        assert (current.host_id, current.epoch) == (web.host_id, web.epoch), (where, web)
        assert [g for g in guests if g.role is GuestRole.CURRENT] == [current], where
        # The claims are where the owner is, and nowhere else.
        holders = sorted(h for h, names in claims.items() if "web-1" in names)
        assert holders == [web.host_id], (where, claims)
        migrations = await fleet.migrations.list("web-1")
        for migration in migrations:
            assert migration.done, (where, migration.state)
        if migrations and migrations[-1].state == "completed":
            assert guests == [current], (where, guests)
            assert web.epoch == 1, where
        if crash.finished:
            assert [m.state for m in migrations] == ["completed"], where
            done = await fleet.tasks.list("web-1")
            assert all(t.status is TaskStatus.SUCCEEDED for t in done), where


@pytest.mark.parametrize("live", [False, True], ids=["cold", "live"])
def test_a_migration_survives_a_crash_after_every_commit(live: bool) -> None:
    commits = crash_at_every_commit(functools.partial(_scenario, live=live), _check, seed=11)
    assert commits > 20


async def _drain_scenario(store: MemoryStore, env: Environment) -> None:
    driver = FakeDriver(env=env)
    _drivers.append(driver)
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        for host in ("h-0", "h-1", "h-2"):
            await fleet.hosts.add(host, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        for host in ("h-1", "h-2"):
            await fleet.hosts.command(host, "disable")
        for name in ("vm-0", "vm-1"):
            await fleet.tasks.wait(
                (await fleet.instances.boot(name, flavor="m1.small", image="cirros")).id
            )
        for host in ("h-1", "h-2"):
            await fleet.hosts.command(host, "enable")
        await fleet.tasks.wait((await fleet.hosts.drain("h-0", concurrency=2)).id)


async def _check_drain(store: MemoryStore, env: Environment, crash: Crash) -> None:
    driver = _drivers[-1]
    where = f"after commit {crash.after} of {crash.of}"
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.recover()
        drains = [t for t in await fleet.tasks.list("h-0") if t.kind == "host.drain"]
        for drain in drains:
            await fleet.tasks.wait(drain.id, timeout=3600)
        for _ in range(600):
            if all(not i.task_state for i in await fleet.instances.list()):
                break
            await env.clock.sleep(1)
        claims = {h.id: [c.instance_id for c in h.claims] for h in await fleet.hosts.list()}
        for web in await fleet.instances.list():
            assert web.task_state is None, (where, web.state)
            current = driver.where(web.id)
            assert current is not None, where
            assert (current.host_id, current.epoch) == (web.host_id, web.epoch), (where, web)
            holders = sorted(h for h, names in claims.items() if web.id in names)
            assert holders == [web.host_id], (where, claims)
            migrations = await fleet.migrations.list(web.id)
            # Resumed, the drain found the move it had started instead of starting another.
            assert len(migrations) <= 1, (where, migrations)
            assert all(m.done for m in migrations), where
        if crash.finished:
            (drain,) = [await fleet.tasks.get(d.id) for d in drains]
            assert drain.status is TaskStatus.SUCCEEDED, (where, drain)
            assert claims["h-0"] == [], where
            assert (await fleet.hosts.get("h-0")).state == "disabled", where


def test_a_drain_survives_a_crash_after_every_commit() -> None:
    commits = crash_at_every_commit(_drain_scenario, _check_drain, seed=12)
    assert commits > 40

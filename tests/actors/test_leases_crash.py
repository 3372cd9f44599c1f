"""A lease cut after every one of its commits, from its request to its end: the next
process opens the durable image and the lease carries on, each notification once in its
history, nothing held or claimed for it once it ended."""

from __future__ import annotations

from collections import Counter

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    InstanceReservation,
    LeasePolicy,
    LeaseStart,
    UnknownName,
)
from stateward.runtime import Environment, MemoryStore
from stateward.testing import Crash, crash_at_every_commit

#: The hypervisor of each run: it outlives the process that drives it.
_drivers: list[FakeDriver] = []
#: The lease's window, from the scenario's first moment.
_START, _END = 50.0, 200.0
_origin: list[float] = []


async def _scenario(store: MemoryStore, env: Environment) -> None:
    driver = FakeDriver(env=env)
    _drivers.append(driver)
    _origin.append(env.clock.now())
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        for host in ("h-0", "h-1"):
            await fleet.hosts.add(host, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        now = env.clock.now()
        await fleet.leases.create(
            "l-1",
            start=now + _START,
            end=now + _END,
            reservations=(InstanceReservation("m1.small", count=2, affinity=False),),
            on_start=LeaseStart.BOOT,
            image="cirros",
            on_end=LeasePolicy.DELETE,
            notify_before=20,
        )
        await env.clock.sleep(_END + 30)


async def _check(store: MemoryStore, env: Environment, crash: Crash) -> None:
    driver = _drivers[-1]
    where = f"after commit {crash.after} of {crash.of}"
    async with Fleet.open(None, store=store, driver=driver, env=env) as fleet:
        await fleet.recover()
        origin = _origin[-1]
        if env.clock.now() < origin + _END + 30:
            await env.clock.sleep(origin + _END + 30 - env.clock.now())
        for _ in range(600):
            tasks = await fleet.tasks.list("l-1")
            if all(t.status.is_terminal for t in tasks):
                break
            await env.clock.sleep(1)
        try:
            lease = await fleet.leases.get("l-1")
        except UnknownName:
            assert not crash.finished, where
            return  # cut before its request was recorded: there is no lease
        assert lease.state in ("ended", "failed"), (where, lease.state)
        events = Counter(r.event for r in await fleet.leases.history("l-1"))
        assert all(n == 1 for n in events.values()), (where, events)
        if lease.state == "ended" and events["started"]:
            assert sorted(lease.booted) == ["l-1-1", "l-1-2"], (where, lease)
            assert events["starting_soon"] == events["ending_soon"] == 1, (where, events)
        for host in await fleet.hosts.list():
            assert not any(c.reservation == "l-1" for c in host.claims), (where, host)
            assert (await fleet.leases.calendar(host.id)).holds == (), where
        for instance in await fleet.instances.list():
            assert instance.vm_state == "deleted", (where, instance)
        assert fleet.system.timers.pending("l-1") == (), where
        if crash.finished:
            assert lease.state == "ended", where


def test_a_lease_survives_a_crash_after_every_commit() -> None:
    """Every commit of a lease's life, from create to end, is a place a crash can cut."""
    commits = crash_at_every_commit(_scenario, _check, seed=21)
    assert commits > 30

"""Moves end to end: cold migration, resize (confirmed and reverted), live migration, and
what happens when they fail or a delete comes in between. After every move: one owner, the
claims where the owner is, nothing left on the driver but the current guest."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    GroupPolicy,
    MigrationStatus,
    Operation,
    Power,
    StaleEpoch,
    UnknownName,
)
from stateward.flows import TaskRecord, TaskStatus
from stateward.runtime import (
    Environment,
    InvalidArgument,
    InvalidCommand,
    InvalidTransition,
    VirtualClock,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
LARGE = Flavor("m1.large", vcpus=4, ram_mb=8192, disk_gb=40)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str | None:
    """Where a fleet keeps its state: in memory (None), an SQLite file or a PostgreSQL DSN."""
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_database")
        return dsn
    return None if request.param == "memory" else tmp_path / "cloud.db"


async def _fleet(fleet: Fleet, hosts: tuple[str, ...] = ("h-0", "h-1")) -> None:
    await fleet.flavors.add(SMALL)
    await fleet.flavors.add(LARGE)
    await fleet.images.add("cirros")
    for host in hosts:
        await fleet.hosts.add(host, capacity=HOST_SIZE)


async def _boot(fleet: Fleet, name: str = "web-1", **options: Any) -> str:
    record = await fleet.instances.boot(name, flavor="m1.small", image="cirros", **options)
    done = await fleet.tasks.wait(record.id)
    assert done.status is TaskStatus.SUCCEEDED, done
    return (await fleet.instances.get(name)).host_id or ""


async def _done(fleet: Fleet, record: TaskRecord) -> TaskRecord:
    return await fleet.tasks.wait(record.id, timeout=600)


async def _claims(fleet: Fleet) -> dict[str, list[str]]:
    """Each host's claims, as the instances they hold room for."""
    return {h.id: sorted(c.instance_id for c in h.claims) for h in await fleet.hosts.list()}


async def _migration(fleet: Fleet, name: str) -> MigrationStatus:
    status = await fleet.instances.get(name)
    assert status.migration_id is not None
    return await fleet.migrations.get(status.migration_id)


async def _guests(driver: FakeDriver, name: str) -> list[tuple[str, int, str]]:
    """Every copy of ``name`` the hypervisors hold: (host, epoch, role)."""
    view = await driver.describe()
    return sorted(
        (g.host_id, g.epoch, str(getattr(g.role, "value", g.role)))
        for g in view.guests
        if g.instance_id == name
    )


async def test_a_cold_migration_moves_the_instance_and_leaves_nothing_behind(
    db: Path | str | None,
) -> None:
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        done = await _done(fleet, await fleet.instances.migrate("web-1"))
        assert done.status is TaskStatus.SUCCEEDED, done
        web = await fleet.instances.get("web-1")
        destination = "h-1" if source == "h-0" else "h-0"
        assert (web.state, web.host_id, web.epoch, web.power) == (
            "active",
            destination,
            1,
            Power.RUNNING,
        )
        assert await _claims(fleet) == {source: [], destination: ["web-1"]}
        assert await _guests(driver, "web-1") == [(destination, 1, "current")]
        migration = await _migration(fleet, "web-1")
        assert (migration.state, migration.source, migration.destination) == (
            "completed",
            source,
            destination,
        )
        assert migration.done
        history = [r.event for r in await fleet.store.history(migration.id, limit=100)]
        assert history == [
            "start",
            "claimed",
            "stopped",
            "transferred",
            "switched",
            "finished",
        ]
    if db is not None:  # everything is durable: the reopened fleet sees the same
        async with Fleet.open(db, driver=driver) as fleet:
            assert (await fleet.instances.get("web-1")).host_id == destination
            assert (await _migration(fleet, "web-1")).state == "completed"
            assert [m.id for m in await fleet.migrations.list("web-1")] == [migration.id]


async def test_a_resize_holds_both_claims_until_confirmed() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        done = await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        assert done.status is TaskStatus.SUCCEEDED, done
        web = await fleet.instances.get("web-1")
        assert (web.state, web.flavor) == ("resized", "m1.large")
        assert set(web.allowed) >= {"confirm_resize", "revert_resize"}
        claims = await _claims(fleet)
        assert claims[source] == ["web-1"]
        assert claims[web.host_id or ""] == ["web-1"]
        assert (await _migration(fleet, "web-1")).state == "verifying"
        hosts = {h.id: h for h in await fleet.hosts.list()}
        assert hosts[web.host_id or ""].usage == Capacity(4, 8192, 40)
        confirmed = await _done(fleet, await fleet.instances.confirm_resize("web-1"))
        assert confirmed.status is TaskStatus.SUCCEEDED, confirmed
        web = await fleet.instances.get("web-1")
        assert (web.state, web.power) == ("active", Power.RUNNING)
        assert (await _claims(fleet))[source] == []
        assert await _guests(driver, "web-1") == [(web.host_id or "", 1, "current")]
        assert (await _migration(fleet, "web-1")).state == "completed"


async def test_a_reverted_resize_goes_back_to_its_source_and_old_flavor() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        destination = (await fleet.instances.get("web-1")).host_id
        reverted = await _done(fleet, await fleet.instances.revert_resize("web-1"))
        assert reverted.status is TaskStatus.SUCCEEDED, reverted
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.flavor, web.epoch) == ("active", source, "m1.small", 2)
        assert await _claims(fleet) == {source: ["web-1"], destination: []}
        assert await _guests(driver, "web-1") == [(source, 2, "current")]
        assert (await _migration(fleet, "web-1")).state == "reverted"


async def test_a_revert_that_fails_before_moving_back_leaves_the_resize_as_it_was() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        destination = (await fleet.instances.get("web-1")).host_id or ""
        driver.failures = {Operation.TRANSFER: 1.0}
        failed = await _done(fleet, await fleet.instances.revert_resize("web-1"))
        assert failed.status is TaskStatus.REVERTED, failed
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.flavor, web.power) == (
            "resized",
            destination,
            "m1.large",
            Power.RUNNING,
        )
        assert await _claims(fleet) == {source: ["web-1"], destination: ["web-1"]}
        migration = await _migration(fleet, "web-1")
        assert migration.state == "verifying"
        assert fleet.system.timers.pending(migration.id) != ()  # its deadline still holds
        driver.failures = {}
        reverted = await _done(fleet, await fleet.instances.revert_resize("web-1"))
        assert reverted.status is TaskStatus.SUCCEEDED, reverted
        assert (await fleet.instances.get("web-1")).host_id == source
        assert await _claims(fleet) == {source: ["web-1"], destination: []}
        assert (await _migration(fleet, "web-1")).state == "reverted"


async def test_a_live_migration_keeps_the_guest_running() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        done = await _done(fleet, await fleet.instances.live_migrate("web-1"))
        assert done.status is TaskStatus.SUCCEEDED, done
        assert Operation.POWER_OFF not in [s.name for s in done.steps]
        web = await fleet.instances.get("web-1")
        assert web.host_id != source
        assert (web.state, web.power, web.epoch) == ("active", Power.RUNNING, 1)
        assert await _guests(driver, "web-1") == [(web.host_id or "", 1, "current")]
        migration = await _migration(fleet, "web-1")
        assert migration.state == "completed"
        assert "stopped" not in [r.event for r in await fleet.store.history(migration.id)]


async def test_a_failure_before_the_switch_leaves_the_instance_where_it_was() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        driver.failures = {Operation.TRANSFER: 1.0}
        done = await _done(fleet, await fleet.instances.migrate("web-1"))
        assert done.status is TaskStatus.REVERTED
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.epoch, web.power) == (
            "active",
            source,
            0,
            Power.RUNNING,
        )
        assert web.fault == done.id
        other = "h-1" if source == "h-0" else "h-0"
        assert await _claims(fleet) == {source: ["web-1"], other: []}
        assert await _guests(driver, "web-1") == [(source, 0, "current")]
        migration = await _migration(fleet, "web-1")
        assert migration.state == "failed"
        assert migration.reason


async def test_deleting_a_resized_instance_gives_up_its_source_too() -> None:
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        migration_id = (await fleet.instances.get("web-1")).migration_id or ""
        deleted = await _done(fleet, await fleet.instances.delete("web-1"))
        assert deleted.status is TaskStatus.SUCCEEDED, deleted
        assert (await fleet.instances.get("web-1")).state == "deleted"
        assert await _claims(fleet) == {"h-0": [], "h-1": []}
        assert await _guests(driver, "web-1") == []
        # The resize was kept before the delete: its migration ended, its deadline gone.
        assert (await fleet.migrations.get(migration_id)).state == "completed"
        assert fleet.system.timers.pending(migration_id) == ()


@pytest.mark.virtual_time
async def test_a_revert_that_fails_for_a_while_is_retried_until_it_holds() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock)) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        other = "h-1" if source == "h-0" else "h-0"
        driver.failures = {Operation.TRANSFER: 1.0, Operation.ABORT_MOVE: 1.0}
        record = await fleet.instances.live_migrate("web-1")
        for _ in range(5):  # the abort keeps failing: the revert waits and tries again
            await clock.sleep(1.0)
        driver.failures = {Operation.TRANSFER: 1.0}
        done = await _done(fleet, record)
        assert done.status is TaskStatus.REVERTED, done
        assert any(e.event == "retry" and "revert" in (e.detail or "") for e in done.history)
        assert await _claims(fleet) == {source: ["web-1"], other: []}
        assert await _guests(driver, "web-1") == [(source, 0, "current")]
        assert (await _migration(fleet, "web-1")).state == "failed"


async def test_no_room_anywhere_fails_the_move_and_changes_nothing() -> None:
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await _fleet(fleet, hosts=("h-0",))
        await _boot(fleet)
        done = await _done(fleet, await fleet.instances.migrate("web-1"))
        assert done.status is TaskStatus.REVERTED
        assert done.error_type == "NoValidHost"
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.epoch) == ("active", "h-0", 0)
        assert await _claims(fleet) == {"h-0": ["web-1"]}


async def test_a_delete_during_a_move_rolls_it_back_then_deletes() -> None:
    driver = FakeDriver(latency={Operation.TRANSFER: 2.0})
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        await _boot(fleet)
        move = await fleet.instances.migrate("web-1")
        deleting = await fleet.instances.delete("web-1")
        assert (await fleet.tasks.wait(deleting.id)).status is TaskStatus.SUCCEEDED
        assert (await fleet.tasks.get(move.id)).status is TaskStatus.CANCELLED
        web = await fleet.instances.get("web-1")
        assert web.state == "deleted"
        assert await _claims(fleet) == {"h-0": [], "h-1": []}
        assert await _guests(driver, "web-1") == []
        (migration,) = await fleet.migrations.list("web-1")
        assert migration.state == "cancelled"


async def test_commands_during_a_move_are_refused_naming_the_move() -> None:
    driver = FakeDriver(latency={Operation.TRANSFER: 2.0})
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet)
        await _boot(fleet)
        move = await fleet.instances.migrate("web-1")
        with pytest.raises(InvalidTransition, match=f"task {move.id} is running"):
            await fleet.instances.stop("web-1")
        with pytest.raises(InvalidTransition):
            await fleet.instances.migrate("web-1")
        await _done(fleet, move)


async def test_bad_moves_are_refused_before_anything_happens() -> None:
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        with pytest.raises(InvalidCommand, match="a destination other than"):
            await fleet.instances.migrate("web-1", host=source)
        with pytest.raises(UnknownName):
            await fleet.instances.migrate("web-1", host="h-9")
        with pytest.raises(UnknownName):
            await fleet.instances.migrate("nope")
        with pytest.raises(InvalidCommand, match=r"flavor other than m1\.small"):
            await fleet.instances.resize("web-1", "m1.small")
        with pytest.raises(InvalidArgument, match="live migration"):
            await fleet.instances.move("web-1", flavor="m1.large", live=True)
        await _done(fleet, await fleet.instances.stop("web-1"))
        with pytest.raises(InvalidTransition):
            await fleet.instances.live_migrate("web-1")
        assert await fleet.migrations.list() == ()
        other = "h-1" if source == "h-0" else "h-0"
        assert await _claims(fleet) == {source: ["web-1"], other: []}


async def test_a_move_to_a_named_host_goes_there_and_a_repeat_key_returns_the_same_task() -> None:
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await _fleet(fleet, hosts=("h-0", "h-1", "h-2"))
        await _boot(fleet)
        first = await fleet.instances.migrate("web-1", host="h-2", idempotency_key="mv-1")
        again = await fleet.instances.migrate("web-1", host="h-2", idempotency_key="mv-1")
        assert again.id == first.id
        await _done(fleet, first)
        assert (await fleet.instances.get("web-1")).host_id == "h-2"


async def test_anti_affinity_holds_across_concurrent_moves() -> None:
    """Two members of an anti-affinity group moving at once never share a host, nor land
    where the other still holds its source claim."""
    driver = FakeDriver(latency={Operation.TRANSFER: 10.0})
    async with Fleet.open(None, driver=driver) as fleet:
        await _fleet(fleet, hosts=("h-0", "h-1", "h-2"))
        for name in ("a", "b"):
            await _boot(fleet, name, group="spread", group_policy=GroupPolicy.ANTI_AFFINITY)
        moves = [await fleet.instances.migrate(name) for name in ("a", "b")]
        ends = [await _done(fleet, m) for m in moves]
        hosts = [(await fleet.instances.get(n)).host_id for n in ("a", "b")]
        succeeded = [e for e in ends if e.status is TaskStatus.SUCCEEDED]
        assert succeeded  # at least one had somewhere to go
        assert hosts[0] != hosts[1]
        claims = await _claims(fleet)
        assert all(len(names) <= 1 for names in claims.values()), claims


@pytest.mark.virtual_time
async def test_a_resize_nobody_confirms_confirms_itself_at_its_deadline() -> None:
    """No state waits on a person: ``resized`` has a deadline, a durable timer, and at it
    the resize is confirmed (source copy and claim given up, migration completed)."""
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    env = Environment(clock=clock, seed=5)
    async with Fleet.open(None, driver=driver, env=env, resize_confirm_after=600) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        migration = await _migration(fleet, "web-1")
        assert migration.confirm_by == pytest.approx(clock.now() + 600, abs=1)
        assert [t.name for t in fleet.system.timers.pending()] == ["auto_confirm_resize"]
        await clock.sleep(590)
        assert (await fleet.instances.get("web-1")).state == "resized"
        await clock.sleep(20)
        web = await fleet.instances.get("web-1")
        assert (web.state, web.flavor, web.power) == ("active", "m1.large", Power.RUNNING)
        assert (await _claims(fleet))[source] == []
        assert await _guests(driver, "web-1") == [(web.host_id or "", 1, "current")]
        assert (await _migration(fleet, "web-1")).state == "completed"
        assert fleet.system.timers.pending() == ()


@pytest.mark.virtual_time
async def test_confirming_or_reverting_early_cancels_the_deadline() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    env = Environment(clock=clock, seed=6)
    async with Fleet.open(None, driver=driver, env=env, resize_confirm_after=600) as fleet:
        await _fleet(fleet, hosts=("h-0", "h-1", "h-2"))
        source = await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
        await _done(fleet, await fleet.instances.revert_resize("web-1"))
        assert fleet.system.timers.pending() == ()
        await clock.sleep(1200)
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.flavor) == ("active", source, "m1.small")
        assert (await _migration(fleet, "web-1")).state == "reverted"


async def test_a_resize_deadline_passed_while_down_confirms_on_reopen(tmp_path: Path) -> None:
    """The deadline is durable: a fleet closed while a resize waits, reopened after its
    deadline, confirms it then."""
    db = tmp_path / "cloud.db"
    state = tmp_path / "driver.state"
    async with Fleet.open(
        db, driver=FakeDriver(state_path=state), resize_confirm_after=0.3
    ) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        await _done(fleet, await fleet.instances.resize("web-1", "m1.large"))
    await asyncio.sleep(0.5)
    driver = FakeDriver(state_path=state)
    async with Fleet.open(db, driver=driver, resize_confirm_after=0.3) as fleet:
        for _ in range(200):
            if (await fleet.instances.get("web-1")).state == "active":
                break
            await asyncio.sleep(0.02)
        web = await fleet.instances.get("web-1")
        assert (web.state, web.flavor) == ("active", "m1.large")
        assert web.host_id != source
        for _ in range(200):
            if (await _migration(fleet, "web-1")).state == "completed":
                break
            await asyncio.sleep(0.02)
        assert (await _migration(fleet, "web-1")).state == "completed"
        assert (await _claims(fleet))[source] == []


async def _host_down(fleet: Fleet, driver: FakeDriver, host: str, clock: VirtualClock) -> None:
    """The host stops answering and its agent stops heartbeating, until the fleet sees it
    down."""
    driver.host_down(host)
    fleet.hosts.set_agent(host, alive=False)
    for _ in range(120):
        if not (await fleet.hosts.get(host)).up:
            return
        await clock.sleep(10)
    raise AssertionError(f"{host} never went down")


@pytest.mark.virtual_time
async def test_an_evacuation_rebuilds_elsewhere_and_fences_the_old_guest() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock, seed=7)) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        other = "h-1" if source == "h-0" else "h-0"
        with pytest.raises(InvalidArgument, match="which is up"):
            await fleet.instances.evacuate("web-1")
        await _host_down(fleet, driver, source, clock)
        done = await _done(fleet, await fleet.instances.evacuate("web-1"))
        assert done.status is TaskStatus.SUCCEEDED, done
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.epoch, web.power) == (
            "active",
            other,
            1,
            Power.RUNNING,
        )
        assert await _claims(fleet) == {source: [], other: ["web-1"]}
        migration = await _migration(fleet, "web-1")
        assert (migration.kind.value, migration.state) == ("evacuate", "completed")
        driver.host_up(source)  # the old host comes back with its old guest
        assert await _guests(driver, "web-1") == [(source, 0, "stale"), (other, 1, "current")]
        with pytest.raises(StaleEpoch):
            await driver.set_power("old-owner", "web-1", Operation.POWER_OFF, epoch=0)
        # Reconciliation removes the old guest, and only it.
        report = await fleet.reconcile()
        assert report.stale_copies == (f"web-1@{source}",)
        assert await _guests(driver, "web-1") == [(other, 1, "current")]
        assert (await fleet.instances.get("web-1")).vm_state == "active"
        assert (await fleet.reconcile()).stale_copies == ()


@pytest.mark.virtual_time
async def test_a_move_that_cannot_clean_its_source_parks_and_reconciliation_settles_it() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock, seed=3)) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        other = "h-1" if source == "h-0" else "h-0"
        driver.failures = {Operation.CLEANUP: 1.0}
        done = await _done(fleet, await fleet.instances.live_migrate("web-1"))
        assert done.status is not TaskStatus.SUCCEEDED
        web = await fleet.instances.get("web-1")
        # Past the switch it rolled forward: it lives on its destination, with the fault.
        assert (web.state, web.host_id, web.epoch, web.fault) == ("active", other, 1, done.id)
        migration = await _migration(fleet, "web-1")
        assert migration.state == "parked"
        assert migration.reason
        assert await _claims(fleet) == {source: ["web-1"], other: ["web-1"]}
        driver.failures = {}
        report = await fleet.reconcile()
        assert report.parked_moves == (migration.id,)
        assert report.stale_copies == (f"web-1@{source}",)
        assert (await _migration(fleet, "web-1")).state == "completed"
        assert await _claims(fleet) == {source: [], other: ["web-1"]}
        assert await _guests(driver, "web-1") == [(other, 1, "current")]


@pytest.mark.virtual_time
async def test_an_evacuation_with_nowhere_to_go_keeps_the_only_copy() -> None:
    """No room elsewhere: the evacuation fails before anything is touched, and when the
    host comes back the instance is still there, on it (Nova once destroyed it)."""
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock, seed=8)) as fleet:
        await _fleet(fleet, hosts=("h-0",))
        await _boot(fleet)
        await _host_down(fleet, driver, "h-0", clock)
        done = await _done(fleet, await fleet.instances.evacuate("web-1"))
        assert done.status is TaskStatus.REVERTED
        assert done.error_type == "NoValidHost"
        web = await fleet.instances.get("web-1")
        assert (web.state, web.host_id, web.epoch) == ("active", "h-0", 0)
        driver.host_up("h-0")
        assert await _guests(driver, "web-1") == [("h-0", 0, "current")]
        assert (await _migration(fleet, "web-1")).state == "failed"


@pytest.mark.virtual_time
async def test_a_failed_rebuild_elsewhere_goes_back_to_the_copy_on_the_down_host() -> None:
    clock = VirtualClock.current()
    driver = FakeDriver(env=Environment(clock=clock))
    async with Fleet.open(None, driver=driver, env=Environment(clock=clock, seed=9)) as fleet:
        await _fleet(fleet)
        source = await _boot(fleet)
        await _host_down(fleet, driver, source, clock)
        driver.failures = {Operation.EVACUATE: 1.0}
        done = await _done(fleet, await fleet.instances.evacuate("web-1"))
        assert done.status is TaskStatus.REVERTED
        web = await fleet.instances.get("web-1")
        assert (web.host_id, web.epoch) == (source, 0)
        assert await _guests(driver, "web-1") == [(source, 0, "current")]
        assert (await _claims(fleet))[source] == ["web-1"]

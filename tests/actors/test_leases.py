"""Leases: capacity reserved over time, serialised by the hosts, with notifications on
durable timers, end-of-lease policies and boots into the lease."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    HostReservation,
    InstanceReservation,
    LeaseDoesNotFit,
    LeaseNotActive,
    LeasePolicy,
    LeaseStart,
    UnknownName,
)
from stateward.flows import TaskStatus
from stateward.runtime import (
    Environment,
    Event,
    InvalidArgument,
    InvalidCommand,
    Subscription,
    VirtualClock,
)

SMALL = Flavor("m1.small", vcpus=2, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=8192, disk_gb=400)
HOUR = 3600.0


def _open(clock: VirtualClock, **options: Any) -> Fleet:
    env = Environment(clock=clock, seed=3)
    return Fleet.open(None, driver=FakeDriver(env=Environment(clock=clock)), env=env, **options)


async def _setup(fleet: Fleet, hosts: int = 3) -> None:
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    for n in range(hosts):
        # No overcommit: a host holds exactly four m1.small.
        await fleet.hosts.add(f"h-{n}", capacity=HOST_SIZE, cpu_ratio=1.0, ram_ratio=1.0)


def _drain(events: Subscription) -> list[Event]:
    found = []
    while (event := events.receive_nowait()) is not None:
        found.append(event)
    return found


async def _boot(fleet: Fleet, name: str, **options: Any) -> TaskStatus:
    record = await fleet.instances.boot(name, flavor="m1.small", image="cirros", **options)
    return (await fleet.tasks.wait(record.id)).status


@pytest.mark.virtual_time
async def test_a_lease_notifies_ahead_starts_takes_boots_and_ends_on_time() -> None:
    """Reserve two hosts for an hour: the heads-up comes ``notify_before`` ahead, the
    lease starts and ends on its timers, a boot that names it lands on its hosts, and every
    notification is published once with the lease as its payload, and journaled."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet)
        start = clock.now() + 600
        with fleet.subscribe("lease.l-1.*") as events:
            lease = await fleet.leases.create(
                "l-1",
                start=start,
                end=start + HOUR,
                reservations=(HostReservation(count=2),),
                notify_before=120,
            )
            assert lease.state == "pending"
            assert len(lease.hosts) == 2
            await clock.sleep(600 - 120 + 1)
            heads_up = [e for e in _drain(events) if e.topic.endswith(".starting_soon")]
            assert len(heads_up) == 1
            assert heads_up[0].payload.at == pytest.approx(start - 120)
            assert heads_up[0].payload.payload["lease"]["hosts"] == list(lease.hosts)
            await clock.sleep(120)
            assert (await fleet.leases.get("l-1")).state == "active"
            assert await _boot(fleet, "job-1", reservation="l-1") is TaskStatus.SUCCEEDED
            assert (await fleet.instances.get("job-1")).host_id in lease.hosts
            await clock.sleep(HOUR)
            ended = await fleet.leases.get("l-1")
            assert ended.state == "ended"
            left = {
                "policy": "notify",
                "done": [],
                "left": ["job-1"],
                "failed": {},
                "moved_off": [],
            }
            assert ended.outcome == left
            topics = [e.topic.rsplit(".", 1)[1] for e in _drain(events)]
        history = await fleet.leases.history("l-1")
        events_at = {r.event: r.at for r in history}
        assert [r.event for r in history] == [
            "create",
            "created",
            "starting_soon",
            "start",
            "started",
            "ending_soon",
            "end",
            "ended",
        ]
        assert events_at["started"] == pytest.approx(start, abs=0.01)
        assert events_at["ending_soon"] == pytest.approx(start + HOUR - 120, abs=0.01)
        assert events_at["ended"] == pytest.approx(start + HOUR, abs=0.01)
        assert topics == ["start", "started", "ending_soon", "end", "ended"]
        # The instance stays, as an unreserved one: its host takes others again.
        assert (await fleet.instances.get("job-1")).vm_state == "active"
        assert await _boot(fleet, "after", zone=None) is TaskStatus.SUCCEEDED


@pytest.mark.virtual_time
async def test_unreserved_boots_never_take_capacity_a_lease_holds_later() -> None:
    """A host reserved for tomorrow takes no unreserved instance today (an unreserved
    instance has no end), while the other host takes them until it is full."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        lease = await fleet.leases.create(
            "later",
            start=clock.now() + 24 * HOUR,
            end=clock.now() + 25 * HOUR,
            reservations=(HostReservation(count=1),),
        )
        (reserved,) = lease.hosts
        for n in range(4):
            assert await _boot(fleet, f"vm-{n}") is TaskStatus.SUCCEEDED
            assert (await fleet.instances.get(f"vm-{n}")).host_id != reserved
        assert await _boot(fleet, "one-too-many") is TaskStatus.FAILED
        status = await fleet.hosts.get(reserved)
        assert not status.claims
        assert status.free == (0.0, 0.0, 0.0)
        assert status.reserved == Capacity(8, 8192, 400)


@pytest.mark.virtual_time
async def test_a_boot_into_a_lease_uses_its_slots_and_only_them() -> None:
    """Two slots of m1.small: two boots that name the lease fit, a third does not although
    unreserved room is left; a boot before the lease starts, or of another flavor, is
    refused with a typed error."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        await fleet.flavors.add(Flavor("m1.big", vcpus=4, ram_mb=4096, disk_gb=40))
        start = clock.now() + 60
        await fleet.leases.create(
            "slots",
            start=start,
            end=start + HOUR,
            reservations=(InstanceReservation("m1.small", count=2, affinity=True),),
        )
        with pytest.raises(LeaseNotActive, match="lease slots is pending, not active"):
            await fleet.instances.boot(
                "early", flavor="m1.small", image="cirros", reservation="slots"
            )
        await clock.sleep(61)
        with pytest.raises(InvalidArgument, match="a flavor lease slots reserves slots of"):
            await fleet.instances.boot("big", flavor="m1.big", image="cirros", reservation="slots")
        assert await _boot(fleet, "a", reservation="slots") is TaskStatus.SUCCEEDED
        assert await _boot(fleet, "b", reservation="slots") is TaskStatus.SUCCEEDED
        hosts = {(await fleet.instances.get(n)).host_id for n in ("a", "b")}
        assert len(hosts) == 1  # affinity: both slots on one host
        assert await _boot(fleet, "c", reservation="slots") is TaskStatus.FAILED
        assert await _boot(fleet, "free") is TaskStatus.SUCCEEDED
        with pytest.raises(UnknownName, match="unknown lease 'nope'"):
            await fleet.instances.boot("x", flavor="m1.small", image="cirros", reservation="nope")


@pytest.mark.virtual_time
async def test_concurrent_requests_for_the_same_hosts_never_double_book() -> None:
    """Ten requests at once, each for one whole host over overlapping windows, on three
    hosts: three are granted, on three different hosts, and seven fail cleanly."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=3)
        now = clock.now()
        results: dict[str, Any] = {}

        async def ask(n: int) -> None:
            try:
                results[f"l-{n}"] = await fleet.leases.create(
                    f"l-{n}",
                    start=now + 100 + n,
                    end=now + HOUR + n,
                    reservations=(HostReservation(count=1),),
                )
            except LeaseDoesNotFit as error:
                results[f"l-{n}"] = error

        async with anyio.create_task_group() as group:
            for n in range(10):
                group.start_soon(ask, n)
        granted = {k: v for k, v in results.items() if not isinstance(v, LeaseDoesNotFit)}
        assert len(granted) == 3
        assert len({v.hosts for v in granted.values()}) == 3
        for host in fleet.hosts.ids():
            calendar = await fleet.leases.calendar(host)
            assert len(calendar.holds) == 1
            assert calendar.holds[0].state == "held"
        failed = await fleet.leases.list(state="failed")
        assert len(failed) == 7


@pytest.mark.virtual_time
async def test_a_request_that_does_not_fit_says_where_and_when_it_would() -> None:
    """The error names the window, the reservation, the closest host's shortfall and the
    earliest window that fits; the lease is ``failed`` and holds nothing anywhere."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        now = clock.now()
        await fleet.leases.create(
            "first",
            start=now + 100,
            end=now + 1100,
            reservations=(HostReservation(hosts=("h-0",)),),
        )
        with pytest.raises(LeaseDoesNotFit) as caught:
            await fleet.leases.create(
                "second",
                start=now + 600,
                end=now + 1600,
                reservations=(HostReservation(count=2),),
                suggest=True,
            )
        error = caught.value
        assert error.earliest == (now + 1100, now + 2100)
        assert error.host == "h-0"
        assert error.shortfall is not None
        assert (error.shortfall.at, error.shortfall.resource) == (now + 600, "vcpus")
        assert str(error) == (
            f"lease second does not fit over [{now + 600:.0f}, {now + 1600:.0f}): "
            "reservation 0 (2 hosts) found room for 1 of 2 hosts among 2 matching hosts; "
            f"closest: h-0 at {now + 600:.0f}: vcpus 8 held + 8 asked > 8; the earliest "
            f"window that fits is [{now + 1100:.0f}, {now + 2100:.0f})"
        )
        second = await fleet.leases.get("second")
        assert second.state == "failed"
        assert second.holds == ()
        for host in fleet.hosts.ids():
            holds = (await fleet.leases.calendar(host)).holds
            assert {h.lease_id for h in holds} <= {"first"}
        # Without suggest, the hint says how to ask for one.
        with pytest.raises(LeaseDoesNotFit, match="pass suggest=True"):
            await fleet.leases.create(
                "third",
                start=now + 600,
                end=now + 700,
                reservations=(InstanceReservation("m1.small", count=9),),
            )


@pytest.mark.virtual_time
async def test_a_failed_update_leaves_the_lease_as_it_was() -> None:
    """An update that does not fit raises and restores: same window, same holds, the
    history says ``update`` then ``update_failed``; one that fits moves the window, the
    holds and the timers together."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        now = clock.now()
        await fleet.leases.create(
            "blocker",
            start=now + 500,
            end=now + 3000,
            reservations=(HostReservation(hosts=("h-1",)),),
        )
        lease = await fleet.leases.create(
            "mine",
            start=now + 100,
            end=now + 1000,
            reservations=(HostReservation(hosts=("h-0",)),),
        )
        with pytest.raises(LeaseDoesNotFit):
            await fleet.leases.update("mine", reservations=(HostReservation(count=2),))
        after = await fleet.leases.get("mine")
        assert (after.state, after.start, after.end) == ("pending", lease.start, lease.end)
        assert after.holds == lease.holds
        assert [h.id for h in (await fleet.leases.calendar("h-0")).holds] == [
            lease.holds[0].hold_id
        ]
        assert [r.event for r in await fleet.leases.history("mine")][-2:] == [
            "update",
            "update_failed",
        ]
        moved = await fleet.leases.update("mine", start=now + 200, end=now + 1800)
        assert (moved.start, moved.end, moved.generation) == (now + 200, now + 1800, 1)
        holds = (await fleet.leases.calendar("h-0")).holds
        assert [(h.start, h.end) for h in holds] == [(now + 200, now + 1800)]
        timers = {t.name: t.at for t in fleet.system.timers.pending("mine")}
        assert timers == {"start": now + 200, "ending_soon": now + 1800 - 300, "end": now + 1800}
        # The heads-up is given again for the new start (at once: it is less than 300 s off).
        await clock.sleep(0.01)
        announced = [
            r.payload["at"]
            for r in await fleet.leases.history("mine")
            if r.event == "starting_soon"
        ]
        assert announced == [now + 100, now + 200]
        await clock.sleep(1000)
        assert (await fleet.leases.get("mine")).state == "active"
        await clock.sleep(900)
        assert (await fleet.leases.get("mine")).ended_at == pytest.approx(now + 1800)


@pytest.mark.virtual_time
async def test_bad_requests_get_typed_errors_and_nothing_is_held() -> None:
    """A window that ends before it starts, a start in the past, a count of zero, an unknown
    flavor or host, a policy that is not one: each a typed error naming what was expected."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=1)
        now = clock.now()
        one = (HostReservation(),)
        cases: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"start": now + 10, "end": now + 10}, InvalidArgument, "a time after start"),
            ({"start": now - 600, "end": now + 10}, InvalidArgument, "now less 60 s"),
            ({"reservations": ()}, InvalidArgument, "a non-empty tuple"),
            ({"reservations": (InstanceReservation("nope"),)}, UnknownName, "flavor 'nope'"),
            ({"reservations": (HostReservation(hosts=("h-9",)),)}, UnknownName, "host 'h-9'"),
            ({"on_end": "wipe"}, InvalidArgument, "a LeasePolicy"),
            ({"on_start": LeaseStart.BOOT}, InvalidArgument, "an image to boot from"),
            ({"start": "soon"}, InvalidArgument, "seconds on the fleet's clock"),
        ]
        for changes, error, text in cases:
            request: dict[str, Any] = {"start": now + 10, "end": now + 100, "reservations": one}
            request.update(changes)
            with pytest.raises(error, match=text):
                await fleet.leases.create("bad", **request)
        with pytest.raises(InvalidArgument, match="an int from 1 to 10000"):
            InstanceReservation("m1.small", count=0)
        assert fleet.leases
        assert await fleet.leases.list() == ()
        assert (await fleet.leases.calendar("h-0")).holds == ()
        lease = await fleet.leases.create("ok", start=now + 10, end=now + 100, reservations=one)
        await clock.sleep(11)
        with pytest.raises(InvalidArgument, match="an active lease keeps its start"):
            await fleet.leases.update("ok", start=now + 20)
        await fleet.tasks.wait((await fleet.leases.end("ok")).id)
        with pytest.raises(InvalidCommand, match="allowed now: delete"):
            await fleet.leases.end("ok")
        with pytest.raises(InvalidCommand, match="pending or active"):
            await fleet.leases.update("ok", end=now + 500)
        del lease


@pytest.mark.virtual_time
async def test_back_to_back_leases_hand_the_host_over_in_order() -> None:
    """On one host, a lease ending at T with policy ``delete`` and the next starting at T:
    the first deletes its instances and lets go before the second opens and boots its
    own, so the second's boots all land."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=1)
        t = clock.now() + 100
        await fleet.leases.create(
            "first",
            start=clock.now() + 10,
            end=t,
            reservations=(InstanceReservation("m1.small", count=4),),
            on_end=LeasePolicy.DELETE,
        )
        await fleet.leases.create(
            "second",
            start=t,
            end=t + HOUR,
            reservations=(InstanceReservation("m1.small", count=4),),
            on_start=LeaseStart.BOOT,
            image="cirros",
        )
        await clock.sleep(11)
        for n in range(4):
            assert await _boot(fleet, f"old-{n}", reservation="first") is TaskStatus.SUCCEEDED
        await clock.sleep(100)
        first, second = await fleet.leases.get("first"), await fleet.leases.get("second")
        assert first.state == "ended"
        assert first.outcome is not None
        assert len(first.outcome["done"]) == 4
        assert second.state == "active", second
        assert second.booted == ("second-1", "second-2", "second-3", "second-4")
        assert second.started_at is not None
        assert first.ended_at is not None
        assert second.started_at >= first.ended_at
        for n in range(4):
            assert (await fleet.instances.get(f"old-{n}")).vm_state == "deleted"
            instance = await fleet.instances.get(f"second-{n + 1}")
            assert (instance.vm_state, instance.reservation) == ("active", "second")


@pytest.mark.virtual_time
@pytest.mark.parametrize("policy", [LeasePolicy.STOP, LeasePolicy.MIGRATE_OFF])
async def test_the_end_of_a_lease_stops_or_moves_its_instances_off(policy: LeasePolicy) -> None:
    """``stop`` stops the lease's instances where they are; ``migrate_off`` moves them to
    unreserved capacity through the move coordinator (their reservation cleared)."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        await fleet.leases.create(
            "l",
            start=clock.now() + 10,
            end=clock.now() + 100,
            reservations=(HostReservation(hosts=("h-0",)),),
            on_end=policy,
        )
        await clock.sleep(11)
        for n in range(2):
            assert await _boot(fleet, f"vm-{n}", reservation="l") is TaskStatus.SUCCEEDED
        await clock.sleep(200)
        lease = await fleet.leases.get("l")
        assert lease.state == "ended"
        assert lease.outcome is not None
        assert lease.outcome["done"] == ["vm-0", "vm-1"]
        for n in range(2):
            vm = await fleet.instances.get(f"vm-{n}")
            if policy is LeasePolicy.STOP:
                assert (vm.vm_state, vm.host_id) == ("stopped", "h-0")
            else:
                assert (vm.vm_state, vm.host_id, vm.reservation) == ("active", "h-1", None)
        assert (await fleet.leases.calendar("h-0")).holds == ()


@pytest.mark.virtual_time
async def test_ending_early_and_deleting_release_everything_and_keep_the_history() -> None:
    """A pending lease ended early never starts; a deleted lease holds nothing, takes no
    boots and keeps its history; deleting it twice is refused."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=1)
        now = clock.now()
        for name in ("early", "gone"):
            await fleet.leases.create(
                name,
                start=now + 100,
                end=now + 200,
                reservations=(InstanceReservation("m1.small", count=1),),
            )
        await fleet.tasks.wait((await fleet.leases.end("early")).id)
        await fleet.tasks.wait((await fleet.leases.delete("gone")).id)
        await clock.sleep(300)
        early, gone = await fleet.leases.get("early"), await fleet.leases.get("gone")
        assert (early.state, early.started_at) == ("ended", None)
        assert gone.state == "deleted"
        # Created inside its heads-up offset (300 s): the heads-up came at once.
        assert [r.event for r in await fleet.leases.history("gone")] == [
            "create",
            "created",
            "starting_soon",
            "end",
            "ended",
            "delete",
            "deleted",
        ]
        assert (await fleet.leases.calendar("h-0")).holds == ()
        assert fleet.system.timers.pending("early") == ()
        with pytest.raises(InvalidCommand, match="not deleted"):
            await fleet.leases.delete("gone")


@pytest.mark.virtual_time
async def test_on_start_boot_spreads_anti_affine_slots_over_hosts() -> None:
    """Three anti-affine slots, booted at the start: one per host, each in the lease."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=3)
        await fleet.leases.create(
            "spread",
            start=clock.now() + 5,
            end=clock.now() + HOUR,
            reservations=(InstanceReservation("m1.small", count=3, affinity=False),),
            on_start=LeaseStart.BOOT,
            image="cirros",
        )
        await clock.sleep(10)
        lease = await fleet.leases.get("spread")
        assert lease.state == "active"
        hosts = {(await fleet.instances.get(name)).host_id for name in lease.booted}
        assert hosts == {"h-0", "h-1", "h-2"}


@pytest.mark.virtual_time
@pytest.mark.parametrize("policy", [LeasePolicy.NOTIFY, LeasePolicy.STOP])
async def test_instances_left_by_a_lease_make_way_for_the_next_one(policy: LeasePolicy) -> None:
    """``notify`` and ``stop`` leave a lease's instances where they are, except where a
    later lease holds their room: those are moved off, so the later lease gets it all."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await _setup(fleet, hosts=2)
        t = clock.now() + 100
        full = (HostReservation(hosts=("h-0",)),)
        await fleet.leases.create(
            "first", start=clock.now() + 10, end=t, reservations=full, on_end=policy
        )
        await fleet.leases.create("second", start=t, end=t + HOUR, reservations=full)
        await clock.sleep(11)
        for n in range(2):
            assert await _boot(fleet, f"old-{n}", reservation="first") is TaskStatus.SUCCEEDED
        await clock.sleep(120)
        first = await fleet.leases.get("first")
        assert first.outcome is not None
        assert first.outcome["moved_off"] == ["old-0", "old-1"]
        for n in range(2):
            assert (await fleet.instances.get(f"old-{n}")).host_id == "h-1"
        assert (await fleet.leases.get("second")).state == "active"
        for n in range(4):
            assert await _boot(fleet, f"new-{n}", reservation="second") is TaskStatus.SUCCEEDED


@pytest.mark.virtual_time
async def test_a_host_reservation_takes_only_hosts_with_the_traits_and_zone_asked() -> None:
    """Traits and zone filter the hosts a host reservation may take; too few matching
    hosts is a shortfall that says how many matched."""
    clock = VirtualClock.current()
    async with _open(clock) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        for n, traits in enumerate((("gpu",), (), ("gpu", "ssd"))):
            await fleet.hosts.add(f"h-{n}", capacity=HOST_SIZE, traits=traits, zone=f"az{n % 2}")
        now = clock.now()
        lease = await fleet.leases.create(
            "gpus",
            start=now + 10,
            end=now + 100,
            reservations=(HostReservation(count=2, traits=("gpu",)),),
        )
        assert lease.hosts == ("h-0", "h-2")
        with pytest.raises(LeaseDoesNotFit, match="found room for 0 of 1 hosts among 0 matching"):
            await fleet.leases.create(
                "ssd-in-az1",
                start=now + 10,
                end=now + 100,
                reservations=(HostReservation(zone="az1", traits=("ssd",)),),
            )

"""The embedding API: boot and every command end to end, on memory and on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stateward.actors import (
    Capacity,
    DuplicateName,
    FakeDriver,
    Flavor,
    Fleet,
    GroupPolicy,
    Operation,
    Power,
    UnknownName,
)
from stateward.flows import TASKS, StepStatus, TaskRecord, TaskStatus
from stateward.runtime import (
    Document,
    Environment,
    InvalidArgument,
    InvalidCommand,
    InvalidTransition,
    MemoryStore,
    Subscription,
    VirtualClock,
    Write,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HUGE = Flavor("m1.huge", vcpus=512, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)
HOSTS = ("h-0", "h-1", "h-2")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str | None:
    """Where a fleet keeps its state: in memory (None), an SQLite file or a PostgreSQL DSN."""
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("postgres_database")
        return dsn
    return None if request.param == "memory" else tmp_path / "cloud.db"


async def setup(fleet: Fleet, hosts: tuple[str, ...] = HOSTS) -> None:
    """Flavors, images and ``hosts`` of HOST_SIZE."""
    await fleet.flavors.add(SMALL)
    await fleet.flavors.add(HUGE)
    await fleet.images.add("cirros")
    await fleet.images.add("ubuntu")
    for host in hosts:
        await fleet.hosts.add(host, capacity=HOST_SIZE)


async def boot(fleet: Fleet, name: str = "web-1", **options: Any) -> TaskRecord:
    """Boot ``name`` as m1.small/cirros and wait for the boot to end."""
    record = await fleet.instances.boot(name, flavor="m1.small", image="cirros", **options)
    return await fleet.tasks.wait(record.id)


async def run(fleet: Fleet, action: str, name: str = "web-1", **options: Any) -> TaskRecord:
    """Run ``action`` on ``name`` and wait for its task to end."""
    record = await fleet.instances.act(name, action, **options)
    return await fleet.tasks.wait(record.id)


async def usages(fleet: Fleet) -> dict[str, Capacity]:
    """Every host's usage."""
    return {h.id: h.usage for h in await fleet.hosts.list()}


async def claims(fleet: Fleet) -> list[str]:
    """The instance of every claim held anywhere."""
    return sorted(c.instance_id for h in await fleet.hosts.list() for c in h.claims)


def topics(subscription: Subscription) -> list[str]:
    """The topics of the events waiting in ``subscription``."""
    found = []
    while (event := subscription.receive_nowait()) is not None:
        found.append(event.topic)
    return found


async def assert_nothing_left(fleet: Fleet, driver: FakeDriver, name: str = "web-1") -> None:
    """No instance, port or volume of ``name`` on the driver, and no claim on any host."""
    view = await driver.describe()
    assert name not in [i.id for i in view.instances]
    assert name not in view.ports.values()
    assert name not in view.volumes.values()
    assert name not in await claims(fleet)
    assert set((await usages(fleet)).values()) == {Capacity()}


# -- boot -----------------------------------------------------------------------------------


async def test_boot_reaches_active(db: Path | str | None) -> None:
    """A boot schedules, claims, allocates a port, spawns and powers on: active and running,
    with the claim of exactly the flavor's size held on the chosen host."""
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        record = await boot(fleet, volumes=("vol-1",))
        assert record.status is TaskStatus.SUCCEEDED
        assert record.kind == "boot"
        assert [(s.name, s.status) for s in record.steps] == [
            ("schedule", StepStatus.SUCCEEDED),
            ("allocate_ports", StepStatus.SUCCEEDED),
            ("attach_volumes", StepStatus.SUCCEEDED),
            ("spawn", StepStatus.SUCCEEDED),
            ("power_on", StepStatus.SUCCEEDED),
        ]
        status = await fleet.instances.get("web-1")
        assert (status.state, status.vm_state, status.task_state) == ("active", "active", None)
        assert status.power == "running"
        assert status.host_id in HOSTS
        assert status.task_id is None
        assert status.fault is None
        assert len(status.ports) == 1

        view = await driver.describe()
        [spawned] = view.instances
        assert (spawned.id, spawned.host_id, spawned.image, spawned.power) == (
            "web-1",
            status.host_id,
            "cirros",
            Power.RUNNING,
        )
        assert spawned.ports == status.ports
        assert dict(view.ports) == {status.ports[0]: "web-1"}
        assert dict(view.volumes) == {"vol-1": "web-1"}

        host = await fleet.hosts.get(status.host_id)
        [claim] = host.claims
        assert (claim.instance_id, claim.task_id) == ("web-1", record.id)
        assert claim.amount == host.usage == Capacity(1, 2048, 20)
        others = {h: u for h, u in (await usages(fleet)).items() if h != status.host_id}
        assert set(others.values()) == {Capacity()}


#: action -> (commands run before it, vm_state after, power, driver power, image)
COMMANDS: dict[str, tuple[tuple[str, ...], str, str, Power | None]] = {
    "stop": ((), "stopped", "shutdown", Power.SHUTDOWN),
    "start": (("stop",), "active", "running", Power.RUNNING),
    "reboot": ((), "active", "running", Power.RUNNING),
    "reboot_hard": (("stop",), "active", "running", Power.RUNNING),
    "pause": ((), "paused", "paused", Power.PAUSED),
    "unpause": (("pause",), "active", "running", Power.RUNNING),
    "suspend": ((), "suspended", "suspended", Power.SUSPENDED),
    "resume": (("suspend",), "active", "running", Power.RUNNING),
    "delete": ((), "deleted", "nostate", None),
}


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_each_command_moves_the_instance_and_the_driver(action: str) -> None:
    """Each command's task succeeds and leaves the expected vm_state and power, in the
    store and on the driver."""
    before, vm, power, on_driver = COMMANDS[action]
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        for earlier in before:
            assert (await run(fleet, earlier)).status is TaskStatus.SUCCEEDED
        with fleet.subscribe("instance.web-1.#") as events:
            record = await run(fleet, action)
            seen = topics(events)
        assert (record.status, record.kind) == (TaskStatus.SUCCEEDED, action)
        status = await fleet.instances.get("web-1")
        assert (status.vm_state, status.task_state, status.power) == (vm, None, power)
        assert status.task_id is None
        assert status.fault is None
        assert seen[0] == f"instance.web-1.{action}"
        view = await driver.describe()
        if on_driver is None:
            await assert_nothing_left(fleet, driver)
            assert status.host_id is None
            assert status.ports == ()
        else:
            assert [i.power for i in view.instances] == [on_driver]


async def test_rebuild_recreates_from_the_new_image(db: Path | str | None) -> None:
    """Rebuild puts the new image on the driver and ends active and running."""
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        record = await fleet.instances.rebuild("web-1", image="ubuntu")
        assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED
        status = await fleet.instances.get("web-1")
        assert (status.state, status.image, status.power) == ("active", "ubuntu", "running")
        [instance] = (await driver.describe()).instances
        assert (instance.image, instance.power) == ("ubuntu", Power.RUNNING)
        assert driver.calls[Operation.REBUILD] == 1


async def test_full_lifecycle_on_sqlite(tmp_path: Path) -> None:
    """Stop, start, both reboots, pause, suspend and delete in a row on SQLite."""
    driver = FakeDriver()
    async with Fleet.open(tmp_path / "cloud.db", driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        seen = []
        for action in ("stop", "start", "reboot", "reboot_hard", "pause", "unpause"):
            assert (await run(fleet, action)).status is TaskStatus.SUCCEEDED
            seen.append((await fleet.instances.get("web-1")).state)
        hard = await fleet.instances.reboot("web-1", hard=True)
        assert (await fleet.tasks.wait(hard.id)).kind == "reboot_hard"
        for action in ("suspend", "resume", "delete"):
            await fleet.tasks.wait((await fleet.instances.act("web-1", action)).id)
            seen.append((await fleet.instances.get("web-1")).state)
        assert seen == [
            "stopped",
            "active",
            "active",
            "active",
            "paused",
            "active",
            "suspended",
            "active",
            "deleted",
        ]
        await assert_nothing_left(fleet, driver)
        kinds = [a.kind for a in await fleet.tasks.actions("web-1")]
        assert kinds[0] == "delete"
        assert kinds[-1] == "boot"


async def test_command_the_state_does_not_allow_changes_nothing() -> None:
    """``start`` on an active instance and ``stop`` on a stopped one are refused with the
    allowed actions listed; no task is created and nothing moves."""
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        before = await fleet.instances.get("web-1")
        tasks = await fleet.tasks.list("web-1")
        with pytest.raises(InvalidTransition, match="web-1 cannot `start` in state `active`"):
            await fleet.instances.start("web-1")
        assert await fleet.instances.get("web-1") == before
        assert await fleet.tasks.list("web-1") == tasks
        await run(fleet, "stop")
        with pytest.raises(InvalidTransition) as caught:
            await fleet.instances.stop("web-1")
        assert str(caught.value) == (
            "web-1 cannot `stop` in state `stopped`; allowed: start, reboot_hard, rebuild, delete, "
            "migrate, resize, evacuate"
        )
        with pytest.raises(InvalidTransition, match="cannot `boot` in state `stopped`"):
            await fleet.instances.boot(
                "web-1", flavor="m1.small", image="cirros", idempotency_key="another"
            )
        await run(fleet, "delete")
        with pytest.raises(InvalidTransition, match=r"in state `deleted`; allowed: boot$"):
            await fleet.instances.delete("web-1")


async def test_idempotency_keys_return_the_same_task(db: Path | str | None) -> None:
    """A boot or a command repeated with its idempotency key returns the first task and
    does the work once."""
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        first = await fleet.instances.boot(
            "web-1", flavor="m1.small", image="cirros", idempotency_key="boot-web-1"
        )
        again = await fleet.instances.boot(
            "web-1", flavor="m1.small", image="cirros", idempotency_key="boot-web-1"
        )
        assert again.id == first.id
        await fleet.tasks.wait(first.id)
        later = await fleet.instances.boot(
            "web-1", flavor="m1.small", image="cirros", idempotency_key="boot-web-1"
        )
        assert (later.id, later.status) == (first.id, TaskStatus.SUCCEEDED)
        stop = await fleet.instances.stop("web-1", idempotency_key="stop-1")
        await fleet.tasks.wait(stop.id)
        repeat = await fleet.instances.stop("web-1", idempotency_key="stop-1")
        assert (repeat.id, repeat.status) == (stop.id, TaskStatus.SUCCEEDED)
        assert driver.calls[Operation.SPAWN] == 1
        assert driver.calls[Operation.POWER_OFF] == 1
        assert [a.kind for a in await fleet.tasks.actions("web-1")] == ["stop", "boot"]
        with pytest.raises(DuplicateName, match="an instance named 'web-1' exists already"):
            await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")


async def test_bad_input_gets_typed_errors() -> None:
    """Unknown names, duplicates, negative capacity and malformed names are refused with
    errors that say what is wrong."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet, hosts=("h-0",))
        with pytest.raises(UnknownName, match=r"unknown flavor 'm9\.tiny'; known: m1\.huge, m1"):
            await fleet.instances.boot("web-1", flavor="m9.tiny", image="cirros")
        with pytest.raises(UnknownName, match="unknown image 'windows'; known: cirros, ubuntu"):
            await fleet.instances.boot("web-1", flavor="m1.small", image="windows")
        with pytest.raises(UnknownName, match="unknown host 'h-9'; known: h-0"):
            await fleet.hosts.get("h-9")
        with pytest.raises(UnknownName, match="unknown host 'h-9'"):
            await fleet.hosts.command("h-9", "disable")
        with pytest.raises(UnknownName, match="unknown instance 'nope'"):
            await fleet.instances.get("nope")
        with pytest.raises(UnknownName, match="unknown instance 'nope'"):
            await fleet.instances.stop("nope")
        with pytest.raises(UnknownName, match="unknown instance 'h-0'"):
            await fleet.instances.get("h-0")
        await boot(fleet)
        with pytest.raises(UnknownName, match="unknown image 'windows'"):
            await fleet.instances.rebuild("web-1", image="windows")
        with pytest.raises(DuplicateName, match="a host named 'h-0' exists already"):
            await fleet.hosts.add("h-0", capacity=Capacity(vcpus=1, ram_mb=1, disk_gb=1))
        with pytest.raises(DuplicateName, match="a host named 'web-1' exists already"):
            await fleet.hosts.add("web-1", capacity=HOST_SIZE)
        with pytest.raises(DuplicateName, match="an instance named 'h-0' exists already"):
            await fleet.instances.boot("h-0", flavor="m1.small", image="cirros")
        with pytest.raises(DuplicateName, match=r"a flavor named 'm1\.small'"):
            await fleet.flavors.add(HUGE, name="m1.small")
        with pytest.raises(InvalidArgument, match="vcpus"):
            await fleet.hosts.add("h-1", capacity=Capacity(vcpus=-1, ram_mb=1024, disk_gb=10))
        for bad in ("web.2", "web 2", "", "-web"):
            with pytest.raises(InvalidArgument, match="no dots or spaces"):
                await fleet.instances.boot(bad, flavor="m1.small", image="cirros")
            with pytest.raises(InvalidArgument, match="no dots or spaces"):
                await fleet.hosts.add(bad, capacity=HOST_SIZE)
        with pytest.raises(InvalidArgument, match="group_policy"):
            await fleet.instances.boot("web-2", flavor="m1.small", image="cirros", group="g")
        with pytest.raises(InvalidArgument, match="action: expected one of stop, start, reb"):
            await fleet.instances.act("web-1", "explode")
        with pytest.raises(InvalidArgument, match="image: expected an image to rebuild from"):
            await fleet.instances.act("web-1", "rebuild")
        assert (await fleet.instances.get("web-1")).state == "active"  # the actor is fine
        with pytest.raises(InvalidArgument, match="event"):
            await fleet.hosts.command("h-0", "explode")
        assert [h.id for h in await fleet.hosts.list()] == ["h-0"]
        assert [i.id for i in await fleet.instances.list()] == ["web-1"]


async def test_no_valid_host_fails_the_boot_and_holds_nothing(db: Path | str | None) -> None:
    """A flavor no host can take: the boot fails with NoValidHost naming the filter that
    eliminated the hosts; the instance is in error with the boot as its fault."""
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        await fleet.hosts.command("h-2", "disable")
        record = await fleet.instances.boot("big", flavor="m1.huge", image="cirros")
        record = await fleet.tasks.wait(record.id)
        assert record.status is TaskStatus.FAILED
        assert record.error_type == "NoValidHost"
        assert record.error_message == (
            "schedule: no valid host for big among 3 hosts: capacity eliminated 3"
        )
        status = await fleet.instances.get("big")
        assert (status.state, status.fault, status.host_id) == ("error", record.id, None)
        fault = await fleet.tasks.last_fault("big")
        assert fault is not None
        assert fault.id == record.id
        assert fault.kind == "boot"
        assert await claims(fleet) == []
        assert (await driver.describe()).instances == ()
        assert status.allowed == ("reboot_hard", "rebuild", "delete", "evacuate")
        assert (await run(fleet, "delete", "big")).status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("big")).state == "deleted"


async def test_no_valid_host_counts_each_filter() -> None:
    """When several filters eliminate hosts, the message counts each one."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        await fleet.hosts.command("h-0", "disable")
        await fleet.hosts.command("h-1", "start_maintenance")
        record = await boot(fleet, zone="elsewhere")
        assert record.error_message == (
            "schedule: no valid host for web-1 among 3 hosts: "
            "enabled_and_up eliminated 2, zone eliminated 1"
        )


@pytest.mark.parametrize(
    ("operation", "step"),
    [
        (Operation.ALLOCATE_PORT, "allocate_ports"),
        (Operation.ATTACH_VOLUME, "attach_volumes"),
        (Operation.SPAWN, "spawn"),
        (Operation.POWER_ON, "power_on"),
    ],
)
async def test_a_boot_failing_at_any_stage_reverts_and_leaves_no_orphan(
    operation: Operation, step: str
) -> None:
    """A driver failure at any boot stage reverts the earlier ones: no instance, port,
    volume or claim is left; the task is reverted and the instance in error with it as its
    fault."""
    driver = FakeDriver(failures={operation: 1.0})
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        record = await boot(fleet, volumes=("vol-1",))
        assert record.status is TaskStatus.REVERTED
        assert record.error_message is not None
        assert record.error_message.startswith(f"{step}: driver {operation.value} of ")
        assert record.error_message.endswith("failed: injected failure")
        assert record.step(step).status is StepStatus.FAILED
        assert record.step("schedule").status is StepStatus.REVERTED
        view = await driver.describe()
        assert (view.instances, dict(view.ports), dict(view.volumes)) == ((), {}, {})
        await assert_nothing_left(fleet, driver)
        status = await fleet.instances.get("web-1")
        assert (status.state, status.fault) == ("error", record.id)
        fault = await fleet.tasks.last_fault("web-1")
        assert fault is not None
        assert fault.id == record.id


async def test_a_failed_stop_leaves_the_instance_active_with_a_fault() -> None:
    """A stop whose power-off fails changed nothing: the instance stays active (not error),
    with the stop as its fault, and can be stopped again."""
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        driver.failures[Operation.POWER_OFF] = 1.0
        record = await run(fleet, "stop")
        assert record.status is TaskStatus.FAILED
        assert record.error_message is not None
        assert "power_off" in record.error_message
        status = await fleet.instances.get("web-1")
        assert (status.state, status.power, status.fault) == ("active", "running", record.id)
        fault = await fleet.tasks.last_fault("web-1")
        assert fault is not None
        assert fault.id == record.id
        driver.failures[Operation.POWER_OFF] = 0.0
        assert (await run(fleet, "stop")).status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("web-1")).state == "stopped"


@pytest.mark.parametrize("way_out", ["rebuild", "delete"])
async def test_a_failed_rebuild_is_damage_and_rebuild_or_delete_gets_out(way_out: str) -> None:
    """A rebuild that fails after touching the disk puts the instance in error; a second
    rebuild, or a delete, gets it out."""
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        driver.failures[Operation.POWER_ON] = 1.0
        failed = await run(fleet, "rebuild", image="ubuntu")
        assert failed.status in (TaskStatus.FAILED, TaskStatus.REVERTED)
        status = await fleet.instances.get("web-1")
        assert (status.state, status.fault) == ("error", failed.id)
        assert status.allowed == ("reboot_hard", "rebuild", "delete", "evacuate")
        # The power it reports is the hypervisor's: the new disk left it shut down.
        (on_driver,) = (await driver.describe()).instances
        assert status.power == on_driver.power.value == "shutdown"
        driver.failures[Operation.POWER_ON] = 0.0
        record = await run(fleet, way_out, image="ubuntu" if way_out == "rebuild" else None)
        assert record.status is TaskStatus.SUCCEEDED
        status = await fleet.instances.get("web-1")
        if way_out == "rebuild":
            assert (status.state, status.power, status.image) == ("active", "running", "ubuntu")
        else:
            assert status.state == "deleted"
            await assert_nothing_left(fleet, driver)


async def test_a_failed_delete_ends_in_error_and_can_be_retried() -> None:
    """A delete whose destroy fails does not leave the instance stuck in ``deleting``: it
    goes to error with the delete as its fault, and a second delete finishes the job."""
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        driver.failures[Operation.DESTROY] = 1.0
        record = await run(fleet, "delete")
        # A fault (its first step, keeping a pending resize, had nothing to keep).
        assert record.status is TaskStatus.REVERTED
        assert record.error_message is not None
        assert record.error_message.startswith("destroy_instance: driver destroy of web-1")
        status = await fleet.instances.get("web-1")
        assert (status.state, status.fault) == ("error", record.id)
        assert status.allowed == ("reboot_hard", "rebuild", "delete", "evacuate")
        driver.failures[Operation.DESTROY] = 0.0
        assert (await run(fleet, "delete")).status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("web-1")).state == "deleted"
        await assert_nothing_left(fleet, driver)


@pytest.mark.virtual_time
async def test_delete_during_boot_cancels_the_boot_then_deletes() -> None:
    """Delete while the spawn is in progress: the boot is cancelled (and reverted), then
    the delete runs; nothing is left on the driver or the hosts."""
    env = Environment(clock=VirtualClock.current(), seed=7)
    driver = FakeDriver(env=env, latency={Operation.SPAWN: 30.0})
    async with Fleet.open(None, driver=driver, env=env) as fleet:
        await setup(fleet)
        started = env.clock.monotonic()
        booting = await fleet.instances.boot(
            "web-1", flavor="m1.small", image="cirros", volumes=("vol-1",)
        )
        await env.clock.sleep(10.0)
        status = await fleet.instances.get("web-1")
        assert status.state == "building/spawning"
        assert "web-1" in (await driver.describe()).ports.values()
        assert "delete" in status.allowed
        deleting = await fleet.instances.delete("web-1")
        assert (await fleet.instances.get("web-1")).state == "building/deleting"
        record = await fleet.tasks.wait(deleting.id)
        assert record.status is TaskStatus.SUCCEEDED
        boot_record = await fleet.tasks.get(booting.id)
        assert boot_record.status is TaskStatus.CANCELLED
        assert boot_record.step("schedule").status is StepStatus.REVERTED
        assert env.clock.monotonic() - started < 30.0  # the spawn did not run to its end
        assert (await fleet.instances.get("web-1")).state == "deleted"
        await assert_nothing_left(fleet, driver)
        assert driver.calls[Operation.SPAWN] == 0


async def test_delete_while_the_claim_is_made_leaves_no_claim() -> None:
    """A delete that arrives as the build's claim lands (before the instance hears where it
    was placed) cancels the build mid-step; the delete still releases that claim."""
    # The port takes a while, so the build is still running when the delete comes.
    driver = FakeDriver(latency={Operation.ALLOCATE_PORT: 0.05})
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        with fleet.subscribe("host.*.claim") as claimed:
            booting = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
            await claimed.receive()
            deleting = await fleet.instances.delete("web-1")
        assert (await fleet.tasks.wait(deleting.id)).status is TaskStatus.SUCCEEDED
        assert (await fleet.tasks.get(booting.id)).status is TaskStatus.CANCELLED
        assert (await fleet.instances.get("web-1")).state == "deleted"
        assert await claims(fleet) == []
        assert set((await usages(fleet)).values()) == {Capacity()}


async def test_events_are_published_in_order() -> None:
    """Instance, host and task events arrive on their topics in the order they happened."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        with (
            fleet.subscribe("instance.web-1.#") as instance_events,
            fleet.subscribe("host.#") as host_events,
            fleet.subscribe("task.#") as task_events,
        ):
            await setup(fleet, hosts=("h-0",))
            booted = await boot(fleet)
            stopped = await run(fleet, "stop")
            deleted = await run(fleet, "delete")
            assert topics(instance_events) == [
                "instance.web-1.boot",
                "instance.web-1.scheduled",
                "instance.web-1.networked",
                "instance.web-1.volumes_attached",
                "instance.web-1.spawned",
                "instance.web-1.stop",
                "instance.web-1.stopped",
                "instance.web-1.delete",
                "instance.web-1.deleted",
            ]
            assert topics(host_events) == [
                "host.h-0.configure",
                "host.h-0.claim",
                "host.h-0.release",
            ]
            assert topics(task_events) == [
                f"task.{booted.id}.succeeded",
                f"task.{stopped.id}.succeeded",
                f"task.{deleted.id}.succeeded",
            ]


# -- hosts and the scheduler ----------------------------------------------------------------


async def test_boots_avoid_disabled_and_maintenance_hosts() -> None:
    """A disabled host and one in maintenance get no instances; enabling brings one back."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        assert (await fleet.hosts.command("h-0", "disable")).state == "disabled"
        assert (await fleet.hosts.command("h-1", "start_maintenance")).state == "maintenance"
        for n in range(4):
            await boot(fleet, f"web-{n}")
        placed = {(await fleet.instances.get(f"web-{n}")).host_id for n in range(4)}
        assert placed == {"h-2"}
        await fleet.hosts.command("h-1", "end_maintenance")
        await boot(fleet, "web-4")
        assert (await fleet.instances.get("web-4")).host_id == "h-1"
        with pytest.raises(
            InvalidTransition, match="h-2 cannot `end_maintenance` in state `enabled`"
        ):
            await fleet.hosts.command("h-2", "end_maintenance")


@pytest.mark.virtual_time
async def test_a_host_whose_agent_stops_goes_down_and_is_not_scheduled() -> None:
    """Without heartbeats a host goes down after the timeout and boots skip it; the live
    hosts stay up because the fleet keeps heartbeating them."""
    env = Environment(clock=VirtualClock.current(), seed=3)
    async with Fleet.open(None, driver=FakeDriver(env=env), env=env) as fleet:
        await setup(fleet, hosts=("h-0", "h-1"))
        fleet.hosts.set_agent("h-0", alive=False)
        await env.clock.sleep(59.0)
        assert (await fleet.hosts.get("h-0")).up
        await env.clock.sleep(2.0)
        assert [(h.id, h.up) for h in await fleet.hosts.list()] == [
            ("h-0", False),
            ("h-1", True),
        ]
        for n in range(3):
            await boot(fleet, f"web-{n}")
            assert (await fleet.instances.get(f"web-{n}")).host_id == "h-1"
        fleet.hosts.set_agent("h-1", alive=False)
        await env.clock.sleep(120.0)
        record = await boot(fleet, "web-9")
        assert record.error_message == (
            "schedule: no valid host for web-9 among 2 hosts: enabled_and_up eliminated 2"
        )
        fleet.hosts.set_agent("h-0", alive=True)
        await env.clock.sleep(21.0)
        assert (await fleet.hosts.get("h-0")).up


async def test_anti_affinity_spreads_and_affinity_packs() -> None:
    """Anti-affinity members land on distinct hosts and the one too many fails; affinity
    members share one host."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        for n in range(3):
            await boot(fleet, f"a-{n}", group="web", group_policy=GroupPolicy.ANTI_AFFINITY)
        hosts = [(await fleet.instances.get(f"a-{n}")).host_id for n in range(3)]
        assert sorted(h or "" for h in hosts) == list(HOSTS)
        extra = await boot(fleet, "a-3", group="web", group_policy=GroupPolicy.ANTI_AFFINITY)
        assert extra.error_message == (
            "schedule: no valid host for a-3 among 3 hosts: server_group eliminated 3"
        )
        for n in range(4):
            await boot(fleet, f"p-{n}", group="db", group_policy=GroupPolicy.AFFINITY)
        assert {(await fleet.instances.get(f"p-{n}")).host_id for n in range(4)} == {
            (await fleet.instances.get("p-0")).host_id
        }
        await run(fleet, "delete", "a-1")
        again = await boot(fleet, "a-4", group="web", group_policy=GroupPolicy.ANTI_AFFINITY)
        assert again.status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("a-4")).host_id == hosts[1]


# -- restart and reconciliation -------------------------------------------------------------


async def test_reopening_with_the_same_driver_restores_everything(tmp_path: Path) -> None:
    """Closing and reopening on the same database and hypervisor restores every instance
    with its state, host and ports, the host ledgers, and the server groups; nothing needs
    repair."""
    db, driver = tmp_path / "cloud.db", FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        for n in range(3):
            await boot(fleet, f"a-{n}", group="web", group_policy=GroupPolicy.ANTI_AFFINITY)
        await run(fleet, "stop", "a-0")
        await run(fleet, "pause", "a-1")
        before = {i.id: i for i in await fleet.instances.list()}
        ledgers = await usages(fleet)
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet, hosts=())
        assert fleet.last_reconcile is not None
        assert fleet.last_reconcile.tasks == ()
        after = {i.id: i for i in await fleet.instances.list()}
        assert {k: (v.state, v.host_id, v.ports, v.power) for k, v in after.items()} == {
            k: (v.state, v.host_id, v.ports, v.power) for k, v in before.items()
        }
        assert [after[f"a-{n}"].state for n in range(3)] == ["stopped", "paused", "active"]
        assert await usages(fleet) == ledgers
        assert fleet.scheduler.membership == {
            "web": {f"a-{n}": before[f"a-{n}"].host_id for n in range(3)}
        }
        extra = await boot(fleet, "a-3", group="web", group_policy=GroupPolicy.ANTI_AFFINITY)
        assert extra.error_type == "NoValidHost"
        assert (await run(fleet, "start", "a-0")).status is TaskStatus.SUCCEEDED
        assert (await run(fleet, "delete", "a-2")).status is TaskStatus.SUCCEEDED
        assert "a-2" not in [i.id for i in (await driver.describe()).instances]


async def test_reopening_with_an_empty_driver_reports_ghosts(tmp_path: Path) -> None:
    """Instances the database has as built but the hypervisor lost are ghosts: reported,
    put in error with a repair task as their fault, and deletable."""
    db = tmp_path / "cloud.db"
    async with Fleet.open(db, driver=FakeDriver()) as fleet:
        await setup(fleet)
        for n in range(3):
            await boot(fleet, f"web-{n}")
        await run(fleet, "stop", "web-1")
        await run(fleet, "delete", "web-2")
        failed = await fleet.instances.boot("big", flavor="m1.huge", image="cirros")
        failed = await fleet.tasks.wait(failed.id)  # never built: not a ghost
    async with Fleet.open(db, driver=FakeDriver()) as fleet:
        await setup(fleet, hosts=())
        report = fleet.last_reconcile
        assert report is not None
        assert report.ghosts == ("web-0", "web-1")
        assert report.orphans == report.orphan_ports == report.orphan_volumes == ()
        assert len(report.tasks) == 2
        for name, task_id in zip(report.ghosts, report.tasks, strict=True):
            repair = await fleet.tasks.get(task_id)
            assert (repair.kind, repair.resource_id, repair.status) == (
                "repair.ghost",
                name,
                TaskStatus.SUCCEEDED,
            )
            status = await fleet.instances.get(name)
            assert (status.state, status.fault, status.power) == ("error", task_id, "nostate")
        assert (await fleet.instances.get("web-2")).state == "deleted"
        assert failed.status is TaskStatus.FAILED
        assert (await fleet.instances.get("big")).state == "error"
        assert (await run(fleet, "delete", "web-0")).status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("web-0")).state == "deleted"
        assert await claims(fleet) == ["web-1"]
        second = await fleet.reconcile()
        assert second.ghosts == second.orphans == second.tasks == ()


async def test_orphans_on_the_driver_are_destroyed_with_a_task_record(tmp_path: Path) -> None:
    """An instance, port or volume on the driver that no live instance owns is removed by a
    repair task; instances the database knows are left alone."""
    db, driver = tmp_path / "cloud.db", FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        await boot(fleet, "gone")
        await run(fleet, "delete", "gone")
    await driver.spawn("op-stray", "stray", host="h-0", image="cirros")
    await driver.spawn("op-gone", "gone", host="h-1", image="cirros")
    stray_port = await driver.allocate_port("op-port", "nobody", network="default")
    await driver.attach_volume("op-vol", "nobody", volume_id="vol-9")
    async with Fleet.open(db, driver=driver) as fleet:
        report = fleet.last_reconcile
        assert report is not None
        assert report.orphans == ("gone", "stray")
        assert report.orphan_ports == (stray_port,)
        assert report.orphan_volumes == ("vol-9",)
        assert report.ghosts == ()
        repairs = [await fleet.tasks.get(t) for t in report.tasks]
        assert [(r.kind, r.resource_id, r.status) for r in repairs] == [
            ("repair.orphan", "gone", TaskStatus.SUCCEEDED),
            ("repair.orphan", "stray", TaskStatus.SUCCEEDED),
            ("repair.port", stray_port, TaskStatus.SUCCEEDED),
            ("repair.volume", "vol-9", TaskStatus.SUCCEEDED),
        ]
        view = await driver.describe()
        assert [i.id for i in view.instances] == ["web-1"]
        assert set(view.ports.values()) == {"web-1"}
        assert dict(view.volumes) == {}
        assert (await fleet.instances.get("web-1")).state == "active"
        again = await fleet.reconcile()
        assert again.tasks == ()


@pytest.mark.virtual_time
async def test_a_command_while_a_task_runs_says_the_instance_is_busy() -> None:
    """A command sent while another task runs is refused without calling the state
    terminal."""
    env = Environment(clock=VirtualClock.current(), seed=5)
    driver = FakeDriver(env=env, latency={Operation.POWER_OFF: 10.0})
    async with Fleet.open(None, driver=driver, env=env) as fleet:
        await setup(fleet)
        await boot(fleet)
        await fleet.instances.stop("web-1")
        with pytest.raises(InvalidTransition) as caught:
            await fleet.instances.stop("web-1")
        assert "web-1 cannot `stop` in state `active/powering-off`" in str(caught.value)
        assert "terminal" not in str(caught.value)


@pytest.mark.virtual_time
async def test_hosts_are_up_right_after_a_reopen_long_after() -> None:
    """Reopening a fleet an hour after it closed finds its hosts up: boots work at once."""
    env = Environment(clock=VirtualClock.current(), seed=3)
    store = MemoryStore(clock=env.clock)
    driver = FakeDriver(env=env)
    async with Fleet.open(None, driver=driver, env=env, store=store) as fleet:
        await setup(fleet)
    await asyncio.sleep(3600)
    async with Fleet.open(None, driver=driver, env=env, store=store) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        assert all(h.up for h in await fleet.hosts.list())
        record = await fleet.tasks.wait(
            (await fleet.instances.boot("web-9", flavor="m1.small", image="cirros")).id
        )
        assert record.status is TaskStatus.SUCCEEDED
    await store.aclose()


async def test_a_ghost_can_be_rebuilt_where_its_claim_holds_room() -> None:
    """An instance the hypervisor lost (a ghost, in error) is rebuilt: spawned again on the
    host that still holds its claim, and active."""
    driver = FakeDriver()
    async with Fleet.open(None, driver=driver) as fleet:
        await setup(fleet)
        await boot(fleet)
        host = (await fleet.instances.get("web-1")).host_id
        assert host is not None
        driver.lose_host(host)
        report = await fleet.reconcile()
        assert report.ghosts == ("web-1",)
        record = await run(fleet, "rebuild", image="ubuntu")
        assert record.status is TaskStatus.SUCCEEDED
        status = await fleet.instances.get("web-1")
        assert (status.state, status.power, status.host_id) == ("active", "running", host)
        (on_driver,) = (await driver.describe()).instances
        assert (on_driver.id, on_driver.host_id, on_driver.image) == ("web-1", host, "ubuntu")
        assert (await fleet.reconcile()).ghosts == ()


class ImageAfterTransition(MemoryStore):
    """Keeps a durable image taken right after the first ``event`` transition commits: what
    a process killed at that instant would leave behind."""

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event
        self.snapshot: MemoryStore | None = None

    async def commit(self, write: Write) -> None:
        await super().commit(write)
        record = write.record
        if record is not None and record.event == self.event and self.snapshot is None:
            self.snapshot = self.image()


@pytest.mark.parametrize(
    ("command", "state", "power"),
    [("stop", "stopped", Power.SHUTDOWN), ("delete", "deleted", None)],
)
async def test_a_command_whose_task_was_lost_in_a_crash_is_carried_out(
    command: str, state: str, power: Power | None
) -> None:
    """A crash between a command's transition and its task record loses no intent: the
    reopened fleet submits the command's flow again, under the same task id."""
    driver = FakeDriver()
    store = ImageAfterTransition(command)
    async with Fleet.open(None, driver=driver, store=store) as fleet:
        await setup(fleet)
        await boot(fleet)
        await run(fleet, command)
    crashed = store.snapshot
    assert crashed is not None
    async with Fleet.open(None, driver=driver, store=crashed) as fleet:
        status = await fleet.instances.get("web-1")
        assert status.state == state
        last = (await fleet.tasks.list("web-1"))[0]
        assert (last.kind, last.status) == (command, TaskStatus.SUCCEEDED)
        view = await driver.describe()
        if power is None:
            assert view.instances == ()
        else:
            assert [i.power for i in view.instances] == [power]
    await crashed.aclose()
    await store.aclose()


async def test_a_fleet_opens_past_a_task_record_it_cannot_read() -> None:
    """An instance caught mid-task whose task record cannot be decoded (a corrupt row): the
    fleet still opens, that instance leaves its task state for error with the task as its
    fault, and every other instance, new boots and a second reopen work."""
    driver = FakeDriver()
    store = ImageAfterTransition("stop")
    async with Fleet.open(None, driver=driver, store=store) as fleet:
        await setup(fleet)
        await boot(fleet, "web-1")
        await boot(fleet, "web-2")
        stop = await fleet.instances.stop("web-1")
        await fleet.tasks.wait(stop.id)
    crashed = store.snapshot
    assert crashed is not None
    # The image holds the stop's first record, committed with its transition: overwrite it.
    corrupt = Document(
        TASKS, stop.id, 2, b"\xc1 not msgpack", resource_id="web-1", status="running"
    )
    await crashed.commit(Write(documents=(corrupt,)))
    for _ in range(2):
        async with Fleet.open(None, driver=driver, store=crashed) as fleet:
            await setup(fleet, hosts=())
            status = await fleet.instances.get("web-1")
            assert (status.state, status.fault) == ("error", stop.id)
            assert (await fleet.instances.get("web-2")).state == "active"
            assert "delete" in status.allowed
    async with Fleet.open(None, driver=driver, store=crashed) as fleet:
        await setup(fleet, hosts=())
        await boot(fleet, "web-3")
        deleted = await fleet.tasks.wait((await fleet.instances.delete("web-1")).id)
        assert deleted.status is TaskStatus.SUCCEEDED
    await crashed.aclose()
    await store.aclose()


async def test_a_key_whose_task_record_cannot_be_read_is_refused_and_the_instance_works_on() -> (
    None
):
    """A command repeating an idempotency key whose task record cannot be decoded is
    InvalidCommand saying so; the instance does not crash and takes its next command."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        await setup(fleet)
        booted = await boot(fleet, idempotency_key="boot-1")
        [stored] = await store.find_documents(TASKS, resource_id="web-1", limit=1)
        corrupt = msgspec.structs.replace(stored, version=stored.version + 1, body=b"\xc1")
        await store.commit(Write(documents=(corrupt,)))
        crashes = fleet.system.statistics().crashes
        with pytest.raises(InvalidCommand, match="boot-1"):
            await fleet.instances.boot(
                "web-1", flavor="m1.small", image="cirros", idempotency_key="boot-1"
            )
        assert fleet.system.statistics().crashes == crashes
        assert (await run(fleet, "stop")).status is TaskStatus.SUCCEEDED
        assert booted.id not in [t.id for t in await fleet.tasks.list("web-1")]
    await store.aclose()

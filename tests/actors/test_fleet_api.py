"""The typed surface of instances: actions as an enum, commands as named records, the
machine asked whether a task runs, and a method per power command."""

from __future__ import annotations

import msgspec
import pytest

from stateward.actors import (
    ACTIONS,
    COMMANDS,
    INSTANCE,
    BootSpec,
    Capacity,
    Command,
    DuplicateName,
    FakeDriver,
    Flavor,
    Fleet,
    GroupPolicy,
    InstanceAction,
    InstanceData,
    Operation,
    Power,
    WaitTimeout,
    task_running,
)
from stateward.actors._instance_machine import MOVES, VERIFICATIONS
from stateward.flows import TaskStatus
from stateward.runtime import Environment, InvalidArgument, StateKind, VirtualClock

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)


async def boot_one(fleet: Fleet) -> None:
    """One host and one active instance, web-1."""
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    await fleet.hosts.add("h-1", capacity=HOST_SIZE)
    record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
    await fleet.tasks.wait(record.id)


def test_actions_are_the_instance_action_enum() -> None:
    """ACTIONS is every InstanceAction but the moves, in order; each equals its plain name."""
    assert tuple(a for a in InstanceAction if a not in MOVES and a not in VERIFICATIONS) == ACTIONS
    assert "migrate" not in ACTIONS
    assert "confirm_resize" not in ACTIONS
    assert InstanceAction("reboot_hard") is InstanceAction.REBOOT_HARD
    assert "delete" in ACTIONS


def test_commands_are_named_records() -> None:
    """Each command's moves read by name: sources, task_state, done, end."""
    stop = COMMANDS[InstanceAction.STOP]
    assert isinstance(stop, Command)
    assert (stop.sources, stop.task_state, stop.done, stop.end) == (
        ("active",),
        "powering-off",
        "stopped",
        "stopped",
    )
    assert set(COMMANDS) == set(ACTIONS) - {InstanceAction.DELETE}
    assert set(COMMANDS) | set(MOVES) | set(VERIFICATIONS) | {"delete"} == set(InstanceAction)


def test_task_running_is_asked_of_the_machine() -> None:
    """task_running is true exactly in the machine's transitional states."""
    for state, kind in INSTANCE.states.items():
        assert task_running(state) is (kind is StateKind.TRANSITIONAL), state
    assert task_running("active/rebooting")
    assert not task_running("active")


@pytest.mark.parametrize(
    ("method", "before", "after", "power"),
    [
        ("pause", "active", "paused", Power.PAUSED),
        ("unpause", "paused", "active", Power.RUNNING),
        ("suspend", "active", "suspended", Power.SUSPENDED),
        ("resume", "suspended", "active", Power.RUNNING),
    ],
)
async def test_each_power_command_has_its_method(
    method: str, before: str, after: str, power: Power
) -> None:
    """fleet.instances.pause/unpause/suspend/resume run their command like stop does."""
    async with Fleet.open(driver=FakeDriver()) as fleet:
        await boot_one(fleet)
        setup = {"paused": fleet.instances.pause, "suspended": fleet.instances.suspend}
        if before in setup:
            await fleet.tasks.wait((await setup[before]("web-1")).id)
        assert (await fleet.instances.get("web-1")).state == before
        record = await getattr(fleet.instances, method)("web-1")
        assert record.kind == method
        assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED
        status = await fleet.instances.get("web-1")
        assert (status.state, status.power) == (after, power)


async def test_act_takes_an_instance_action() -> None:
    """instances.act takes an InstanceAction as well as its name; reboot(hard=True) is the
    reboot_hard command."""
    async with Fleet.open(driver=FakeDriver()) as fleet:
        await boot_one(fleet)
        record = await fleet.instances.act("web-1", InstanceAction.STOP)
        assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED
        record = await fleet.instances.reboot("web-1", hard=True)
        assert record.kind == "reboot_hard"
        await fleet.tasks.wait(record.id)
        assert (await fleet.instances.get("web-1")).state == "active"


async def test_a_boot_journals_its_spec_whole_and_the_data_holds_enums() -> None:
    """The boot transition's payload is the BootSpec as plain data (the fields the journal
    always had); the instance's data and status hold Power and GroupPolicy members."""
    async with Fleet.open(driver=FakeDriver()) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        record = await fleet.instances.boot(
            "web-1",
            flavor="m1.small",
            image="cirros",
            group="g",
            group_policy=GroupPolicy.AFFINITY,
            volumes=("vol-1",),
        )
        await fleet.tasks.wait(record.id)
        [boot] = [r for r in await fleet.store.history("web-1") if r.event == "boot"]
        spec = BootSpec(
            "m1.small",
            1,
            2048,
            20,
            "cirros",
            group="g",
            group_policy=GroupPolicy.AFFINITY,
            networks=("default",),
            volumes=("vol-1",),
        )
        assert boot.payload == spec.inputs()
        assert boot.payload["group_policy"] == "affinity"
        status = await fleet.instances.get("web-1")
        assert status.power is Power.RUNNING
        assert status.group_policy is GroupPolicy.AFFINITY
        assert (
            InstanceData(**{**spec.inputs(), "group_policy": spec.group_policy}).boot_spec() == spec
        )


def test_instance_data_reads_the_plain_values_older_snapshots_hold() -> None:
    """A snapshot whose power and policy are plain strings (as every snapshot encodes them)
    decodes to the enum members."""
    old = {"flavor": "m1.small", "power": "shutdown", "group_policy": "anti-affinity"}
    data = msgspec.msgpack.decode(msgspec.msgpack.encode(old), type=InstanceData)
    assert (data.power, data.group_policy) == (Power.SHUTDOWN, GroupPolicy.ANTI_AFFINITY)


async def test_adding_the_same_host_again_is_a_no_op() -> None:
    """hosts.add with the settings the host has returns its status and changes nothing;
    other settings under the same id are DuplicateName saying what the host has."""
    async with Fleet.open(driver=FakeDriver()) as fleet:
        first = await fleet.hosts.add("h-1", capacity=HOST_SIZE, zone="az-1")
        again = await fleet.hosts.add("h-1", capacity=HOST_SIZE, zone="az-1")
        assert (again.capacity, again.zone, again.revision) == (
            first.capacity,
            first.zone,
            first.revision,
        )
        with pytest.raises(DuplicateName, match=r"exists already as capacity=.*zone='az-1'"):
            await fleet.hosts.add("h-1", capacity=HOST_SIZE, zone="az-2")
        with pytest.raises(DuplicateName, match="exists already as"):
            await fleet.hosts.add("h-1", capacity=HOST_SIZE, zone="az-1", cpu_ratio=2.0)
        assert fleet.hosts.ids() == ("h-1",)


@pytest.mark.virtual_time
async def test_tasks_wait_gives_up_after_its_timeout() -> None:
    """tasks.wait(timeout=) raises WaitTimeout (a TimeoutError) when the task runs longer,
    and the task runs on: a later wait gets its end."""
    env = Environment(clock=VirtualClock.current(), seed=3)
    driver = FakeDriver(env=env, latency={Operation.SPAWN: 30.0})
    async with Fleet.open(driver=driver, env=env) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        with pytest.raises(WaitTimeout, match=f"task {record.id} did not end within 5 s"):
            await fleet.tasks.wait(record.id, timeout=5.0)
        done = await fleet.tasks.wait(record.id, timeout=60.0)
        assert done.status is TaskStatus.SUCCEEDED
        with pytest.raises(InvalidArgument, match="timeout"):
            await fleet.tasks.wait(record.id, timeout=-1.0)


async def test_tasks_list_spans_the_fleet_by_status_and_since() -> None:
    """fleet.tasks.list() without an id lists every instance's tasks; status, since narrow it."""
    async with Fleet.open(driver=FakeDriver()) as fleet:
        await boot_one(fleet)
        second = await fleet.instances.boot("web-2", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(second.id)
        stop = await fleet.tasks.wait((await fleet.instances.stop("web-1")).id)
        tasks = await fleet.tasks.list()
        assert {t.resource_id for t in tasks} >= {"web-1", "web-2"}
        assert [t.created for t in tasks] == sorted((t.created for t in tasks), reverse=True)
        assert tasks[0].id == stop.id
        booted = await fleet.tasks.list(status=TaskStatus.SUCCEEDED, since=second.created)
        assert [t.id for t in booted] == [stop.id, second.id]
        assert [t.id for t in await fleet.tasks.list("web-2")] == [second.id]
        with pytest.raises(InvalidArgument, match=r"^since: expected a finite time"):
            await fleet.tasks.list(since=float("nan"))

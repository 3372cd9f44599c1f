"""Instance actors under store trouble and failed boots: what an instance reports is what
it holds, and no committed intent is left without its task."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    InstanceActor,
    Operation,
)
from stateward.actors._instance import Act, TaskEnded
from stateward.flows import StepStatus, TaskStatus
from stateward.runtime import (
    CommitFailed,
    Environment,
    Loaded,
    MemoryStore,
    StoreUnavailable,
    VirtualClock,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)


async def setup(fleet: Fleet) -> None:
    """One flavor, one image, two hosts."""
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    for host in ("h-0", "h-1"):
        await fleet.hosts.add(host, capacity=HOST_SIZE)


async def boot(fleet: Fleet, name: str = "web-1") -> None:
    """Boot ``name`` and wait for it to be active."""
    record = await fleet.instances.boot(name, flavor="m1.small", image="cirros")
    assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED


class FailNextCommit(InstanceActor):
    """Fails the store's next transaction when a chosen message arrives: the one that
    message's transition goes into. ``after_commit`` makes the failure land after the write
    (an fsync error once the data reached the disk)."""

    trigger: ClassVar[type | None] = None
    after_commit: ClassVar[bool] = False

    async def receive(self, message: Any) -> Any:
        cls = type(self)
        if cls.trigger is not None and isinstance(message, cls.trigger):
            cls.trigger = None
            store = self.store
            assert isinstance(store, MemoryStore)
            store.fail_writes(1, reason="I/O error", after_commit=cls.after_commit)
        return await super().receive(message)


class UnreadableStore(MemoryStore):
    """A memory store whose next ``failing_loads`` loads fail as an unreadable disk would."""

    def __init__(self) -> None:
        super().__init__()
        self.failing_loads = 0
        self.failing_history = 0

    async def load(self, resource_id: str) -> Loaded | None:
        if self.failing_loads:
            self.failing_loads -= 1
            raise StoreUnavailable("load", reason="I/O error")
        return await super().load(resource_id)

    async def history(self, resource_id: str, *, after: int = 0, limit: int = 100) -> Any:
        if self.failing_history:
            self.failing_history -= 1
            raise StoreUnavailable("history", reason="I/O error")
        return await super().history(resource_id, after=after, limit=limit)


@contextlib.asynccontextmanager
async def active_instance(store: MemoryStore) -> AsyncIterator[Fleet]:
    """A fleet on ``store`` and the virtual clock, with instance web-1 active; the store is
    closed afterwards."""
    env = Environment(clock=VirtualClock.current(), seed=3)
    async with Fleet.open(
        None, driver=FakeDriver(env=env), env=env, store=store, instance_actor=FailNextCommit
    ) as fleet:
        await setup(fleet)
        await boot(fleet)
        yield fleet
    await store.aclose()


def arm(trigger: type, *, after_commit: bool) -> None:
    """Fail the transaction of the next ``trigger`` message."""
    FailNextCommit.trigger = trigger
    FailNextCommit.after_commit = after_commit


@pytest.fixture(autouse=True)
def disarm() -> Any:
    """No armed failure leaks from one test into the next."""
    yield
    FailNextCommit.trigger = None


# -- a commit reported failed -----------------------------------------------------------------


@pytest.mark.virtual_time
async def test_a_command_whose_commit_landed_though_reported_failed_is_carried_out() -> None:
    """A command whose transition reached the store but was reported failed (an fsync error
    after the write) is carried out: the instance reads the store back, runs the command's
    task and answers with it, instead of forgetting an intent the store holds."""
    store = MemoryStore()
    async with active_instance(store) as fleet:
        arm(Act, after_commit=True)
        submitted = await fleet.instances.stop("web-1")
        record = await fleet.tasks.wait(submitted.id)
        assert (record.kind, record.status) == ("stop", TaskStatus.SUCCEEDED)
        status = await fleet.instances.get("web-1")
        assert (status.state, status.power, status.task_id) == ("stopped", "shutdown", None)
        [summary] = await fleet.instances.summaries()
        assert (summary.state, summary.revision) == ("stopped", status.revision)


@pytest.mark.virtual_time
async def test_a_command_that_did_not_land_is_refused_and_changes_nothing() -> None:
    """A command whose transition really failed is refused with CommitFailed, and the
    instance is still where it was, in memory and in the store."""
    store = MemoryStore()
    async with active_instance(store) as fleet:
        arm(Act, after_commit=False)
        with pytest.raises(CommitFailed, match="`stop` was not committed"):
            await fleet.instances.stop("web-1")
        assert (await fleet.instances.get("web-1")).state == "active"
        assert [s.state for s in await fleet.instances.summaries()] == ["active"]
        record = await fleet.tasks.wait((await fleet.instances.stop("web-1")).id)
        assert record.status is TaskStatus.SUCCEEDED


@pytest.mark.virtual_time
async def test_recover_carries_out_a_command_the_instance_could_not_read_back() -> None:
    """A command that landed though reported failed, while the store could not be read
    back either: the client hears CommitFailed, and the heal (``recover``) finds the
    instance behind its store, reloads it and runs the command's task to its end."""
    store = UnreadableStore()
    async with active_instance(store) as fleet:
        arm(Act, after_commit=True)
        store.failing_history = store.failing_loads = 100
        with pytest.raises(CommitFailed):
            await fleet.instances.reboot("web-1", hard=True)
        store.failing_history = store.failing_loads = 0
        await fleet.recover()
        [summary] = await fleet.instances.summaries()
        assert summary.state == "active"
        status = await fleet.instances.get("web-1")
        assert (status.state, status.task_id, status.revision) == ("active", None, summary.revision)
        [last, *_] = await fleet.tasks.list("web-1")
        assert (last.kind, last.status) == ("reboot_hard", TaskStatus.SUCCEEDED)


@pytest.mark.virtual_time
@pytest.mark.parametrize("after_commit", [False, True], ids=["refused", "landed"])
async def test_the_end_of_a_task_is_taken_whatever_its_commit_did(after_commit: bool) -> None:
    """The transition that ends a task fails in the store, really or only as reported:
    the instance still ends where its task left it, in memory and in the store, without
    waiting for a heal (the fleet delivers the end again while the store refuses it)."""
    store = MemoryStore()
    async with active_instance(store) as fleet:
        arm(TaskEnded, after_commit=after_commit)
        record = await fleet.tasks.wait((await fleet.instances.stop("web-1")).id)
        assert record.status is TaskStatus.SUCCEEDED
        await fleet.env.clock.sleep(120.0)
        status = await fleet.instances.get("web-1")
        assert (status.state, status.power, status.task_id) == ("stopped", "shutdown", None)
        [summary] = await fleet.instances.summaries()
        assert (summary.state, summary.revision) == ("stopped", status.revision)


# -- a failed boot ----------------------------------------------------------------------------


@pytest.mark.parametrize("failing", [Operation.SPAWN, Operation.POWER_ON])
async def test_a_failed_boot_reports_no_host_and_no_ports(
    failing: Operation, tmp_path: Path
) -> None:
    """A boot that fails after it reserved a host and allocated ports releases them on
    revert; the instance then reports no host and no ports (what it holds), and so does
    the same instance after a reopen of the fleet."""
    db = tmp_path / "cloud.db"
    driver = FakeDriver(env=Environment(seed=5), failures={failing: 1.0})
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        record = await fleet.tasks.wait(
            (await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")).id
        )
        assert record.status is TaskStatus.REVERTED
        assert record.step("schedule").status is StepStatus.REVERTED
        assert record.step("allocate_ports").status is StepStatus.REVERTED
        status = await fleet.instances.get("web-1")
        assert (status.state, status.host_id, status.ports) == ("error", None, ())
        assert status.fault == record.id
        assert [c for h in await fleet.hosts.list() for c in h.claims] == []
        assert dict((await driver.describe()).ports) == {}
    async with Fleet.open(db, driver=driver) as fleet:
        status = await fleet.instances.get("web-1")
        assert (status.state, status.host_id, status.ports) == ("error", None, ())

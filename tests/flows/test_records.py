"""Task records and the queries over them: get, tasks (paged), last_fault, actions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from flow_support import STORES, Journal, Recorded, fails, open_store

from stateward.flows import (
    Action,
    Flow,
    FlowEngine,
    HistoryEvent,
    StepRecord,
    StepStatus,
    TaskNotFound,
    TaskRecord,
    TaskStatus,
)
from stateward.runtime import Environment, InvalidArgument, MemoryStore, StatewardError


class TickingClock:
    """A clock whose wall time moves one second per reading, so every record's time differs."""

    def __init__(self) -> None:
        self.wall = 1_000.0

    def monotonic(self) -> float:
        """The running loop's time."""
        return asyncio.get_running_loop().time()

    def now(self) -> float:
        """One second later than the last reading."""
        self.wall += 1.0
        return self.wall

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)


def test_task_status_terminal_and_fault_sets() -> None:
    """Pending, running and reverting move on by themselves; every other status is final."""
    active = {TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.REVERTING}
    for status in TaskStatus:
        assert status.is_terminal is (status not in active)
    assert TaskStatus("revert_failed") is TaskStatus.REVERT_FAILED
    assert StepStatus("reverted") is StepStatus.REVERTED


def test_task_record_round_trips_through_msgpack() -> None:
    """A record encodes to msgpack and back unchanged; step() finds a step by name."""
    record = TaskRecord(
        id="task-1",
        kind="create",
        flow_version=2,
        resource_id="vm-1",
        request={"image": "cirros"},
        idempotency_key="req-1",
        status=TaskStatus.RUNNING,
        created=1.0,
        updated=2.0,
        steps=[StepRecord("a", StepStatus.SUCCEEDED, 1, 1.0, 2.0, result={"x": [1, 2]})],
        history=[HistoryEvent(1.0, "pending"), HistoryEvent(2.0, "retry", "a", "why")],
    )
    data = msgspec.msgpack.encode(record)
    assert msgspec.msgpack.decode(data, type=TaskRecord) == record
    assert record.step("a").result == {"x": [1, 2]}
    with pytest.raises(KeyError):
        record.step("missing")


async def test_get_of_an_unknown_id_raises_task_not_found() -> None:
    """get() of an id no task has raises TaskNotFound, a LookupError, saying what to do."""
    async with MemoryStore() as store, FlowEngine(store) as engine:
        with pytest.raises(
            TaskNotFound, match=r"^no task 'task-nope'; list a resource's tasks to find its ids$"
        ) as info:
            await engine.get("task-nope")
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, StatewardError)
    assert info.value.task_id == "task-nope"


@pytest.mark.parametrize("kind", STORES)
async def test_tasks_are_listed_newest_first_in_pages(kind: str, tmp_path: Path) -> None:
    """tasks() lists a resource's tasks newest first, paged by the last one's (created, id)."""
    flow = Flow("op", Recorded(Journal(), "a"))
    env = Environment(clock=TickingClock(), seed=5)
    async with open_store(kind, tmp_path) as store, FlowEngine(store, env=env) as engine:
        ids = [(await engine.run(flow, resource_id="vm-1")).id for _ in range(5)]
        await engine.run(flow, resource_id="vm-2")
        pages: list[list[str]] = []
        before = None
        while True:
            page = await engine.tasks("vm-1", before=before, limit=2)
            if not page:
                break
            pages.append([r.id for r in page])
            before = (page[-1].created, page[-1].id)
        assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
        assert [r.id for r in await engine.tasks("vm-1")] == ids[::-1]
        assert await engine.tasks("vm-3") == ()


async def test_last_fault_is_the_newest_failed_task() -> None:
    """last_fault() skips later successes and returns the newest failed task, or None."""
    journal = Journal()
    good = Flow("good", Recorded(journal, "a"))
    bad = Flow("bad", Recorded(journal, "b", body=fails("disk gone")))
    env = Environment(clock=TickingClock(), seed=6)
    async with MemoryStore() as store, FlowEngine(store, env=env) as engine:
        await engine.run(bad, resource_id="vm-1")
        fault = await engine.run(bad, resource_id="vm-1")
        await engine.run(good, resource_id="vm-1")
        await engine.run(good, resource_id="vm-2")
        assert await engine.last_fault("vm-1") == fault
        assert await engine.last_fault("vm-2") is None
        assert await engine.last_fault("vm-unknown") is None


async def test_last_fault_looks_past_the_first_page() -> None:
    """A fault older than a hundred later successes is still found."""
    journal = Journal()
    good = Flow("good", Recorded(journal, "a"))
    bad = Flow("bad", Recorded(journal, "b", body=fails("disk gone")))
    env = Environment(clock=TickingClock(), seed=6)
    async with MemoryStore() as store, FlowEngine(store, env=env) as engine:
        fault = await engine.run(bad, resource_id="vm-1")
        for _ in range(120):
            await engine.run(good, resource_id="vm-1")
        assert await engine.last_fault("vm-1") == fault


async def test_actions_has_one_line_per_task_with_errors_of_faults() -> None:
    """actions() shows one line per task, newest first, with the error of failed ones."""
    journal = Journal()
    good = Flow("good", Recorded(journal, "a"))
    bad = Flow("bad", Recorded(journal, "b", body=fails("disk gone", OSError)))
    env = Environment(clock=TickingClock(), seed=7)
    async with MemoryStore() as store, FlowEngine(store, env=env) as engine:
        first = await engine.run(good, resource_id="vm-1")
        second = await engine.run(bad, resource_id="vm-1")
        actions = await engine.actions("vm-1")
    assert actions == (
        Action(second.id, "bad", TaskStatus.FAILED, second.created, second.updated, "b: disk gone"),
        Action(first.id, "good", TaskStatus.SUCCEEDED, first.created, first.updated, None),
    )


@pytest.mark.parametrize("kind", STORES)
async def test_tasks_of_every_resource_by_status_and_since(kind: str, tmp_path: Path) -> None:
    """tasks() without a resource lists every resource's; status and since narrow it."""
    journal = Journal()
    good = Flow("good", Recorded(journal, "a"))
    bad = Flow("bad", Recorded(journal, "b", body=fails("disk gone")))
    env = Environment(clock=TickingClock(), seed=8)
    async with open_store(kind, tmp_path) as store, FlowEngine(store, env=env) as engine:
        runs = [
            await engine.run(flow, resource_id=f"vm-{i % 3}")
            for i, flow in enumerate([good, bad, good, bad, good, good])
        ]
        newest_first = [r.id for r in reversed(runs)]
        assert [r.id for r in await engine.tasks()] == newest_first
        assert [r.id for r in await engine.tasks(limit=2)] == newest_first[:2]
        failed = await engine.tasks(status=TaskStatus.FAILED)
        assert [r.id for r in failed] == [runs[3].id, runs[1].id]
        since = runs[2].created
        assert [r.id for r in await engine.tasks(since=since)] == newest_first[:4]
        recent_good = await engine.tasks("vm-2", status=TaskStatus.SUCCEEDED, since=since)
        assert [r.id for r in recent_good] == [runs[5].id, runs[2].id]
        for bad_since in (float("nan"), float("inf"), "1", True, 10**400):
            with pytest.raises(InvalidArgument, match=r"^since: expected a finite time"):
                await engine.tasks(since=bad_since)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^status: expected a TaskStatus"):
            await engine.tasks(status="failed")  # type: ignore[arg-type]

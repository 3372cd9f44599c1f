"""Resuming flows: after the engine stopped, after the store failed, and after an upgrade."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_support import Journal, Recorded, fails

from stateward.flows import (
    Busy,
    Failure,
    Flow,
    FlowEngine,
    Reconciled,
    StepStatus,
    Task,
    TaskStatus,
    linear,
)
from stateward.runtime import (
    Environment,
    MemoryStore,
    RevisionConflict,
    SqliteStore,
    StoreUnavailable,
    VirtualClock,
    open_sqlite_store,
)


def virtual_env(seed: int = 1) -> Environment:
    """A seeded environment on the running virtual-time loop's clock."""
    return Environment(clock=VirtualClock.current(), seed=seed)


def statuses(record: Any) -> list[tuple[str, StepStatus]]:
    """Each step's name and status."""
    return [(s.name, s.status) for s in record.steps]


class Gated(Recorded):
    """A recorded task that waits for a gate before finishing (on its first run only)."""

    def __init__(self, journal: Journal, name: str, gate: asyncio.Event, **options: Any) -> None:
        super().__init__(journal, name, **options)
        self.gate = gate

    async def execute(self, **inputs: Any) -> Any:
        self.journal.events.append(("run", self.name))
        await self.gate.wait()
        return f"{self.name}-done"


# --------------------------------------------------------------------------------------------
# Resuming after the engine stopped


@pytest.mark.virtual_time
async def test_resume_skips_completed_steps_and_reruns_the_interrupted_one() -> None:
    """After aclose() abandons a flow mid-step, resume() runs the interrupted step again and
    the rest, never a completed step; the history says why."""
    journal = Journal()
    stuck = asyncio.Event()

    def build(gate: asyncio.Event) -> Flow:
        return Flow(
            "f",
            linear(
                Recorded(journal, "a", provides="va"),
                Gated(journal, "b", gate, requires=("va",)),
                Recorded(journal, "c"),
            ),
        )

    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), flows=[build(stuck)])
        handle = await engine.submit(build(stuck), resource_id="r")
        await asyncio.sleep(1)
        await engine.aclose()
        with pytest.raises(StoreUnavailable, match=r"the flow engine closed"):
            await handle.wait()
        stored = await engine.get(handle.task_id)
        assert stored.status is TaskStatus.RUNNING
        assert statuses(stored) == [
            ("a", StepStatus.SUCCEEDED),
            ("b", StepStatus.RUNNING),
            ("c", StepStatus.PENDING),
        ]
        free = asyncio.Event()
        free.set()
        async with FlowEngine(store, env=virtual_env(2), flows=[build(free)]) as second:
            [resumed] = await second.resume()
            assert resumed.task_id == handle.task_id
            record = await resumed.wait()
            assert await second.resume() == ()  # nothing left in flight
    assert record.status is TaskStatus.SUCCEEDED
    assert journal.ran() == ["a", "b", "b", "c"]
    assert record.step("b").attempts == 2
    reconciled = [(h.event, h.step, h.detail) for h in record.history if h.step == "b"]
    assert reconciled == [("reconciled", "b", "no reconcile: runs again")]
    assert [h.event for h in record.history] == [
        "pending",
        "running",
        "resumed",
        "reconciled",
        "succeeded",
    ]


@pytest.mark.virtual_time
@pytest.mark.parametrize(
    ("done", "runs", "detail"),
    [
        (True, ["a", "b", "c"], "already done: not run again"),
        (False, ["a", "b", "b", "c"], "not done: runs again"),
    ],
)
async def test_reconcile_decides_whether_the_interrupted_step_runs_again(
    done: bool, runs: list[str], detail: str
) -> None:
    """A task's reconcile reporting done marks the step succeeded with its result and passes
    it on; reporting not done runs the step again."""
    journal = Journal()
    seen: list[Any] = []

    class Boot(Gated):
        async def reconcile(self, **inputs: Any) -> Reconciled | None:
            journal.events.append(("reconcile", self.name, inputs))
            return Reconciled(done=done, result="found-by-reconcile")

    async def use(server: str) -> None:
        seen.append(server)

    def build(gate: asyncio.Event) -> Flow:
        return Flow(
            "f",
            linear(
                Recorded(journal, "a", provides="va"),
                Boot(journal, "b", gate, requires=("va",), provides="server"),
                Recorded(journal, "c", body=use, requires=("server",)),
            ),
        )

    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), flows=[build(asyncio.Event())])
        handle = await engine.submit(build(asyncio.Event()), resource_id="r")
        await asyncio.sleep(1)
        await engine.aclose()
        free = asyncio.Event()
        free.set()
        async with FlowEngine(store, env=virtual_env(2), flows=[build(free)]) as second:
            [resumed] = await second.resume()
            record = await resumed.wait()
    assert record.status is TaskStatus.SUCCEEDED
    assert journal.ran() == runs
    assert ("reconcile", "b", {"va": "a-done"}) in journal.events
    assert [(h.event, h.detail) for h in record.history if h.step == "b"] == [
        ("reconciled", detail)
    ]
    assert seen == (["found-by-reconcile"] if done else ["b-done"])
    assert record.step("b").result == seen[0]
    assert handle.task_id == record.id


@pytest.mark.virtual_time
async def test_interrupted_revert_resumes_reverting() -> None:
    """A flow abandoned while reverting goes on reverting after resume, with the original
    Failure; the failed step never runs again."""
    journal = Journal()
    reverts: list[tuple[str, Failure]] = []

    class SlowRevert(Task):
        def __init__(self, name: str, gate: asyncio.Event) -> None:
            super().__init__(name)
            self.gate = gate

        async def execute(self) -> str:
            journal.events.append(("run", self.name))
            return f"{self.name}-done"

        async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
            reverts.append((self.name, failure))
            await self.gate.wait()

    def build(gate: asyncio.Event) -> Flow:
        return Flow(
            "f",
            linear(
                SlowRevert("a", gate),
                SlowRevert("b", gate),
                Recorded(journal, "c", body=fails("no capacity")),
            ),
        )

    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), flows=[build(asyncio.Event())])
        handle = await engine.submit(build(asyncio.Event()), resource_id="r")
        await asyncio.sleep(1)
        await engine.aclose()
        stored = await engine.get(handle.task_id)
        assert stored.status is TaskStatus.REVERTING
        assert stored.step("b").status is StepStatus.REVERTING
        free = asyncio.Event()
        free.set()
        async with FlowEngine(store, env=virtual_env(2), flows=[build(free)]) as second:
            [resumed] = await second.resume()
            record = await resumed.wait()
    assert record.status is TaskStatus.REVERTED
    assert statuses(record) == [
        ("a", StepStatus.REVERTED),
        ("b", StepStatus.REVERTED),
        ("c", StepStatus.FAILED),
    ]
    failure = Failure("c", "RuntimeError", "no capacity")
    assert reverts == [("b", failure), ("b", failure), ("a", failure)]
    assert journal.ran() == ["a", "b", "c"]
    assert (record.error_type, record.error_message) == ("RuntimeError", "c: no capacity")


@pytest.mark.virtual_time
async def test_interrupted_cancel_resumes_as_a_cancel() -> None:
    """A cancel abandoned while reverting ends cancelled after resume, not as a fault."""
    reverts: list[Failure] = []

    class SlowRevert(Task):
        def __init__(self, name: str, gate: asyncio.Event) -> None:
            super().__init__(name)
            self.gate = gate

        async def execute(self) -> str:
            if self.name == "hold":
                await asyncio.Event().wait()
            return f"{self.name}-done"

        async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
            reverts.append(failure)
            await self.gate.wait()

    def build(gate: asyncio.Event) -> Flow:
        return Flow("f", linear(SlowRevert("a", gate), SlowRevert("hold", gate)))

    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), flows=[build(asyncio.Event())])
        handle = await engine.submit(build(asyncio.Event()), resource_id="r")
        await asyncio.sleep(1)
        cancelling = asyncio.ensure_future(engine.cancel(handle.task_id))
        await asyncio.sleep(1)
        await engine.aclose()
        with pytest.raises(StoreUnavailable):
            await cancelling
        free = asyncio.Event()
        free.set()
        async with FlowEngine(store, env=virtual_env(2), flows=[build(free)]) as second:
            [resumed] = await second.resume()
            record = await resumed.wait()
            assert await second.last_fault("r") is None
    assert record.status is TaskStatus.CANCELLED
    assert (record.error_type, record.error_message) == (None, None)
    cancelled = Failure("", "Cancelled", "cancelled on request")
    assert reverts == [cancelled, cancelled]


@pytest.mark.virtual_time
async def test_resume_starts_queued_tasks_one_at_a_time() -> None:
    """Pending tasks left by a stopped engine resume in order, one per resource at a time."""
    journal = Journal()
    order: list[str] = []

    async def work(label: str) -> None:
        order.append(f"start {label}")
        await asyncio.sleep(1)
        order.append(f"end {label}")

    flow = Flow("op", Recorded(journal, "w", body=work, requires=("label",)), inputs=["label"])
    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), on_busy=Busy.QUEUE, flows=[flow])
        await engine.submit(flow, resource_id="r", inputs={"label": "one"})
        await asyncio.sleep(0.5)
        await engine.submit(flow, resource_id="r", inputs={"label": "two"})
        await asyncio.sleep(0.1)
        await engine.submit(flow, resource_id="r", inputs={"label": "three"})
        await engine.aclose()
        assert order == ["start one"]
        async with FlowEngine(store, env=virtual_env(2), flows=[flow]) as second:
            handles = await second.resume()
            records = [await h.wait() for h in handles]
    assert [r.request["label"] for r in records] == ["one", "two", "three"]
    assert {r.status for r in records} == {TaskStatus.SUCCEEDED}
    assert order == [
        "start one",
        "start one",
        "end one",
        "start two",
        "end two",
        "start three",
        "end three",
    ]


# --------------------------------------------------------------------------------------------
# Scenario 7: the store fails during a run


async def test_store_failure_interrupts_the_run_and_resume_finishes_it() -> None:
    """A checkpoint that cannot be committed stops the run (wait() raises StoreUnavailable),
    the stored record never claims the step succeeded, and resume() finishes the task once
    the store is back."""
    journal = Journal()
    store = MemoryStore()
    broke = False

    async def breaks_the_store() -> str:
        nonlocal broke
        if not broke:
            broke = True
            store.fail_writes(3, reason="disk full")  # from b's own success checkpoint on
        return "b-done"

    flow = Flow(
        "f",
        linear(
            Recorded(journal, "a"),
            Recorded(journal, "b", body=breaks_the_store),
            Recorded(journal, "c"),
        ),
    )
    async with store, FlowEngine(store, flows=[flow]) as engine:
        handle = await engine.submit(flow, resource_id="r")
        with pytest.raises(
            StoreUnavailable,
            match=r"^store commit failed: disk full; nothing was written \(unless the failure "
            r"came as the transaction committed\), the store retries",
        ):
            await handle.wait()
        assert handle.done()
        stored = await engine.get(handle.task_id)
        assert stored.status is TaskStatus.RUNNING
        assert statuses(stored) == [
            ("a", StepStatus.SUCCEEDED),
            ("b", StepStatus.RUNNING),
            ("c", StepStatus.PENDING),
        ]
        assert stored.step("b").result is None
        assert engine.statistics().running == 0  # the resource is not held by a dead run
        for _ in range(2):  # still down: resume fails loudly instead of spinning
            with pytest.raises(StoreUnavailable, match=r"disk full"):
                await engine.resume()
        assert (await engine.get(handle.task_id)) == stored
        [resumed] = await engine.resume()
        record = await resumed.wait()
        assert store.statistics().failures == 3
    assert record.status is TaskStatus.SUCCEEDED
    assert journal.ran() == ["a", "b", "b", "c"]


async def test_store_failure_during_revert_leaves_it_reverting_then_resumes() -> None:
    """A checkpoint failing while reverting stops the revert; resume() completes it."""
    journal = Journal()
    store = MemoryStore()

    class BreakOnRevert(Recorded):
        async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
            await super().revert(result, failure, **inputs)
            if len(journal.reverted()) == 1:
                store.fail_writes(1)

    flow = Flow(
        "f",
        linear(
            Recorded(journal, "a"),
            BreakOnRevert(journal, "b"),
            Recorded(journal, "c", body=fails("boom")),
        ),
    )
    async with store, FlowEngine(store, flows=[flow]) as engine:
        handle = await engine.submit(flow, resource_id="r")
        with pytest.raises(StoreUnavailable):
            await handle.wait()
        stored = await engine.get(handle.task_id)
        assert stored.status is TaskStatus.REVERTING
        assert stored.step("b").status is StepStatus.REVERTING
        [resumed] = await engine.resume()
        record = await resumed.wait()
    assert record.status is TaskStatus.REVERTED
    assert journal.reverted() == ["b", "b", "a"]
    assert journal.ran() == ["a", "b", "c"]


async def test_disk_full_on_sqlite_interrupts_the_run_and_resume_finishes_it(
    tmp_path: Path,
) -> None:
    """A really full SQLite file fails the checkpoint of a step's result: the run stops with
    StoreUnavailable, nothing claims success, and resume() finishes once space is back."""
    journal = Journal()
    path = tmp_path / "full.db"
    store = open_sqlite_store(path)
    filled = False

    async def big() -> str:
        nonlocal filled
        if not filled:
            filled = True
            db = writer_db(store)
            [(pages,)] = await db.execute_fetchall("PRAGMA page_count")
            await db.execute(f"PRAGMA max_page_count = {pages}")
        return "y" * 200_000

    flow = Flow(
        "f",
        linear(Recorded(journal, "a"), Recorded(journal, "big", body=big), Recorded(journal, "c")),
    )
    async with store, FlowEngine(store, flows=[flow]) as engine:
        handle = await engine.submit(flow, resource_id="r")
        with pytest.raises(StoreUnavailable, match=r"^store commit failed: disk full") as info:
            await handle.wait()
        assert info.value.reason == "disk full"
        stored = await engine.get(handle.task_id)
        assert stored.step("big").status is StepStatus.RUNNING
        assert stored.step("big").result is None
        await writer_db(store).execute("PRAGMA max_page_count = 1073741823")
        [resumed] = await engine.resume()
        record = await resumed.wait()
    assert record.status is TaskStatus.SUCCEEDED
    assert journal.ran() == ["a", "big", "big", "c"]
    async with open_sqlite_store(path) as reopened, FlowEngine(reopened) as reader:
        assert (await reader.get(record.id)).step("big").result == "y" * 200_000


def writer_db(store: SqliteStore) -> Any:
    """The store's writer connection, where PRAGMAs limit the file."""
    db = store._writer_db
    assert db is not None
    return db


# --------------------------------------------------------------------------------------------
# Scenario 8: the flow's definition changed while a task was in flight


@pytest.mark.virtual_time
@pytest.mark.parametrize("change", ["version", "steps", "unregistered"])
async def test_task_of_a_changed_flow_is_parked_not_run(change: str) -> None:
    """A task in flight when its flow is upgraded is parked on resume: listed by parked(),
    with a parked history event saying why, and none of its steps run."""
    journal = Journal()
    v1 = Flow(
        "resize",
        linear(
            Recorded(journal, "a"), Gated(journal, "b", asyncio.Event()), Recorded(journal, "c")
        ),
    )
    free = asyncio.Event()
    free.set()
    same_steps = linear(Recorded(journal, "a"), Gated(journal, "b", free), Recorded(journal, "c"))
    new_steps = linear(Recorded(journal, "a"), Recorded(journal, "b2"), Recorded(journal, "c"))
    registered = {
        "version": [Flow("resize", same_steps, version=2)],
        "steps": [Flow("resize", new_steps)],
        "unregistered": [],
    }[change]
    known = {"version": "v2", "steps": "v1", "unregistered": "not registered"}[change]
    async with MemoryStore() as store:
        engine = FlowEngine(store, env=virtual_env(1), flows=[v1])
        handle = await engine.submit(v1, resource_id="vm-1")
        await asyncio.sleep(1)
        await engine.aclose()
        before = list(journal.events)
        async with FlowEngine(store, env=virtual_env(2), flows=registered) as upgraded:
            assert await upgraded.resume() == ()
            [parked] = await upgraded.parked()
            assert await upgraded.resume() == ()  # parked tasks stay parked
            await asyncio.sleep(10)
            [action] = await upgraded.actions("vm-1")
    assert journal.events == before  # nothing ran after the upgrade
    assert parked.id == handle.task_id
    assert parked.status is TaskStatus.PARKED
    last = parked.history[-1]
    detail = f"flow 'resize' v1 is {known} here; not run against a definition it was not made with"
    assert (last.event, last.detail) == ("parked", detail)
    assert statuses(parked) == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.RUNNING),
        ("c", StepStatus.PENDING),
    ]
    assert (action.status, action.error) == (TaskStatus.PARKED, detail)


# --------------------------------------------------------------------------------------------
# Two engines on one task


@pytest.mark.virtual_time
async def test_stale_engine_stops_on_revision_conflict_instead_of_hanging() -> None:
    """When a second engine resumes a task the first still runs, the first engine's next
    checkpoint conflicts: its run stops with RevisionConflict (wait() never hangs) and the
    stored record is the second engine's."""
    journal = Journal()
    gate = asyncio.Event()
    flow = Flow("f", linear(Recorded(journal, "a"), Gated(journal, "b", gate)))
    async with MemoryStore() as store:
        first = FlowEngine(store, env=virtual_env(1), flows=[flow])
        second = FlowEngine(store, env=virtual_env(2), flows=[flow])
        async with first, second:
            stale = await first.submit(flow, resource_id="r")
            await asyncio.sleep(1)
            [fresh] = await second.resume()
            gate.set()
            record = await fresh.wait()
            with pytest.raises(RevisionConflict, match=rf"task/{stale.task_id}"):
                await asyncio.wait_for(stale.wait(), timeout=60)
            assert first.statistics().running == 0
            assert await first.get(stale.task_id) == record
    assert record.status is TaskStatus.SUCCEEDED

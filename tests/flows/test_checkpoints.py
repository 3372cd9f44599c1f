"""Which changes of a task record are committed, and what a crash then runs again.

A step that must not run twice (the default) has its start committed before it runs and its
result before the next step starts. A step that may run twice (``idempotent=True``, or with a
``reconcile``) takes no commit of its own: its result rides on the next checkpoint. The
counts below are commits of the store, so they are what a flow really costs; the crashes are
``FlowEngine.aclose()`` mid-step (nothing recorded afterwards), then a fresh engine's resume.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stateward.flows import (
    Flow,
    FlowEngine,
    Reconciled,
    RecordTooLarge,
    StepStatus,
    Task,
    TaskStatus,
    linear,
    task,
)
from stateward.runtime import (
    Document,
    Environment,
    InvalidArgument,
    MemoryStore,
    VirtualClock,
    Write,
)

STEPS = ("reserve", "network", "attach", "spawn", "power", "announce")


class Step(Task):
    """Counts its runs; the step called ``hang`` waits until the test crashes the engine."""

    def __init__(self, name: str, runs: Counter[str], *, idempotent: bool, hang: str = "") -> None:
        super().__init__(name, provides=f"{name}-out", idempotent=idempotent)
        self.runs = runs
        self.hang = hang

    async def execute(self) -> str:
        self.runs[self.name] += 1
        if self.name == self.hang and self.runs[self.name] == 1:
            await asyncio.sleep(3600)
        return f"{self.name}-done"


def six(runs: Counter[str], *, idempotent: set[str], hang: str = "") -> Flow:
    return Flow(
        "six",
        linear(*(Step(n, runs, idempotent=n in idempotent, hang=hang) for n in STEPS)),
    )


async def commits_of(flow: Flow) -> tuple[int, TaskStatus]:
    async with MemoryStore() as store, FlowEngine(store, flows=[flow]) as engine:
        before = store.statistics().commits
        record = await engine.run(flow, resource_id="vm-1")
        return store.statistics().commits - before, record.status


async def test_idempotent_steps_commit_the_record_twice() -> None:
    """Six idempotent steps: the record is committed when submitted and when it ends."""
    runs: Counter[str] = Counter()
    commits, status = await commits_of(six(runs, idempotent=set(STEPS)))
    assert (commits, status) == (2, TaskStatus.SUCCEEDED)
    assert runs == dict.fromkeys(STEPS, 1)


async def test_steps_that_must_not_run_twice_commit_their_starts() -> None:
    """Six default steps: submitted, each start (carrying the result before it), the end."""
    commits, status = await commits_of(six(Counter(), idempotent=set()))
    assert (commits, status) == (2 + len(STEPS), TaskStatus.SUCCEEDED)


async def test_a_result_that_must_not_be_lost_is_committed_before_the_next_step() -> None:
    """One default step among idempotent ones: its start, and its result before the next
    (idempotent) step starts, are committed; nothing else is."""
    commits, _ = await commits_of(six(Counter(), idempotent=set(STEPS) - {"attach"}))
    assert commits == 4  # submitted, attach's start, attach's result, the end


async def crash_in(flow_of: Any, hang: str, idempotent: set[str]) -> tuple[Counter[str], Any]:
    """Run the six steps until ``hang`` runs, crash, resume on a fresh engine: the runs of
    each step, and the final record."""
    runs: Counter[str] = Counter()
    flow = flow_of(runs, idempotent=idempotent, hang=hang)
    clock = VirtualClock.current()
    async with MemoryStore(clock=clock) as store:
        engine = FlowEngine(store, env=Environment(clock=clock, seed=1), flows=[flow])
        await engine.submit(flow, resource_id="vm-1")
        await asyncio.sleep(10)  # the steps before it are instant: it hangs by now
        assert runs[hang] == 1
        await engine.aclose()  # the crash: nothing after this is recorded
        async with FlowEngine(store, env=Environment(clock=clock, seed=2), flows=[flow]) as again:
            [handle] = await again.resume()
            return runs, await handle.wait()


@pytest.mark.virtual_time
async def test_a_crash_runs_idempotent_steps_again_but_not_a_committed_one() -> None:
    """Crashed in ``power``: the idempotent steps before it run again (their results were
    never committed) except those before ``attach``, whose committed result they rode on."""
    runs, record = await crash_in(six, "power", set(STEPS) - {"attach"})
    assert record.status is TaskStatus.SUCCEEDED
    assert [s.result for s in record.steps] == [f"{n}-done" for n in STEPS]
    # reserve and network were committed with attach's start, attach with its result.
    assert runs == {"reserve": 1, "network": 1, "attach": 1, "spawn": 2, "power": 2, "announce": 1}


class Probe(Task):
    """A step that reconciles: it happened when its name is in ``done``."""

    def __init__(self, name: str, runs: Counter[str], done: set[str], hang: str) -> None:
        super().__init__(name, provides=f"{name}-out")
        self.runs, self.done, self.hang = runs, done, hang

    async def execute(self) -> str:
        self.runs[self.name] += 1
        self.done.add(self.name)
        if self.name == self.hang and self.runs[self.name] == 1:
            await asyncio.sleep(3600)
        return f"{self.name}-done"

    async def reconcile(self) -> Reconciled:
        return Reconciled(self.name in self.done, f"{self.name}-done")


@pytest.mark.virtual_time
async def test_a_crash_asks_reconciling_steps_before_running_them_again() -> None:
    """Steps that reconcile and whose results were never committed are asked, in order: the
    ones that happened are not run again, the rest run once."""
    done: set[str] = set()

    def flow_of(runs: Counter[str], *, idempotent: set[str], hang: str) -> Flow:
        return Flow("probe", linear(*(Probe(n, runs, done, hang) for n in STEPS)))

    runs, record = await crash_in(flow_of, "spawn", set())
    assert record.status is TaskStatus.SUCCEEDED
    assert runs == dict.fromkeys(STEPS, 1)
    asked = [(h.step, h.detail) for h in record.history if h.event == "reconciled"]
    assert asked == [
        *[(n, "already done: not run again") for n in STEPS[:4]],
        *[(n, "not done: runs again") for n in STEPS[4:]],
    ]


async def test_an_oversized_deferred_result_fails_its_step() -> None:
    """The size of a record is checked when an idempotent step's result is deferred: the
    step fails with RecordTooLarge there, not at a later step's checkpoint."""

    async def small() -> str:
        return "ok"

    async def big() -> str:
        return "x" * 5000

    flow = Flow(
        "grow",
        linear(
            task(small, idempotent=True),
            task(big, idempotent=True),
            task(small, name="after", idempotent=True),
        ),
    )
    async with MemoryStore() as store, FlowEngine(store, max_record_bytes=4096) as engine:
        record = await engine.run(flow, resource_id="vm-1")
    assert record.status is TaskStatus.REVERTED
    assert [s.status for s in record.steps] == [
        StepStatus.REVERTED,
        StepStatus.FAILED,
        StepStatus.PENDING,
    ]
    assert record.step("big").error_type == RecordTooLarge.__name__


async def test_the_first_version_commits_with_the_callers_write() -> None:
    """``submit(commit=...)`` hands the record's first version to the caller, who commits it
    in its own write; when that fails nothing was submitted and nothing runs."""
    runs: Counter[str] = Counter()
    flow = six(runs, idempotent=set(STEPS))
    async with MemoryStore() as store, FlowEngine(store, flows=[flow]) as engine:
        written: list[Document] = []

        async def commit(document: Document) -> None:
            written.append(document)
            await store.commit(Write(documents=(document,)))

        before = store.statistics().commits
        handle = await engine.submit(flow, resource_id="vm-1", commit=commit)
        record = await handle.wait()
        assert record.status is TaskStatus.SUCCEEDED
        assert [d.key for d in written] == [record.id]
        assert store.statistics().commits - before == 2  # the caller's write, and the end

        async def refuse(document: Document) -> None:
            raise RuntimeError("the caller's transition was refused")

        with pytest.raises(RuntimeError, match="refused"):
            await engine.submit(flow, resource_id="vm-2", commit=refuse)
        with pytest.raises(InvalidArgument, match="commit"):
            await engine.submit(flow, resource_id="vm-2", commit="not a callable")  # type: ignore[arg-type]
        assert await engine.tasks("vm-2") == ()
        assert engine.statistics().running == 0
    assert runs == dict.fromkeys(STEPS, 1)

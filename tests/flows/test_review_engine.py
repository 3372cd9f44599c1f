"""Review findings: correctness fixes in the flow engine, each pinned by a test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from flow_support import Journal, Recorded, fails

from stateward.flows import Busy, Flow, FlowEngine, TaskStatus, linear, task
from stateward.runtime import Environment, MemoryStore, StoreUnavailable, VirtualClock, Write


def virtual_env(seed: int = 1) -> Environment:
    return Environment(clock=VirtualClock.current(), seed=seed)


async def blocked(gate: asyncio.Event) -> str:
    await gate.wait()
    return "released"


@pytest.mark.virtual_time
async def test_two_cancels_of_an_inline_step_both_return() -> None:
    """Two concurrent cancel() calls of a task in an inline step both get the cancelled record."""
    gate = asyncio.Event()
    journal = Journal()
    flow = Flow("f", Recorded(journal, "hold", body=lambda: blocked(gate)))
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        handle = await engine.submit(flow, resource_id="r")
        await asyncio.sleep(0.1)
        one, two = await asyncio.wait_for(
            asyncio.gather(engine.cancel(handle.task_id), engine.cancel(handle.task_id)),
            timeout=30,
        )
        assert one.status is two.status is TaskStatus.CANCELLED


class SlowPendingStore(MemoryStore):
    """Delays the commit of records written in status "pending" while ``slow`` is set."""

    slow = False
    delayed: asyncio.Task[None] | None = None

    def submit(self, write: Write) -> Any:
        future = super().submit(write)
        if not (self.slow and any(d.status == "pending" for d in write.documents)):
            return future
        loop = asyncio.get_running_loop()
        out = loop.create_future()

        async def later() -> None:
            try:
                await future
                await asyncio.sleep(1.0)
                out.set_result(None)
            except Exception as exc:  # pragma: no cover - not exercised
                out.set_exception(exc)

        self.delayed = loop.create_task(later())
        return out


@pytest.mark.virtual_time
async def test_queued_submit_runs_when_active_flow_ends_during_its_checkpoint() -> None:
    """Busy.QUEUE: if the active flow ends while the new record is being committed, the new
    task still runs (it is not left queued behind nothing)."""
    gate = asyncio.Event()

    async def work(label: str) -> str:
        if label == "first":
            await gate.wait()
        return label

    flow = Flow("op", task(work), inputs=["label"])
    async with (
        SlowPendingStore() as store,
        FlowEngine(store, env=virtual_env(), on_busy=Busy.QUEUE) as engine,
    ):
        first = await engine.submit(flow, resource_id="vm-1", inputs={"label": "first"})
        assert isinstance(store, SlowPendingStore)
        store.slow = True
        submitting = asyncio.create_task(
            engine.submit(flow, resource_id="vm-1", inputs={"label": "second"})
        )
        await asyncio.sleep(0)  # the second submit saw the first active, is committing
        gate.set()
        assert (await first.wait()).status is TaskStatus.SUCCEEDED
        second = await submitting
        record = await asyncio.wait_for(second.wait(), timeout=30)
        assert record.status is TaskStatus.SUCCEEDED


class FailRevertingStore(MemoryStore):
    """Fails the first transaction that writes a task record in status "reverting"."""

    armed = True

    def submit(self, write: Write) -> Any:
        if self.armed and any(d.status == "reverting" for d in write.documents):
            self.armed = False
            self.fail_writes(1)
        return super().submit(write)


@pytest.mark.virtual_time
async def test_resume_does_not_rerun_a_step_that_already_failed() -> None:
    """A step checkpointed FAILED (retries spent) is not executed again by resume(); the
    flow reverts what completed."""
    journal = Journal()
    flow = Flow("f", linear(Recorded(journal, "a"), Recorded(journal, "b", body=fails("no"))))
    async with FailRevertingStore() as store:
        async with FlowEngine(store, env=virtual_env()) as engine:
            handle = await engine.submit(flow, resource_id="r")
            with pytest.raises(StoreUnavailable):
                await handle.wait()
        async with FlowEngine(store, env=virtual_env(), flows=[flow]) as later:
            (resumed,) = await later.resume()
            record = await resumed.wait()
    assert record.status is TaskStatus.REVERTED
    assert journal.ran() == ["a", "b"]
    assert journal.reverted() == ["a"]

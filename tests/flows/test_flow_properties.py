"""Properties of revert over random linear/unordered arrangements with random failures."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.flows import Failure, Flow, FlowEngine, Task, TaskStatus, linear, unordered
from stateward.runtime import Environment, MemoryStore, VirtualClock

#: A stage is a list of (fails, virtual duration) per task: one task runs alone, several
#: run unordered. Stages run one after another.
stages_strategy = st.lists(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=4),
    min_size=1,
    max_size=5,
)


class Probe(Task):
    """Logs execute and revert; fails after its duration when told to."""

    def __init__(self, name: str, log: list[tuple[str, str]], fail: bool, duration: int) -> None:
        super().__init__(name)
        self.log = log
        self.fail = fail
        self.duration = duration
        self.failures: list[Failure] = []

    async def execute(self) -> str:
        self.log.append(("run", self.name))
        await asyncio.sleep(self.duration)
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        return self.name

    async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
        assert result == self.name
        self.failures.append(failure)
        self.log.append(("revert", self.name))


async def run_flow(stages: list[list[tuple[bool, int]]], seed: int) -> tuple[Any, Any, Any]:
    """Build the flow for ``stages``, run it on virtual time; return (flow, record, log)."""
    log: list[tuple[str, str]] = []
    items: list[Any] = []
    for s, stage in enumerate(stages):
        probes = [Probe(f"s{s}t{t}", log, fail, d) for t, (fail, d) in enumerate(stage)]
        items.append(probes[0] if len(probes) == 1 else unordered(*probes))
    flow = Flow("random", linear(*items))
    env = Environment(clock=VirtualClock.current(), seed=seed)
    async with MemoryStore() as store, FlowEngine(store, env=env) as engine:
        record = await engine.run(flow, resource_id="r")
        assert await engine.get(record.id) == record
    return flow, record, log


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(stages=stages_strategy, seed=st.integers(0, 2**32))
def test_every_success_is_reverted_once_in_reverse_order(
    stages: list[list[tuple[bool, int]]], seed: int
) -> None:
    """Every step that succeeded is reverted exactly once, last-first, with the first
    failure; no later stage runs after a failing one; the final status follows."""
    flow, record, log = VirtualClock().run(run_flow(stages, seed))
    failing = next((i for i, stage in enumerate(stages) if any(f for f, _ in stage)), None)
    ran_stages = stages if failing is None else stages[: failing + 1]
    expected_runs = {f"s{s}t{t}" for s, stage in enumerate(ran_stages) for t in range(len(stage))}
    succeeded = [
        f"s{s}t{t}"
        for s, stage in enumerate(ran_stages)
        for t, (fails, _) in enumerate(stage)
        if not fails
    ]
    runs = [name for kind, name in log if kind == "run"]
    reverts = [name for kind, name in log if kind == "revert"]
    assert sorted(runs) == sorted(expected_runs)  # each ran once, no later stage ran
    order = [t.name for t in flow.tasks]
    if failing is None:
        assert record.status is TaskStatus.SUCCEEDED
        assert reverts == []
        return
    # Reverts start only after the last execute: none overlaps the forward pass.
    assert all(kind == "run" for kind, _ in log[: len(runs)])
    assert reverts == sorted(succeeded, key=order.index, reverse=True)
    assert record.status is (TaskStatus.REVERTED if succeeded else TaskStatus.FAILED)
    # The Failure every revert got names a failing step of the failing stage.
    failed_names = {f"s{failing}t{t}" for t, (fails, _) in enumerate(stages[failing]) if fails}
    probes = [flow.task(name) for name in succeeded]
    failures = {f for p in probes for f in p.failures}
    assert len(failures) <= 1
    for failure in failures:
        assert failure.step in failed_names
        assert (failure.error_type, failure.message) == ("RuntimeError", f"{failure.step} broke")

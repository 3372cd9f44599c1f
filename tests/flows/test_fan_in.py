"""Steps fed by concurrent steps: each starts with exactly the outputs of the steps it needs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_support import STORES, open_store
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.flows import Flow, FlowEngine, Task, TaskStatus, graph, linear, task, unordered
from stateward.runtime import Environment, MemoryStore, VirtualClock


async def one() -> int:
    """Return 1."""
    return 1


async def two() -> int:
    """Return 2."""
    return 2


@pytest.mark.parametrize("kind", STORES)
async def test_join_after_unordered_gets_both_outputs(kind: str, tmp_path: Path) -> None:
    """`linear(unordered(a, b), join)`: join runs with a's and b's outputs, never a None."""
    seen: list[tuple[Any, Any]] = []

    async def join(a: int, b: int) -> int:
        seen.append((a, b))
        return a + b

    flow = Flow(
        "fan-in",
        linear(
            unordered(task(one, name="a", provides="a"), task(two, name="b", provides="b")),
            task(join, provides="total"),
        ),
    )
    async with open_store(kind, tmp_path) as store, FlowEngine(store, flows=[flow]) as engine:
        for n in range(5):
            record = await engine.run(flow, resource_id=f"r{n}")
            assert record.status is TaskStatus.SUCCEEDED
            assert record.step("join").result == 3
    assert seen == [(1, 2)] * 5


@pytest.mark.parametrize("kind", STORES)
async def test_graph_fan_in_gets_every_output(kind: str, tmp_path: Path) -> None:
    """In a graph, a step requiring three concurrent steps' outputs gets all three."""
    seen: list[tuple[Any, ...]] = []

    async def three() -> int:
        return 3

    async def total(a: int, b: int, c: int) -> int:
        seen.append((a, b, c))
        return a + b + c

    flow = Flow(
        "graph-fan-in",
        graph(
            task(total),
            task(one, name="a", provides="a"),
            task(two, name="b", provides="b"),
            task(three, name="c", provides="c"),
        ),
    )
    async with open_store(kind, tmp_path) as store, FlowEngine(store, flows=[flow]) as engine:
        for n in range(5):
            record = await engine.run(flow, resource_id=f"r{n}")
            assert record.status is TaskStatus.SUCCEEDED
    assert seen == [(1, 2, 3)] * 5


# --------------------------------------------------------------------------------------------
# Random DAGs of steps

#: Per step: which earlier steps it requires (as bits of a mask) and its virtual duration.
dags = st.lists(
    st.tuples(st.integers(0, 2**8 - 1), st.integers(0, 3)),
    min_size=1,
    max_size=9,
)

_MODULUS = 2**61 - 1


def evaluate(index: int, inputs: dict[str, int]) -> int:
    """The value step ``index`` returns for ``inputs``: derived from every one of them."""
    value = index + 1
    for name in sorted(inputs):
        value = (value * 1_000_003 + inputs[name] * (int(name[1:]) + 7)) % _MODULUS
    return value


def requirements(dag: list[tuple[int, int]]) -> list[tuple[str, ...]]:
    """The names of the outputs each step requires (only earlier steps' outputs)."""
    return [tuple(f"v{j}" for j in range(i) if mask >> j & 1) for i, (mask, _) in enumerate(dag)]


class Node(Task):
    """Step ``index`` of a DAG: records its inputs, waits its duration, returns evaluate()."""

    def __init__(
        self, index: int, requires: tuple[str, ...], duration: int, seen: dict[str, Any]
    ) -> None:
        super().__init__(f"s{index}", provides=f"v{index}", requires=requires)
        self.index = index
        self.duration = duration
        self.seen = seen

    async def execute(self, **inputs: Any) -> int:
        self.seen[self.name] = dict(inputs)
        await asyncio.sleep(self.duration)
        return evaluate(self.index, inputs)


async def run_dag(dag: list[tuple[int, int]]) -> tuple[Any, dict[str, Any]]:
    """Run the DAG as a graph flow on virtual time; return its record and each step's inputs."""
    seen: dict[str, Any] = {}
    needs = requirements(dag)
    nodes = [Node(i, needs[i], duration, seen) for i, (_, duration) in enumerate(dag)]
    flow = Flow("dag", graph(*reversed(nodes)))
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with MemoryStore() as store, FlowEngine(store, env=env) as engine:
        record = await engine.run(flow, resource_id="r")
    return record, seen


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(dag=dags)
def test_every_step_gets_exactly_its_requirements(dag: list[tuple[int, int]]) -> None:
    """Over random DAGs, every step receives exactly the outputs of the steps it requires,
    and every result equals a pure evaluation of the DAG."""
    record, seen = VirtualClock().run(run_dag(dag))
    assert record.status is TaskStatus.SUCCEEDED
    needs = requirements(dag)
    values: dict[str, int] = {}
    for i in range(len(dag)):
        inputs = {name: values[name] for name in needs[i]}
        assert seen[f"s{i}"] == inputs
        values[f"v{i}"] = evaluate(i, inputs)
        assert record.step(f"s{i}").result == values[f"v{i}"]

"""Crashes mid-flow: a real process SIGKILLed on SQLite, and many in-process crashes.

``flow_child.py`` runs one flow whose steps each append ``ran <step>`` to a side file; the
parent kills it with SIGKILL once it has seen a given number of lines, then a second child
resumes. The side file counts how often each step really ran.

In-process, a "crash" is ``FlowEngine.aclose()``: it abandons every run where it is, without
reverting, and a new engine on the same store resumes them.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flow_child import KILLED_IN, STEPS

from stateward.flows import Flow, FlowEngine, StepStatus, Task, TaskStatus, linear, unordered
from stateward.runtime import Environment, MemoryStore, VirtualClock, open_sqlite_store

CHILD = Path(__file__).with_name("flow_child.py")
#: A child that has not printed what it should after this long is stuck.
WATCHDOG = 20.0


def spawn(db: Path, side: Path, *flags: str) -> subprocess.Popen[bytes]:
    """Start flow_child.py on ``db`` and ``side``."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(side), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def lines(side: Path) -> list[str]:
    """The complete lines of the side file."""
    if not side.exists():
        return []
    text = side.read_text()
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def kill_after(child: subprocess.Popen[bytes], side: Path, count: int) -> None:
    """SIGKILL ``child`` as soon as the side file has ``count`` lines."""
    deadline = time.monotonic() + WATCHDOG
    while len(lines(side)) < count:
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"child exited {child.returncode} before the kill: {err.decode()}")
        if time.monotonic() > deadline:
            child.kill()
            child.communicate()
            pytest.fail("child made no progress before the watchdog")
        time.sleep(0.005)  # the parent polls a real process: real time is what it waits on
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL


def finish(child: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait for a resuming child and return the JSON it printed."""
    out, err = child.communicate(timeout=WATCHDOG)
    assert child.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------------
# Scenario 5: SIGKILL of a real process


async def stored_tasks(db: Path) -> tuple[Any, ...]:
    """Every task record of ``vm-1`` in the database, read by a fresh store and engine."""
    async with open_sqlite_store(db) as store, FlowEngine(store) as engine:
        return await engine.tasks("vm-1")


def test_sigkilled_flow_resumes_without_rerunning_completed_steps(tmp_path: Path) -> None:
    """A process killed mid-flow leaves a record that a second process resumes: completed
    steps never run again; the interrupted one runs again, having no reconcile."""
    db, side = tmp_path / "flows.db", tmp_path / "side.txt"
    assert STEPS[2] == KILLED_IN
    kill_after(spawn(db, side), side, 3)  # STEPS[2] has started, and is sleeping
    assert lines(side) == [f"ran {s}" for s in STEPS[:3]]

    [killed] = asyncio.run(stored_tasks(db))
    assert killed.status is TaskStatus.RUNNING
    assert [s.status for s in killed.steps] == [
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.RUNNING,
        *[StepStatus.PENDING] * (len(STEPS) - 3),
    ]

    result = finish(spawn(db, side, "--resume"))
    assert result == {"resumed": [killed.id], "statuses": ["succeeded"]}
    ran = Counter(lines(side))
    assert ran == {f"ran {s}": (2 if s == STEPS[2] else 1) for s in STEPS}

    [record] = asyncio.run(stored_tasks(db))
    assert record.status is TaskStatus.SUCCEEDED
    assert [s.result for s in record.steps] == [f"{s}-done" for s in STEPS]
    [reconciled] = [h for h in record.history if h.event == "reconciled"]
    assert (reconciled.step, reconciled.detail) == (STEPS[2], "no reconcile: runs again")
    assert [h.event for h in record.history].count("resumed") == 1


def test_sigkilled_flow_of_reconciling_steps_asks_each_step(tmp_path: Path) -> None:
    """Steps that reconcile take no checkpoint of their own: the killed run left only the
    submitted record, and the resume asks each step in turn whether it happened; none of
    them runs twice, and those that had not run, run once."""
    db, side = tmp_path / "flows.db", tmp_path / "side.txt"
    kill_after(spawn(db, side, "--reconcile"), side, 3)  # STEPS[2] has started
    assert lines(side) == [f"ran {s}" for s in STEPS[:3]]

    [killed] = asyncio.run(stored_tasks(db))
    assert killed.version == 1  # committed once, when it was submitted
    assert [s.status for s in killed.steps] == [StepStatus.PENDING] * len(STEPS)

    result = finish(spawn(db, side, "--resume", "--reconcile"))
    assert result == {"resumed": [killed.id], "statuses": ["succeeded"]}
    assert Counter(lines(side)) == {f"ran {s}": 1 for s in STEPS}

    [record] = asyncio.run(stored_tasks(db))
    assert record.status is TaskStatus.SUCCEEDED
    assert [s.result for s in record.steps] == [f"{s}-done" for s in STEPS]
    asked = [(h.step, h.detail) for h in record.history if h.event == "reconciled"]
    assert asked == [
        *[(s, "already done: not run again") for s in STEPS[:3]],
        *[(s, "not done: runs again") for s in STEPS[3:]],
    ]


# --------------------------------------------------------------------------------------------
# Scenario 6: many resources, crashed again and again


RESOURCES = 50
CRASHES = 6


class Step(Task):
    """Counts its runs per resource and takes a seeded, virtual while."""

    def __init__(self, name: str, runs: Counter[tuple[str, str]], seed: int) -> None:
        super().__init__(name, requires=("resource",), provides=f"{name}-out")
        self.runs = runs
        self.seed = seed

    async def execute(self, resource: str) -> str:
        self.runs[resource, self.name] += 1
        draw = random.Random(f"{self.seed}:{resource}:{self.name}:{self.runs[resource, self.name]}")
        await asyncio.sleep(draw.uniform(0.2, 2.5))
        return f"{resource}/{self.name}"


@pytest.mark.virtual_time
@pytest.mark.parametrize("seed", [3, 17])
async def test_many_resources_converge_through_repeated_crashes(seed: int) -> None:
    """Fifty resources, crashed six times at random instants mid-flow, all end succeeded, and
    no step ran more than once per crash plus once."""
    clock = VirtualClock.current()
    rng = random.Random(seed)
    runs: Counter[tuple[str, str]] = Counter()
    names = ("reserve", "boot", "network", "attach", "announce")
    flow = Flow(
        "create",
        linear(
            Step("reserve", runs, seed),
            unordered(Step("boot", runs, seed), Step("network", runs, seed)),
            Step("attach", runs, seed),
            Step("announce", runs, seed),
        ),
        inputs=["resource"],
    )
    ids = [f"vm-{i:02d}" for i in range(RESOURCES)]
    async with MemoryStore(clock=clock) as store:
        for crash in range(CRASHES):
            env = Environment(clock=clock, seed=seed * 100 + crash)
            engine = FlowEngine(store, env=env, flows=[flow])
            if crash == 0:
                for rid in ids:
                    await engine.submit(flow, resource_id=rid, inputs={"resource": rid})
            else:
                await engine.resume()
            await asyncio.sleep(rng.uniform(0.1, 2.0))
            await engine.aclose()
        async with FlowEngine(store, env=Environment(clock=clock, seed=seed), flows=[flow]) as last:
            handles = await last.resume()
            finals = {h.resource_id: await h.wait() for h in handles}
            records = {rid: await last.tasks(rid) for rid in ids}
    assert handles, "the crashes all landed after every flow had finished"
    for rid in ids:
        [record] = records[rid]
        assert record.status is TaskStatus.SUCCEEDED, record
        assert [s.result for s in record.steps] == [f"{rid}/{n}" for n in names]
        if rid in finals:
            assert finals[rid] == record
    assert set(runs) == {(rid, n) for rid in ids for n in names}
    assert max(runs.values()) <= CRASHES + 1
    for (rid, name), count in runs.items():
        [record] = records[rid]
        # A step runs again only after a resume found it interrupted and said so.
        again = [h for h in record.history if h.event == "reconciled" and h.step == name]
        assert count <= 1 + len(again), (rid, name, count, again)
    assert sum(runs.values()) > len(runs)  # some crashes did interrupt steps

"""A process for ``test_flow_crash``: one flow on SQLite, killed with SIGKILL mid-flow.

Run as ``python flow_child.py DB SIDE [--resume] [--reconcile]``. Without ``--resume`` it
submits the flow for ``vm-1`` and waits for it; each step appends ``ran <step>`` to the side
file ``SIDE`` (flushed and fsynced) and then sleeps for real; the third step sleeps long, so
that a kill sent when the parent sees its line lands while it runs. With ``--resume`` it
resumes whatever is in flight (quickly: no sleeps), waits for it, and prints one JSON line::

    {"resumed": [TASK_ID, ...], "statuses": [STATUS, ...]}

With ``--reconcile`` every step's reconcile reports it done when its line is in the side file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from stateward.flows import Flow, FlowEngine, Reconciled, Task, linear
from stateward.runtime import open_sqlite_store

#: The flow's steps, in order.
STEPS = ("reserve", "boot", "network", "attach", "announce")
#: Real seconds each step sleeps after writing its line in the first run.
STEP_SLEEP = 0.05
#: The step the parent kills the first run in: it sleeps long enough that the kill, sent
#: as soon as its line appears, lands while it runs even on a loaded machine.
KILLED_IN = "network"
KILLED_SLEEP = 10.0


class SideEffect(Task):
    """Appends ``ran <name>`` to the side file, then sleeps ``delay`` real seconds."""

    def __init__(self, name: str, delay: float, reconciles: bool) -> None:
        super().__init__(name, requires=("side",))
        self.delay = delay
        self._reconciles = reconciles

    async def execute(self, side: str) -> str:
        _append(side, f"ran {self.name}")
        await asyncio.sleep(self.delay)
        return f"{self.name}-done"

    async def reconcile(self, side: str) -> Reconciled | None:
        if not self._reconciles:
            return None
        done = f"ran {self.name}" in _lines(side)
        return Reconciled(done=done, result=f"{self.name}-done" if done else None)

    @property
    def reconciles(self) -> bool:
        return self._reconciles


def _append(side: str, line: str) -> None:
    """Append ``line`` to the side file and make it durable before the step goes on."""
    with open(side, "a") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


def _lines(side: str) -> list[str]:
    return Path(side).read_text().splitlines()


def build(delay: float, reconciles: bool, *, slow: bool) -> Flow:
    """The flow both runs share (same name, version and steps); with ``slow``, the
    :data:`KILLED_IN` step sleeps :data:`KILLED_SLEEP`."""
    steps = [
        SideEffect(name, KILLED_SLEEP if slow and name == KILLED_IN else delay, reconciles)
        for name in STEPS
    ]
    return Flow("provision", linear(*steps), inputs=["side"])


async def run(db: str, side: str, *, resume: bool, reconciles: bool) -> None:
    """Submit and wait, or resume and report."""
    flow = build(0.0 if resume else STEP_SLEEP, reconciles, slow=not resume)
    async with open_sqlite_store(db) as store, FlowEngine(store, flows=[flow]) as engine:
        if not resume:
            await engine.run(flow, resource_id="vm-1", inputs={"side": side})
            return
        handles = await engine.resume()
        records: list[Any] = [await h.wait() for h in handles]
        line = {"resumed": [h.task_id for h in handles], "statuses": [r.status for r in records]}
        sys.stdout.write(json.dumps(line) + "\n")


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("side")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--reconcile", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)  # to stderr, which the parent keeps
    asyncio.run(run(args.db, args.side, resume=args.resume, reconciles=args.reconcile))


if __name__ == "__main__":
    main()

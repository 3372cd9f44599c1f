"""A process for ``test_timers``: alarms armed on SQLite, killed before they ring.

``python timer_child.py DB arm N`` arms alarms ``a-0`` .. ``a-N-1`` one by one, each to ring
two seconds later, printing each id once its arm is acknowledged (durable), then waits to be
killed. ``python timer_child.py DB verify N`` restores them, waits until every armed alarm
rang (or 30 seconds), and prints ``ID EVENTS`` for each (events comma-separated).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from stateward.runtime import (
    FSMActor,
    Machine,
    StateKind,
    Transition,
    open_actor_system,
    open_sqlite_store,
)

ALARM = Machine(
    "alarm",
    initial="idle",
    states={"idle": StateKind.STABLE, "armed": StateKind.STABLE, "rung": StateKind.TERMINAL},
    transitions=[Transition("idle", "arm", "armed"), Transition("armed", "ring", "rung")],
)


class Alarm(FSMActor):
    machine = ALARM

    async def receive(self, message: Any) -> Any:
        if message == "arm":
            return await self.transition("arm", timers=(self.timer("ring", after=2.0),))
        return await super().receive(message)


async def arm(db: str, count: int) -> None:
    async with open_sqlite_store(db) as store, open_actor_system(store=store) as system:
        for n in range(count):
            await system.spawn(Alarm, address=f"a-{n}").ask("arm")
            print(f"a-{n}", flush=True)
        await asyncio.sleep(3600)


async def verify(db: str, count: int) -> None:
    async with open_sqlite_store(db) as store, open_actor_system(store=store) as system:
        await system.restore({"alarm": Alarm})
        for _ in range(300):
            if system.timers.loaded and not system.timers.pending():
                break
            await asyncio.sleep(0.1)
        for n in range(count):
            events = [r.event for r in await store.history(f"a-{n}")]
            print(f"a-{n} {','.join(events)}")


if __name__ == "__main__":
    db, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    asyncio.run(arm(db, count) if mode == "arm" else verify(db, count))

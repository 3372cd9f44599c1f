"""``stateward inspect DB --timers``: the pending durable timers, soonest first."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from stateward.bench import main
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
    states={"idle": StateKind.STABLE, "armed": StateKind.STABLE},
    transitions=[Transition("idle", "arm", "armed"), Transition("armed", "ring", "idle")],
)


class Alarm(FSMActor):
    machine = ALARM

    async def receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            _, after, to = message
            timer = self.timer("ring", after=after, to=to)
            return await self.transition("arm", timers=(timer,))
        return await super().receive(message)


async def _build(path: Path) -> None:
    """Pending: a-2 in an hour, a-1 in a day (delivered to a-3); a-4's rang already."""
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        await system.spawn(Alarm, address="a-1").ask(("arm", 86400.0, "a-3"))
        await system.spawn(Alarm, address="a-2").ask(("arm", 3600.0, None))
        await system.spawn(Alarm, address="a-4").ask(("arm", 0.0, None))
        for _ in range(100):
            if len(system.timers.pending()) == 2:
                break
            await asyncio.sleep(0.01)
        assert [t.owner for t in system.timers.pending()] == ["a-2", "a-1"]


def test_pending_timers_are_listed_soonest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alarms.db"
    asyncio.run(_build(path))
    assert main(["inspect", str(path), "--timers", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["total"] == 2
    assert not document["truncated"]
    assert [(t["owner"], t["name"], t["target"]) for t in document["timers"]] == [
        ("a-2", "ring", "a-2"),
        ("a-1", "ring", "a-3"),
    ]
    assert all(t["at"].endswith("Z") or "+" in t["at"] for t in document["timers"])
    assert main(["inspect", str(path), "--timers", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "a-2" in out
    assert "a-1" not in out
    assert "showing the soonest 1 of 2 pending timers" in out


def test_a_database_without_timers_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def build() -> None:
        path = tmp_path / "empty.db"
        async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
            await system.spawn(Alarm, address="a-1").ask("arm")  # no timer

    asyncio.run(build())
    assert main(["inspect", str(tmp_path / "empty.db"), "--timers"]) == 0
    assert "no pending timers" in capsys.readouterr().out


def test_timers_and_kind_do_not_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "x.db"), "--timers", "--kind", "alarm"]) == 2
    assert "--kind filters the resource list" in capsys.readouterr().err

"""Durable timers: set with a transition, fired at their time on the clock, cancelled with a
transition, and kept across a restart (fired then if their time passed meanwhile)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stateward.runtime import (
    Actor,
    Environment,
    FSMActor,
    InvalidArgument,
    InvalidCommand,
    Machine,
    MemoryStore,
    StateKind,
    Store,
    TimerFired,
    Transition,
    VirtualClock,
    open_actor_system,
    open_sqlite_store,
)

ALARM = Machine(
    "alarm",
    initial="idle",
    states={"idle": StateKind.STABLE, "armed": StateKind.STABLE, "rung": StateKind.STABLE},
    transitions=[
        Transition("idle", "arm", "armed"),
        Transition("armed", "disarm", "idle"),
        Transition("armed", "ring", "rung"),
        Transition("rung", "reset", "idle"),
    ],
)


class Alarm(FSMActor):
    """``("arm", seconds)`` arms a ring; ``"disarm"`` cancels it."""

    machine = ALARM

    async def receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "arm":
            timer = self.timer("ring", after=message[1], payload={"why": "wake"})
            await self.transition("arm", timers=(timer,))
            return timer
        if message == "disarm":
            pending = self.context.system.timers.pending(self.context.resource_id)
            return await self.transition("disarm", cancel=tuple(t.id for t in pending))
        return await super().receive(message)


class Echo(FSMActor):
    """Records every timer it is handed, without a transition."""

    machine = ALARM
    seen: ClassVar[list[TimerFired]] = []

    async def on_timer(self, fired: TimerFired) -> Any:
        Echo.seen.append(fired)
        return None


def _env() -> Environment:
    return Environment(clock=VirtualClock.current(), seed=3)


async def _events(store: Store, resource_id: str) -> list[tuple[str, str | None]]:
    return [(r.event, r.cause) for r in await store.history(resource_id)]


@pytest.mark.virtual_time
async def test_a_timer_fires_at_its_time_once_as_the_event_it_names() -> None:
    clock = VirtualClock.current()
    async with open_actor_system(env=_env()) as system:
        alarm = system.spawn(Alarm, address="a-1")
        start = clock.now()
        timer = await alarm.ask(("arm", 60.0))
        assert timer.at == start + 60
        assert system.timers.pending() == (timer,)
        await clock.sleep(59)
        assert [e for e, _ in await _events(system.store, "a-1")] == ["arm"]
        await clock.sleep(2)
        history = await system.store.history("a-1")
        assert [r.event for r in history] == ["arm", "ring"]
        assert history[1].at == timer.at
        assert history[1].payload == {"why": "wake"}
        assert history[1].cause == f"timer {timer.id}"
        assert system.timers.pending() == ()
        document = await system.store.get_document("timer", timer.id)
        assert document is not None
        assert (document.status, document.version) == ("fired", 2)


@pytest.mark.virtual_time
async def test_a_cancelled_timer_never_fires() -> None:
    clock = VirtualClock.current()
    async with open_actor_system(env=_env()) as system:
        alarm = system.spawn(Alarm, address="a-1")
        timer = await alarm.ask(("arm", 60.0))
        await alarm.ask("disarm")
        await clock.sleep(120)
        assert [e for e, _ in await _events(system.store, "a-1")] == ["arm", "disarm"]
        assert system.timers.pending() == ()
        document = await system.store.get_document("timer", timer.id)
        assert document is not None
        assert document.status == "cancelled"


@pytest.mark.virtual_time
async def test_a_timer_and_its_transition_commit_together_or_not_at_all() -> None:
    """A failed commit of the transition that sets a timer leaves no timer behind."""
    clock = VirtualClock.current()
    store = MemoryStore()
    async with open_actor_system(env=_env(), store=store) as system:
        alarm = system.spawn(Alarm, address="a-1")
        store.fail_writes(1)
        with pytest.raises(Exception, match="disk full"):
            await alarm.ask(("arm", 10.0))
        assert system.timers.pending() == ()
        assert await store.find_documents("timer") == ()
        await clock.sleep(30)
        assert await store.history("a-1") == ()


async def test_a_timer_whose_time_passed_while_down_fires_on_recovery(tmp_path: Path) -> None:
    """Set, then the process stops; it is reopened after the timer's time: the timer fires
    then, late, exactly once in the history (real time: SQLite works in a thread)."""
    path = tmp_path / "alarms.db"
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        timer = await system.spawn(Alarm, address="a-1").ask(("arm", 0.2))
    await asyncio.sleep(0.4)  # nothing runs
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        await system.restore({"alarm": Alarm})
        for _ in range(100):
            if system.timers.loaded and not system.timers.pending():
                break
            await asyncio.sleep(0.05)
        history = await store.history("a-1")
        assert [r.event for r in history] == ["arm", "ring"]
        assert history[1].at >= timer.at + 0.2
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        await system.restore({"alarm": Alarm})
        await asyncio.sleep(0.3)
        assert system.timers.loaded
        assert [r.event for r in await store.history("a-1")] == ["arm", "ring"]


@pytest.mark.virtual_time
async def test_a_power_cut_keeps_the_timer_and_the_next_process_fires_it() -> None:
    """The durable image of a store taken mid-run (no clean close) holds the timer."""
    clock = VirtualClock.current()
    store = MemoryStore()
    async with open_actor_system(env=_env(), store=store) as system:
        await system.spawn(Alarm, address="a-1").ask(("arm", 30.0))
        image = store.image()
    async with open_actor_system(env=_env(), store=image) as system:
        await system.restore({"alarm": Alarm})
        await clock.sleep(31)
        assert [r.event for r in await image.history("a-1")] == ["arm", "ring"]


@pytest.mark.virtual_time
async def test_a_delivery_that_fails_is_retried_until_it_lands() -> None:
    clock = VirtualClock.current()
    store = MemoryStore()
    async with open_actor_system(env=_env(), store=store) as system:
        alarm = system.spawn(Alarm, address="a-1")
        await alarm.ask(("arm", 10.0))
        await clock.sleep(9)
        store.fail_writes(2)  # the ring's commit fails twice
        await clock.sleep(10)
        assert [r.event for r in await store.history("a-1")] == ["arm", "ring"]
        assert system.timers.pending() == ()


@pytest.mark.virtual_time
async def test_a_timer_the_state_moved_past_is_ignored_and_done() -> None:
    """An alarm reset to idle by hand before its ring: the ring is not allowed in idle, so
    nothing happens and the timer is not pending any more."""
    clock = VirtualClock.current()
    async with open_actor_system(env=_env()) as system:
        alarm = system.spawn(Alarm, address="a-1")
        await alarm.ask(("arm", 10.0))
        await alarm.ask("ring")  # rung early, by hand
        await alarm.ask("reset")
        await clock.sleep(20)
        assert [r.event for r in await system.store.history("a-1")] == ["arm", "ring", "reset"]
        assert system.timers.pending() == ()


@pytest.mark.virtual_time
async def test_a_timer_can_be_delivered_to_another_actor() -> None:
    clock = VirtualClock.current()
    Echo.seen = []
    async with open_actor_system(env=_env()) as system:
        system.spawn(Echo, address="echo")

        class Sender(Alarm):
            async def receive(self, message: Any) -> Any:
                if message == "send":
                    timer = self.timer("ping", after=5, to="echo")
                    return await self.transition("arm", timers=(timer,))
                return await super().receive(message)

        await system.spawn(Sender, address="s-1").ask("send")
        await clock.sleep(6)
        assert [(f.timer.name, f.timer.owner, f.timer.address) for f in Echo.seen] == [
            ("ping", "s-1", "echo")
        ]
        assert Echo.seen[0].late == pytest.approx(1.0, abs=1.0)
        assert system.timers.pending() == ()
        assert await system.store.history("echo") == ()


@pytest.mark.virtual_time
async def test_bad_timers_are_refused_with_typed_errors_and_change_nothing() -> None:
    async with open_actor_system(env=_env()) as system:
        timers = system.timers
        with pytest.raises(InvalidArgument, match="exactly one of"):
            timers.new("a-1", "ring")
        with pytest.raises(InvalidArgument, match="seconds >= 0"):
            timers.new("a-1", "ring", after=-1)
        with pytest.raises(InvalidArgument, match="finite"):
            timers.new("a-1", "ring", at=float("nan"))
        with pytest.raises(InvalidArgument, match="name"):
            timers.new("a-1", "", after=1)
        with pytest.raises(InvalidArgument, match="plain data"):
            timers.new("a-1", "ring", after=1, payload=object())

        class Canceller(Alarm):
            async def receive(self, message: Any) -> Any:
                if message == "bad-cancel":
                    return await self.transition("arm", cancel=("timer-nope",))
                return await super().receive(message)

        ref = system.spawn(Canceller, address="c-1")
        with pytest.raises(InvalidCommand, match="pending timer"):
            await ref.ask("bad-cancel")
        assert await system.store.history("c-1") == ()
        assert await ref.ask("arm") is not None  # the actor works on


CHILD = Path(__file__).with_name("timer_child.py")


def test_timers_set_by_a_killed_process_all_fire_in_the_next(tmp_path: Path) -> None:
    """A child arms timers on SQLite (FULL) and reports each acknowledged arm; it is
    SIGKILLed before any fires. A second process restores: every acknowledged timer fires,
    once."""
    db = tmp_path / "alarms.db"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(db), "arm", "40"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    acked = []
    for line in child.stdout:
        acked.append(line.strip())
        if len(acked) == 25:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert len(acked) == 25
    verify = subprocess.run(
        [sys.executable, str(CHILD), str(db), "verify", "40"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rung = dict(line.partition(" ")[::2] for line in verify.stdout.splitlines())
    for resource_id in acked:
        assert rung[resource_id] == "arm,ring", (resource_id, rung[resource_id])
    assert all(events in ("arm,ring", "") for events in rung.values()), rung


def test_the_loop_of_a_virtual_clock_drives_timers_without_real_time() -> None:
    """An hour of timers runs in a moment of real time under VirtualClock.run."""

    async def main() -> list[str]:
        async with open_actor_system(env=Environment(clock=VirtualClock.current())) as system:
            alarm = system.spawn(Alarm, address="a-1")
            await alarm.ask(("arm", 3600.0))
            await asyncio.sleep(3601)
            return [r.event for r in await system.store.history("a-1")]

    assert VirtualClock().run(main()) == ["arm", "ring"]


@pytest.mark.virtual_time
async def test_any_actor_can_schedule_and_cancel_a_timer_on_its_own_write() -> None:
    """``system.timers.schedule`` and ``cancel`` need no transition: a plain actor gets
    ``TimerFired`` at the time, once, and a cancelled timer never comes."""
    clock = VirtualClock.current()
    fired: list[str] = []

    class Plain(Actor):
        async def receive(self, message: Any) -> Any:
            if isinstance(message, TimerFired):
                fired.append(message.timer.name)
            return None

    async with open_actor_system(env=_env()) as system:
        system.spawn(Plain, address="p-1")
        timers = system.timers
        kept = await timers.schedule(timers.new("p-1", "kept", after=10))
        dropped = await timers.schedule(timers.new("p-1", "dropped", after=10))
        assert await timers.cancel(dropped.id)
        assert not await timers.cancel(dropped.id)
        assert timers.pending() == (kept,)
        await clock.sleep(11)
        assert fired == ["kept"]
        assert timers.pending() == ()
        assert not await timers.cancel(kept.id)
        statuses = {d.key: d.status for d in await system.store.find_documents("timer")}
        assert statuses == {kept.id: "fired", dropped.id: "cancelled"}

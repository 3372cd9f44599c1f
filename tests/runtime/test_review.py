"""Review findings: correctness fixes in the actor runtime, each pinned by a test."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stateward.runtime import (
    Actor,
    AskTimeout,
    Restart,
    open_actor_system,
)


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


@pytest.mark.virtual_time
async def test_reactivated_actor_is_passivated_again_when_idle() -> None:
    """An actor with idle_after is passivated again after it was reactivated and went idle."""
    async with open_actor_system(sweep_interval=1.0) as system:
        ref = system.spawn(Echo, address="a", idle_after=2.0)
        await ref.ask("x")
        await asyncio.sleep(5.0)
        assert system.statistics().passivations == 1
        await ref.ask("y")  # reactivates
        await asyncio.sleep(5.0)
        assert system.statistics().passivations == 2


@pytest.mark.virtual_time
async def test_ask_times_out_while_waiting_for_mailbox_room() -> None:
    """ask(timeout=1) on a full mailbox of a stuck actor raises AskTimeout after ~1s."""
    gate = asyncio.Event()

    class Stuck(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()
            return message

    async with open_actor_system() as system:
        ref = system.spawn(Stuck, address="s", mailbox_capacity=1)
        ref.tell_nowait("busy")
        await asyncio.sleep(0)  # "busy" is being handled
        ref.tell_nowait("queued")  # the mailbox is full now
        try:
            with pytest.raises(AskTimeout):
                await asyncio.wait_for(ref.ask("late", timeout=1.0), timeout=30.0)
        finally:
            gate.set()


@pytest.mark.virtual_time
async def test_transient_actor_stopping_itself_runs_on_stop_once() -> None:
    """A TRANSIENT actor that calls context.stop() gets on_stop exactly once."""
    stops: list[str] = []

    class Quitter(Actor):
        async def receive(self, message: Any) -> Any:
            self.context.stop()
            return message

        async def on_stop(self) -> None:
            stops.append(self.context.address)

    async with open_actor_system() as system:
        ref = system.spawn(Quitter, address="q", restart=Restart.TRANSIENT)
        await ref.ask("bye")
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not ref.is_alive
        assert stops == ["q"]


@pytest.mark.virtual_time
async def test_crashed_temporary_actor_does_not_run_on_stop() -> None:
    """on_stop is 'not called after a crash': a crashed TEMPORARY child is just removed."""
    stops: list[str] = []

    class Crasher(Actor):
        async def receive(self, message: Any) -> Any:
            raise RuntimeError("boom")

        async def on_stop(self) -> None:
            stops.append("on_stop")

    async with open_actor_system() as system:
        ref = system.spawn(Crasher, address="c", restart=Restart.TEMPORARY)
        ref.tell_nowait("x")
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not ref.is_alive
        assert stops == []

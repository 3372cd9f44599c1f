"""Passivation: idle actors leave memory and come back transparently on their next message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stateward.runtime import Actor, StartReason, open_actor_system


class Counter(Actor):
    """Counts messages; saves the count to ``store`` when passivated, loads it on start."""

    def __init__(self, store: dict[str, int], starts: list[StartReason]) -> None:
        self.store = store
        self.starts = starts
        self.count = 0

    async def rehydrate(self, reason: StartReason) -> None:
        self.starts.append(reason)
        self.count = self.store.get(self.context.address, 0)

    async def receive(self, message: Any) -> Any:
        if message == "slow":
            await asyncio.sleep(1.0)
        self.count += 1
        return self.count

    async def on_passivate(self) -> None:
        self.store[self.context.address] = self.count


async def test_passivation_round_trip() -> None:
    """A passivated actor holds no incarnation and comes back on its next message."""
    store: dict[str, int] = {}
    starts: list[StartReason] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Counter(store, starts), address="c")
        assert await ref.ask("x") == 1
        await asyncio.sleep(0)
        assert await system.passivate("c") is True
        stats = system.statistics()
        assert (stats.live, stats.passivated, stats.passivations) == (0, 1, 1)
        assert store == {"c": 1}
        assert await ref.ask("x") == 2
        assert starts == [StartReason.SPAWN, StartReason.REACTIVATE]
        assert system.statistics().activations == 1


@pytest.mark.virtual_time
async def test_busy_actor_is_not_passivated() -> None:
    """passivate() refuses an actor that is handling or holding messages."""
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Counter({}, []), address="c")
        pending = asyncio.create_task(ref.ask("slow"))
        await asyncio.sleep(0)
        assert await system.passivate("c") is False
        assert await pending == 1
        assert system.statistics().passivated == 0


@pytest.mark.virtual_time
async def test_message_during_on_passivate_cancels_passivation() -> None:
    """A message that arrives while on_passivate runs keeps the same incarnation alive."""
    flushed = asyncio.Event()
    release = asyncio.Event()

    class SlowFlush(Counter):
        async def on_passivate(self) -> None:
            flushed.set()
            await release.wait()

    starts: list[StartReason] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: SlowFlush({}, starts), address="c")
        await ref.ask("x")
        await asyncio.sleep(0)
        passivating = asyncio.create_task(system.passivate("c"))
        await flushed.wait()
        asking = asyncio.create_task(ref.ask("x"))
        await asyncio.sleep(0)
        release.set()
        assert await passivating is False
        assert await asking == 2  # same incarnation: the in-memory count was kept
        assert starts == [StartReason.SPAWN]


@pytest.mark.virtual_time
async def test_idle_actors_are_passivated_automatically() -> None:
    """An actor spawned with idle_after is passivated by the sweeper once idle that long."""
    store: dict[str, int] = {}
    async with open_actor_system(sweep_interval=1.0) as system:
        hot = system.spawn(lambda: Counter(store, []), address="hot", idle_after=5.0)
        cold = system.spawn(lambda: Counter(store, []), address="cold", idle_after=5.0)
        await cold.ask("x")
        for _ in range(8):
            await hot.ask("x")
            await asyncio.sleep(1.0)
        stats = system.statistics()
        assert (stats.live, stats.passivated) == (1, 1)
        assert store == {"cold": 1}
        assert await cold.ask("x") == 2


async def test_spawned_passivated_builds_nothing_until_first_message() -> None:
    """spawn(passivated=True) registers many resources; only those messaged get built."""
    built: list[int] = []

    class Lazy(Actor):
        def __init__(self) -> None:
            built.append(1)

        async def receive(self, message: Any) -> Any:
            return self.context.address

    async with open_actor_system() as system:
        for i in range(10_000):
            system.spawn(Lazy, address=f"r-{i}", passivated=True)
        assert built == []
        assert await system.lookup("r-1234").ask("where") == "r-1234"
        stats = system.statistics()
        assert (stats.actors, stats.live, stats.passivated) == (10_000, 1, 9_999)
    assert built == [1]

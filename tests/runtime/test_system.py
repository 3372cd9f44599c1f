"""The actor system's lifecycle, registry and statistics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stateward.runtime import (
    Actor,
    ActorStopped,
    Environment,
    InvalidArgument,
    LifecycleError,
    SystemNotRunning,
    open_actor_system,
)


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


async def test_spawn_outside_the_lifecycle_fails_clearly() -> None:
    """Spawning before opening or after closing raises SystemNotRunning saying what to do."""
    system = open_actor_system()
    with pytest.raises(SystemNotRunning, match="cannot spawn: the actor system is not started"):
        system.spawn(Echo, address="e")
    async with system:
        ref = system.spawn(Echo, address="e")
    with pytest.raises(SystemNotRunning, match="is closed"):
        system.spawn(Echo, address="f")
    with pytest.raises(ActorStopped, match="the actor system shut down"):
        await ref.ask("x")
    with pytest.raises(LifecycleError, match="can be opened once"):
        async with system:
            pass


async def test_shutdown_fails_waiting_asks() -> None:
    """Asks still waiting at shutdown fail with ActorStopped instead of hanging."""
    gate = asyncio.Event()

    class Blocked(Actor):
        async def receive(self, message: Any) -> Any:
            await gate.wait()

    async with open_actor_system(shutdown_timeout=0.05) as system:
        ref = system.spawn(Blocked, address="b")
        asks = [asyncio.create_task(ref.ask(i)) for i in range(3)]
        await asyncio.sleep(0)
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, ActorStopped) for r in results)


async def test_systems_are_independent() -> None:
    """Two systems in one loop share nothing: same addresses, separate registries."""
    async with open_actor_system(name="one") as one, open_actor_system(name="two") as two:
        one.spawn(Echo, address="e")
        two.spawn(Echo, address="e")
        assert await one.lookup("e").ask(1) == 1
        assert await two.lookup("e").ask(2) == 2
        assert one.statistics().messages == 1
        assert two.statistics().messages == 1


async def test_statistics_counts_messages_and_actors() -> None:
    """statistics() reports actors, supervisors and messages handled."""
    async with open_actor_system() as system:
        refs = [system.spawn(Echo, address=f"e{i}") for i in range(3)]
        system.spawn_supervisor("sup")
        for ref in refs:
            for i in range(4):
                await ref.ask(i)
        await asyncio.sleep(0)
        stats = system.statistics()
    assert (stats.actors, stats.live, stats.supervisors, stats.messages) == (3, 3, 2, 12)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("ask_timeout", 0),
        ("mailbox_capacity", 0),
        ("shutdown_timeout", -1),
        ("sweep_interval", "1"),
        ("env", object()),
        ("store", object()),
    ],
)
def test_system_options_are_validated(option: str, value: Any) -> None:
    """open_actor_system refuses bad options with InvalidArgument naming the option."""
    with pytest.raises(InvalidArgument, match=f"^{option}: expected"):
        open_actor_system(**{option: value})


async def test_environment_is_injected() -> None:
    """The system exposes its injected environment; a seed makes ids repeatable."""
    async with open_actor_system(env=Environment(seed=7)) as one:
        first = one.env.ids.next("task")
    async with open_actor_system(env=Environment(seed=7)) as two:
        assert two.env.ids.next("task") == first


async def test_eager_restore_pauses_the_cyclic_collector_and_leaves_it_as_found() -> None:
    """restore(eager=True) builds actors with the cyclic GC paused, then leaves the GC as it
    found it (enabled or not)."""
    import gc

    from stateward.runtime import (
        FSMActor,
        Machine,
        MemoryStore,
        StartReason,
        StateKind,
        Transition,
    )

    seen: list[bool] = []

    class Light(FSMActor):
        machine = Machine(
            "light",
            initial="off",
            states={"off": StateKind.STABLE, "on": StateKind.STABLE},
            transitions=[Transition("off", "flip", "on"), Transition("on", "flip", "off")],
        )

        async def rehydrate(self, reason: StartReason) -> None:
            seen.append(gc.isenabled())
            await super().rehydrate(reason)

    store = MemoryStore()
    async with open_actor_system(store=store) as system:
        await system.spawn(Light, address="l-1").ask("flip")
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            seen.clear()
            async with open_actor_system(store=store) as system:
                assert await system.restore({"light": Light}, eager=True) == 1
            assert seen == [False]
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
    await store.aclose()

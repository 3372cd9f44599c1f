"""The stateward side of the rows: the same workloads as the baselines, through the runtime.

Only the public API of :mod:`stateward.runtime` is used, imported inside the functions so that
the CLI (``diagram`` in particular) keeps working while a part of the runtime is broken.
Each ``*_round`` opens its own actor system outside the timed section and closes it after.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from typing import TYPE_CHECKING

from ._baselines import CYCLE_EVENTS, CYCLE_STATES, MAILBOX_CAPACITY, settle
from ._harness import Round

if TYPE_CHECKING:
    from stateward.runtime import Actor, Machine

__all__ = (
    "STATEWARD",
    "cycle_machine",
    "fire_round",
    "tell_round",
    "ask_round",
    "spawn_round",
    "idle_memory_round",
    "passivated_memory_round",
    "fsm_actor_round",
)

#: The subject's name in reports.
STATEWARD = "stateward"


def cycle_machine() -> Machine:
    """The 4-state loop of :data:`CYCLE_STATES`, one event per state, as a stateward Machine."""
    from stateward.runtime import Machine, StateKind, Transition

    count = len(CYCLE_STATES)
    return Machine(
        "bench-cycle",
        states=dict.fromkeys(CYCLE_STATES, StateKind.STABLE),
        initial=CYCLE_STATES[0],
        transitions=[
            Transition(state, event, CYCLE_STATES[(i + 1) % count])
            for i, (state, event) in enumerate(zip(CYCLE_STATES, CYCLE_EVENTS, strict=True))
        ],
    )


def fire_round(transitions: int) -> Round:
    """Transitions per second of ``MachineInstance.fire`` cycling the 4-state loop.

    ``at`` is a constant: reading the clock is the caller's cost, and the peers do not read
    one either. The FSM actor row measures the whole path, clock included.
    """
    instance = cycle_machine().instance("bench-1")
    fire = instance.fire
    events = CYCLE_EVENTS
    cycle = len(events)
    start = time.perf_counter()
    for i in range(transitions):
        fire(events[i % cycle], at=0.0)
    elapsed = time.perf_counter() - start
    return Round(transitions / elapsed)


def _counter_factory(target: int, done: asyncio.Future[None]) -> type[Actor]:
    """An actor class that counts messages, resolves ``done`` at ``target`` and echoes."""
    from stateward.runtime import Actor

    class Counter(Actor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        async def receive(self, message: object) -> object:
            self.count += 1
            if self.count == target:
                done.set_result(None)
            return self.count

    return Counter


async def tell_round(messages: int) -> Round:
    """Tells per second from one producer awaiting ``ref.tell`` to one counting actor."""
    from stateward.runtime import open_actor_system

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counter = _counter_factory(messages, done)
    async with open_actor_system() as system:
        ref = system.spawn(counter, address="counter", mailbox_capacity=MAILBOX_CAPACITY)
        tell = ref.tell
        start = time.perf_counter()
        for i in range(messages):
            await tell(i)
        await done
        elapsed = time.perf_counter() - start
    return Round(messages / elapsed)


async def ask_round(asks: int) -> Round:
    """Sequential ``await ref.ask(message)`` round trips per second, with per-ask latency."""
    from stateward.runtime import open_actor_system

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counter = _counter_factory(-1, done)
    async with open_actor_system() as system:
        ref = system.spawn(counter, address="counter", mailbox_capacity=MAILBOX_CAPACITY)
        ask = ref.ask
        clock = time.perf_counter
        latencies = [0.0] * asks
        start = clock()
        for i in range(asks):
            sent = clock()
            await ask(i)
            latencies[i] = clock() - sent
        elapsed = clock() - start
    return Round(asks / elapsed, latencies)


async def spawn_round(spawns: int) -> Round:
    """Actors spawned per second, up to one loop pass so that their tasks have started."""
    from stateward.runtime import open_actor_system

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counter = _counter_factory(-1, done)
    # Addresses are made before the clock starts: formatting strings is the caller's cost,
    # and the bare baseline has no addresses at all.
    addresses = [f"counter-{i}" for i in range(spawns)]
    async with open_actor_system() as system:
        spawn = system.spawn
        start = time.perf_counter()
        for address in addresses:
            spawn(counter, address=address, mailbox_capacity=MAILBOX_CAPACITY)
        await asyncio.sleep(0)
        elapsed = time.perf_counter() - start
    return Round(spawns / elapsed)


async def _memory_round(actors: int, *, passivated: bool) -> Round:
    from stateward.runtime import open_actor_system

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    counter = _counter_factory(-1, done)
    addresses = [f"counter-{i}" for i in range(actors)]
    async with open_actor_system() as system:
        # The system's own fixed cost is paid before tracing starts; only the per-actor
        # growth is wanted. The address strings exist already, on both sides of the row.
        await settle()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            refs = [
                system.spawn(
                    counter,
                    address=address,
                    mailbox_capacity=MAILBOX_CAPACITY,
                    passivated=passivated,
                )
                for address in addresses
            ]
            if not passivated:
                for ref in refs:
                    await ref.ask(None)
            await settle()
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    return Round(grown / actors)


async def idle_memory_round(actors: int) -> Round:
    """Bytes per live idle actor: spawned, asked once, then left waiting for mail."""
    return await _memory_round(actors, passivated=False)


async def passivated_memory_round(actors: int) -> Round:
    """Bytes per passivated actor: registered at its address, never instantiated."""
    return await _memory_round(actors, passivated=True)


async def fsm_actor_round(asks: int) -> Round:
    """Transitions per second through an FSM actor, one sequential ask per event.

    This is the whole path of a command: mailbox, ``fire`` with the clock read, the append
    to the system's in-memory store, the bus publish and the reply.
    """
    from stateward.runtime import FSMActor, MemoryStore, open_actor_system

    cycle_definition = cycle_machine()

    class Cycle(FSMActor):
        machine = cycle_definition

    events = CYCLE_EVENTS
    cycle = len(events)
    # The system does not close a store it was given; closing it here stops its writer task.
    async with MemoryStore() as store, open_actor_system(store=store) as system:
        ref = system.spawn(Cycle, address="cycle", mailbox_capacity=MAILBOX_CAPACITY)
        ask = ref.ask
        clock = time.perf_counter
        latencies = [0.0] * asks
        start = clock()
        for i in range(asks):
            sent = clock()
            await ask(events[i % cycle])
            latencies[i] = clock() - sent
        elapsed = clock() - start
    return Round(asks / elapsed, latencies)

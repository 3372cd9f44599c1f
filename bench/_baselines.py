"""Baselines: the least an asyncio actor can be, and a plain dict state machine.

The *bare actor* is an ``asyncio.Queue`` with the same capacity as a stateward mailbox and one
task that takes messages off it. It has no supervision, no addresses, no error handling and no
lifecycle, so it is the floor any asyncio actor runtime is measured against: a ratio of 0.5
means stateward keeps half the throughput of a hand-written queue loop.

Each ``*_round`` coroutine runs one round and returns a :class:`~stateward.bench._harness.Round`;
set-up and tear-down stay outside the timed section.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc

from ._harness import Round

__all__ = (
    "BARE_ACTOR",
    "DICT_MACHINE",
    "MAILBOX_CAPACITY",
    "CYCLE_STATES",
    "CYCLE_EVENTS",
    "settle",
    "bare_tell_round",
    "bare_ask_round",
    "bare_spawn_round",
    "bare_idle_memory_round",
    "dict_transition_round",
)

#: The baseline's name in reports.
BARE_ACTOR = "asyncio.Queue actor"
#: The plain-dict state machine's name in reports.
DICT_MACHINE = "dict lookup loop"

#: Mailbox capacity for both sides of every actor row: stateward's default, so the bounded
#: queue applies the same back-pressure to the producer on both sides.
MAILBOX_CAPACITY = 1000

#: The 4-state loop every state machine row cycles through, one event per state.
CYCLE_STATES = ("pending", "building", "active", "stopped")
CYCLE_EVENTS = ("build", "finish", "stop", "restart")

#: Loop iterations that let freshly woken tasks reach their next ``await`` before memory is
#: measured; a handful is plenty, the count only has to be fixed.
_SETTLE_PASSES = 5


async def settle() -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(_SETTLE_PASSES):
        await asyncio.sleep(0)


class _BareActor:
    """A queue and a task: counts tells, answers asks with the running count."""

    __slots__ = ("count", "done", "queue", "target", "task")

    def __init__(self, capacity: int, *, target: int = 0) -> None:
        self.queue: asyncio.Queue[tuple[object, asyncio.Future[object] | None]] = asyncio.Queue(
            maxsize=capacity
        )
        self.count = 0
        self.target = target
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        queue = self.queue
        while True:
            _message, reply = await queue.get()
            self.count += 1
            if reply is not None:
                if not reply.done():
                    reply.set_result(self.count)
            elif self.count == self.target:
                self.done.set_result(None)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def bare_tell_round(messages: int) -> Round:
    """Tells per second from one producer awaiting ``put`` to one counting bare actor."""
    actor = _BareActor(MAILBOX_CAPACITY, target=messages)
    put = actor.queue.put
    start = time.perf_counter()
    for i in range(messages):
        await put((i, None))
    await actor.done
    elapsed = time.perf_counter() - start
    await actor.stop()
    return Round(messages / elapsed)


async def bare_ask_round(asks: int) -> Round:
    """Sequential round trips per second: put ``(message, future)``, await the future."""
    actor = _BareActor(MAILBOX_CAPACITY)
    put = actor.queue.put
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    latencies = [0.0] * asks
    start = clock()
    for i in range(asks):
        sent = clock()
        reply: asyncio.Future[object] = loop.create_future()
        await put((i, reply))
        await reply
        latencies[i] = clock() - sent
    elapsed = clock() - start
    await actor.stop()
    return Round(asks / elapsed, latencies)


async def bare_spawn_round(spawns: int) -> Round:
    """Bare actors created per second, up to each task having started waiting on its queue."""
    start = time.perf_counter()
    actors = [_BareActor(MAILBOX_CAPACITY) for _ in range(spawns)]
    # One pass of the loop so every task runs up to its first ``get``: an actor that has
    # never been scheduled is not really spawned.
    await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    for actor in actors:
        actor.task.cancel()
    await asyncio.gather(*(actor.task for actor in actors), return_exceptions=True)
    return Round(spawns / elapsed)


async def bare_idle_memory_round(actors: int) -> Round:
    """Bytes per idle bare actor: spawned, asked once, then left waiting on ``get``."""
    loop = asyncio.get_running_loop()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        live = [_BareActor(MAILBOX_CAPACITY) for _ in range(actors)]
        for actor in live:
            reply: asyncio.Future[object] = loop.create_future()
            await actor.queue.put((None, reply))
            await reply
        await settle()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for actor in live:
        await actor.stop()
    return Round(grown / actors)


def dict_transition_round(transitions: int) -> Round:
    """Transitions per second of a ``{(state, event): state}`` lookup cycling the loop."""
    table = {
        (state, event): CYCLE_STATES[(i + 1) % len(CYCLE_STATES)]
        for i, (state, event) in enumerate(zip(CYCLE_STATES, CYCLE_EVENTS, strict=True))
    }
    events = CYCLE_EVENTS
    cycle = len(events)
    state = CYCLE_STATES[0]
    start = time.perf_counter()
    for i in range(transitions):
        state = table[state, events[i % cycle]]
    elapsed = time.perf_counter() - start
    return Round(transitions / elapsed)

"""Actors: one message at a time, tell and ask, deadlines, backpressure, ask cycles."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest

from stateward.runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorStopped,
    AskTimeout,
    CommandRejected,
    DuplicateAddress,
    InvalidArgument,
    MailboxFull,
    Reply,
    StartReason,
    open_actor_system,
)


class Echo(Actor):
    """Replies with the message; raises on ``"boom"``, refuses ``"no"``."""

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        if message == "no":
            raise CommandRejected("refused")
        return message


class Slow(Actor):
    """Takes ``seconds`` of (virtual) time per message and checks nothing overlaps."""

    def __init__(self, seconds: float, log: list[Any]) -> None:
        self.seconds = seconds
        self.log = log
        self.inside = 0

    async def receive(self, message: Any) -> Any:
        self.inside += 1
        assert self.inside == 1, "two messages handled at once"
        self.log.append(("start", message))
        await asyncio.sleep(self.seconds)
        self.log.append(("end", message))
        self.inside -= 1
        return message


class Gate(Actor):
    """Blocks every message until the shared event is set."""

    def __init__(self, gate: asyncio.Event, seen: list[Any]) -> None:
        self.gate = gate
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        await self.gate.wait()
        self.seen.append(message)
        return message


@pytest.mark.virtual_time
async def test_one_message_at_a_time_awaits_included() -> None:
    """A handler runs to completion, awaits included, before the next message starts."""
    log: list[Any] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Slow(1.0, log), address="slow")
        for i in range(5):
            ref.tell_nowait(i)
        assert await ref.ask(5) == 5
    assert log == [(kind, i) for i in range(6) for kind in ("start", "end")]


async def test_ask_returns_the_handlers_value() -> None:
    """ask delivers the handler's return value to the asker."""
    async with open_actor_system() as system:
        ref = system.spawn(Echo, address="echo")
        assert await ref.ask({"x": 1}) == {"x": 1}
        assert ref.address == "echo"
        assert system.lookup("echo") == ref


async def test_crash_reaches_asker_with_cause_and_address() -> None:
    """A handler exception reaches the asker as ActorCrashed, cause chained, address named."""
    async with open_actor_system() as system:
        ref = system.spawn(Echo, address="echo")
        with pytest.raises(ActorCrashed) as info:
            await ref.ask("boom")
        assert info.value.address == "echo"
        assert isinstance(info.value.__cause__, RuntimeError)
        assert str(info.value).startswith("actor 'echo' crashed handling str: RuntimeError: boom")
        assert await ref.ask("again") == "again"  # restarted by its supervisor
        assert system.statistics().crashes == 1


async def test_rejection_is_not_a_crash() -> None:
    """A CommandRejected goes back to the asker as it is; the actor is not restarted."""
    async with open_actor_system() as system:
        ref = system.spawn(Echo, address="echo")
        with pytest.raises(CommandRejected, match="refused"):
            await ref.ask("no")
        ref.tell_nowait("no")
        assert await ref.ask("ok") == "ok"
        stats = system.statistics()
        assert (stats.crashes, stats.restarts, stats.rejected_tells) == (0, 0, 1)


@pytest.mark.virtual_time
async def test_ask_deadline_and_late_reply_is_dropped_and_counted() -> None:
    """An ask past its deadline raises AskTimeout; the reply that comes later is counted."""
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Slow(10.0, []), address="slow")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AskTimeout) as info:
            await ref.ask("late", timeout=1.0)
        assert loop.time() - started == pytest.approx(1.0)
        assert isinstance(info.value, TimeoutError)
        assert "did not answer str within 1s" in str(info.value)
        assert await ref.ask("next", timeout=30.0) == "next"
        stats = system.statistics()
        assert (stats.ask_timeouts, stats.late_replies) == (1, 1)


@pytest.mark.virtual_time
async def test_default_ask_timeout_comes_from_the_system() -> None:
    """ask without timeout uses the system's ask_timeout."""
    async with open_actor_system(ask_timeout=2.5) as system:
        ref = system.spawn(lambda: Slow(60.0, []), address="slow")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AskTimeout):
            await ref.ask("x")
        assert loop.time() - started == pytest.approx(2.5)


async def test_asking_stopped_or_unknown_actor_fails_at_once() -> None:
    """Asking a stopped actor raises ActorStopped at once; looking up an unknown one fails."""
    async with open_actor_system() as system:
        ref = system.spawn(Echo, address="echo")
        await system.stop("echo")
        assert not ref.is_alive
        with pytest.raises(ActorStopped, match="it was stopped"):
            await ref.ask("x")
        with pytest.raises(ActorStopped):
            ref.tell_nowait("x")
        with pytest.raises(ActorNotFound, match="no actor at address 'ghost'"):
            system.lookup("ghost")
        with pytest.raises(ActorNotFound):
            await system.stop("ghost")
        assert system.statistics().dead_letters == 2


async def test_bounded_mailbox_backpressure() -> None:
    """A full mailbox refuses tell_nowait and makes tell wait for room; nothing is lost."""
    gate = asyncio.Event()
    seen: list[Any] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Gate(gate, seen), address="gate", mailbox_capacity=2)
        ref.tell_nowait(0)
        await asyncio.sleep(0)  # the actor takes 0 and blocks in its handler
        ref.tell_nowait(1)
        ref.tell_nowait(2)
        with pytest.raises(MailboxFull, match="mailbox of 'gate' is full \\(2 messages\\)"):
            ref.tell_nowait(3)
        blocked = asyncio.create_task(ref.tell(3))
        asking = asyncio.create_task(ref.ask(4))
        await asyncio.sleep(0)
        assert not blocked.done()
        gate.set()
        await blocked
        assert await asking == 4
    assert seen == [0, 1, 2, 3, 4]
    assert system.statistics().mailbox_full >= 1


async def test_stop_overtakes_queued_messages() -> None:
    """A stop is handled before waiting user messages; those fail or become dead letters."""
    gate = asyncio.Event()
    seen: list[Any] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Gate(gate, seen), address="gate")
        first = asyncio.create_task(ref.ask("first"))
        await asyncio.sleep(0)
        queued = asyncio.create_task(ref.ask("queued"))
        ref.tell_nowait("told")
        await asyncio.sleep(0)
        stopping = asyncio.create_task(system.stop("gate"))
        await asyncio.sleep(0)
        gate.set()
        await stopping
        assert await first == "first"
        with pytest.raises(ActorStopped):
            await queued
        letters = system.dead_letters()
        assert [(d.address, d.message, d.reason) for d in letters] == [
            ("gate", "told", "it was stopped")
        ]
    assert seen == ["first"]


class Pinger(Actor):
    """Asks its peer while the peer may be asking it: a two-actor cycle."""

    def __init__(self, peer: str, *, blocking: bool, log: list[Any]) -> None:
        self.peer = peer
        self.blocking = blocking
        self.log = log
        self.pending: Any = None

    async def receive(self, message: Any) -> Any:
        peer = self.context.system.lookup(self.peer)
        if isinstance(message, Reply):
            self.log.append((self.context.address, "reply", message.unwrap()))
            return None
        if message == "start":
            if self.blocking:
                return await peer.ask("question", timeout=5.0)
            self.context.ask_later(peer, "question", tag="q")
            return None
        if message == "question":
            if self.blocking:
                return await peer.ask("counter-question", timeout=5.0)
            self.context.ask_later(peer, "counter-question", tag="cq")
            return f"answer from {self.context.address}"
        return f"counter-answer from {self.context.address}"


@pytest.mark.virtual_time
async def test_blocking_ask_cycle_deadlocks_until_deadline() -> None:
    """Two actors awaiting ask on each other deadlock; the deadline is the only way out."""
    async with open_actor_system() as system:
        a = system.spawn(lambda: Pinger("b", blocking=True, log=[]), address="a")
        system.spawn(lambda: Pinger("a", blocking=True, log=[]), address="b")
        with pytest.raises(ActorCrashed) as info:
            await a.ask("start", timeout=60.0)
        assert isinstance(info.value.__cause__, AskTimeout)


@pytest.mark.virtual_time
async def test_ask_later_breaks_the_ask_cycle() -> None:
    """With ask_later, the same cycle completes: replies arrive later as Reply messages."""
    log: list[Any] = []
    async with open_actor_system() as system:
        a = system.spawn(lambda: Pinger("b", blocking=False, log=log), address="a")
        b = system.spawn(lambda: Pinger("a", blocking=False, log=log), address="b")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await a.ask("start")
        for _ in range(10):
            await asyncio.sleep(0)
        await a.ask("sync")
        await b.ask("sync")
        assert loop.time() == started  # no deadline was needed
    assert sorted(log) == [
        ("a", "reply", "answer from b"),
        ("b", "reply", "counter-answer from a"),
    ]


@pytest.mark.virtual_time
async def test_ask_later_delivers_errors_as_replies() -> None:
    """ask_later turns a crash or a timeout of the asked actor into Reply.error."""
    replies: list[Reply] = []

    class Asker(Actor):
        async def receive(self, message: Any) -> Any:
            if isinstance(message, Reply):
                replies.append(message)
            else:
                target = self.context.system.lookup(message)
                self.context.ask_later(target, "boom", tag=message, timeout=1.0)

    async with open_actor_system() as system:
        system.spawn(Echo, address="echo")
        system.spawn(lambda: Slow(5.0, []), address="slow")
        asker = system.spawn(Asker, address="asker")
        await asker.ask("echo")
        await asker.ask("slow")
        await asyncio.sleep(10)
    by_tag = {r.tag: r for r in replies}
    assert isinstance(by_tag["echo"].error, ActorCrashed)
    assert isinstance(by_tag["slow"].error, AskTimeout)
    with pytest.raises(ActorCrashed):
        by_tag["echo"].unwrap()


async def test_rehydrate_runs_before_the_first_message() -> None:
    """rehydrate(SPAWN) runs once before the first message of an incarnation."""
    calls: list[Any] = []

    class Hydrated(Actor):
        async def rehydrate(self, reason: StartReason) -> None:
            calls.append(reason)

        async def receive(self, message: Any) -> Any:
            calls.append(message)

    async with open_actor_system() as system:
        ref = system.spawn(Hydrated, address="h")
        await ref.ask(1)
        await ref.ask(2)
    assert calls == [StartReason.SPAWN, 1, 2]


async def test_log_context_is_bound_per_actor_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """context.log carries the address, resource id, message type and task id."""

    class Command:
        task_id = "task-7"

    class Logger(Actor):
        async def receive(self, message: Any) -> Any:
            self.context.log.info("handled")

    async with open_actor_system() as system:
        ref = system.spawn(Logger, address="i-42")
        with caplog.at_level(logging.INFO, logger="stateward"):
            await ref.ask(Command())
    [entry] = [r for r in caplog.records if r.name.startswith("stateward")]
    assert (entry.name, entry.levelname) == ("stateward.system", "INFO")
    fields = ("system", "address", "resource_id", "message_type", "task_id")
    assert {f: getattr(entry, f) for f in fields} == {
        "system": "stateward",
        "address": "i-42",
        "resource_id": "i-42",
        "message_type": "Command",
        "task_id": "task-7",
    }
    assert entry.getMessage() == (
        "handled system='stateward' address='i-42' resource_id='i-42' "
        "message_type='Command' task_id='task-7'"
    )


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, "5", None])
async def test_ask_rejects_bad_timeouts(timeout: Any) -> None:
    """ask refuses a timeout that is not a positive finite number, and sends nothing."""
    async with open_actor_system() as system:
        ref = system.spawn(Echo, address="echo")
        with pytest.raises(InvalidArgument, match="timeout: expected a positive finite number"):
            await ref.ask("x", timeout=timeout)
        assert system.statistics().messages == 0


async def test_spawn_rejects_bad_input() -> None:
    """spawn refuses duplicate addresses, bad addresses, factories and options clearly."""
    async with open_actor_system() as system:
        system.spawn(Echo, address="echo")
        with pytest.raises(DuplicateAddress, match="already registered at 'echo'"):
            system.spawn(Echo, address="echo")
        with pytest.raises(InvalidArgument, match="address: expected a non-empty str"):
            system.spawn(Echo, address="")
        with pytest.raises(InvalidArgument, match="factory: expected a callable"):
            system.spawn(42, address="x")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="returning an Actor"):
            system.spawn(dict, address="x")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="mailbox_capacity: expected an int >= 1"):
            system.spawn(Echo, address="x", mailbox_capacity=0)
        with pytest.raises(InvalidArgument, match="restart"):
            system.spawn(Echo, address="x", restart="always")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="idle_after"):
            system.spawn(Echo, address="x", idle_after=-1)
        assert "x" not in system
        assert system.statistics().actors == 1


async def test_refs_compare_by_cell() -> None:
    """Two references to one actor are equal and hash alike; different actors differ."""
    async with open_actor_system() as system:
        a = system.spawn(Echo, address="a")
        b = system.spawn(Echo, address="b")
        assert a == system.lookup("a")
        assert len({a, system.lookup("a"), b}) == 2
        assert a != b
        assert repr(a) == "ActorRef('a')"
        assert isinstance(a, ActorRef)

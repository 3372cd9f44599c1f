"""Supervision: strategies, restart types, restart intensity, escalation, shutdown order."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from stateward.runtime import (
    Actor,
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    Restart,
    RestartIntensityExceeded,
    StartReason,
    Strategy,
    SystemNotRunning,
    open_actor_system,
)

_incarnations = itertools.count(1)


class Worker(Actor):
    """Knows its incarnation number; crashes on "crash", exits on "exit"."""

    def __init__(self, events: list[tuple[str, str, Any]]) -> None:
        self.events = events
        self.incarnation = next(_incarnations)
        self.handled: list[Any] = []

    async def rehydrate(self, reason: StartReason) -> None:
        self.events.append(("start", self.context.address, reason))

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.context.address} crashed")
        if message == "exit":
            self.context.stop()
        self.handled.append(message)
        return self.incarnation

    async def on_stop(self) -> None:
        self.events.append(("stop", self.context.address, None))


async def settle() -> None:
    """Let supervisors handle what is pending."""
    for _ in range(20):
        await asyncio.sleep(0)


async def incarnations(system: Any, *addresses: str) -> list[int]:
    return [await system.lookup(a).ask("who") for a in addresses]


async def test_one_for_one_restarts_only_the_failed_child() -> None:
    """ONE_FOR_ONE: the crashed child gets a new incarnation, its siblings keep theirs."""
    events: list[Any] = []
    async with open_actor_system() as system:
        sup = system.spawn_supervisor("sup", strategy=Strategy.ONE_FOR_ONE)
        for name in "abc":
            system.spawn(lambda: Worker(events), address=name, supervisor=sup)
        before = await incarnations(system, "a", "b", "c")
        with pytest.raises(ActorCrashed):
            await system.lookup("b").ask("crash")
        await settle()
        after = await incarnations(system, "a", "b", "c")
        assert sup.children == ("a", "b", "c")
    assert (after[0], after[2]) == (before[0], before[2])
    assert after[1] != before[1]
    assert ("start", "b", StartReason.RESTART) in events


async def test_one_for_all_restarts_every_child_in_order() -> None:
    """ONE_FOR_ALL: siblings stop in reverse start order, then all restart in start order."""
    events: list[Any] = []
    async with open_actor_system() as system:
        sup = system.spawn_supervisor("sup", strategy=Strategy.ONE_FOR_ALL)
        for name in "abc":
            system.spawn(lambda: Worker(events), address=name, supervisor=sup)
        before = await incarnations(system, "a", "b", "c")
        events.clear()
        with pytest.raises(ActorCrashed):
            await system.lookup("b").ask("crash")
        await settle()
        after = await incarnations(system, "a", "b", "c")
        restart_events = list(events)
    assert all(x != y for x, y in zip(before, after, strict=True))
    assert restart_events == [
        ("stop", "c", None),
        ("stop", "a", None),
        ("start", "a", StartReason.RESTART),
        ("start", "b", StartReason.RESTART),
        ("start", "c", StartReason.RESTART),
    ]


async def test_rest_for_one_restarts_the_failed_child_and_later_ones() -> None:
    """REST_FOR_ONE: children started after the failed one restart too, earlier ones don't."""
    events: list[Any] = []
    async with open_actor_system() as system:
        sup = system.spawn_supervisor("sup", strategy=Strategy.REST_FOR_ONE)
        for name in "abcd":
            system.spawn(lambda: Worker(events), address=name, supervisor=sup)
        before = await incarnations(system, *"abcd")
        events.clear()
        with pytest.raises(ActorCrashed):
            await system.lookup("b").ask("crash")
        await settle()
        after = await incarnations(system, *"abcd")
        restart_events = list(events)
    assert after[0] == before[0]
    assert all(x != y for x, y in zip(before[1:], after[1:], strict=True))
    assert restart_events == [
        ("stop", "d", None),
        ("stop", "c", None),
        ("start", "b", StartReason.RESTART),
        ("start", "c", StartReason.RESTART),
        ("start", "d", StartReason.RESTART),
    ]


async def test_crashing_message_is_not_redelivered_and_queue_survives() -> None:
    """The message that crashed fails its asker only; messages queued behind it are kept."""
    events: list[Any] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Worker(events), address="w")
        await ref.ask("warm")
        crash = asyncio.create_task(ref.ask("crash"))
        queued = [asyncio.create_task(ref.ask(i)) for i in range(3)]
        with pytest.raises(ActorCrashed):
            await crash
        results = await asyncio.gather(*queued)
        assert len(set(results)) == 1  # all handled by the one new incarnation
        assert system.statistics().messages == 5


async def test_temporary_child_is_removed_when_it_crashes() -> None:
    """A TEMPORARY child is never restarted: it is removed and its queued asks fail."""
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Worker([]), address="t", restart=Restart.TEMPORARY)
        crash = asyncio.create_task(ref.ask("crash"))
        queued = asyncio.create_task(ref.ask("after"))
        with pytest.raises(ActorCrashed):
            await crash
        with pytest.raises(ActorStopped, match="temporary"):
            await queued
        with pytest.raises(ActorNotFound):
            system.lookup("t")
        assert system.statistics().restarts == 0


async def test_transient_child_restarts_on_crash_but_not_on_exit() -> None:
    """A TRANSIENT child restarts after a crash; stopping itself removes it."""
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Worker([]), address="t", restart=Restart.TRANSIENT)
        first = await ref.ask("who")
        with pytest.raises(ActorCrashed):
            await ref.ask("crash")
        assert await ref.ask("who") != first
        await ref.ask("exit")
        await settle()
        assert not ref.is_alive
        with pytest.raises(ActorNotFound):
            system.lookup("t")


async def test_permanent_child_restarts_even_after_exit() -> None:
    """A PERMANENT child that stops itself is restarted, as in OTP."""
    events: list[Any] = []
    async with open_actor_system() as system:
        ref = system.spawn(lambda: Worker(events), address="p")
        first = await ref.ask("exit")
        await settle()
        assert await ref.ask("who") != first
    assert ("stop", "p", None) in events


@pytest.mark.virtual_time
async def test_restart_intensity_escalates_to_parent() -> None:
    """More than max_restarts in period: the supervisor stops its children and escalates."""
    events: list[Any] = []
    async with open_actor_system(max_restarts=5, period=60.0) as system:
        sup = system.spawn_supervisor("sup", max_restarts=2, period=10.0)
        ref = system.spawn(lambda: Worker(events), address="w", supervisor=sup)
        sibling = system.spawn(lambda: Worker(events), address="s", supervisor=sup)
        sibling_before = await sibling.ask("who")
        for _ in range(3):
            with pytest.raises(ActorCrashed):
                await ref.ask("crash")
            await settle()
        # The root restarted "sup", and "sup" restarted all of its children afresh.
        assert await sibling.ask("who") != sibling_before
        stats = system.statistics()
        assert stats.escalations == 1
        assert system.failure is None


@pytest.mark.virtual_time
async def test_restarts_spread_over_time_do_not_escalate() -> None:
    """Restarts older than the period no longer count toward the intensity."""
    async with open_actor_system(max_restarts=2, period=10.0) as system:
        ref = system.spawn(lambda: Worker([]), address="w")
        for _ in range(6):
            with pytest.raises(ActorCrashed):
                await ref.ask("crash")
            await settle()
            await asyncio.sleep(6.0)
        assert system.statistics().escalations == 0
        assert system.is_running


@pytest.mark.virtual_time
async def test_root_escalation_stops_the_system_with_a_clear_error() -> None:
    """When the root gives up, the system stops and leaving it raises the escalation."""

    async def scenario() -> None:
        async with open_actor_system(max_restarts=1, period=10.0) as system:
            ref = system.spawn(lambda: Worker([]), address="w")
            for _ in range(2):
                with pytest.raises(ActorCrashed):
                    await ref.ask("crash")
                await settle()
            await settle()
            assert not system.is_running
            with pytest.raises(SystemNotRunning) as stopped:
                system.spawn(lambda: Worker([]), address="late")
            assert stopped.value.__cause__ is system.failure
            with pytest.raises(ActorStopped):
                await ref.ask("who")

    with pytest.raises(RestartIntensityExceeded) as info:
        await scenario()
    assert "supervisor '/root' exceeded its restart intensity (1 restarts in 10s)" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, RuntimeError)


async def test_failing_rehydrate_is_not_restarted_and_never_escalates() -> None:
    """A rehydrate that always fails fails each ask, but is no restart: intensity holds."""

    class Broken(Actor):
        async def rehydrate(self, reason: StartReason) -> None:
            raise OSError("store unreachable")

        async def receive(self, message: Any) -> Any:
            return message

    class Healthy(Actor):
        async def receive(self, message: Any) -> Any:
            return message

    async with open_actor_system(max_restarts=2, period=60.0) as system:
        broken = system.spawn(Broken, address="b")
        healthy = system.spawn(Healthy, address="h")
        for _ in range(5):
            with pytest.raises(ActorCrashed, match=r"crashed handling rehydrate") as info:
                await broken.ask("x")
            assert isinstance(info.value.__cause__, OSError)
        assert await healthy.ask("still here") == "still here"
        stats = system.statistics()
        assert (stats.crashes, stats.restarts, stats.escalations) == (5, 0, 0)
        assert broken.is_alive  # registered, passivated: its next message tries again


@pytest.mark.virtual_time
async def test_shutdown_reverse_start_order_and_kill_after_timeout() -> None:
    """Shutdown stops children in reverse start order; a stuck handler is killed in time."""
    events: list[Any] = []

    class Stuck(Actor):
        async def receive(self, message: Any) -> Any:
            await asyncio.sleep(3600)

        async def on_stop(self) -> None:
            events.append(("stop", "stuck", None))

    loop = asyncio.get_running_loop()
    async with open_actor_system() as system:
        for name in "ab":
            await system.spawn(lambda: Worker(events), address=name).ask("hi")
        stuck = system.spawn(Stuck, address="stuck", shutdown_timeout=2.0)
        pending = asyncio.create_task(stuck.ask("hang", timeout=7200))
        await asyncio.sleep(0)
        for name in "cd":
            await system.spawn(lambda: Worker(events), address=name).ask("hi")
        events.clear()
        started = loop.time()
    assert loop.time() - started == pytest.approx(2.0)
    assert [e[1] for e in events if e[0] == "stop"] == ["d", "c", "b", "a"]
    with pytest.raises(ActorStopped, match="killed"):
        await pending


async def test_spawn_supervisor_rejects_bad_policy() -> None:
    """spawn_supervisor refuses a bad strategy, intensity or parent."""
    from stateward.runtime import DuplicateAddress, InvalidArgument

    async with open_actor_system() as system:
        system.spawn_supervisor("sup")
        with pytest.raises(DuplicateAddress):
            system.spawn_supervisor("sup")
        with pytest.raises(InvalidArgument, match="strategy"):
            system.spawn_supervisor("x", strategy="one_for_one")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="max_restarts"):
            system.spawn_supervisor("x", max_restarts=-1)
        with pytest.raises(InvalidArgument, match="period"):
            system.spawn_supervisor("x", period=0)
        with pytest.raises(InvalidArgument, match="supervisor"):
            system.spawn(lambda: Worker([]), address="w", supervisor="sup")  # type: ignore[arg-type]
        assert system.supervisor("sup").children == ()

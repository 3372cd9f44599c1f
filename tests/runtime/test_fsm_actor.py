"""Tests of FSMActor: commands, refusals, commit order, store failures, restarts."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.runtime import (
    ActorCrashed,
    CommandRejected,
    CommitFailed,
    DriveTo,
    Environment,
    Fire,
    FSMActor,
    GoalUnreachable,
    InvalidArgument,
    InvalidTransition,
    Machine,
    MemoryStore,
    StartReason,
    StateKind,
    StatewardError,
    StoreUnavailable,
    Subscription,
    Transition,
    TransitionRecord,
    VirtualClock,
    Write,
    open_actor_system,
)
from stateward.runtime._env import VIRTUAL_EPOCH

POWER = Machine(
    "power",
    states={
        "stopped": StateKind.STABLE,
        "starting": StateKind.TRANSITIONAL,
        "running": StateKind.STABLE,
        "stopping": StateKind.TRANSITIONAL,
        "deleted": StateKind.TERMINAL,
    },
    initial="stopped",
    transitions=[
        Transition("stopped", "start", "starting"),
        Transition("starting", "started", "running"),
        Transition("starting", "fail", "stopped"),
        Transition("running", "stop", "stopping"),
        Transition("stopping", "stopped", "stopped"),
        Transition("stopped", "delete", "deleted"),
    ],
)
VM = "vm-1"


@dataclass(frozen=True)
class Probe:
    """Asks a test actor for its state, sequence and why its incarnation started."""


@dataclass(frozen=True)
class Boom:
    """Makes a test actor's handler raise: a crash."""


class Power(FSMActor):
    """An FSM actor over POWER that also answers Probe and crashes on Boom."""

    machine = POWER

    async def rehydrate(self, reason: StartReason) -> None:
        self.started_by = reason
        await super().rehydrate(reason)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Probe):
            return self.state, self.instance.sequence, self.started_by
        if isinstance(message, Boom):
            raise RuntimeError("boom")
        return await super().receive(message)


def virtual_env() -> Environment:
    """A seeded environment on the running virtual-time loop's clock."""
    return Environment(clock=VirtualClock.current(), seed=1)


async def history(store: object, resource_id: str = VM) -> tuple[TransitionRecord, ...]:
    """Every journal record of ``resource_id`` in ``store`` (a MemoryStore), oldest first."""
    assert isinstance(store, MemoryStore)
    return await store.history(resource_id, limit=1000)


# --------------------------------------------------------------------------------------------
# Accepted commands


@pytest.mark.virtual_time
async def test_event_string_fires_and_replies_with_the_record() -> None:
    """Asking an event name fires it; the reply is the committed TransitionRecord."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await asyncio.sleep(60)
        record = await ref.ask("start")
        assert record == TransitionRecord(
            VM, 1, "stopped", "start", "starting", None, None, VIRTUAL_EPOCH + 60
        )
        assert await ref.ask(Probe()) == ("starting", 1, StartReason.SPAWN)


@pytest.mark.virtual_time
async def test_fire_records_task_and_cause() -> None:
    """A Fire command records its task id and cause in the transition record."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        record = await ref.ask(Fire("start", task_id="task-1", cause="user asked"))
        assert (record.event, record.task_id, record.cause) == ("start", "task-1", "user asked")
        assert await history(system.store) == (record,)


@pytest.mark.virtual_time
async def test_drive_to_fires_the_shortest_path() -> None:
    """DriveTo fires the shortest event path and replies with every record in order."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        records = await ref.ask(DriveTo("running", task_id="task-7"))
        assert [(r.sequence, r.source, r.event, r.target) for r in records] == [
            (1, "stopped", "start", "starting"),
            (2, "starting", "started", "running"),
        ]
        assert all(r.task_id == "task-7" for r in records)
        assert await ref.ask(DriveTo("running")) == ()
        assert [r.event for r in await ref.ask(DriveTo("deleted"))] == ["stop", "stopped", "delete"]
        assert (await history(system.store))[-1].sequence == 5


@pytest.mark.virtual_time
async def test_transitions_are_published_on_the_bus() -> None:
    """Each accepted transition is published as `transition.<machine>.<resource id>`."""
    async with open_actor_system(env=virtual_env()) as system:
        with system.bus.subscribe("transition.power.*") as subscription:
            ref = system.spawn(Power, address=VM)
            records = await ref.ask(DriveTo("running"))
            first = subscription.receive_nowait()
            second = subscription.receive_nowait()
            assert subscription.receive_nowait() is None
        assert first is not None
        assert second is not None
        assert (first.topic, second.topic) == ("transition.power.vm-1", "transition.power.vm-1")
        assert (first.payload, second.payload) == records


@pytest.mark.virtual_time
async def test_actor_can_use_its_own_store() -> None:
    """An FSM actor given a store commits there instead of the system's store."""
    own = MemoryStore()
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(lambda: Power(store=own), address=VM)
        record = await ref.ask("start")
        assert await history(own) == (record,)
        assert await history(system.store) == ()


# --------------------------------------------------------------------------------------------
# Refused commands


@pytest.mark.virtual_time
async def test_invalid_event_is_refused_without_a_crash() -> None:
    """An event the state does not allow raises InvalidTransition; the actor is unharmed."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        with pytest.raises(
            InvalidTransition,
            match=r"^vm-1 cannot `stop` in state `stopped`; allowed: start, delete$",
        ) as info:
            await ref.ask("stop")
        error = info.value
        assert (error.resource_id, error.state, error.event) == (VM, "stopped", "stop")
        assert error.allowed == ("start", "delete")

        stats = system.statistics()
        assert (stats.crashes, stats.restarts) == (0, 0)
        assert await ref.ask(Probe()) == ("stopped", 0, StartReason.SPAWN)
        assert await history(system.store) == ()
        assert (await ref.ask("start")).sequence == 1


@pytest.mark.virtual_time
async def test_unknown_event_is_refused_naming_the_allowed_ones() -> None:
    """An event the machine does not know raises InvalidTransition listing allowed events."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        with pytest.raises(InvalidTransition, match=r"cannot `explode` in state `stopped`"):
            await ref.ask(Fire("explode"))
        assert system.statistics().crashes == 0


@pytest.mark.virtual_time
async def test_event_in_a_terminal_state_says_none_is_allowed() -> None:
    """In a terminal state the refusal says no event is allowed."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask("delete")
        with pytest.raises(InvalidTransition, match=r"allowed: none \(terminal state\)$"):
            await ref.ask("start")


@pytest.mark.virtual_time
async def test_told_invalid_event_is_counted_not_crashed() -> None:
    """A refused event sent with tell is counted as a rejected tell, not a crash."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.tell("stop")
        assert await ref.ask(Probe()) == ("stopped", 0, StartReason.SPAWN)
        stats = system.statistics()
        assert (stats.rejected_tells, stats.crashes) == (1, 0)


@pytest.mark.virtual_time
async def test_unreachable_goal_is_refused_and_changes_nothing() -> None:
    """DriveTo a state no path leads to raises GoalUnreachable and fires nothing."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask("delete")
        before = await history(system.store)
        with pytest.raises(
            GoalUnreachable,
            match=r"^vm-1 cannot reach state `running` from `deleted`: no event path leads there$",
        ) as info:
            await ref.ask(DriveTo("running"))
        assert (info.value.resource_id, info.value.state, info.value.goal) == (
            VM,
            "deleted",
            "running",
        )
        assert await history(system.store) == before
        assert await ref.ask(Probe()) == ("deleted", 1, StartReason.SPAWN)
        assert system.statistics().crashes == 0


@pytest.mark.virtual_time
async def test_unknown_message_type_is_refused_with_a_clear_message() -> None:
    """A message that is no event name, Fire or DriveTo fails the ask saying what is expected."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask("start")
        with pytest.raises(StatewardError) as info:
            await ref.ask(42)
        text = f"{info.value} {info.value.__cause__}"
        assert "expected an event name, Fire, DriveTo or TimerFired, got 'int'" in text
        state, sequence, _ = await ref.ask(Probe())
        assert (state, sequence) == ("starting", 1)


@pytest.mark.virtual_time
async def test_unknown_message_type_does_not_crash_the_actor() -> None:
    """An unknown message type is a refused command: CommandRejected, no crash, no restart."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        with pytest.raises(CommandRejected):
            await ref.ask(42)
        assert system.statistics().crashes == 0


@pytest.mark.virtual_time
async def test_drive_to_unknown_state_does_not_crash_the_actor() -> None:
    """DriveTo a state the machine does not define is refused without crashing the actor."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        with pytest.raises(CommandRejected, match=r"nowhere"):
            await ref.ask(DriveTo("nowhere"))
        assert system.statistics().crashes == 0


@pytest.mark.virtual_time
async def test_class_without_machine_fails_at_spawn() -> None:
    """Spawning an FSMActor subclass that has no `machine` raises InvalidArgument."""

    class Bare(FSMActor):
        pass

    async with open_actor_system(env=virtual_env()) as system:
        with pytest.raises(
            InvalidArgument, match=r"^Bare\.machine: expected a Machine class attribute, got None$"
        ):
            system.spawn(Bare, address=VM)
        assert VM not in system


@pytest.mark.virtual_time
async def test_bad_store_fails_at_spawn() -> None:
    """An FSM actor given a store that is no Store fails at spawn."""
    async with open_actor_system(env=virtual_env()) as system:
        with pytest.raises(InvalidArgument, match=r"^store: expected a Store, got <object"):
            system.spawn(lambda: Power(store=object()), address=VM)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Commit before acknowledgement and before publication


class OrderStore(MemoryStore):
    """A store that notes, at each commit, whether the bus has published the record yet."""

    def __init__(self) -> None:
        super().__init__()
        self.watch: Subscription | None = None
        self.calls: list[tuple[str, int, bool]] = []

    async def commit(self, write: Write) -> None:
        assert self.watch is not None
        published = self.watch.receive_nowait() is not None
        await super().commit(write)
        assert write.record is not None
        self.calls.append(("commit", write.record.sequence, published))


class NotingPower(Power):
    """Notes on_transition calls in its OrderStore, with whether the record is committed."""

    async def on_transition(self, record: TransitionRecord) -> None:
        store = self.store
        assert isinstance(store, OrderStore)
        committed = record in await history(store, record.resource_id)
        store.calls.append(("on_transition", record.sequence, committed))


@pytest.mark.virtual_time
async def test_record_is_committed_before_publication_and_reply() -> None:
    """The store has the record before the bus publishes it and before the ask returns."""
    store = OrderStore()
    async with open_actor_system(env=virtual_env(), store=store) as system:
        store.watch = system.bus.subscribe("transition.power.vm-1")
        ref = system.spawn(NotingPower, address=VM)

        record = await ref.ask("start")
        assert store.calls == [("commit", 1, False), ("on_transition", 1, True)]
        assert await history(store) == (record,)
        event = store.watch.receive_nowait()
        assert event is not None
        assert event.payload == record


class GatedStore(MemoryStore):
    """A store whose commits wait until the test opens the gate: a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def commit(self, write: Write) -> None:
        await self.gate.wait()
        await super().commit(write)


@pytest.mark.virtual_time
async def test_ask_waits_for_a_slow_store() -> None:
    """An ask that changes state is answered only once the store has committed the record."""
    store = GatedStore()
    async with open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Power, address=VM)
        with system.bus.subscribe("transition.#") as subscription:
            ask = asyncio.create_task(ref.ask("start"))
            await asyncio.sleep(5)
            assert not ask.done()
            assert subscription.receive_nowait() is None
            assert await history(store) == ()

            store.gate.set()
            record = await asyncio.wait_for(ask, timeout=1)
            assert await history(store) == (record,)
            event = subscription.receive_nowait()
            assert event is not None
            assert event.payload == record


# --------------------------------------------------------------------------------------------
# A store that refuses


@pytest.mark.virtual_time
async def test_commit_failure_rejects_the_ask_and_keeps_the_old_state() -> None:
    """A refused commit fails the ask with CommitFailed from StoreUnavailable; nothing moved."""
    store = MemoryStore()
    async with open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Power, address=VM)
        with system.bus.subscribe("transition.#") as subscription:
            await ref.ask("start")
            assert subscription.receive_nowait() is not None
            store.fail_writes(1)
            with pytest.raises(
                CommitFailed,
                match=r"^vm-1: `started` was not committed \(disk full\); it stays at revision 1, "
                r"retry the command \(a write that reached the disk all the same is found",
            ) as info:
                await ref.ask("started")
            error = info.value
            assert (error.resource_id, error.event, error.revision) == (VM, "started", 1)
            assert isinstance(error, CommandRejected)
            assert isinstance(error.__cause__, StoreUnavailable)
            assert error.__cause__.reason == "disk full"
            assert subscription.receive_nowait() is None  # never published

            assert await ref.ask(Probe()) == ("starting", 1, StartReason.SPAWN)
            record = await ref.ask("started")
            assert (record.sequence, record.source, record.target) == (2, "starting", "running")
            assert [r.sequence for r in await history(store)] == [1, 2]
            stats = system.statistics()
            assert (stats.crashes, stats.restarts) == (0, 0)


@pytest.mark.virtual_time
async def test_commit_failure_rolls_back_the_live_instance() -> None:
    """After refused commits the same incarnation is back in its old state and sequence."""
    store = MemoryStore()
    async with open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask("start")
        store.fail_writes(2)
        with pytest.raises(CommitFailed, match=r"`started` was not committed"):
            await ref.ask("started")
        with pytest.raises(CommitFailed, match=r"`fail` was not committed"):
            await ref.ask("fail")

        assert await ref.ask(Probe()) == ("starting", 1, StartReason.SPAWN)
        record = await ref.ask("fail")
        assert (record.sequence, record.source, record.target) == (2, "starting", "stopped")
        stats = system.statistics()
        assert (stats.crashes, stats.restarts) == (0, 0)


@pytest.mark.virtual_time
async def test_told_event_that_fails_to_commit_is_a_rejected_tell() -> None:
    """A told event whose commit fails is counted as a rejected tell, not a crash."""
    store = MemoryStore()
    async with open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Power, address=VM)
        store.fail_writes(1)
        await ref.tell("start")
        assert await ref.ask(Probe()) == ("stopped", 0, StartReason.SPAWN)
        stats = system.statistics()
        assert (stats.rejected_tells, stats.crashes) == (1, 0)


# --------------------------------------------------------------------------------------------
# State survives restarts and passivation


@pytest.mark.virtual_time
async def test_state_survives_a_supervisor_restart() -> None:
    """After a crash, the restarted incarnation rehydrates its state from the store."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask(DriveTo("running"))
        with pytest.raises(
            ActorCrashed, match=r"crashed handling Boom: RuntimeError: boom"
        ) as info:
            await ref.ask(Boom())
        assert isinstance(info.value.__cause__, RuntimeError)

        assert await ref.ask(Probe()) == ("running", 2, StartReason.RESTART)
        record = await ref.ask("stop")
        assert (record.sequence, record.source) == (3, "running")
        stats = system.statistics()
        assert (stats.crashes, stats.restarts) == (1, 1)


@pytest.mark.virtual_time
async def test_state_survives_passivation() -> None:
    """A passivated FSM actor comes back in its committed state on its next message."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask(DriveTo("running"))
        await asyncio.sleep(1)  # let the actor go idle
        assert await system.passivate(VM) is True
        assert system.statistics().passivated == 1

        assert await ref.ask(Probe()) == ("running", 2, StartReason.REACTIVATE)
        assert (await ref.ask("stop")).sequence == 3
        stats = system.statistics()
        assert (stats.passivations, stats.activations) == (1, 1)


@pytest.mark.virtual_time
async def test_idle_fsm_actor_is_passivated_and_restored() -> None:
    """An FSM actor idle past its idle_after is passivated, then restored from the store."""
    async with open_actor_system(env=virtual_env(), sweep_interval=1.0) as system:
        ref = system.spawn(Power, address=VM, idle_after=30.0)
        await ref.ask("start")
        await asyncio.sleep(60)
        assert system.statistics().passivated == 1
        assert await ref.ask(Probe()) == ("starting", 1, StartReason.REACTIVATE)


@pytest.mark.virtual_time
async def test_passivated_spawn_starts_from_the_store() -> None:
    """An FSM actor spawned passivated rehydrates from records already in the store."""
    store = MemoryStore()
    record = TransitionRecord(VM, 1, "stopped", "start", "starting", None, None, 0.0)
    await store.commit(Write("power", record))
    async with open_actor_system(env=virtual_env(), store=store) as system:
        ref = system.spawn(Power, address=VM, passivated=True)
        assert await ref.ask(Probe()) == ("starting", 1, StartReason.REACTIVATE)
        assert (await ref.ask("started")).sequence == 2


@pytest.mark.virtual_time
async def test_passivate_right_after_an_ask() -> None:
    """An actor whose ask has been answered is idle and can be passivated at once."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Power, address=VM)
        await ref.ask("start")
        assert await system.passivate(VM) is True


# --------------------------------------------------------------------------------------------
# Property: the actor accepts exactly what the transition table allows

UNKNOWN_EVENT = "explode"
TABLE = {(t.source, t.event): t.target for t in POWER.transitions}


async def run_commands(commands: list[tuple[str, bool]]) -> None:
    """Send each event (as a str or a Fire) to a fresh actor and check it against TABLE."""
    async with open_actor_system(env=Environment(clock=VirtualClock.current(), seed=0)) as system:
        ref = system.spawn(Power, address=VM)
        state, accepted = POWER.initial, []
        for event, as_fire in commands:
            message = Fire(event) if as_fire else event
            target = TABLE.get((state, event))
            if target is None:
                with pytest.raises(InvalidTransition) as info:
                    await ref.ask(message)
                assert (info.value.state, info.value.event) == (state, event)
                continue
            record = await ref.ask(message)
            accepted.append((state, event, target))
            assert (record.source, record.event, record.target) == (state, event, target)
            state = target

        records = await history(system.store)
        assert [(r.source, r.event, r.target) for r in records] == accepted
        assert [r.sequence for r in records] == list(range(1, len(accepted) + 1))
        for before, after in itertools.pairwise(records):
            assert before.target == after.source
        assert await ref.ask(Probe()) == (state, len(accepted), StartReason.SPAWN)
        assert system.statistics().crashes == 0


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*POWER.events, UNKNOWN_EVENT]), st.booleans()),
        max_size=30,
    )
)
def test_actor_accepts_exactly_what_the_table_allows(commands: list[tuple[str, bool]]) -> None:
    """For any event sequence, accepted events and stored records follow the table."""
    VirtualClock().run(run_commands(commands))

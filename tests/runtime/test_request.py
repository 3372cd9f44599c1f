"""Requests: a typing-only base that commands subclass, at no cost per message."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.runtime import (
    Actor,
    DriveTo,
    Environment,
    Fire,
    FSMActor,
    Machine,
    Request,
    StateKind,
    Transition,
    TransitionRecord,
    VirtualClock,
    open_actor_system,
)

LAMP = Machine(
    "lamp",
    states={"off": StateKind.STABLE, "warming": StateKind.TRANSITIONAL, "on": StateKind.STABLE},
    initial="off",
    transitions=[
        Transition("off", "switch", "warming"),
        Transition("warming", "lit", "on"),
        Transition("on", "switch", "off"),
    ],
)


class Lamp(FSMActor):
    """A durable actor on the lamp machine."""

    machine = LAMP


@dataclass(frozen=True, slots=True)
class Count(Request[int]):
    """A user's request whose reply is an int."""

    times: int


class Counter(Actor):
    """Replies to :class:`Count` with its count, to anything else with the message."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Count):
            return message.times
        return message


def virtual_env() -> Environment:
    """A seeded environment on the running virtual-time loop's clock."""
    return Environment(clock=VirtualClock.current(), seed=1)


@pytest.mark.parametrize("command", [Fire("switch"), DriveTo("on")], ids=lambda c: type(c).__name__)
def test_fsm_commands_are_frozen_slotted_requests(command: Fire | DriveTo) -> None:
    """Fire and DriveTo are Requests and still frozen, slotted dataclasses."""
    assert isinstance(command, Request)
    assert not hasattr(command, "__dict__")
    field = dataclasses.fields(command)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(command, field, "other")


def test_request_base_adds_no_state() -> None:
    """Request has empty slots and no __init__: a slotted subclass stays slotted."""
    assert Request.__slots__ == ()
    assert "__init__" not in vars(Request)
    assert not hasattr(Count(1), "__dict__")
    assert Count.__slots__ == ("times",)


@pytest.mark.virtual_time
async def test_fire_and_drive_to_reply_with_their_records() -> None:
    """Asking Fire replies with its TransitionRecord, DriveTo with a tuple of them."""
    async with open_actor_system(env=virtual_env()) as system:
        ref = system.spawn(Lamp, address="lamp-1")
        record = await ref.ask(Fire("switch", task_id="t-1"))
        assert isinstance(record, TransitionRecord)
        assert (record.source, record.event, record.target) == ("off", "switch", "warming")
        records = await ref.ask(DriveTo("on"))
        assert type(records) is tuple
        assert [(r.event, r.target) for r in records] == [("lit", "on")]
        assert await ref.ask(DriveTo("on")) == ()


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(
        st.builds(Count, st.integers()),
        st.text(max_size=8),
        st.none(),
        st.integers(),
        st.tuples(st.integers(), st.text(max_size=4)),
    )
)
def test_requests_and_plain_messages_are_answered_alike(message: object) -> None:
    """A Request and a plain message both reach the actor unchanged and get its reply."""

    async def scenario() -> None:
        async with open_actor_system(env=virtual_env()) as system:
            ref = system.spawn(Counter, address="counter")
            reply = await ref.ask(message, timeout=1.0)
            expected = message.times if isinstance(message, Count) else message
            assert reply == expected
            await ref.tell(message)
            assert await ref.ask(Count(7)) == 7

    VirtualClock().run(scenario())

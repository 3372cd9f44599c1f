"""Pins the types of the public API around asks: mypy checks this file, pytest does not run it.

Positive cases are ``assert_type``; each ``# type: ignore[code]`` is a use that must stay a type
error (``warn_unused_ignores`` fails the file when it stops being one).
"""

from __future__ import annotations

from typing import assert_type

import stateward.actors
import stateward.flows
from stateward.flows import FlowEngine, FlowHandle, TaskRecord, TaskStatus
from stateward.runtime import (
    ActorRef,
    ActorSystem,
    FSMActor,
    Loaded,
    Machine,
    MachineInstance,
    Request,
    StatewardError,
    Store,
    TransitionRecord,
    open_actor_system,
)


async def systems(machine: Machine, actor: type[FSMActor]) -> None:
    """An actor system spawns and looks up ActorRefs; machines fire records."""
    async with open_actor_system() as system:
        assert_type(system, ActorSystem)
        assert_type(system.spawn(actor, address="a-1"), ActorRef)
        assert_type(system.lookup("a-1"), ActorRef)
        system.spawn(actor, "a-2")  # type: ignore[call-arg]
    instance = machine.instance("a-1")
    assert_type(instance, MachineInstance)
    assert_type(instance.fire("start", at=0.0), TransitionRecord)


async def stores(store: Store) -> None:
    """A store loads a resource's durable image, or None for a new one."""
    assert_type(await store.load("a-1"), Loaded | None)
    await store.load(1)  # type: ignore[arg-type]


async def flows(engine: FlowEngine, handle: FlowHandle) -> None:
    """A flow's handle waits for its task record; task records carry a TaskStatus."""
    record = await handle.wait()
    assert_type(record, TaskRecord)
    assert_type(record.status, TaskStatus)
    assert_type(await engine.get(record.id), TaskRecord)
    assert_type(await engine.find("a-1", "key-1"), TaskRecord | None)
    status: str = record.created  # type: ignore[assignment]
    del status


def requests_take_one_type_argument(
    request: Request[int],
    wrong: Request[int, str],  # type: ignore[type-arg]
) -> None:
    """Request takes exactly one type argument, the reply's type."""
    del request, wrong


def errors_are_stateward_errors() -> None:
    """The exceptions the packages export are StatewardErrors."""
    errors: tuple[type[StatewardError], ...] = (
        stateward.flows.TaskNotFound,
        stateward.flows.FlowBusy,
        stateward.actors.DuplicateName,
        stateward.actors.UnknownName,
        stateward.actors.NoValidHost,
    )
    del errors

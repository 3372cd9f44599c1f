"""Actors that own a state machine, and the journal their transitions go to.

An :class:`FSMActor` turns each command into an event on its :class:`MachineInstance`. An
event the current state does not allow raises
:class:`~stateward.runtime.InvalidTransition` and changes nothing. An accepted one produces a
:class:`TransitionRecord`, which is appended to the journal *before* the command is answered
and before the transition is published on the bus: an ask that changed state returns only once
the change is recorded. If the journal refuses the record, the in-memory state goes back to
what it was and the asker gets the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from ._actor import Actor, StartReason
from ._errors import InvalidArgument, InvalidCommand
from ._machine import Machine, MachineInstance, TransitionRecord

__all__ = ("Fire", "DriveTo", "FSMActor", "TransitionJournal", "MemoryJournal")


@runtime_checkable
class TransitionJournal(Protocol):
    """Where transition records go; the durable store implements it."""

    async def append(self, record: TransitionRecord) -> None:
        """Record one accepted transition; return only once it is recorded."""
        ...

    async def latest(self, resource_id: str) -> TransitionRecord | None:
        """The last recorded transition of ``resource_id``, or None if it has none."""
        ...


class MemoryJournal:
    """A journal in memory: survives actor restarts and passivation, not the process."""

    def __init__(self) -> None:
        self._records: dict[str, list[TransitionRecord]] = {}

    async def append(self, record: TransitionRecord) -> None:
        """Append ``record``; its sequence must follow the resource's last one."""
        history = self._records.setdefault(record.resource_id, [])
        expected = history[-1].sequence + 1 if history else 1
        if record.sequence != expected:
            raise InvalidArgument(
                "record.sequence",
                expected=f"{expected} (the next sequence of {record.resource_id})",
                got=record.sequence,
            )
        history.append(record)

    async def latest(self, resource_id: str) -> TransitionRecord | None:
        """The last record of ``resource_id``."""
        history = self._records.get(resource_id)
        return history[-1] if history else None

    def history(self, resource_id: str) -> tuple[TransitionRecord, ...]:
        """Every record of ``resource_id``, oldest first."""
        return tuple(self._records.get(resource_id, ()))


@dataclass(frozen=True, slots=True)
class Fire:
    """A command that fires one event on an :class:`FSMActor`."""

    event: str
    payload: Any = None
    task_id: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class DriveTo:
    """A command that drives an :class:`FSMActor` to ``goal`` by the shortest event path."""

    goal: str
    task_id: str | None = None
    cause: str | None = None


class FSMActor(Actor):
    """An actor that owns one instance of :attr:`machine`.

    Messages: an event name (``"start"``), a :class:`Fire` or a :class:`DriveTo`. Subclasses
    map their own commands by overriding :meth:`receive` and calling :meth:`transition`.
    The reply to an accepted event is its :class:`TransitionRecord`.

    Args:
        journal: where records go; the system's journal by default.
    """

    machine: ClassVar[Machine]

    def __init__(self, *, journal: TransitionJournal | None = None) -> None:
        if not isinstance(getattr(type(self), "machine", None), Machine):
            raise InvalidArgument(
                f"{type(self).__name__}.machine", expected="a Machine class attribute", got=None
            )
        if journal is not None and not isinstance(journal, TransitionJournal):
            raise InvalidArgument("journal", expected="a TransitionJournal", got=journal)
        self._journal = journal
        self.instance: MachineInstance

    @property
    def journal(self) -> TransitionJournal:
        """The journal this actor writes to."""
        if self._journal is None:
            self._journal = self.context.system.journal
        return self._journal

    @property
    def state(self) -> str:
        """The current state."""
        return self.instance.state

    async def rehydrate(self, reason: StartReason) -> None:
        """Restore the machine from the journal's last record (or start it fresh)."""
        resource_id = self.context.resource_id
        last = await self.journal.latest(resource_id)
        if last is None:
            self.instance = self.machine.instance(resource_id)
        else:
            self.instance = self.machine.instance(
                resource_id, state=last.target, sequence=last.sequence
            )

    async def receive(self, message: Any) -> Any:
        """Fire the event the message names; reply with the record(s)."""
        if isinstance(message, str):
            return await self.transition(message)
        if isinstance(message, Fire):
            return await self.transition(
                message.event,
                payload=message.payload,
                task_id=message.task_id,
                cause=message.cause,
            )
        if isinstance(message, DriveTo):
            return await self.drive_to(message.goal, task_id=message.task_id, cause=message.cause)
        raise InvalidCommand(
            self.context.resource_id,
            expected="an event name, Fire or DriveTo",
            got=repr(type(message).__name__),
        )

    async def transition(
        self,
        event: str,
        *,
        payload: Any = None,
        task_id: str | None = None,
        cause: str | None = None,
    ) -> TransitionRecord:
        """Fire ``event``, journal the record, then publish it and call :meth:`on_transition`.

        Raises:
            InvalidTransition: the event is not allowed now; nothing changed.
        """
        instance = self.instance
        state, sequence = instance.state, instance.sequence
        record = instance.fire(
            event, at=self.context.clock.now(), payload=payload, task_id=task_id, cause=cause
        )
        try:
            await self.journal.append(record)
        except BaseException:
            self.instance = self.machine.instance(
                instance.resource_id, state=state, sequence=sequence
            )
            raise
        self.context.system.bus.publish(
            f"transition.{self.machine.name}.{record.resource_id}", record
        )
        await self.on_transition(record)
        return record

    async def drive_to(
        self, goal: str, *, task_id: str | None = None, cause: str | None = None
    ) -> tuple[TransitionRecord, ...]:
        """Fire the shortest event path from the current state to ``goal``.

        Raises:
            GoalUnreachable: no path leads there; nothing changed.
        """
        if goal not in self.machine.states:
            raise InvalidCommand(
                self.context.resource_id,
                expected=f"a state of machine {self.machine.name!r}",
                got=repr(goal),
            )
        path = self.instance.path_to(goal)
        return tuple([await self.transition(e, task_id=task_id, cause=cause) for e in path])

    async def on_transition(self, record: TransitionRecord) -> None:
        """Called after each journaled transition; drive side effects from here."""

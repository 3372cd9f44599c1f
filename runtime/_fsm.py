"""Durable actors that own a state machine.

An :class:`FSMActor` turns each command into an event on its :class:`MachineInstance`. An
event the current state does not allow raises
:class:`~stateward.runtime.InvalidTransition` and changes nothing. An accepted one produces a
:class:`TransitionRecord`, and the actor's data moves on through :meth:`FSMActor.apply`. The
record is committed to the store *before* the command is answered and before the transition
is published on the bus: an ask that changed state returns only once the change is durable.

If the store cannot commit, the actor goes back to its last durable revision in memory and
the asker gets :class:`~stateward.runtime.CommitFailed` (the actor keeps working). If the
store holds a newer revision than the actor (a stale incarnation), the commit fails with
:class:`~stateward.runtime.RevisionConflict`, which crashes the actor so that its supervisor
restarts it from the store.

A transition can set and cancel durable timers (:mod:`stateward.runtime._timers`) in its own
write: ``await self.transition("verify", timers=(self.timer("expire", after=3600),))``. At its
time the timer's name is fired as an event (override :meth:`FSMActor.on_timer` to do
otherwise), and that transition marks the timer fired in the same write.

Recovery is event sourcing: :meth:`FSMActor.rehydrate` decodes the last snapshot and applies
the journal records after it, in order, with the same :meth:`FSMActor.apply` the live path
uses. Payloads go through msgpack on the live path too, so both see the same plain data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from ._actor import Actor, StartReason
from ._bus import EventBus
from ._check import text_problem
from ._errors import (
    CommitFailed,
    InvalidArgument,
    InvalidCommand,
    ResourceQuarantined,
    StoreUnavailable,
    short_repr,
)
from ._machine import Machine, MachineInstance, TransitionRecord
from ._request import Request
from ._store import Document, Loaded, Store, Write, decode, encode
from ._timers import Timer, TimerFired

__all__ = ("Fire", "DriveTo", "FSMActor", "NoData")


class NoData(msgspec.Struct, frozen=True):
    """The data of an actor that has nothing but its state."""


@dataclass(frozen=True, slots=True)
class Fire(Request[TransitionRecord]):
    """A command that fires one event on an :class:`FSMActor`; the reply is its record."""

    event: str
    payload: Any = None
    task_id: str | None = None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class DriveTo(Request[tuple[TransitionRecord, ...]]):
    """A command that drives an :class:`FSMActor` to ``goal`` by the shortest event path.

    The reply is the record of each transition fired, in order (empty when already there).
    """

    goal: str
    task_id: str | None = None
    cause: str | None = None


class FSMActor(Actor):
    """A durable actor that owns one instance of :attr:`machine` and its :attr:`data`.

    Messages: an event name (``"start"``), a :class:`Fire` or a :class:`DriveTo`. Subclasses
    map their own commands by overriding :meth:`receive` and calling :meth:`transition`.
    The reply to an accepted event is its :class:`TransitionRecord`.

    Class attributes:
        machine: the state machine.
        data_type: a msgspec Struct type for the actor's data; its defaults are the data of
            a new resource. Adding a field with a default keeps old snapshots readable.
        snapshot_every: take a snapshot of the data every this many transitions (and on the
            first); loading replays at most this many journal records.
        topic: the bus topic of each transition.

    Args:
        store: where transitions are committed; the system's store by default.
    """

    machine: ClassVar[Machine]
    data_type: ClassVar[type[msgspec.Struct]] = NoData
    snapshot_every: ClassVar[int] = 32
    #: The bus topic of each committed transition; ``{machine}``, ``{resource}`` and
    #: ``{event}`` are filled in.
    topic: ClassVar[str] = "transition.{machine}.{resource}"

    def __init__(self, *, store: Store | None = None) -> None:
        cls = type(self)
        if not isinstance(getattr(cls, "machine", None), Machine):
            raise InvalidArgument(
                f"{cls.__name__}.machine", expected="a Machine class attribute", got=None
            )
        if not (isinstance(cls.snapshot_every, int) and cls.snapshot_every >= 1):
            raise InvalidArgument(
                f"{cls.__name__}.snapshot_every", expected="an int >= 1", got=cls.snapshot_every
            )
        if store is not None and not isinstance(store, Store):
            raise InvalidArgument("store", expected="a Store", got=store)
        self._store = store
        self._hot: tuple[Callable[[], float], EventBus, Callable[[Write], Awaitable[None]]]
        self.instance: MachineInstance
        self.data: Any = None
        #: The timer being handled, marked fired by the first transition its handler makes.
        self._firing: str | None = None

    @property
    def store(self) -> Store:
        """The store this actor commits to."""
        if self._store is None:
            self._store = self.context.system.store
        return self._store

    @property
    def state(self) -> str:
        """The current state."""
        return self.instance.state

    @property
    def revision(self) -> int:
        """The number of committed transitions."""
        return self.instance.sequence

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """The data after ``record``; must be pure: recovery replays it.

        ``record.payload`` is plain data (what msgpack carries). The default keeps the data.
        """
        return data

    async def rehydrate(self, reason: StartReason) -> None:
        """Load the last snapshot and replay the journal after it; a new resource starts
        from its machine's initial state and ``data_type()``."""
        resource_id = self.context.resource_id
        loaded = self.context.system._take_preloaded(resource_id)
        if loaded is None:
            loaded = await self.store.load(resource_id)
        if loaded is None:
            self.instance = self.machine.instance(resource_id)
            self.data = self.data_type()
            return
        self.instance, self.data = await self._restore(loaded)

    async def _restore(self, loaded: Loaded) -> tuple[MachineInstance, Any]:
        try:
            data = (
                msgspec.msgpack.decode(loaded.snapshot, type=self.data_type)
                if loaded.snapshot is not None
                else self.data_type()
            )
            for record in loaded.tail:
                data = self.apply(data, record)
            instance = self.machine.instance(
                loaded.resource_id, state=loaded.state, sequence=loaded.revision
            )
        except (msgspec.DecodeError, msgspec.ValidationError, InvalidArgument) as exc:
            reason = f"stored data does not fit {type(self).__name__}: {exc}"
            await self.store.quarantine(loaded.resource_id, reason)
            raise ResourceQuarantined(loaded.resource_id, reason=reason) from exc
        return instance, data

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
        if isinstance(message, TimerFired):
            self._firing = message.timer.id
            try:
                return await self.on_timer(message)
            finally:
                self._firing = None
        raise InvalidCommand(
            self.context.resource_id,
            expected="an event name, Fire, DriveTo or TimerFired",
            got=repr(type(message).__name__),
        )

    async def transition(
        self,
        event: str,
        *,
        payload: Any = None,
        task_id: str | None = None,
        cause: str | None = None,
        timers: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
        documents: Sequence[Document] = (),
    ) -> TransitionRecord:
        """Fire ``event``, commit it, then publish it and call :meth:`on_transition`.

        ``timers`` (from :meth:`timer`) are set and the pending timers ``cancel`` names are
        cancelled in the same write: they exist exactly when the transition does. So are
        ``documents`` written (a task record the transition starts, say: ``FlowEngine.
        submit(..., commit=...)`` hands it over).

        Raises:
            InvalidTransition: the event is not allowed now; nothing changed.
            InvalidCommand: the payload is not plain data msgpack can carry.
            CommitFailed: the store could not commit; nothing changed.
        """
        if payload is not None:
            try:
                payload = decode(encode(payload))
            except (
                TypeError,
                ValueError,
                OverflowError,
                RecursionError,
                msgspec.MsgspecError,
            ) as exc:
                # ValueError covers UnicodeEncodeError (a lone surrogate in a string).
                raise InvalidCommand(
                    self.context.resource_id,
                    expected="a payload of plain data (dicts, lists, valid Unicode str, ints "
                    "from -2**63 to 2**64 - 1, floats, Structs), nested at most a few hundred deep",
                    got=f"{type(payload).__name__} ({type(exc).__name__}: {exc})",
                ) from exc
        if task_id is not None and (problem := text_problem(task_id)) is not None:
            raise InvalidCommand(
                self.context.resource_id,
                expected=f"task_id: {problem} or None",
                got=short_repr(task_id),
            )
        if cause is not None and (problem := text_problem(cause)) is not None:
            raise InvalidCommand(
                self.context.resource_id,
                expected=f"cause: {problem} or None",
                got=short_repr(cause),
            )
        try:
            now, bus, commit = self._hot
        except AttributeError:
            # Looked up once per incarnation: this is the path of every transition.
            self._hot = now, bus, commit = (
                self.context.clock.now,
                self.context.system.bus,
                self.store.commit,
            )
        instance = self.instance
        state, sequence = instance.state, instance.sequence
        record = instance.fire(event, at=now(), payload=payload, task_id=task_id, cause=cause)
        try:
            data = self.apply(self.data, record)
            snapshot = None
            if record.sequence == 1 or record.sequence % self.snapshot_every == 0:
                snapshot = msgspec.msgpack.encode(data)
            if timers or cancel or self._firing is not None:
                await self._commit_with_timers(
                    record, snapshot, tuple(timers), tuple(cancel), tuple(documents)
                )
            else:
                await commit(Write(self.machine.name, record, snapshot, tuple(documents)))
        except InvalidArgument as exc:
            # The store refused this write alone (data it cannot encode); nothing changed.
            self.instance = self.machine.instance(
                instance.resource_id, state=state, sequence=sequence
            )
            raise InvalidCommand(
                instance.resource_id,
                expected=exc.expected,
                got=f"{exc.name}: {short_repr(exc.got)}",
            ) from exc
        except StoreUnavailable as exc:
            self.instance = self.machine.instance(
                instance.resource_id, state=state, sequence=sequence
            )
            raise CommitFailed(
                instance.resource_id, event=record.event, revision=sequence, reason=exc.reason
            ) from exc
        except BaseException:
            self.instance = self.machine.instance(
                instance.resource_id, state=state, sequence=sequence
            )
            raise
        self.data = data
        if bus._subscriptions:  # building the topic is the cost; skip it when nobody listens
            topic = self.topic.format(
                machine=self.machine.name, resource=record.resource_id, event=record.event
            )
            bus._emit(topic, record)
        else:
            bus._published += 1
        if type(self).on_transition is not FSMActor.on_transition:
            await self.on_transition(record)
        return record

    async def _commit_with_timers(
        self,
        record: TransitionRecord,
        snapshot: bytes | None,
        timers: tuple[Timer, ...],
        cancel: tuple[str, ...],
        documents: tuple[Document, ...] = (),
    ) -> None:
        for timer in timers:
            if not isinstance(timer, Timer):
                raise InvalidArgument("timers", expected="Timers from self.timer()", got=timer)
        service = self.context.system.timers
        fired, self._firing = self._firing, None
        documents += service.documents(added=timers, cancel=cancel, fired=fired)
        await self.store.commit(Write(self.machine.name, record, snapshot, documents))
        service.committed(added=timers, cancel=cancel, fired=fired)

    def timer(
        self,
        name: str,
        *,
        at: float | None = None,
        after: float | None = None,
        payload: Any = None,
        to: str | None = None,
    ) -> Timer:
        """A timer of this resource, firing ``name`` at ``at`` (the clock's ``now()`` time)
        or ``after`` seconds; give it to :meth:`transition` to set it.

        Args:
            name: the event it fires (or what :meth:`on_timer` reads).
            payload: plain data delivered with it.
            to: another actor's address to deliver it to; this actor by default.
        """
        return self.context.system.timers.new(
            self.context.resource_id, name, at=at, after=after, payload=payload, to=to
        )

    async def on_timer(self, fired: TimerFired) -> Any:
        """A timer's time came: fire its name as an event with its payload, if the state
        allows it (a timer the state has moved past is ignored). Override to do otherwise;
        the first transition made here marks the timer fired in its write."""
        timer = fired.timer
        if not self.instance.can(timer.name):
            return None
        return await self.transition(timer.name, payload=timer.payload, cause=f"timer {timer.id}")

    async def drive_to(
        self, goal: str, *, task_id: str | None = None, cause: str | None = None
    ) -> tuple[TransitionRecord, ...]:
        """Fire the shortest event path from the current state to ``goal``.

        Raises:
            GoalUnreachable: no path leads there; nothing changed.
            InvalidCommand: ``goal`` is not a state of the machine.
        """
        if not isinstance(goal, str) or goal not in self.machine.states:
            raise InvalidCommand(
                self.context.resource_id,
                expected=f"a state of machine {self.machine.name!r}",
                got=short_repr(goal),
            )
        path = self.instance.path_to(goal)
        return tuple([await self.transition(e, task_id=task_id, cause=cause) for e in path])

    async def on_transition(self, record: TransitionRecord) -> None:
        """Called after each committed transition; drive side effects from here."""

"""Actors, their references and mailboxes.

An actor is a :class:`_Cell` registered at an address. The cell outlives the actor objects that
run in it: a restart or a passivation replaces the actor object (an *incarnation*) and keeps
the address, the references and, on restart, the messages still waiting.

The hot path is deliberately small. A mailbox is a ``deque`` of ``(message, reply)`` pairs;
the task that drains it exists only while there is something to handle, so an idle actor holds
no task, no future and no deque. One drain task per cell at most is what makes handling
strictly one message at a time: :meth:`_Cell._put` starts a task only when none is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, overload

import structlog

from ._errors import (
    ActorCrashed,
    ActorStopped,
    AskTimeout,
    CommandRejected,
    InvalidArgument,
    MailboxFull,
    ResourceQuarantined,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from ._env import Clock, Environment
    from ._request import ReplyTypeMismatch, Request
    from ._supervisor import Supervisor
    from ._system import ActorSystem

__all__ = (
    "Actor",
    "ActorContext",
    "ActorRef",
    "Reply",
    "Restart",
    "StartReason",
    "DEFAULT",
)


class Restart(enum.Enum):
    """When a supervisor restarts a child (Erlang/OTP restart types)."""

    #: Always restarted, whether it crashed or stopped itself.
    PERMANENT = "permanent"
    #: Restarted only when it crashed; stopping itself removes it.
    TRANSIENT = "transient"
    #: Never restarted; removed when it crashes or stops.
    TEMPORARY = "temporary"


class StartReason(enum.Enum):
    """Why an incarnation of an actor is starting; passed to :meth:`Actor.rehydrate`."""

    SPAWN = "spawn"
    RESTART = "restart"
    REACTIVATE = "reactivate"


class _Default(enum.Enum):
    DEFAULT = "default"


#: Use the actor system's configured value for this option.
DEFAULT: Final = _Default.DEFAULT
UseDefault = Literal[_Default.DEFAULT]

#: The reply type of a :class:`~stateward.runtime.Request`.
_R = TypeVar("_R")


class _Control(enum.Enum):
    """Control messages: they overtake every user message in the mailbox."""

    STOP = "stop"  # a supervisor ends the incarnation
    EXIT = "exit"  # the actor stops itself (a normal exit in OTP terms)
    PASSIVATE = "passivate"


class Actor:
    """Base class of every actor. Subclass it and implement :meth:`receive`.

    The runtime calls the hooks of one incarnation strictly one at a time, each to completion,
    awaits included: ``rehydrate``, then ``receive`` for each message, then ``on_passivate``
    or ``on_stop``.
    """

    context: ActorContext

    async def rehydrate(self, reason: StartReason) -> None:
        """Load state before the first message of this incarnation.

        Called on spawn, after a supervisor restart (the crashed incarnation's in-memory state
        is gone) and on reactivation after passivation. Durable actors load their state from
        the store here. Raising counts as a crash.
        """

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an ``ask``.

        Raise a :class:`~stateward.runtime.CommandRejected` to refuse a command without
        crashing: the asker gets that error as it is. Any other exception is a crash: the
        asker gets :class:`~stateward.runtime.ActorCrashed` and the supervisor decides.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement receive()")

    async def on_passivate(self) -> None:
        """Flush what must survive before the incarnation is dropped for being idle."""

    async def on_stop(self) -> None:
        """Release resources; called when the incarnation is stopped, not after a crash."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to :meth:`ActorContext.ask_later`, delivered later as a message.

    Attributes:
        tag: the tag given to ``ask_later``, to tell replies apart.
        request: the message that was asked.
        value: the reply, when ``error`` is None.
        error: the error the ask ended with (a timeout, a crash of the other actor, ...).
    """

    tag: Hashable
    request: Any
    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.value


class _Spec:
    """How to make and supervise a kind of actor; shared by every cell spawned alike."""

    __slots__ = (
        "capacity",
        "factory",
        "idle_after",
        "restart",
        "shutdown_timeout",
        "supervisor",
        "system",
    )

    def __init__(
        self,
        factory: Callable[[], Actor],
        restart: Restart,
        capacity: int,
        idle_after: float,
        shutdown_timeout: float,
        supervisor: Supervisor,
        system: ActorSystem,
    ) -> None:
        self.factory = factory
        self.restart = restart
        self.capacity = capacity
        self.idle_after = idle_after
        self.shutdown_timeout = shutdown_timeout
        self.supervisor = supervisor
        self.system = system


class _Live:
    """The state of one incarnation; dropped whole when the actor is passivated."""

    __slots__ = (
        "actor",
        "control",
        "current",
        "last_active",
        "queue",
        "reason",
        "skip_linger",
        "suspended",
        "task",
        "waiters",
    )

    def __init__(self, actor: Actor | None, reason: StartReason) -> None:
        self.actor = actor
        # Set until rehydrate has run; None afterwards.
        self.reason: StartReason | None = reason
        self.queue: deque[tuple[Any, asyncio.Future[Any] | None]] | None = None
        self.control: list[_Control] | None = None
        self.task: asyncio.Task[None] | None = None
        # A suspended incarnation keeps its mailbox but takes nothing from it: it crashed
        # and waits for its supervisor, or it is being stopped.
        self.suspended = False
        self.waiters: deque[asyncio.Future[None]] | None = None
        self.current: Any = None
        self.last_active = 0.0
        # Drains left to run without lingering, after a linger found nothing to do.
        self.skip_linger = 0


def _settle(reply: asyncio.Future[Any], error: BaseException) -> bool:
    if reply.done():
        return False
    reply.set_exception(error)
    return True


def _expire(reply: asyncio.Future[Any], cell: _Cell, timeout: float, message: Any) -> None:
    if not reply.done():
        reply.set_exception(AskTimeout(cell.address, timeout, type(message).__name__))
        cell.spec.system._counters.ask_timeouts += 1


#: Drains that skip the linger after one linger found no new message.
LINGER_BACKOFF = 8

#: Ask deadlines fire at most this late (seconds): they are grouped in slots of this width.
DEADLINE_RESOLUTION = 0.01


class _Deadlines:
    """Ask deadlines grouped in slots, with one loop timer per slot instead of one per ask.

    With thousands of asks in flight, a timer per ask means a heap push and a cancel each,
    comparing timer handles in Python; a slot is a dict insert and a delete. A deadline
    fires up to :data:`DEADLINE_RESOLUTION` late, never early.
    """

    __slots__ = ("_loop", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, dict[int, tuple[asyncio.Future[Any], _Cell, float, Any]]] = {}

    def add(self, reply: asyncio.Future[Any], cell: _Cell, timeout: float, message: Any) -> int:
        """Fail ``reply`` with AskTimeout unless it is settled within ``timeout``."""
        slot = math.ceil((self._loop.time() + timeout) / DEADLINE_RESOLUTION)
        waiting = self._slots.get(slot)
        if waiting is None:
            waiting = self._slots[slot] = {}
            self._loop.call_at(slot * DEADLINE_RESOLUTION, self._fire, slot)
        waiting[id(reply)] = (reply, cell, timeout, message)
        return slot

    def discard(self, slot: int, reply: asyncio.Future[Any]) -> None:
        """Forget a settled ask."""
        waiting = self._slots.get(slot)
        if waiting is not None:
            waiting.pop(id(reply), None)

    def _fire(self, slot: int) -> None:
        for reply, cell, timeout, message in self._slots.pop(slot, {}).values():
            _expire(reply, cell, timeout, message)


class _Cell:
    """One address: its spec, its current incarnation (None while passivated), its fate."""

    __slots__ = ("address", "closed", "live", "spec")

    def __init__(self, address: str, spec: _Spec, live: _Live | None) -> None:
        self.address = address
        self.spec = spec
        self.live = live
        # Why the cell was removed; None while it is registered.
        self.closed: str | None = None

    @property
    def restart(self) -> Restart:
        return self.spec.restart

    @property
    def shutdown_timeout(self) -> float:
        return self.spec.shutdown_timeout

    # -- sending --------------------------------------------------------------------------

    def _put(self, message: Any, reply: asyncio.Future[Any] | None, force: bool = False) -> None:
        live = self.live
        if live is None:
            if self.closed is not None:
                self.spec.system._dead_letter(self.address, message, self.closed)
                quarantined = self.spec.system._quarantined.get(self.address)
                if quarantined is not None:
                    raise ResourceQuarantined(self.address, reason=quarantined.reason)
                raise ActorStopped(self.address, reason=self.closed)
            live = self.live = _Live(None, StartReason.REACTIVATE)
            self.spec.system._counters.activations += 1
            self.spec.system._activated(self)  # watched for idleness again
        queue = live.queue
        if queue is None:
            queue = live.queue = deque()
        elif len(queue) >= self.spec.capacity and not force:
            self.spec.system._counters.mailbox_full += 1
            raise MailboxFull(self.address, self.spec.capacity)
        queue.append((message, reply))
        if live.task is None and not live.suspended:
            live.task = self.spec.system._loop.create_task(self._drain(live))

    async def _put_wait(self, message: Any, reply: asyncio.Future[Any] | None) -> None:
        """Put, waiting for room while the mailbox is full (backpressure)."""
        while True:
            try:
                self._put(message, reply)
                return
            except MailboxFull:
                live = self.live
                assert live is not None  # a full mailbox belongs to a live incarnation
                if live.waiters is None:
                    live.waiters = deque()
                waiter = self.spec.system._loop.create_future()
                live.waiters.append(waiter)
                try:
                    if reply is None:
                        await waiter
                    else:
                        # An ask's deadline runs while it waits for room, too.
                        await asyncio.wait({waiter, reply}, return_when=asyncio.FIRST_COMPLETED)
                        if reply.done():
                            if not waiter.done():
                                waiter.cancel()
                            elif live.waiters:
                                _wake_one(live.waiters)
                            return  # the asker's `await reply` raises AskTimeout
                except BaseException:
                    # Pass the wake-up on if we were woken and are leaving anyway.
                    if waiter.done() and not waiter.cancelled() and live.waiters:
                        _wake_one(live.waiters)
                    raise

    def _schedule(self, live: _Live) -> asyncio.Task[None]:
        if live.task is None:
            live.task = self.spec.system._loop.create_task(self._drain(live))
        return live.task

    def _control(self, live: _Live, signal: _Control) -> asyncio.Task[None]:
        if live.control is None:
            live.control = []
        live.control.append(signal)
        return self._schedule(live)

    # -- the drain loop: the only place an incarnation runs -------------------------------

    async def _drain(self, live: _Live) -> None:
        system = self.spec.system
        processed = 0
        try:
            if live.reason is not None:
                if live.control and _Control.STOP in live.control:
                    live.control = None
                    return  # stopped before it ever started: nothing to stop
                if not await self._start(live):
                    return
            actor = live.actor
            assert actor is not None
            while True:
                if live.control:
                    if await self._run_control(live):
                        return
                    continue
                queue = live.queue
                if not queue:
                    system._counters.messages += processed
                    processed = 0
                    if live.skip_linger:
                        live.skip_linger -= 1
                        return
                    # Linger for one loop tick: a sender woken by our last reply often sends
                    # again right away, and reusing this task is cheaper than a new one. When
                    # that does not pay (many actors, one message each), stop trying for a
                    # while: the linger itself costs a loop callback.
                    await asyncio.sleep(0)
                    if live.queue or live.control:
                        continue
                    live.skip_linger = LINGER_BACKOFF
                    return
                message, reply = queue.popleft()
                if live.waiters:
                    _wake_one(live.waiters)
                live.current = message
                try:
                    result = await actor.receive(message)
                except CommandRejected as exc:
                    processed += 1
                    if reply is None:
                        system._rejected_tell(self, message, exc)
                    elif not _settle(reply, exc):
                        system._counters.late_replies += 1
                    continue
                except StoreUnavailable as exc:
                    processed += 1
                    self._store_failed(live, message, reply, exc)
                    return
                except Exception as exc:
                    processed += 1
                    self._crashed(live, message, reply, exc)
                    return
                except BaseException:
                    if reply is not None:
                        _settle(reply, ActorStopped(self.address, reason="it was killed"))
                    raise
                processed += 1
                live.current = None
                if reply is not None:
                    if reply.done():
                        system._counters.late_replies += 1
                    else:
                        reply.set_result(result)
        finally:
            live.task = None
            live.current = None
            live.last_active = system._loop.time()  # the clock's monotonic time
            system._counters.messages += processed
            if live.queue is not None and not live.queue:
                live.queue = None  # an empty deque still holds a 512-byte block

    async def _start(self, live: _Live) -> bool:
        reason = live.reason
        assert reason is not None
        try:
            if live.actor is None:
                actor = self.spec.factory()
                if not isinstance(actor, Actor):
                    raise InvalidArgument(
                        "factory", expected="a callable returning an Actor", got=actor
                    )
                live.actor = actor
            live.actor.context = ActorContext(self)
            live.reason = None
            await live.actor.rehydrate(reason)
        except ResourceQuarantined as exc:
            # Restarting cannot help: the stored rows are bad. Take this one resource out of
            # service; its askers, now and later, learn why; every other actor keeps working.
            self.spec.system._log.error(
                "resource quarantined", address=self.address, reason=exc.reason
            )
            self.spec.system._quarantined[self.address] = exc
            self.spec.supervisor._forget(self.address)
            self._remove(f"quarantined: {exc.reason}", error=exc)
            return False
        except Exception as exc:
            self._start_failed(live, exc)
            return False
        return True

    def _store_failed(
        self, live: _Live, message: Any, reply: asyncio.Future[Any] | None, exc: StoreUnavailable
    ) -> None:
        """The store failed under the handler: answer with its error, rebuild from the store.

        Not a crash: the handler did nothing wrong, and counting a store outage as restarts
        would stop every actor of a supervisor at the first hiccup of the disk. The
        incarnation is replaced all the same, uncounted, because the handler may have changed
        its memory before the store failed; the next one starts from what is durable.
        """
        system = self.spec.system
        system._log.warning(
            "store failed under a handler; the actor reloads",
            address=self.address,
            message_type=type(message).__name__,
            error=str(exc),
        )
        if reply is None:
            system._dead_letter(self.address, message, f"the store failed: {exc.reason}")
        elif not _settle(reply, exc):
            system._counters.late_replies += 1
        live.suspended = True
        if self.live is not live:
            return  # removed meanwhile: nothing to rebuild
        fresh = _Live(None, StartReason.RESTART)
        fresh.queue, fresh.waiters = live.queue, live.waiters
        live.queue = live.waiters = None
        self.live = fresh
        if fresh.queue:
            self._schedule(fresh)

    def _start_failed(self, live: _Live, exc: Exception) -> None:
        """rehydrate raised: fail what waits and go back to passivated, without a restart.

        A failed start is about this resource's stored data or the store, and reading them
        again at once cannot help; counted as restarts, one bad resource would exceed the
        intensity of a supervisor it shares with healthy ones and stop them all. The next
        message tries again, so a store that recovers brings the resource back.
        """
        system = self.spec.system
        system._counters.crashes += 1
        system._log.error(
            "actor failed to start; it stays passivated until its next message",
            address=self.address,
            error=repr(exc),
            exc_info=exc,
        )
        live.suspended = True
        if self.live is live:
            self.live = None
        reason = f"it failed to start: {type(exc).__name__}"
        for message, reply in live.queue or ():
            if reply is None:
                system._dead_letter(self.address, message, reason)
            elif isinstance(exc, StoreError):
                _settle(reply, exc)  # typed already: the store says what is wrong
            else:
                error = ActorCrashed(self.address, "rehydrate", exc)
                error.__cause__ = exc
                _settle(reply, error)
        live.queue = None
        for waiter in live.waiters or ():
            if not waiter.done():
                waiter.set_result(None)  # room now: the next put starts a new incarnation
        live.waiters = None

    async def _run_control(self, live: _Live) -> bool:
        """Run the first control message; True when the incarnation has ended."""
        assert live.control
        assert live.actor is not None
        signal = live.control.pop(0)
        if signal is _Control.PASSIVATE:
            if live.queue or live.suspended:
                return False  # work arrived: passivation is off
            await live.actor.on_passivate()
            if live.queue or live.control or self.live is not live:
                return False
            self.live = None
            self.spec.system._counters.passivations += 1
            return True
        live.suspended = True
        live.control = None
        try:
            await live.actor.on_stop()
        except Exception as exc:
            self.spec.system._log.warning(
                "on_stop raised", address=self.address, error=repr(exc), exc_info=exc
            )
        if signal is _Control.EXIT:
            self.spec.supervisor._signal_exit(self, live)
        return True

    def _crashed(
        self, live: _Live, message: Any, reply: asyncio.Future[Any] | None, exc: Exception
    ) -> None:
        live.suspended = True
        system = self.spec.system
        system._counters.crashes += 1
        if reply is not None:
            error = ActorCrashed(self.address, type(message).__name__, exc)
            error.__cause__ = exc
            _settle(reply, error)
        system._log.error(
            "actor crashed",
            address=self.address,
            message_type=type(message).__name__,
            error=repr(exc),
            exc_info=exc,
        )
        self.spec.supervisor._signal_failure(self, live, exc)

    # -- lifecycle, driven by the supervisor ----------------------------------------------

    async def _terminate(self, timeout: float) -> None:
        """End the current incarnation; keep the cell and its waiting messages."""
        live = self.live
        if live is None:
            return
        if live.suspended and live.task is None:
            return  # already ended (it crashed or stopped itself): nothing left to stop
        if live.task is None and live.reason is not None:
            live.suspended = True  # never started: nothing to stop
            return
        live.suspended = True
        if live.task is None and live.actor is not None and live.reason is None:
            # Idle but started: run on_stop in the cell's own task, like any message.
            self._control(live, _Control.STOP)
        elif live.task is not None:
            if live.control is None:
                live.control = []
            live.control.insert(0, _Control.STOP)
        task = live.task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            self.spec.system._log.warning(
                "actor did not stop in time; killing it", address=self.address, timeout=timeout
            )
            task.cancel()
            await asyncio.wait({task}, timeout=timeout)

    def _restart(self) -> None:
        """Replace the incarnation with a new one built by the factory; keep the mailbox."""
        old = self.live
        if old is None or self.closed is not None:
            return  # passivated: it rehydrates on its next message anyway
        if old.task is not None and not old.task.done():
            # A handler that ignored being killed is still running: a second incarnation
            # beside it would break one-message-at-a-time. Leave the cell suspended.
            self.spec.system._log.error(
                "incarnation still running after it was killed; not restarted",
                address=self.address,
            )
            return
        new = _Live(None, StartReason.RESTART)
        new.queue, new.waiters = old.queue, old.waiters
        self.live = new
        if new.queue:
            self._schedule(new)

    def _remove(self, reason: str, error: Exception | None = None) -> None:
        """Unregister: every waiting asker fails (with ``error`` if given, else
        ActorStopped), every waiting tell becomes a dead letter."""
        if self.closed is not None:
            return
        self.closed = reason
        live, self.live = self.live, None
        system = self.spec.system
        system._unregister(self)
        if live is None:
            return
        live.suspended = True
        for message, reply in live.queue or ():
            if reply is None:
                system._dead_letter(self.address, message, reason)
            else:
                _settle(reply, error or ActorStopped(self.address, reason=reason))
        live.queue = None
        for waiter in live.waiters or ():
            _settle(waiter, ActorStopped(self.address, reason=reason))
        live.waiters = None
        if live.task is not None:
            live.task.cancel()

    def _is_idle(self, now: float) -> bool:
        live = self.live
        return (
            live is not None
            and live.task is None
            and not live.queue
            and not live.suspended
            and live.reason is None
            and now - live.last_active >= self.spec.idle_after
        )


def _ask_timeout(system: ActorSystem, timeout: float | UseDefault) -> float:
    """The system's default, or ``timeout`` checked to be a positive finite number."""
    if timeout is DEFAULT:
        return system._ask_timeout
    if not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
        raise InvalidArgument("timeout", expected="a positive finite number", got=timeout)
    return float(timeout)


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


class ActorRef:
    """A handle on the actor at one address; cheap to copy, valid across restarts.

    A reference stays valid while the actor is restarted or passivated; once the actor is
    stopped, every send through it raises :class:`~stateward.runtime.ActorStopped`.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: _Cell) -> None:
        self._cell = cell

    @property
    def address(self) -> str:
        """The actor's address, unique in its system."""
        return self._cell.address

    @property
    def is_alive(self) -> bool:
        """False once the actor is stopped for good."""
        return self._cell.closed is None

    def tell_nowait(self, message: Any) -> None:
        """Send without waiting.

        Raises:
            MailboxFull: the mailbox is at capacity; nothing was sent.
            ActorStopped: the actor is stopped; the message is recorded as a dead letter.
        """
        self._cell._put(message, None)

    async def tell(self, message: Any) -> None:
        """Send, waiting for room while the mailbox is full (backpressure)."""
        try:
            self._cell._put(message, None)
        except MailboxFull:
            await self._cell._put_wait(message, None)

    @overload
    async def ask(self, message: Request[_R], *, timeout: float | UseDefault = DEFAULT) -> _R: ...

    # Reached only when the first overload fails because of its context (the reply assigned
    # to a type it does not fit): without it such a call would fall to the plain one, typed Any.
    @overload
    async def ask(  # type: ignore[overload-cannot-match]
        self, message: Request[object], *, timeout: float | UseDefault = DEFAULT
    ) -> ReplyTypeMismatch: ...

    @overload
    async def ask(self, message: object, *, timeout: float | UseDefault = DEFAULT) -> Any: ...

    async def ask(self, message: Any, *, timeout: float | UseDefault = DEFAULT) -> Any:
        """Send and wait for the reply.

        The reply to a :class:`~stateward.runtime.Request` ``[R]`` is typed ``R`` (a
        :class:`~stateward.runtime.Fire` replies with a
        :class:`~stateward.runtime.TransitionRecord`); the reply to any other message is
        typed ``Any``.

        Args:
            message: the request.
            timeout: seconds to wait, sending included; the system's ``ask_timeout`` by default.

        Raises:
            AskTimeout: no reply in time; a reply that comes later is dropped and counted.
            ActorCrashed: the handler raised; the original error is ``__cause__``.
            CommandRejected: the handler refused the command (for example
                :class:`~stateward.runtime.InvalidTransition`); the actor is unchanged.
            ActorStopped: the actor is stopped, or stopped before answering.
        """
        cell = self._cell
        system = cell.spec.system
        timeout = system._ask_timeout if timeout is DEFAULT else _ask_timeout(system, timeout)
        reply: asyncio.Future[Any] = system._loop.create_future()
        deadlines = system._deadlines
        slot = deadlines.add(reply, cell, timeout, message)
        try:
            try:
                cell._put(message, reply)
            except MailboxFull:
                await cell._put_wait(message, reply)
            return await reply
        finally:
            deadlines.discard(slot, reply)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return hash(self._cell.address)

    def __repr__(self) -> str:
        return f"ActorRef({self._cell.address!r})"


class ActorContext:
    """What an actor knows about its place: address, system, clock, logger, and helpers."""

    __slots__ = ("_cell",)

    def __init__(self, cell: _Cell) -> None:
        self._cell = cell

    @property
    def address(self) -> str:
        """This actor's address."""
        return self._cell.address

    @property
    def resource_id(self) -> str:
        """The resource this actor owns; its address."""
        return self._cell.address

    @property
    def self_ref(self) -> ActorRef:
        """A reference to this actor."""
        return ActorRef(self._cell)

    @property
    def system(self) -> ActorSystem:
        """The actor system this actor runs in."""
        return self._cell.spec.system

    @property
    def env(self) -> Environment:
        """The injected environment: clock, random streams, ids."""
        return self._cell.spec.system.env

    @property
    def clock(self) -> Clock:
        """The injected clock."""
        return self._cell.spec.system.env.clock

    @property
    def log(self) -> structlog.stdlib.BoundLogger:
        """A logger bound to this actor and to the message being handled."""
        live = self._cell.live
        current = live.current if live is not None else None
        return self._cell.spec.system._log.bind(
            address=self._cell.address,
            resource_id=self._cell.address,
            message_type=type(current).__name__ if current is not None else None,
            task_id=getattr(current, "task_id", None),
        )

    def ask_later(
        self,
        target: ActorRef,
        message: Any,
        *,
        tag: Hashable = None,
        timeout: float | UseDefault = DEFAULT,
    ) -> None:
        """Ask ``target`` without waiting; the answer arrives later as a :class:`Reply`.

        This is how an actor asks another one from inside a handler. Awaiting ``ask`` there
        would block this actor until the reply, and two actors asking each other that way
        deadlock, since each handles one message at a time.

        Raises:
            MailboxFull: the target's mailbox is full; nothing was sent.
            ActorStopped: the target is stopped.
        """
        system = self._cell.spec.system
        timeout = system._ask_timeout if timeout is DEFAULT else _ask_timeout(system, timeout)
        reply: asyncio.Future[Any] = system._loop.create_future()
        target._cell._put(message, reply)
        deadlines = system._deadlines
        slot = deadlines.add(reply, target._cell, timeout, message)
        me = self._cell

        def deliver(done: asyncio.Future[Any]) -> None:
            deadlines.discard(slot, done)
            if done.cancelled():
                answer = Reply(tag, message, error=ActorStopped(target.address))
            elif (error := done.exception()) is not None:
                answer = Reply(tag, message, error=error)
            else:
                answer = Reply(tag, message, value=done.result())
            # If we are gone, _put records the reply as a dead letter.
            with contextlib.suppress(ActorStopped):
                me._put(answer, None, force=True)

        reply.add_done_callback(deliver)

    def stop(self) -> None:
        """Stop this actor after the current message (a normal exit).

        Its supervisor restarts it only if it is ``Restart.PERMANENT``.
        """
        live = self._cell.live
        if live is not None:
            self._cell._control(live, _Control.EXIT)

    def passivate(self) -> None:
        """Passivate this actor after the current message, unless more messages are waiting."""
        live = self._cell.live
        if live is not None:
            self._cell._control(live, _Control.PASSIVATE)

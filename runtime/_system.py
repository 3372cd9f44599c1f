"""The actor system: registry, supervision tree root, lifecycle, statistics.

An :class:`ActorSystem` lives inside the caller's event loop and has no global state and no
threads; open as many as you like::

    async with open_actor_system() as system:
        ref = system.spawn(Counter, address="counter-1")
        await ref.ask("increment")

Leaving the ``async with`` block shuts the system down gracefully: children stop in reverse
start order, each within its shutdown timeout, and every message still waiting fails its asker
with :class:`~stateward.runtime.ActorStopped`. If the root supervisor escalated a failure, the
system stops by itself and leaving the block raises that failure.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._actor import (
    DEFAULT,
    Actor,
    ActorRef,
    Restart,
    StartReason,
    UseDefault,
    _Cell,
    _Control,
    _Deadlines,
    _Live,
    _Spec,
)
from ._bus import EventBus
from ._check import text_problem
from ._env import Environment, VirtualClock, VirtualEventLoop
from ._errors import (
    ActorNotFound,
    CommandRejected,
    DuplicateAddress,
    InvalidArgument,
    LifecycleError,
    ResourceQuarantined,
    SystemNotRunning,
)
from ._log import get_logger
from ._store import Loaded, MemoryStore, Store
from ._supervisor import Strategy, Supervisor
from ._timers import Timers

__all__ = ("ActorSystem", "DeadLetter", "SystemStatistics", "open_actor_system")

#: How many dead letters the system keeps for inspection (all are counted).
DEAD_LETTER_HISTORY = 1000
#: Resources read from the store per page by :meth:`ActorSystem.restore`.
RESTORE_PAGE = 5000
ROOT = "/root"


class _State(enum.Enum):
    NEW = "not started"
    RUNNING = "running"
    CLOSING = "shutting down"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be delivered, and why."""

    address: str
    message: Any
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class SystemStatistics:
    """A snapshot of an actor system's counters.

    Attributes:
        actors: registered actors, live or passivated.
        live: actors with an incarnation in memory.
        passivated: actors with none (they come back on their next message).
        busy: actors with a message being handled or waiting.
        supervisors: supervisors, the root included.
        messages: messages handled since the system opened.
        crashes: handler (or rehydrate) failures.
        restarts: incarnations restarted by supervisors.
        escalations: supervisors that exceeded their restart intensity.
        ask_timeouts: asks that got no reply before their deadline.
        late_replies: replies dropped because their asker had stopped waiting.
        dead_letters: messages that could not be delivered.
        mailbox_full: sends refused or delayed by a full mailbox.
        rejected_tells: told commands a handler refused (nobody was asking to hear it).
        passivations: incarnations dropped for being idle.
        activations: passivated actors brought back by a message.
        bus_dropped: bus events lost to subscriber overflow.
        store_degraded: the store's last transaction failed (see ``store.statistics()``).
    """

    actors: int
    live: int
    passivated: int
    busy: int
    supervisors: int
    messages: int
    crashes: int
    restarts: int
    escalations: int
    ask_timeouts: int
    late_replies: int
    dead_letters: int
    mailbox_full: int
    rejected_tells: int
    passivations: int
    activations: int
    bus_dropped: int
    store_degraded: bool


class _Counters:
    """Mutable counters behind :class:`SystemStatistics`; bumped inline by cells."""

    __slots__ = (
        "activations",
        "ask_timeouts",
        "crashes",
        "dead_letters",
        "escalations",
        "late_replies",
        "mailbox_full",
        "messages",
        "passivations",
        "rejected_tells",
        "restarts",
    )

    def __init__(self) -> None:
        self.messages = 0
        self.crashes = 0
        self.restarts = 0
        self.escalations = 0
        self.ask_timeouts = 0
        self.late_replies = 0
        self.dead_letters = 0
        self.mailbox_full = 0
        self.rejected_tells = 0
        self.passivations = 0
        self.activations = 0


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgument(name, expected="a positive number of seconds", got=value)
    return float(value)


def _capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument("mailbox_capacity", expected="an int >= 1", got=value)
    return value


def _address(value: object) -> str:
    """An address as the exact, storable ``str`` it is journaled under.

    A ``StrEnum`` member (or another ``str`` subclass) is taken by its value: a resource is
    rehydrated by its plain id, so the registry must hold that same plain string.
    """
    if type(value) is str and value and value.isascii():
        return value  # the common address, checked in one go: spawn is on a hot path
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        value = value.value
    elif isinstance(value, str) and type(value) is not str:
        value = str.__str__(value)
    if not value or text_problem(value) is not None:
        raise InvalidArgument("address", expected="a non-empty str of valid Unicode", got=value)
    assert isinstance(value, str)
    return value


class ActorSystem:
    """Actors under supervision, in one event loop.

    Args:
        env: time, randomness and ids; a real clock and a random seed by default.
        name: shown in logs.
        ask_timeout: default deadline of ``ask`` in seconds.
        mailbox_capacity: default bound of a mailbox.
        shutdown_timeout: default time a child gets to stop before it is killed.
        strategy, max_restarts, period: the root supervisor's policy.
        sweep_interval: how often idle actors are looked for (see ``idle_after`` of
            :meth:`spawn`).
        store: where state machine transitions are committed; in memory by default. The
            caller opens and closes it.
    """

    def __init__(
        self,
        *,
        env: Environment | None = None,
        name: str = "stateward",
        ask_timeout: float = 10.0,
        mailbox_capacity: int = 1000,
        shutdown_timeout: float = 5.0,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        sweep_interval: float = 1.0,
        store: Store | None = None,
    ) -> None:
        if store is not None and not isinstance(store, Store):
            raise InvalidArgument("store", expected="a Store", got=store)
        #: Where :class:`~stateward.runtime.FSMActor` transitions are committed.
        self.store: Store = store if store is not None else MemoryStore()
        self._preloaded: dict[str, Loaded] = {}
        #: Every kind a :meth:`restore` call registered.
        self._restored_kinds: set[str] = set()
        if env is not None and not isinstance(env, Environment):
            raise InvalidArgument("env", expected="an Environment", got=env)
        self.env = env if env is not None else Environment()
        self.name = name
        self._ask_timeout = _positive("ask_timeout", ask_timeout)
        self._capacity = _capacity(mailbox_capacity)
        self._shutdown_timeout = _positive("shutdown_timeout", shutdown_timeout)
        self._sweep_interval = _positive("sweep_interval", sweep_interval)
        self._root_policy = (strategy, max_restarts, period)
        self._state = _State.NEW
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set on open
        self._deadlines: _Deadlines = None  # type: ignore[assignment]  # set on open
        self._counters = _Counters()
        self._cells: dict[str, _Cell] = {}
        self._supervisors: dict[str, Supervisor] = {}
        self._idle_watch: dict[str, _Cell] = {}
        self._specs: dict[tuple[Any, ...], _Spec] = {}
        self._dead_letters: deque[DeadLetter] = deque(maxlen=DEAD_LETTER_HISTORY)
        # Why each resource taken out of service was: its refs keep answering with it.
        self._quarantined: dict[str, ResourceQuarantined] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._log = get_logger("stateward.system").bind(system=name)
        self.bus = EventBus()
        #: The system's durable timers.
        self.timers = Timers(self)
        #: The failure that stopped the system (a root escalation), if any.
        self.failure: BaseException | None = None
        self._root: Supervisor | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> ActorSystem:
        if self._state is not _State.NEW:
            raise LifecycleError(
                f"actor system {self.name!r} can be opened once; it is {self._state.value}"
            )
        loop = asyncio.get_running_loop()
        clock = self.env.clock
        if isinstance(clock, VirtualClock) and not (
            isinstance(loop, VirtualEventLoop) and loop.clock is clock
        ):
            raise LifecycleError(
                "the environment has a VirtualClock but the system runs on a "
                f"{type(loop).__name__}; run it with clock.run(main()) or on clock.new_event_loop()"
            )
        self._loop = loop
        self._deadlines = _Deadlines(loop)
        strategy, max_restarts, period = self._root_policy
        self._root = Supervisor(
            self,
            ROOT,
            strategy=strategy,
            max_restarts=max_restarts,
            period=period,
            parent=None,
            restart=Restart.PERMANENT,
            shutdown_timeout=self._shutdown_timeout,
        )
        self._supervisors[ROOT] = self._root
        self._root._start()
        self._sweeper = loop.create_task(self._sweep())
        self._state = _State.RUNNING
        self.timers._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        if self.failure is not None and exc is None:
            raise self.failure

    async def aclose(self, *, timeout: float | UseDefault = DEFAULT) -> None:
        """Shut down: stop every actor in reverse start order, then close the bus.

        Args:
            timeout: the overall deadline; each child also has its own shutdown timeout.
                Whatever is still running at the deadline is cancelled.
        """
        if self._closer is not None and self._closer is not asyncio.current_task():
            await asyncio.wait({self._closer})
        if self._state in (_State.CLOSED, _State.CLOSING, _State.NEW):
            self._state = _State.CLOSED if self._state is _State.NEW else self._state
            return
        total = self._shutdown_timeout * 2 if timeout is DEFAULT else _positive("timeout", timeout)
        self._state = _State.CLOSING
        await self.timers._close()
        assert self._root is not None
        reason = "the actor system shut down"
        await self._root._shutdown(reason, self.env.clock.monotonic() + total)
        for cell in list(self._cells.values()):
            cell._remove(reason)  # spawned under a supervisor that was already gone
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait({self._sweeper})
        self.bus.close()
        self._state = _State.CLOSED

    def _fail(self, failure: BaseException) -> None:
        """The root escalated: remember why and shut everything down."""
        if self.failure is None:
            self.failure = failure
            self._log.critical("root supervisor escalated; stopping the system", error=str(failure))
            self._closer = self._loop.create_task(self.aclose())

    def _check_running(self, action: str) -> None:
        if self._state is not _State.RUNNING:
            error = SystemNotRunning(self._state.value, action=action)
            raise error from self.failure

    @property
    def is_running(self) -> bool:
        """True between opening and the start of shutdown."""
        return self._state is _State.RUNNING

    # -- spawning -----------------------------------------------------------------------

    def spawn(
        self,
        factory: Callable[[], Actor],
        *,
        address: str,
        supervisor: Supervisor | None = None,
        restart: Restart = Restart.PERMANENT,
        mailbox_capacity: int | UseDefault = DEFAULT,
        shutdown_timeout: float | UseDefault = DEFAULT,
        idle_after: float = math.inf,
        passivated: bool = False,
    ) -> ActorRef:
        """Register an actor at ``address`` under ``supervisor`` (the root by default).

        Args:
            factory: builds an incarnation; called now (unless ``passivated``), on every
                restart and on every reactivation.
            address: unique in the system; resource actors use their resource id.
            supervisor: the parent, from :meth:`spawn_supervisor`.
            restart: when the supervisor restarts this actor.
            mailbox_capacity: messages that may wait; more senders wait or get
                :class:`~stateward.runtime.MailboxFull`.
            shutdown_timeout: how long a stop waits for the current message before killing it.
            idle_after: passivate after this many idle seconds (never by default).
            passivated: register without an incarnation; it is built on the first message.
                This is how a process holds millions of resources.

        Raises:
            DuplicateAddress: the address is taken.
            InvalidArgument: a bad option, or a factory that does not build an Actor.
        """
        self._check_running("spawn")
        address = _address(address)
        if address in self._cells or address in self._supervisors:
            raise DuplicateAddress(address)
        if not callable(factory):
            raise InvalidArgument("factory", expected="a callable returning an Actor", got=factory)
        if not isinstance(restart, Restart):
            raise InvalidArgument("restart", expected="a Restart", got=restart)
        if not (idle_after == math.inf or isinstance(idle_after, int | float)):
            raise InvalidArgument("idle_after", expected="seconds", got=idle_after)
        idle = idle_after if idle_after == math.inf else _positive("idle_after", idle_after)
        parent = self._parent(supervisor)
        spec = self._spec(
            factory,
            restart,
            self._capacity if mailbox_capacity is DEFAULT else _capacity(mailbox_capacity),
            idle,
            self._shutdown_timeout
            if shutdown_timeout is DEFAULT
            else _positive("shutdown_timeout", shutdown_timeout),
            parent,
        )
        live = None
        if not passivated:
            actor = factory()
            if not isinstance(actor, Actor):
                raise InvalidArgument(
                    "factory", expected="a callable returning an Actor", got=actor
                )
            live = _Live(actor, StartReason.SPAWN)
            live.last_active = self.env.clock.monotonic()
        cell = _Cell(address, spec, live)
        self._cells[address] = cell
        if self._quarantined:
            self._quarantined.pop(address, None)  # a new actor: the old one's fate is not its
        parent._adopt(cell)
        if live is not None:
            self._activated(cell)
        return ActorRef(cell)

    def spawn_supervisor(
        self,
        address: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        supervisor: Supervisor | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown_timeout: float | UseDefault = DEFAULT,
    ) -> Supervisor:
        """Add a supervisor under ``supervisor`` (the root by default).

        Args:
            strategy: which children restart when one fails.
            max_restarts, period: restart intensity; more than ``max_restarts`` restarts in
                ``period`` seconds stop this supervisor's children and escalate.
        """
        self._check_running("spawn a supervisor")
        address = _address(address)
        if address in self._cells or address in self._supervisors:
            raise DuplicateAddress(address)
        parent = self._parent(supervisor)
        node = Supervisor(
            self,
            address,
            strategy=strategy,
            max_restarts=max_restarts,
            period=period,
            parent=parent,
            restart=restart,
            shutdown_timeout=self._shutdown_timeout
            if shutdown_timeout is DEFAULT
            else _positive("shutdown_timeout", shutdown_timeout),
        )
        self._supervisors[address] = node
        parent._adopt(node)
        node._start()
        return node

    def _parent(self, supervisor: Supervisor | None) -> Supervisor:
        if supervisor is None:
            assert self._root is not None
            return self._root
        if not isinstance(supervisor, Supervisor) or supervisor._system is not self:
            raise InvalidArgument(
                "supervisor", expected="a Supervisor of this system", got=supervisor
            )
        if supervisor.closed is not None:
            raise InvalidArgument(
                "supervisor", expected="a running supervisor", got=f"{supervisor!r} (stopped)"
            )
        return supervisor

    def _spec(
        self,
        factory: Callable[[], Actor],
        restart: Restart,
        capacity: int,
        idle_after: float,
        shutdown_timeout: float,
        parent: Supervisor,
    ) -> _Spec:
        # Cells spawned alike share one spec: a passivated actor then costs only its cell.
        key = (factory, restart, capacity, idle_after, shutdown_timeout, parent.address)
        try:
            spec = self._specs.get(key)
        except TypeError:  # an unhashable factory (a callable object): no sharing
            return _Spec(factory, restart, capacity, idle_after, shutdown_timeout, parent, self)
        if spec is None:
            spec = self._specs[key] = _Spec(
                factory, restart, capacity, idle_after, shutdown_timeout, parent, self
            )
        return spec

    async def restore(
        self,
        kinds: Mapping[str, Callable[[], Actor]],
        *,
        eager: bool = False,
        supervisor: Supervisor | None = None,
        idle_after: float | Mapping[str, float] = math.inf,
    ) -> int:
        """Register every resource in the store whose kind is in ``kinds``.

        Lazily (the default), each one is registered passivated and loads itself from the
        store on its first message. Eagerly, all of them are loaded now, in bulk, and each
        actor rebuilds its state before this returns. Resources already registered are left
        alone. Quarantined resources, and resources of a kind in no call's ``kinds``, are
        skipped and logged as a warning that names them: restore every kind in one call
        (``idle_after`` may differ by kind) so that no kind a later call restores is named.

        Args:
            kinds: the factory for each stored kind (a machine's name).
            eager: load every resource now instead of on its first message.
            supervisor: as for :meth:`spawn`.
            idle_after: as for :meth:`spawn`; or seconds by kind (a kind it does not name
                never passivates).

        Returns:
            How many resources were registered.
        """
        self._check_running("restore")
        # An eager restore builds a great many long-lived objects and no garbage cycles;
        # the cyclic collector would walk all of them again and again (half the time of a
        # 100,000-resource restore). It is paused meanwhile, and left as it was found.
        paused = eager and gc.isenabled()
        if paused:
            gc.disable()
        try:
            return await self._restore(kinds, eager, supervisor, idle_after)
        finally:
            if paused:
                gc.enable()

    async def _restore(
        self,
        kinds: Mapping[str, Callable[[], Actor]],
        eager: bool,
        supervisor: Supervisor | None,
        idle_after: float | Mapping[str, float],
    ) -> int:
        idle = (
            {kind: idle_after.get(kind, math.inf) for kind in kinds}
            if isinstance(idle_after, Mapping)
            else dict.fromkeys(kinds, idle_after)
        )
        self._restored_kinds.update(kinds)
        restored = quarantined = 0
        #: Resources of a kind this call does not restore, by kind.
        other: dict[str, int] = {}
        after: str | None = None
        while True:
            page = await self.store.resources(after=after, limit=RESTORE_PAGE)
            if not page:
                break
            after = page[-1].resource_id
            fresh = []
            for summary in page:
                factory = kinds.get(summary.kind)
                if factory is None:
                    other[summary.kind] = other.get(summary.kind, 0) + 1
                    continue
                if summary.quarantined is not None:
                    quarantined += 1
                    continue
                if summary.resource_id not in self._cells:
                    fresh.append((summary.resource_id, summary.kind, factory))
            if eager:
                loaded = await self.store.load_many([r for r, _, _ in fresh])
                quarantined += len(fresh) - len(loaded)  # quarantined while loading
                fresh = [(r, kind, factory) for r, kind, factory in fresh if r in loaded]
                self._preloaded.update(loaded)
            tasks = []
            for resource_id, kind, factory in fresh:
                ref = self.spawn(
                    factory,
                    address=resource_id,
                    supervisor=supervisor,
                    idle_after=idle[kind],
                    passivated=not eager,
                )
                if eager:
                    cell = ref._cell
                    assert cell.live is not None
                    tasks.append(cell._schedule(cell.live))
                restored += 1
            if tasks:
                await asyncio.wait(tasks)
            self._preloaded.clear()
        # Kinds another restore call registered (before this one) are no loss.
        unknown = {kind: n for kind, n in sorted(other.items()) if kind not in self._restored_kinds}
        if quarantined or unknown:
            self._log.warning(
                "resources not restored",
                quarantined=quarantined,
                unknown_kinds=unknown,
                known=sorted(self._restored_kinds),
            )
        return restored

    def _take_preloaded(self, resource_id: str) -> Loaded | None:
        return self._preloaded.pop(resource_id, None)

    # -- addressing ---------------------------------------------------------------------

    def lookup(self, address: str) -> ActorRef:
        """The reference of the actor at ``address`` (a resource actor's resource id).

        Raises:
            ActorNotFound: nothing is registered there.
        """
        cell = self._cell(address)
        return ActorRef(cell)

    def _cell(self, address: object) -> _Cell:
        try:
            cell: _Cell | None = self._cells.get(address)  # type: ignore[call-overload]
        except TypeError:  # unhashable: certainly not an address
            raise InvalidArgument("address", expected="a str", got=address) from None
        if cell is None:
            raise ActorNotFound(str(address))
        return cell

    def supervisor(self, address: str) -> Supervisor:
        """The supervisor at ``address``; ``"/root"`` is the root."""
        try:
            node = self._supervisors.get(address)
        except TypeError:  # unhashable: certainly not an address
            raise InvalidArgument("address", expected="a str", got=address) from None
        if node is None:
            raise ActorNotFound(address)
        return node

    def __contains__(self, address: object) -> bool:
        try:
            return address in self._cells
        except TypeError:  # unhashable: certainly not an address
            return False

    async def stop(self, address: str) -> None:
        """Stop the actor at ``address`` for good: it finishes its current message, then
        its waiting messages fail (asks) or become dead letters (tells).

        Raises:
            ActorNotFound: nothing is registered there.
        """
        cell = self._cell(address)
        await cell._terminate(cell.spec.shutdown_timeout)
        cell.spec.supervisor._forget(address)
        cell._remove("it was stopped")

    async def passivate(self, address: str) -> bool:
        """Drop the incarnation of an idle actor; it comes back on its next message.

        Returns:
            True if the actor is passivated now; False if it was busy (nothing changes).
        """
        cell = self._cell(address)
        live = cell.live
        if live is None:
            return True
        if live.current is not None or live.queue or live.suspended or live.reason is not None:
            return False  # busy, crashed, or not even started
        await asyncio.wait({cell._control(live, _Control.PASSIVATE)})
        if cell.live is not live:
            self._idle_watch.pop(address, None)
            return True
        return False

    # -- bookkeeping used by cells ---------------------------------------------------------

    def _activated(self, cell: _Cell) -> None:
        if cell.spec.idle_after != math.inf:
            self._idle_watch[cell.address] = cell

    def _unregister(self, cell: _Cell) -> None:
        if self._cells.get(cell.address) is cell:
            del self._cells[cell.address]
        self._idle_watch.pop(cell.address, None)

    def _unregister_supervisor(self, node: Supervisor) -> None:
        if self._supervisors.get(node.address) is node:
            del self._supervisors[node.address]

    def _dead_letter(self, address: str, message: Any, reason: str) -> None:
        self._counters.dead_letters += 1
        self._dead_letters.append(DeadLetter(address, message, reason, self.env.clock.now()))
        self._log.debug("dead letter", address=address, message_type=type(message).__name__)

    def _rejected_tell(self, cell: _Cell, message: Any, error: CommandRejected) -> None:
        self._counters.rejected_tells += 1
        self._log.warning(
            "told command rejected",
            address=cell.address,
            message_type=type(message).__name__,
            error=str(error),
        )

    async def _sweep(self) -> None:
        """Passivate actors idle for longer than their ``idle_after``."""
        while True:
            await self.env.clock.sleep(self._sweep_interval)
            now = self.env.clock.monotonic()
            for address, cell in list(self._idle_watch.items()):
                live = cell.live
                if live is None:
                    del self._idle_watch[address]
                elif cell._is_idle(now):
                    cell._control(live, _Control.PASSIVATE)

    # -- observation --------------------------------------------------------------------

    def dead_letters(self) -> tuple[DeadLetter, ...]:
        """The most recent dead letters, oldest first (all of them are counted)."""
        return tuple(self._dead_letters)

    def statistics(self) -> SystemStatistics:
        """A snapshot of the counters (walks the registry: not for the hot path)."""
        live = busy = 0
        for cell in self._cells.values():
            incarnation = cell.live
            if incarnation is not None:
                live += 1
                if incarnation.task is not None or incarnation.queue:
                    busy += 1
        counters = self._counters
        return SystemStatistics(
            actors=len(self._cells),
            live=live,
            passivated=len(self._cells) - live,
            busy=busy,
            supervisors=len(self._supervisors),
            messages=counters.messages,
            crashes=counters.crashes,
            restarts=counters.restarts,
            escalations=counters.escalations,
            ask_timeouts=counters.ask_timeouts,
            late_replies=counters.late_replies,
            dead_letters=counters.dead_letters,
            mailbox_full=counters.mailbox_full,
            rejected_tells=counters.rejected_tells,
            passivations=counters.passivations,
            activations=counters.activations,
            bus_dropped=self.bus.statistics().dropped,
            store_degraded=self.store.statistics().degraded,
        )

    def __repr__(self) -> str:
        return f"ActorSystem({self.name!r}, {self._state.value}, actors={len(self._cells)})"


def open_actor_system(
    *,
    env: Environment | None = None,
    name: str = "stateward",
    ask_timeout: float = 10.0,
    mailbox_capacity: int = 1000,
    shutdown_timeout: float = 5.0,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    period: float = 5.0,
    sweep_interval: float = 1.0,
    store: Store | None = None,
) -> ActorSystem:
    """An actor system to open with ``async with``; see :class:`ActorSystem` for the options."""
    return ActorSystem(
        env=env,
        name=name,
        ask_timeout=ask_timeout,
        mailbox_capacity=mailbox_capacity,
        shutdown_timeout=shutdown_timeout,
        strategy=strategy,
        max_restarts=max_restarts,
        period=period,
        sweep_interval=sweep_interval,
        store=store,
    )

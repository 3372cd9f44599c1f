"""The embedding API: a fleet of hosts and instances on one database and one driver.

::

    async with Fleet.open("cloud.db", driver=FakeDriver()) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=Capacity(vcpus=16, ram_mb=65536, disk_gb=1000))
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        record = await fleet.tasks.wait(record.id)

Opening a fleet restores every host and instance from the database (lazily), resumes the
flows a crash interrupted, settles instances whose task ended while nobody listened, and
reconciles the database with ``driver.describe()`` (see :meth:`Fleet.reconcile`).

Every public call checks its arguments first: one of the wrong type or out of range is
:class:`~stateward.runtime.InvalidArgument` (what was expected, what was got) before anything
is sent to an actor or committed.

Events: ``instance.<id>.<event>`` and ``host.<id>.<event>`` for every committed transition,
``task.<id>.<status>`` when a task ends; subscribe with :meth:`Fleet.subscribe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import msgspec

from stateward.flows import Action as TaskAction
from stateward.flows import (
    Busy,
    Flow,
    FlowEngine,
    FlowHandle,
    Reconciled,
    TaskNotFound,
    TaskRecord,
    TaskStatus,
    linear,
    task,
)
from stateward.runtime import (
    ActorRef,
    ActorSystem,
    AskTimeout,
    CommitFailed,
    Document,
    Durability,
    Environment,
    InvalidArgument,
    MemoryStore,
    Overflow,
    ResourceQuarantined,
    ResourceSummary,
    StatewardError,
    Store,
    StoreUnavailable,
    Subscription,
    Write,
    get_logger,
    is_dsn,
    open_actor_system,
    open_postgres_store,
    open_sqlite_store,
)

from ._checks import (
    MAX_INT,
    check_flag,
    check_int,
    check_member,
    check_name,
    check_optional_text,
    check_path,
    check_seconds,
    check_text,
    check_texts,
)
from ._drain import DRAIN, drain_flow
from ._driver import Driver, DriverView, GuestRole
from ._errors import DuplicateName, FleetNotOpen, UnknownName, WaitTimeout
from ._errors import a as _a
from ._host import (
    Capacity,
    Configure,
    GetHost,
    Heartbeat,
    HostActor,
    HostStatus,
)
from ._instance import (
    ACTIONS,
    Act,
    Boot,
    BootSpec,
    GetInstance,
    InstanceActor,
    InstanceStatus,
    Lost,
    Move,
    Progress,
    Settle,
    TaskEnded,
)
from ._instance_machine import InstanceAction, task_running, vm_state
from ._lease import GetLease, LeaseActor
from ._lease_flows import build_lease_flows
from ._lease_machine import LEASE
from ._leases import Leases
from ._migration import (
    MIGRATION_ACTORS,
    Advance,
    GetMigration,
    MigrationActor,
    MigrationStatus,
)
from ._moves import build_move_flows
from ._operations import build_flows
from ._scheduler import Flavor, GroupPolicy, Scheduler, Weigher

__all__ = (
    "Fleet",
    "Hosts",
    "Instances",
    "Tasks",
    "Catalog",
    "UnknownName",
    "DuplicateName",
    "FleetNotOpen",
    "WaitTimeout",
    "ReconcileReport",
)

#: The admin events of a host.
_HOST_EVENTS = ("disable", "enable", "start_maintenance", "end_maintenance")
#: Seconds between attempts to tell an instance something the store refused, doubling.
_FIRST_PAUSE = 1.0
_LAST_PAUSE = 30.0


class _State(enum.Enum):
    NEW = "not open yet"
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"


class Catalog:
    """Named things a fleet knows: flavors or images, kept in the fleet's store.

    Each item is a document of its own (collection ``catalog.<kind>``, keyed by name),
    committed before :meth:`add` returns and read back when the fleet opens: a reopened
    fleet knows its flavors and images. Built by the :class:`Fleet` (``fleet.flavors``,
    ``fleet.images``).

    Args:
        fleet: the fleet whose store holds the catalog.
        kind: what it holds, ``"flavor"`` or ``"image"``.
        item_type: the type of its items: a :class:`Flavor`, or ``str`` for an image (its
            name).
    """

    def __init__(self, fleet: Fleet, kind: str, item_type: type = str) -> None:
        self.kind = kind
        self.item_type = item_type
        self._fleet = fleet
        self._collection = f"catalog.{kind}"
        self._items: dict[str, Any] = {}
        #: The stored version of each item that could not be read back, by name.
        self._unreadable: dict[str, int] = {}
        #: Serialises adds, so that two adds of one name cannot both commit.
        self._adding = asyncio.Lock()

    async def add(self, item: Any, *, name: str | None = None) -> None:
        """Add ``item`` (a Flavor, or an image name), under ``name`` or its own name, and
        commit it; adding an identical item again does nothing.

        Raises:
            InvalidArgument: an item of another type, or a name that is not valid text.
            DuplicateName: the name holds another item.
            FleetNotOpen: the fleet is not open.
            StoreUnavailable, CommitFailed: the store did not take it (it is not added;
                add it again).
        """
        self._fleet._check_open(f"{self.kind}s.add")
        if self.item_type is str:
            check_text(f"{self.kind} name", item)
        elif not isinstance(item, self.item_type):
            raise InvalidArgument(self.kind, expected=f"a {self.item_type.__name__}", got=item)
        key = check_text(
            f"{self.kind} name", name if name is not None else getattr(item, "name", item)
        )
        if not key.strip():
            raise InvalidArgument(f"{self.kind} name", expected="a name that is not blank", got=key)
        async with self._adding:
            held = self._items.get(key, _ABSENT)
            if held == item:
                return  # the same item again: nothing to do
            if held is not _ABSENT:
                raise DuplicateName(self.kind, key, existing=repr(held))
            now = self._fleet.env.clock.now()
            body = _catalog_encoder.encode(item)
            version = self._unreadable.get(key, 0) + 1
            document = Document(self._collection, key, version, body, created=now, updated=now)
            try:
                await self._fleet.store.commit(Write(documents=(document,)))
            except StatewardError:
                # A commit reported failed may have landed (an fsync error after the write),
                # or an earlier one did: what the store holds decides.
                if not await self._landed(key, item):
                    raise
            self._unreadable.pop(key, None)
            self._items[key] = item

    async def _landed(self, key: str, item: Any) -> bool:
        """Whether the store holds ``item`` under ``key`` (False when it cannot tell)."""
        try:
            stored = await self._fleet.store.get_document(self._collection, key)
            if stored is None:
                return False
            return bool(msgspec.msgpack.decode(stored.body, type=self.item_type) == item)
        except (StatewardError, msgspec.DecodeError, msgspec.ValidationError):
            return False

    async def _restore(self, store: Store) -> None:
        """Read every item back from ``store`` (a fleet that opens)."""
        before: tuple[float, str] | None = None
        while True:
            page = await store.find_documents(self._collection, before=before, limit=1000)
            if not page:
                return
            for document in page:
                try:
                    self._items[document.key] = msgspec.msgpack.decode(
                        document.body, type=self.item_type
                    )
                except (msgspec.DecodeError, msgspec.ValidationError, InvalidArgument) as error:
                    # Left out, and replaced by the next add of its name.
                    self._unreadable[document.key] = document.version
                    self._fleet._log.error(
                        "catalog item unreadable; left out",
                        kind=self.kind,
                        name=document.key,
                        error=str(error),
                    )
            before = (page[-1].created, page[-1].key)

    def get(self, name: str) -> Any:
        """The item called ``name``.

        Raises:
            UnknownName: there is none.
            InvalidArgument: ``name`` is not a str.
        """
        if type(name) is not str:
            raise InvalidArgument(
                self.kind, expected=f"the name of {_a(self.kind)} (a str)", got=name
            )
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, known=self._items) from None

    def __contains__(self, name: object) -> bool:
        return type(name) is str and name in self._items

    def __iter__(self) -> Any:
        return iter(sorted(self._items))


#: What a catalog's name holds when it holds nothing (an item may be anything but this).
_ABSENT: Any = object()
_catalog_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What a reconciliation found and repaired.

    Attributes:
        orphans: instances on the driver the database does not know (or knows as deleted);
            destroyed.
        ghosts: instances the database has as built but the driver does not have; put in
            ``error`` with the repair task as their fault.
        orphan_ports, orphan_volumes: ports freed and volumes detached whose owner is not
            a live instance.
        tasks: the repair task of each, in the order above (then those below).
        parked_moves: parked migrations settled: the claims the instance does not live on
            released, then ``completed`` if it had switched, ``failed`` if not.
        stale_copies: ``instance@host`` copies of an instance older than its owner (an
            evacuated instance's old guest on a host that came back, the source of a move
            that could not clean it up) removed.
    """

    orphans: tuple[str, ...]
    ghosts: tuple[str, ...]
    orphan_ports: tuple[str, ...]
    orphan_volumes: tuple[str, ...]
    tasks: tuple[str, ...]
    parked_moves: tuple[str, ...] = ()
    stale_copies: tuple[str, ...] = ()


class Fleet:
    """Hosts and instances, their tasks and events, on one store and one driver.

    Use :meth:`open`. Args are those of :meth:`open`.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        driver: Driver,
        env: Environment | None = None,
        store: Store | None = None,
        durability: Durability = Durability.FULL,
        weigher: Weigher = Weigher.SPREAD,
        networks: tuple[str, ...] = ("default",),
        heartbeat_interval: float = 20.0,
        reconcile: bool = True,
        idle_after: float = 300.0,
        resize_confirm_after: float = 3600.0,
        lease_notify_before: float = 300.0,
        instance_actor: type[InstanceActor] = InstanceActor,
        host_actor: type[HostActor] = HostActor,
    ) -> None:
        path = check_path("path", path)
        if not isinstance(driver, Driver):
            raise InvalidArgument("driver", expected="a Driver", got=driver)
        if env is not None and not isinstance(env, Environment):
            raise InvalidArgument("env", expected="an Environment or None", got=env)
        if store is not None and not isinstance(store, Store):
            raise InvalidArgument("store", expected="a Store or None", got=store)
        if path is not None and store is not None:
            raise InvalidArgument("store", expected="either a path or a store", got=store)
        self.path = path
        self.driver = driver
        self.env = env if env is not None else Environment()
        self._given_store = store
        self._durability = check_member("durability", durability, Durability)
        self._weigher = check_member("weigher", weigher, Weigher)
        self.networks = check_texts("networks", networks)
        self._heartbeat_interval = check_seconds("heartbeat_interval", heartbeat_interval)
        self._reconcile_on_open = check_flag("reconcile", reconcile)
        self._idle_after = (
            math.inf if idle_after == math.inf else check_seconds("idle_after", idle_after)
        )
        self.resize_confirm_after = check_seconds("resize_confirm_after", resize_confirm_after)
        self.lease_notify_before = check_seconds("lease_notify_before", lease_notify_before)
        if not (isinstance(instance_actor, type) and issubclass(instance_actor, InstanceActor)):
            raise InvalidArgument(
                "instance_actor", expected="InstanceActor or a subclass", got=instance_actor
            )
        self._instance_actor = instance_actor
        if not (isinstance(host_actor, type) and issubclass(host_actor, HostActor)):
            raise InvalidArgument("host_actor", expected="HostActor or a subclass", got=host_actor)
        self._host_actor = host_actor
        self.flavors = Catalog(self, "flavor", Flavor)
        self.images = Catalog(self, "image")
        self.hosts = Hosts(self)
        self.instances = Instances(self)
        self.tasks = Tasks(self)
        self.migrations = Migrations(self)
        self._host_refs: dict[str, ActorRef] = {}
        self._agents: dict[str, bool] = {}
        #: The fleet's task group: the heartbeat loop and the keeper of the watchers run in
        #: it, so nothing the fleet starts outlives it. None until open, and once closing.
        self._group: anyio.abc.TaskGroup | None = None
        #: Watchers and cancellers: one plain task per flow, cheap to start (an anyio child
        #: costs four times as much), cancelled and awaited by the keeper. A dict, not a set:
        #: cancelling in insertion order keeps runs deterministic.
        self._watchers: dict[asyncio.Task[None], None] = {}
        #: Set whenever no watcher runs.
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._stack: contextlib.AsyncExitStack | None = None
        self._state = _State.NEW
        self._log = get_logger("stateward.fleet")
        self.system: ActorSystem
        self.store: Store
        self.engine: FlowEngine
        self.scheduler: Scheduler
        self._flows: dict[str, Flow] = {}
        self._services = _Services(self)
        self.leases = Leases(self._services)
        self.last_reconcile: ReconcileReport | None = None

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        driver: Driver,
        env: Environment | None = None,
        store: Store | None = None,
        durability: Durability = Durability.FULL,
        weigher: Weigher = Weigher.SPREAD,
        networks: tuple[str, ...] = ("default",),
        heartbeat_interval: float = 20.0,
        reconcile: bool = True,
        idle_after: float = 300.0,
        resize_confirm_after: float = 3600.0,
        lease_notify_before: float = 300.0,
        instance_actor: type[InstanceActor] = InstanceActor,
        host_actor: type[HostActor] = HostActor,
    ) -> Fleet:
        """A fleet to open with ``async with``.

        Args:
            path: the SQLite database (a str or ``os.PathLike``; created if missing), or a
                PostgreSQL DSN (``postgresql://user@host:port/database``: the tables live
                in its schema ``stateward``, created if missing; pass ``store=`` with
                :func:`~stateward.runtime.open_postgres_store` for another schema); in
                memory when None.
            driver: the hypervisor boundary.
            env: clock, randomness and ids.
            store: a store to use instead of ``path`` (opened and closed by the caller).
            durability: the store's durability mode (on PostgreSQL, ``FULL`` is
                ``synchronous_commit=on``).
            weigher: spread or pack instances.
            networks: the networks an instance gets a port on by default.
            heartbeat_interval: how often the fleet heartbeats hosts whose agent is alive.
            reconcile: reconcile with the driver when opening.
            idle_after: seconds after which an idle instance leaves memory (it comes back
                from the store on its next command); ``math.inf`` for never.
            resize_confirm_after: seconds a resize waits in ``resized`` for a confirmation
                or a revert; then it confirms itself (a durable timer: it also fires after a
                restart). No state waits on a person.
            lease_notify_before: seconds before a lease's start and end that its
                ``starting_soon`` and ``ending_soon`` notifications fire, unless the lease
                sets its own.
            instance_actor: the instance actor class (a subclass can observe or inject).
            host_actor: the host actor class (a subclass can observe or inject).

        Raises:
            InvalidArgument: a parameter of the wrong type or out of range (nothing is
                opened or created).
        """
        return cls(
            path,
            driver=driver,
            env=env,
            store=store,
            durability=durability,
            weigher=weigher,
            networks=networks,
            heartbeat_interval=heartbeat_interval,
            reconcile=reconcile,
            idle_after=idle_after,
            resize_confirm_after=resize_confirm_after,
            lease_notify_before=lease_notify_before,
            instance_actor=instance_actor,
            host_actor=host_actor,
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Fleet:
        if self._state is not _State.NEW:
            raise FleetNotOpen(self._state.value, action="open")
        self._state = _State.OPENING
        stack = self._stack = contextlib.AsyncExitStack()
        try:
            await self._open(stack)
        except BaseException:
            self._state = _State.CLOSED
            self._stack = None
            await stack.aclose()
            raise
        self._state = _State.OPEN
        return self

    def _check_open(self, action: str) -> None:
        """Raise :class:`FleetNotOpen` unless the fleet is open (or opening)."""
        if self._state is not _State.OPEN and self._state is not _State.OPENING:
            raise FleetNotOpen(self._state.value, action=action)

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        if self._given_store is not None:
            store: Store = self._given_store
        elif is_dsn(self.path):
            store = await stack.enter_async_context(
                open_postgres_store(
                    str(self.path), durability=self._durability, clock=self.env.clock
                )
            )
        elif self.path is not None:
            store = await stack.enter_async_context(
                open_sqlite_store(self.path, durability=self._durability, clock=self.env.clock)
            )
        else:
            memory = MemoryStore(clock=self.env.clock)
            stack.push_async_callback(memory.aclose)
            store = memory
        self.store = store
        await self.flavors._restore(store)
        await self.images._restore(store)
        self.system = await stack.enter_async_context(
            open_actor_system(env=self.env, store=store, name="fleet")
        )
        self.engine = FlowEngine(store, env=self.env, on_busy=Busy.QUEUE)
        stack.push_async_callback(self.engine.aclose)
        # Closed before the engine: its tasks are cancelled, then awaited (the group's exit).
        self._group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(self._stop_background)
        self._group.start_soon(self._keep_watchers, name="fleet watchers")
        # Built once: command flows and repair flows, all by name.
        self._flows = {
            **build_flows(self._services),
            **build_move_flows(self._services),
            DRAIN: drain_flow(self._services),
            **build_lease_flows(self._services),
            **self._repair_flows(),
        }
        for flow in self._flows.values():
            self.engine.register(flow)
        self.scheduler = Scheduler(lambda: self._host_refs, weigher=self._weigher, refresh=1.0)
        # One call for both kinds: each would count the other's resources as unrestored.
        await self.system.restore(
            {
                "instance": self._instance_factory,
                "host": self._host_actor,
                LEASE.name: self._lease_factory,
                **{cls.machine.name: cls for cls in MIGRATION_ACTORS.values()},
            },
            idle_after={"instance": self._idle_after},
        )
        for summary in await self._summaries("host"):
            self._host_refs[summary.resource_id] = self.system.lookup(summary.resource_id)
            self._agents[summary.resource_id] = True
        # The agents are back with the fleet: without a fresh heartbeat every host would
        # look down (its last one is as old as the outage) and nothing could be scheduled.
        await self._heartbeat_all()
        for handle in await self.engine.resume():
            self._watch(handle)
        await self._settle_instances()
        await self.scheduler.refresh()  # group membership comes back from the hosts' ledgers
        if self._reconcile_on_open:
            await self._wait_for_tasks()
            await self.reconcile()
        self._group.start_soon(self._heartbeats, name="fleet heartbeats")

    def _stop_background(self) -> None:
        """Cancel every background task and take no new one; the task group's exit, next
        on the way out, waits for them to end."""
        if self._group is not None:
            self._group.cancel_scope.cancel()
            self._group = None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._state = _State.CLOSED
        if stack is not None:
            await stack.aclose()

    def _instance_factory(self) -> InstanceActor:
        return self._instance_actor(self._services)

    def _lease_factory(self) -> LeaseActor:
        return LeaseActor(self._services)

    async def resume(self) -> int:
        """Resume the flows a store failure (or a crash) interrupted; how many resumed."""
        self._check_open("resume")
        handles = await self.engine.resume()
        for handle in handles:
            self._watch(handle)
        return len(handles)

    async def recover(self) -> ReconcileReport:
        """Settle the fleet after trouble: resume interrupted flows, have every instance
        caught mid-task catch up with the store (a commit reported failed may have landed)
        and learn how its task ended (a lost task is submitted again), wait for the tasks,
        then reconcile with the driver."""
        self._check_open("recover")
        await self.resume()
        await self._settle_instances()
        await self._wait_for_tasks()
        return await self.reconcile()

    async def _summaries(self, kind: str) -> list[Any]:
        found: list[Any] = []
        after: str | None = None
        while True:
            page = await self.store.resources(kind=kind, after=after, limit=5000)
            if not page:
                return found
            found.extend(page)
            after = page[-1].resource_id

    # -- tasks ----------------------------------------------------------------------------

    async def _submit(
        self,
        flow: str,
        resource_id: str,
        task_id: str,
        inputs: dict[str, Any],
        key: str | None,
        *,
        commit: Callable[[Document], Awaitable[object]] | None = None,
    ) -> FlowHandle:
        handle = await self.engine.submit(
            self._flows[flow],
            resource_id=resource_id,
            inputs=inputs,
            idempotency_key=key,
            task_id=task_id,
            commit=commit,
        )
        self._watch(handle)
        return handle

    def _cancel_later(self, task_id: str) -> None:
        self._start_watcher(self._cancel(task_id))

    async def _cancel(self, task_id: str) -> None:
        with contextlib.suppress(StatewardError):
            await self.engine.cancel(task_id)

    def _start_watcher(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a watcher (a closing fleet starts none: the next incarnation
        reads the store)."""
        if self._group is None:
            work.close()
            return
        watcher = asyncio.get_running_loop().create_task(work)
        self._watchers[watcher] = None
        self._quiet.clear()
        watcher.add_done_callback(self._forget_watcher)

    def _forget_watcher(self, watcher: asyncio.Task[None]) -> None:
        self._watchers.pop(watcher, None)
        if not self._watchers:
            self._quiet.set()
        if not watcher.cancelled() and (error := watcher.exception()) is not None:
            self._log.error("fleet watcher failed", error=repr(error))

    async def _keep_watchers(self) -> None:
        """Wait until the fleet's group is cancelled (the fleet closes), then cancel every
        watcher and wait for them, those they start meanwhile too."""
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                while self._watchers:
                    watchers = list(self._watchers)
                    for watcher in watchers:
                        watcher.cancel()
                    await asyncio.wait(watchers)

    def _watch(self, handle: FlowHandle) -> None:
        self._start_watcher(self._report(handle))

    def _watch_task(self, instance_id: str, task_id: str) -> None:
        """Called by an instance that (re)loads with a task: make sure it hears the end (a
        second report of the same end is stale to it, and ignored)."""
        handle = self.engine.handle(task_id)
        if handle is not None:
            self._watch(handle)
            return
        self._start_watcher(self._report_stored(instance_id, task_id))

    def _settle_later(self, instance_id: str) -> None:
        """Called by an instance that may be behind its store: ask it to catch up (and so
        to pick up the task the store says it runs) until the store lets it."""
        self._start_watcher(self._deliver(instance_id, Settle(), settle=True))

    async def _deliver(self, instance_id: str, message: Any, *, settle: bool = False) -> None:
        """Ask ``message`` of an instance, again after a pause while the store cannot take
        the transition it leads to; until the instance has taken it or is gone. A
        :class:`Settle` is asked after a first pause, again while it answers False (the
        store could not be read)."""
        pause = _FIRST_PAUSE
        if settle:
            await self.env.clock.sleep(pause)
        while instance_id in self.system:
            try:
                answer = await self.system.lookup(instance_id).ask(message)
                if not (settle and answer is False):
                    return
            except (StoreUnavailable, CommitFailed, AskTimeout):
                pass  # the store (or the instance) is busy or down: it will come back
            except StatewardError:
                return  # stopped, crashed or closing: its next incarnation reads the store
            await self.env.clock.sleep(pause)
            pause = min(pause * 2, _LAST_PAUSE)

    async def _report(self, handle: FlowHandle) -> None:
        try:
            record = await handle.wait()
        except StatewardError:
            return  # interrupted (the store is down): resume() picks it up
        self.system.bus.publish(f"task.{record.id}.{record.status.value}", record)
        # Only an instance hears how its tasks end: a host's drain and a lease's tasks
        # report to nobody.
        if handle.resource_id not in self._host_refs and not record.kind.startswith("lease."):
            await self._deliver(handle.resource_id, TaskEnded(record.id, record.status, record))

    async def _report_stored(self, instance_id: str, task_id: str) -> None:
        pause = _FIRST_PAUSE
        while True:
            try:
                record = await self.engine.get(task_id)
                break
            except TaskNotFound:
                # The transition was committed but the task never was: the instance
                # submits it.
                await self._deliver(
                    instance_id, TaskEnded(task_id, TaskStatus.PENDING, missing=True)
                )
                return
            except StoreUnavailable:
                await self.env.clock.sleep(pause)  # the store is down: ask again
                pause = min(pause * 2, _LAST_PAUSE)
            except ResourceQuarantined as error:
                # The record cannot be read: how the task went is unknown, so the instance
                # leaves its task state for error, where delete and rebuild get it out,
                # instead of waiting for a report that will never come.
                self._log.error(
                    "task record unreadable",
                    task_id=task_id,
                    resource_id=instance_id,
                    error=str(error),
                )
                cause = f"its task record cannot be read: {error}"
                await self._deliver(instance_id, TaskEnded(task_id, TaskStatus.PARKED, cause=cause))
                return
        if not record.status.is_terminal:
            return  # still in flight: its resumed run reports
        await self._deliver(instance_id, TaskEnded(task_id, record.status, record))

    async def _settle_instances(self) -> None:
        """Settle every instance caught mid-task in the store: each catches up with the
        store (an incarnation may be behind it after a commit reported failed) and finds
        out how its task ended."""
        for summary in await self._summaries("instance"):
            if task_running(summary.state):
                with contextlib.suppress(StatewardError):
                    await self.system.lookup(summary.resource_id).ask(Settle())

    async def _wait_for_tasks(self, timeout: float = 60.0) -> None:
        """Wait for the tasks being watched, and for those they lead to (a lost task that
        an instance submits again), within ``timeout`` seconds in all."""
        with anyio.move_on_after(timeout):
            await self._quiet.wait()

    # -- hosts' agents ------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await self.env.clock.sleep(self._heartbeat_interval)
            try:
                await self._heartbeat_all()
            except Exception as error:
                # Logged and tried again next round: a raise would cancel the fleet's group.
                self._log.error("heartbeat round failed", error=repr(error))

    async def _heartbeat_all(self) -> None:
        for host_id, ref in list(self._host_refs.items()):
            if self._agents.get(host_id, False):
                with contextlib.suppress(StatewardError):
                    await ref.ask(Heartbeat())

    # -- reconciliation -----------------------------------------------------------------

    def _repair_flows(self) -> dict[str, Flow]:
        driver = self.driver

        async def destroy_orphan(instance_id: str, task_id: str) -> None:
            guest = driver.where(instance_id)
            epoch = guest.epoch if guest is not None else 0
            await driver.destroy(f"{task_id}:destroy", instance_id, epoch=epoch)

        async def gone(instance_id: str) -> Reconciled:
            view = await driver.describe()
            return Reconciled(all(i.id != instance_id for i in view.instances))

        async def free_port(port_id: str, task_id: str) -> None:
            await driver.free_port(f"{task_id}:free", port_id)

        async def detach_volume(volume_id: str, owner: str, task_id: str) -> None:
            await driver.detach_volume(f"{task_id}:detach", owner, volume_id=volume_id)

        async def mark_lost(instance_id: str, task_id: str) -> None:
            await self.system.lookup(instance_id).ask(Lost(task_id))

        async def remove_stale_copy(instance_id: str, host: str, epoch: int, task_id: str) -> None:
            await driver.cleanup(f"{task_id}:cleanup", instance_id, host=host, epoch=epoch)

        async def settle_parked(migration_id: str, task_id: str) -> None:
            migration = await self.system.lookup(migration_id).ask(GetMigration())
            if migration.state != "parked":
                return
            status = await self.system.lookup(migration.instance_id).ask(GetInstance())
            if task_running(status.state):
                return  # its task decides; the next reconciliation looks again
            here = status.host_id if status.vm_state not in ("deleted", "new") else None
            for host, claim in (
                (migration.source, migration.source_claim),
                (migration.destination, migration.destination_claim),
            ):
                if host is not None and claim is not None and host != here:
                    await self.scheduler.release(host, claim)
            event = "settle_completed" if status.epoch > migration.epoch else "settle_failed"
            await self.system.lookup(migration_id).ask(
                Advance(event, {"reason": f"settled by reconciliation ({task_id})"})
            )

        return {
            "repair.orphan": Flow(
                "repair.orphan",
                task(destroy_orphan, reconcile=gone),
                inputs=("instance_id", "task_id"),
            ),
            "repair.port": Flow("repair.port", task(free_port), inputs=("port_id", "task_id")),
            "repair.volume": Flow(
                "repair.volume", task(detach_volume), inputs=("volume_id", "owner", "task_id")
            ),
            "repair.ghost": Flow(
                "repair.ghost", linear(task(mark_lost)), inputs=("instance_id", "task_id")
            ),
            "repair.stale_copy": Flow(
                "repair.stale_copy",
                task(remove_stale_copy),
                inputs=("instance_id", "host", "epoch", "task_id"),
            ),
            "repair.parked_move": Flow(
                "repair.parked_move", task(settle_parked), inputs=("migration_id", "task_id")
            ),
        }

    async def reconcile(self) -> ReconcileReport:
        """Compare the database with ``driver.describe()`` and repair the differences.

        Policy: an *orphan* (on the driver, unknown to the database or deleted there) is
        destroyed; a *ghost* (built in the database, missing on the driver) goes to ``error``
        with the repair as its fault, for its owner to rebuild or delete; ports and volumes
        whose owner is not a live instance are freed and detached. A *parked* migration is
        settled: the claims it holds on hosts the instance does not live on are released,
        and it ends ``completed`` if the instance had switched, ``failed`` if not. A *stale
        copy* (an older epoch of an instance, on a host that can be reached again) is
        removed: the current guest is never touched. Instances with a task in flight are
        left to their task. Every repair is a task record; one that fails (a host still
        unreachable) is tried again by the next reconciliation.
        """
        self._check_open("reconcile")
        view: DriverView = await self.driver.describe()
        states = {s.resource_id: s.state for s in await self._summaries("instance")}
        live = {i for i, state in states.items() if state not in ("deleted", "new")}
        busy = {i for i, state in states.items() if task_running(state)}
        on_driver = {i.id for i in view.instances}
        orphans = sorted(on_driver - live - busy)
        ghosts = sorted(
            i
            for i, state in states.items()
            if vm_state(state) in ("active", "stopped", "paused", "suspended")
            and not task_running(state)
            and i not in on_driver
        )
        ports = sorted(
            p for p, owner in view.ports.items() if owner not in live and owner not in busy
        )
        volumes = sorted(
            (v, owner)
            for v, owner in view.volumes.items()
            if owner not in live and owner not in busy
        )
        repairs: list[str] = []
        for instance_id in orphans:
            repairs.append(
                await self._repair("repair.orphan", instance_id, {"instance_id": instance_id})
            )
        for instance_id in ghosts:
            repairs.append(
                await self._repair("repair.ghost", instance_id, {"instance_id": instance_id})
            )
        for port in ports:
            repairs.append(await self._repair("repair.port", port, {"port_id": port}))
        for volume, owner in volumes:
            repairs.append(
                await self._repair("repair.volume", volume, {"volume_id": volume, "owner": owner})
            )
        parked = [
            summary.resource_id
            for cls in MIGRATION_ACTORS.values()
            for summary in await self._summaries(cls.machine.name)
            if summary.state == "parked"
        ]
        for migration_id in sorted(parked):
            repairs.append(
                await self._repair(
                    "repair.parked_move", migration_id, {"migration_id": migration_id}
                )
            )
        stale = [
            g
            for g in view.guests
            if g.role is GuestRole.STALE and not task_running(states.get(g.instance_id, "new"))
        ]
        for guest in stale:
            current = self.driver.where(guest.instance_id)
            epoch = max(guest.epoch + 1, current.epoch if current is not None else 0)
            inputs = {"instance_id": guest.instance_id, "host": guest.host_id, "epoch": epoch}
            repairs.append(await self._repair("repair.stale_copy", guest.instance_id, inputs))
        report = ReconcileReport(
            tuple(orphans),
            tuple(ghosts),
            tuple(ports),
            tuple(v for v, _ in volumes),
            tuple(repairs),
            tuple(sorted(parked)),
            tuple(f"{g.instance_id}@{g.host_id}" for g in stale),
        )
        if repairs:
            self._log.warning(
                "reconciled with the driver",
                orphans=len(orphans),
                ghosts=len(ghosts),
                ports=len(ports),
                volumes=len(volumes),
                parked_moves=len(parked),
                stale_copies=len(stale),
            )
        self.last_reconcile = report
        return report

    async def _repair(self, flow: str, resource_id: str, inputs: dict[str, Any]) -> str:
        task_id = self.env.ids.next("task")
        handle = await self.engine.submit(
            self._flows[flow],
            resource_id=resource_id,
            inputs={**inputs, "task_id": task_id},
            task_id=task_id,
        )
        await handle.wait()
        return task_id

    # -- events -------------------------------------------------------------------------

    def subscribe(
        self, pattern: str, *, buffer: int = 1000, overflow: Overflow = Overflow.DROP_OLDEST
    ) -> Subscription:
        """Events matching ``pattern``: ``instance.*.*``, ``host.h-1.#``, ``task.#``, ...

        Raises:
            InvalidArgument: a pattern that is not one, a buffer that is not an int from 1 to
                2**63 - 1, an overflow that is not an :class:`Overflow`.
        """
        self._check_open("subscribe")
        check_text("pattern", pattern)
        check_int("buffer", buffer, low=1)
        check_member("overflow", overflow, Overflow)
        return self.system.bus.subscribe(pattern, buffer=buffer, overflow=overflow)


class _Services:
    """The :class:`FleetServices` a fleet gives its instance actors and flow steps."""

    __slots__ = ("_fleet",)

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    @property
    def driver(self) -> Driver:
        return self._fleet.driver

    @property
    def scheduler(self) -> Scheduler:
        return self._fleet.scheduler

    @property
    def resize_confirm_after(self) -> float:
        return self._fleet.resize_confirm_after

    @property
    def engine(self) -> FlowEngine:
        return self._fleet.engine

    @property
    def env(self) -> Environment:
        return self._fleet.env

    async def submit(
        self,
        flow: str,
        resource_id: str,
        task_id: str,
        inputs: dict[str, Any],
        key: str | None,
        *,
        commit: Callable[[Document], Awaitable[object]] | None = None,
    ) -> FlowHandle:
        return await self._fleet._submit(flow, resource_id, task_id, inputs, key, commit=commit)

    def cancel_later(self, task_id: str) -> None:
        self._fleet._cancel_later(task_id)

    async def progress(
        self, instance_id: str, task_id: str, event: str, payload: Any = None
    ) -> None:
        await self._fleet.system.lookup(instance_id).tell(Progress(task_id, event, payload))

    def host(self, host_id: str) -> ActorRef | None:
        return self._fleet._host_refs.get(host_id)

    def host_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._fleet._host_refs))

    def watch_task(self, instance_id: str, task_id: str) -> None:
        self._fleet._watch_task(instance_id, task_id)

    def settle_later(self, instance_id: str) -> None:
        self._fleet._settle_later(instance_id)

    def instance(self, instance_id: str) -> ActorRef:
        return self._fleet.system.lookup(instance_id)

    def migration(self, migration_id: str) -> ActorRef:
        return self._fleet.system.lookup(migration_id)

    def find_migration(self, migration_id: str) -> ActorRef | None:
        system = self._fleet.system
        return system.lookup(migration_id) if migration_id in system else None

    def lease(self, lease_id: str) -> ActorRef:
        return self._fleet.system.lookup(lease_id)

    def flavor(self, name: str) -> Flavor:
        flavor: Flavor = self._fleet.flavors.get(name)
        return flavor

    async def boot(
        self, instance_id: str, *, flavor: str, image: str, reservation: str, key: str
    ) -> TaskRecord:
        return await self._fleet.instances.boot(
            instance_id, flavor=flavor, image=image, reservation=reservation, idempotency_key=key
        )

    @property
    def store(self) -> Store:
        return self._fleet.store

    @property
    def lease_notify_before(self) -> float:
        return self._fleet.lease_notify_before

    def check_open(self, action: str) -> None:
        self._fleet._check_open(action)

    def taken(self, name: str) -> bool:
        return name in self._fleet.system or name in self._fleet._host_refs

    def is_lease(self, name: str) -> bool:
        return name in self._fleet.system and name not in self._fleet._host_refs

    def image(self, name: str) -> None:
        self._fleet.images.get(name)

    def spawn_lease(self, lease_id: str) -> ActorRef:
        return self._fleet.system.spawn(self._fleet._lease_factory, address=lease_id)

    async def summaries(self, kind: str) -> list[ResourceSummary]:
        return await self._fleet._summaries(kind)

    async def lease_open(self, lease_id: str) -> bool:
        system = self._fleet.system
        if lease_id not in system:
            return False
        status = await system.lookup(lease_id).ask(GetLease())
        return status.state in ("starting", "active", "active/updating")

    def spawn_migration(self, migration_id: str, actor: type[MigrationActor]) -> ActorRef:
        system = self._fleet.system
        if migration_id in system:
            return system.lookup(migration_id)
        return system.spawn(actor, address=migration_id, idle_after=self._fleet._idle_after)


class Hosts:
    """The fleet's hosts: ``fleet.hosts``."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def add(
        self,
        host_id: str,
        *,
        capacity: Capacity,
        zone: str = "nova",
        cpu_ratio: float = 16.0,
        ram_ratio: float = 1.5,
        disk_ratio: float = 1.0,
        traits: tuple[str, ...] = (),
    ) -> HostStatus:
        """Register a host, configure it, and start heartbeating it.

        ``traits`` are free-form properties (``("gpu", "ssd")``) a lease's
        :class:`~stateward.actors.HostReservation` can ask for.

        Raises:
            DuplicateName: a host or instance has that name.
            InvalidArgument: bad capacity, ratios or zone (checked before the host exists).
        """
        self._fleet._check_open("hosts.add")
        fleet = self._fleet
        check_name("host", host_id)
        if not isinstance(capacity, Capacity):
            raise InvalidArgument("capacity", expected="a Capacity", got=capacity)
        for field in ("vcpus", "ram_mb", "disk_gb"):
            check_int(f"capacity.{field}", getattr(capacity, field), high=MAX_INT)
        check_text("zone", zone)
        settings = Configure(
            capacity, cpu_ratio, ram_ratio, disk_ratio, zone, check_texts("traits", traits)
        )
        known = fleet._host_refs.get(host_id)
        if known is not None:
            status = await known.ask(GetHost())
            ratios = (settings.cpu_ratio, settings.ram_ratio, settings.disk_ratio)
            same = (status.capacity, status.zone, status.ratios, status.traits)
            if same == (capacity, zone, ratios, settings.traits):
                return status  # the same host again: nothing to do
            raise DuplicateName(
                "host",
                host_id,
                existing=f"capacity={status.capacity}, zone={status.zone!r}, "
                f"ratios={status.ratios}",
            )
        if host_id in fleet.system:
            raise DuplicateName("host", host_id)
        ref = fleet.system.spawn(fleet._host_actor, address=host_id)
        await ref.ask(settings)
        status = await ref.ask(Heartbeat())
        fleet._host_refs[host_id] = ref
        fleet._agents[host_id] = True
        return status

    def _ref(self, host_id: str) -> ActorRef:
        ref = self._fleet._host_refs.get(check_name("host", host_id))
        if ref is None:
            raise UnknownName("host", str(host_id), known=self._fleet._host_refs)
        return ref

    async def get(self, host_id: str) -> HostStatus:
        """A host's status."""
        self._fleet._check_open("hosts.get")
        status = await self._ref(host_id).ask(GetHost())
        return status

    async def list(self) -> tuple[HostStatus, ...]:
        """Every host, by id."""
        self._fleet._check_open("hosts.list")
        return tuple([await self.get(h) for h in sorted(self._fleet._host_refs)])

    async def command(self, host_id: str, event: str) -> HostStatus:
        """``disable``, ``enable``, ``start_maintenance``, ``end_maintenance``."""
        self._fleet._check_open("hosts.command")
        if type(event) is not str or event not in _HOST_EVENTS:
            raise InvalidArgument(
                "event", expected=f"an admin event of a host: {', '.join(_HOST_EVENTS)}", got=event
            )
        ref = self._ref(host_id)
        await ref.ask(event)
        self._fleet.scheduler.invalidate(host_id)
        status = await ref.ask(GetHost())
        return status

    async def heartbeat(self, host_id: str) -> HostStatus:
        """Record a heartbeat now."""
        self._fleet._check_open("hosts.heartbeat")
        status = await self._ref(host_id).ask(Heartbeat())
        return status

    async def drain(
        self,
        host_id: str,
        *,
        live: bool = True,
        concurrency: int = 10,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Move every instance off a host, ``concurrency`` moves at a time: live those that
        run (when ``live``), cold the others. The host is disabled first and stays so.

        Returns:
            The drain's summary task record, on the host (``fleet.tasks.wait(record.id)``).
            Each instance's move is a task of its own; the ``move_all`` step's result
            names them (``tasks``: instance to task id) and what came of each (``moved``,
            ``gone``, ``failed`` with a reason). The drain fails with
            :class:`DrainIncomplete` when some instances stay.

        Raises:
            InvalidArgument: the host is down (evacuate its instances instead), or a
                concurrency that is not an int from 1 to 1000.
            UnknownName: no such host.
        """
        self._fleet._check_open("hosts.drain")
        check_flag("live", live)
        check_int("concurrency", concurrency, low=1, high=1000)
        check_optional_text("idempotency_key", idempotency_key)
        ref = self._ref(host_id)
        fleet = self._fleet
        if idempotency_key is not None:
            existing = await fleet.engine.find(host_id, idempotency_key)
            if existing is not None:
                return existing
        if not (await ref.ask(GetHost())).up:
            raise InvalidArgument(
                "host_id",
                expected="a host that is up (evacuate the instances of a down host)",
                got=f"{host_id}, which is down",
            )
        task_id = fleet.env.ids.next("task")
        inputs = {"host_id": host_id, "task_id": task_id, "live": live, "concurrency": concurrency}
        handle = await fleet._submit(DRAIN, host_id, task_id, inputs, idempotency_key)
        return handle.record

    def ids(self) -> tuple[str, ...]:
        """Every host's id, sorted."""
        self._fleet._check_open("hosts.ids")
        return tuple(sorted(self._fleet._host_refs))

    async def heartbeat_all(self) -> None:
        """Heartbeat every host whose agent is alive, now (as the agents would)."""
        self._fleet._check_open("hosts.heartbeat_all")
        await self._fleet._heartbeat_all()

    def set_agent(self, host_id: str, *, alive: bool) -> None:
        """Whether the host's agent heartbeats (a dead agent makes the host go down)."""
        self._fleet._check_open("hosts.set_agent")
        check_flag("alive", alive)
        self._ref(host_id)
        self._fleet._agents[host_id] = alive
        self._fleet.scheduler.invalidate(host_id)


class Instances:
    """The fleet's instances: ``fleet.instances``."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def boot(
        self,
        instance_id: str,
        *,
        flavor: str,
        image: str,
        zone: str | None = None,
        group: str | None = None,
        group_policy: GroupPolicy | None = None,
        networks: tuple[str, ...] | None = None,
        volumes: tuple[str, ...] = (),
        reservation: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Build an instance: schedule, claim, ports, volumes, spawn, power on.

        ``reservation`` names an active lease: the instance is built in the capacity the
        lease holds (and only there). Without it the instance takes unreserved capacity,
        which never includes capacity a lease holds now or later.

        Returns:
            The boot's task record (the boot runs on; wait for it with
            ``fleet.tasks.wait(record.id)``).

        Raises:
            UnknownName: unknown flavor or image.
            DuplicateName: the name is taken (unless ``idempotency_key`` repeats a boot); a
                deleted instance's name is free, and booting it starts a new generation
                (the old one's tasks and history stay, under its task ids).
            InvalidArgument: an argument of the wrong type (names, zone, group, networks and
                volumes are text; the policy a GroupPolicy; the key a str or None), or a
                group without a policy. Nothing is committed.
        """
        self._fleet._check_open("instances.boot")
        fleet = self._fleet
        check_name("instance", instance_id)
        chosen: Flavor = fleet.flavors.get(check_text("flavor", flavor))
        fleet.images.get(check_text("image", image))
        check_optional_text("zone", zone)
        if group is not None:
            check_name("group", group)
        if group_policy is not None:
            check_member("group_policy", group_policy, GroupPolicy)
        if (group is None) != (group_policy is None):
            raise InvalidArgument("group_policy", expected="given with group", got=group_policy)
        chosen_networks = fleet.networks if networks is None else check_texts("networks", networks)
        chosen_volumes = check_texts("volumes", volumes)
        check_optional_text("idempotency_key", idempotency_key)
        if reservation is not None:
            await fleet.leases.check_boot(check_name("reservation", reservation), chosen)
        if instance_id in fleet._host_refs:
            raise DuplicateName("instance", instance_id)
        if instance_id in fleet.system:
            # Its actor decides: a repeated key, a deleted name (booted again) or a taken one.
            ref = fleet.system.lookup(instance_id)
        else:
            ref = fleet.system.spawn(
                fleet._instance_factory, address=instance_id, idle_after=fleet._idle_after
            )
        spec = BootSpec(
            chosen.name,
            chosen.vcpus,
            chosen.ram_mb,
            chosen.disk_gb,
            image,
            zone=zone,
            group=group,
            group_policy=group_policy,
            networks=chosen_networks,
            volumes=chosen_volumes,
            reservation=reservation,
        )
        command = Boot(spec, idempotency_key)
        record = await ref.ask(command)
        return record

    def _ref(self, instance_id: str) -> ActorRef:
        fleet = self._fleet
        check_name("instance", instance_id)
        if instance_id not in fleet.system or instance_id in fleet._host_refs:
            raise UnknownName("instance", str(instance_id))
        return fleet.system.lookup(instance_id)

    async def act(
        self,
        instance_id: str,
        action: InstanceAction | str,
        *,
        image: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Run ``action`` (stop, start, reboot, reboot_hard, pause, unpause, suspend, resume,
        rebuild, delete) on an instance; returns its task record."""
        self._fleet._check_open("instances.act")
        # Checked here, before the ask: bad arguments raised inside the actor would crash it.
        if not isinstance(action, str) or action not in ACTIONS:
            raise InvalidArgument("action", expected=f"one of {', '.join(ACTIONS)}", got=action)
        action = InstanceAction(action)
        if action == "rebuild" and not image:
            raise InvalidArgument("image", expected="an image to rebuild from", got=image)
        if image is not None:
            self._fleet.images.get(check_text("image", image))
        check_optional_text("idempotency_key", idempotency_key)
        ref = self._ref(instance_id)
        record = await ref.ask(Act(action, image=image, idempotency_key=idempotency_key))
        return record

    async def stop(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Power off."""
        self._fleet._check_open("instances.stop")
        return await self.act(instance_id, "stop", idempotency_key=idempotency_key)

    async def start(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Power on a stopped instance."""
        self._fleet._check_open("instances.start")
        return await self.act(instance_id, "start", idempotency_key=idempotency_key)

    async def reboot(
        self, instance_id: str, *, hard: bool = False, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Reboot, soft or hard."""
        self._fleet._check_open("instances.reboot")
        action = "reboot_hard" if check_flag("hard", hard) else "reboot"
        return await self.act(instance_id, action, idempotency_key=idempotency_key)

    async def pause(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Pause a running instance (its memory stays, its CPUs stop)."""
        self._fleet._check_open("instances.pause")
        return await self.act(instance_id, InstanceAction.PAUSE, idempotency_key=idempotency_key)

    async def unpause(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Run a paused instance again."""
        self._fleet._check_open("instances.unpause")
        return await self.act(instance_id, InstanceAction.UNPAUSE, idempotency_key=idempotency_key)

    async def suspend(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Suspend a running instance (its memory saved to disk)."""
        self._fleet._check_open("instances.suspend")
        return await self.act(instance_id, InstanceAction.SUSPEND, idempotency_key=idempotency_key)

    async def resume(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Run a suspended instance again."""
        self._fleet._check_open("instances.resume")
        return await self.act(instance_id, InstanceAction.RESUME, idempotency_key=idempotency_key)

    async def rebuild(
        self, instance_id: str, *, image: str, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Re-create the instance's disk from ``image``."""
        self._fleet._check_open("instances.rebuild")
        return await self.act(
            instance_id,
            "rebuild",
            image=check_text("image", image),
            idempotency_key=idempotency_key,
        )

    async def delete(self, instance_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Delete (cancelling a build in progress first)."""
        self._fleet._check_open("instances.delete")
        return await self.act(instance_id, "delete", idempotency_key=idempotency_key)

    # -- moves ---------------------------------------------------------------------------

    async def move(
        self,
        instance_id: str,
        *,
        host: str | None = None,
        flavor: str | None = None,
        live: bool = False,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Move an instance to ``host`` (or where the scheduler finds room): a cold
        migration, a resize when ``flavor`` is given, a live migration when ``live``.

        The move is a task (``fleet.tasks.wait``) and a migration resource
        (``fleet.migrations.get(status.migration_id)``). Its destination is claimed before
        anything is copied, and the instance changes owner in one journaled switch: a move
        that fails before it leaves the instance where it was.

        Raises:
            InvalidArgument: a live resize, an unknown flavor or host, the host it runs on.
            InvalidTransition: the instance's state allows no such move (a task running).
        """
        self._fleet._check_open("instances.move")
        check_name("instance", instance_id)
        check_flag("live", live)
        check_optional_text("idempotency_key", idempotency_key)
        if host is not None:
            check_name("host", host)
            if host not in self._fleet._host_refs:
                raise UnknownName("host", host)
        chosen = None
        if flavor is not None:
            if live:
                raise InvalidArgument(
                    "flavor", expected="no flavor for a live migration (resize is cold)", got=flavor
                )
            chosen = self._fleet.flavors.get(check_text("flavor", flavor))
        kind = (
            InstanceAction.LIVE_MIGRATE
            if live
            else InstanceAction.RESIZE
            if chosen is not None
            else InstanceAction.MIGRATE
        )
        ref = self._ref(instance_id)
        return await ref.ask(Move(kind, chosen, host, idempotency_key))

    async def evacuate(
        self, instance_id: str, *, host: str | None = None, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Rebuild an instance whose host is down on another host (``host`` or where the
        scheduler finds room), from its image, under a new epoch: the old guest is fenced
        and can never act again, and the instance is started if it ran.

        Raises:
            InvalidArgument: its host is up (migrate it instead), or an unknown host.
            InvalidTransition: the instance's state allows no evacuation.
        """
        self._fleet._check_open("instances.evacuate")
        check_name("instance", instance_id)
        check_optional_text("idempotency_key", idempotency_key)
        if host is not None:
            check_name("host", host)
            if host not in self._fleet._host_refs:
                raise UnknownName("host", host)
        ref = self._ref(instance_id)
        status = await ref.ask(GetInstance())
        source = self._fleet._host_refs.get(status.host_id or "")
        if source is not None and (await source.ask(GetHost())).up:
            raise InvalidArgument(
                "instance_id",
                expected="an instance whose host is down (migrate one whose host is up)",
                got=f"{instance_id} on {status.host_id}, which is up",
            )
        return await ref.ask(Move(InstanceAction.EVACUATE, None, host, idempotency_key))

    async def migrate(
        self, instance_id: str, *, host: str | None = None, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Cold-migrate: stopped, copied to another host, started there if it ran."""
        return await self.move(instance_id, host=host, idempotency_key=idempotency_key)

    async def resize(
        self,
        instance_id: str,
        flavor: str,
        *,
        host: str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Resize to ``flavor``: a cold move, then ``resized`` until confirmed or reverted."""
        return await self.move(
            instance_id, host=host, flavor=flavor, idempotency_key=idempotency_key
        )

    async def live_migrate(
        self, instance_id: str, *, host: str | None = None, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Live-migrate: the guest keeps running while it is copied to another host."""
        return await self.move(instance_id, host=host, live=True, idempotency_key=idempotency_key)

    async def confirm_resize(
        self, instance_id: str, *, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Keep a resize: its source is given up."""
        self._fleet._check_open("instances.confirm_resize")
        check_optional_text("idempotency_key", idempotency_key)
        return await self._ref(instance_id).ask(
            Act(InstanceAction.CONFIRM_RESIZE, idempotency_key=idempotency_key)
        )

    async def revert_resize(
        self, instance_id: str, *, idempotency_key: str | None = None
    ) -> TaskRecord:
        """Undo a resize: back on its source, with its old flavor."""
        self._fleet._check_open("instances.revert_resize")
        check_optional_text("idempotency_key", idempotency_key)
        return await self._ref(instance_id).ask(
            Act(InstanceAction.REVERT_RESIZE, idempotency_key=idempotency_key)
        )

    async def get(self, instance_id: str) -> InstanceStatus:
        """An instance's status: vm_state, task_state, power, host, fault, allowed actions."""
        self._fleet._check_open("instances.get")
        status = await self._ref(instance_id).ask(GetInstance())
        return status

    async def summaries(self) -> tuple[ResourceSummary, ...]:
        """Every instance as stored (id, state, revision), without loading any."""
        self._fleet._check_open("instances.summaries")
        return tuple(await self._fleet._summaries("instance"))

    async def list(self) -> tuple[InstanceStatus, ...]:
        """Every instance, by id (this loads passivated ones)."""
        self._fleet._check_open("instances.list")
        fleet = self._fleet
        summaries = await fleet._summaries("instance")
        return tuple([await self.get(s.resource_id) for s in summaries])


class Migrations:
    """The fleet's moves, each a resource of its own: ``fleet.migrations``."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def get(self, migration_id: str) -> MigrationStatus:
        """One migration: kind, instance, source, destination, flavors, state, reason.

        Raises:
            UnknownName: no migration has that id.
        """
        self._fleet._check_open("migrations.get")
        check_name("migration", migration_id)
        system = self._fleet.system
        if migration_id not in system or not migration_id.startswith("migration-"):
            raise UnknownName("migration", migration_id)
        return await system.lookup(migration_id).ask(GetMigration())

    async def list(self, instance_id: str | None = None) -> tuple[MigrationStatus, ...]:
        """Every migration (of one instance, when given), oldest first."""
        self._fleet._check_open("migrations.list")
        fleet = self._fleet
        found = []
        for cls in MIGRATION_ACTORS.values():
            for summary in await fleet._summaries(cls.machine.name):
                status = await fleet.system.lookup(summary.resource_id).ask(GetMigration())
                if instance_id is None or status.instance_id == instance_id:
                    found.append(status)
        return tuple(sorted(found, key=lambda m: (m.started, m.id)))


class Tasks:
    """The fleet's task records: ``fleet.tasks``."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def get(self, task_id: str) -> TaskRecord:
        """One task record (TaskNotFound otherwise)."""
        self._fleet._check_open("tasks.get")
        return await self._fleet.engine.get(check_text("task_id", task_id))

    async def wait(self, task_id: str, *, timeout: float | None = None) -> TaskRecord:
        """Wait for a task to end; return its final record once its resource has caught up.

        Args:
            task_id: the task.
            timeout: seconds to wait at most (on the fleet's clock); None for as long as
                it runs.

        Raises:
            WaitTimeout: the task did not end within ``timeout`` (it runs on).
            TaskNotFound: no task has that id.
        """
        self._fleet._check_open("tasks.wait")
        check_text("task_id", task_id)
        if timeout is not None:
            check_seconds("timeout", timeout)
        fleet = self._fleet
        handle = fleet.engine.handle(task_id)
        if handle is None:
            record = await fleet.engine.get(task_id)
        elif timeout is None:
            record = await handle.wait()
        else:
            try:
                async with asyncio.timeout(timeout):
                    record = await handle.wait()
            except TimeoutError:
                raise WaitTimeout(task_id, timeout) from None
        if record.resource_id in fleet.system and record.resource_id not in fleet._host_refs:
            # A barrier: the instance has handled the end of its task before we return.
            with contextlib.suppress(StatewardError):
                await fleet.system.lookup(record.resource_id).ask(GetInstance())
        return record

    async def list(
        self,
        resource_id: str | None = None,
        *,
        status: TaskStatus | None = None,
        since: float | None = None,
        limit: int = 50,
    ) -> tuple[TaskRecord, ...]:
        """Tasks newest first: a resource's, or (``resource_id=None``) the whole fleet's;
        only those in ``status`` and created at or after ``since`` (fleet clock seconds) when
        given; at most ``limit`` (an int from 1 to 2**63 - 1)."""
        self._fleet._check_open("tasks.list")
        if resource_id is not None:
            check_text("resource_id", resource_id)
        check_int("limit", limit, low=1)
        return await self._fleet.engine.tasks(resource_id, status=status, since=since, limit=limit)

    async def last_fault(self, resource_id: str) -> TaskRecord | None:
        """The resource's last failed task."""
        self._fleet._check_open("tasks.last_fault")
        return await self._fleet.engine.last_fault(check_text("resource_id", resource_id))

    async def actions(self, resource_id: str) -> tuple[TaskAction, ...]:
        """One line per task of the resource."""
        self._fleet._check_open("tasks.actions")
        return await self._fleet.engine.actions(check_text("resource_id", resource_id))

    async def parked(self) -> tuple[TaskRecord, ...]:
        """Tasks parked because their flow changed."""
        self._fleet._check_open("tasks.parked")
        return await self._fleet.engine.parked()

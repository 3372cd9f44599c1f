"""The fleet scenario: a whole stateward fleet under chaos, as one user of the simulator.

The real runtime, flows and cloud domain run unchanged on the world's store and clock, with
the seeded :class:`~stateward.actors.FakeDriver` as the outside world (it survives process
crashes, as hypervisors do). Clients boot instances, act on them, move them (every kind of
move) and now and then drain a host, each operation retried with its idempotency key; the
fleet's own fault sites crash instance actors, take host agents down, lose hosts, make
driver calls fail or hang, and aim at moves: the process killed right after a phase of a
move, the destination of a move lost, the source of a live migration unreachable.

Planted bugs prove the simulator finds bugs. Each is injected through a seam the scenario
owns, never through the code under test: ``leak-claim`` runs the hosts as an actor subclass
that acknowledges a release and keeps the claim; ``skip-journal-tail`` opens the fleet on a
store wrapper whose loads drop the journal after the last snapshot;
``release-source-early`` runs the instances as an actor subclass that gives up its source
claim as soon as a move starts, before the switch; ``fit-at-start-only`` runs the hosts as
an actor subclass whose lease fit check looks at the first second of a window only.

Leases are in the workload too: clients reserve slots of a flavor or whole hosts over
windows that overlap or follow one another, update them (moved, extended), end them early
or delete them, and boot into the ones that are active; every end-of-lease policy is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from stateward.actors import (
    ACTIONS,
    MIGRATION_TERMINALS,
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    HostActor,
    HostReservation,
    InstanceActor,
    InstanceReservation,
    LeasePolicy,
    Move,
    Operation,
    ReleaseClaim,
)
from stateward.flows import TaskRecord, TaskStatus
from stateward.runtime import (
    ActorError,
    AskTimeout,
    CommitFailed,
    Environment,
    InvalidArgument,
    Loaded,
    StatewardError,
    Store,
    StoreUnavailable,
)

from ._faults import FaultSite, MessageLost
from ._fleet_checks import FLEET_INVARIANTS
from ._world import Scenario, SimConfig, SimResult, World, derive_seed, simulate

__all__ = (
    "FleetScenario",
    "FleetConfig",
    "FLEET_FAULTS",
    "PLANTED_BUGS",
    "simulate_fleet",
)

_FLAVORS = (
    Flavor("m1.tiny", vcpus=1, ram_mb=512, disk_gb=1),
    Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20),
    Flavor("m1.medium", vcpus=2, ram_mb=4096, disk_gb=40),
)
_IMAGES = ("cirros", "ubuntu", "fedora")
#: How long one client operation may take, request and task included.
_OPERATION_TIMEOUT = 900.0
#: Attempts of a client operation (the same idempotency key each time).
_ATTEMPTS = 4
#: The moves clients ask for (each when the instance's state allows it).
_MOVES = ("migrate", "live_migrate", "resize", "evacuate", "confirm_resize", "revert_resize")
#: The driver calls of moves besides the transfer (each takes 2 simulated seconds).
_MOVE_CALLS = (
    Operation.PREPARE_MOVE,
    Operation.FINISH_MOVE,
    Operation.ABORT_MOVE,
    Operation.CLEANUP,
    Operation.EVACUATE,
)
#: Errors a client retries with the same key: the fleet was busy, down or unreachable.
_RETRYABLE = (AskTimeout, CommitFailed, StoreUnavailable, ActorError)


# -- planted bugs: seams the scenario owns --------------------------------------------------


class _LeakyHost(HostActor):
    """A host that says it released a claim and keeps it."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, ReleaseClaim):
            return message.claim_id in self.ledger.claims
        return await super().receive(message)


class _StartOnlyHost(HostActor):
    """A host whose lease fit checks look at the first second of the window only."""

    def checked_window(self, start: float, end: float) -> tuple[float, float]:
        return start, min(end, start + 1.0)


class _ForgetfulStore:
    """A store whose loads drop the journal after the last snapshot."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def load(self, resource_id: str) -> Loaded | None:
        loaded = await self._inner.load(resource_id)
        return None if loaded is None else msgspec.structs.replace(loaded, tail=())

    async def load_many(self, resource_ids: Sequence[str]) -> dict[str, Loaded]:
        found = await self._inner.load_many(resource_ids)
        return {k: msgspec.structs.replace(v, tail=()) for k, v in found.items()}


#: The deliberate bugs the fleet scenario can switch on, each with what it does.
PLANTED_BUGS: Mapping[str, str] = {
    "skip-journal-tail": "recovery ignores the journal rows after the last snapshot",
    "leak-claim": "a deleted instance keeps its claim on its host",
    "release-source-early": "a move gives up its source claim before the switch",
    "fit-at-start-only": "a host checks a lease's fit at the first second of its window only",
}


# -- the fleet's own fault sites ------------------------------------------------------------


class _Crash:
    """A message that makes a simulated instance actor's handler raise."""


class _SimInstance(InstanceActor):
    async def receive(self, message: Any) -> Any:
        if isinstance(message, _Crash):
            raise RuntimeError("injected actor crash")
        return await super().receive(message)


class _EarlyReleaseInstance(_SimInstance):
    """An instance that releases its source claim as soon as its move starts."""

    async def receive(self, message: Any) -> Any:
        host, claim = self.info.host, self.info.claim_id
        answer = await super().receive(message)
        if isinstance(message, Move) and host is not None and claim is not None:
            await self.services.scheduler.release(host, claim)
        return answer


def _actor_crash(scenario: FleetScenario, fleet: Fleet) -> None:
    world = scenario.world
    live = sorted(i for i, s in scenario.known.items() if s == "live" and i in fleet.system)
    if not live:
        return
    target = world.random("faults").choice(live)
    with contextlib.suppress(StatewardError):
        fleet.system.lookup(target).tell_nowait(_Crash())
    world.fault("actor_crash", resource=target)


def _host_down(scenario: FleetScenario, fleet: Fleet) -> None:
    world = scenario.world
    hosts = [h for h in fleet.hosts.ids() if h not in scenario.lost_hosts]
    if not hosts:
        return
    rng = world.random("faults")
    host = rng.choice(hosts)
    fleet.hosts.set_agent(host, alive=False)
    scenario.down_until[host] = world.clock.monotonic() + rng.uniform(60, 900)
    world.background(scenario.host_back(fleet, host))
    world.fault("host_down", resource=host)


def _lose(scenario: FleetScenario, fleet: Fleet, host: str, site: str, **detail: Any) -> None:
    scenario.lost_hosts.add(host)
    fleet.hosts.set_agent(host, alive=False)
    lost = scenario.driver.lose_host(host)
    scenario.world.fault(site, resource=host, instances=len(lost), **detail)


def _host_lost(scenario: FleetScenario, fleet: Fleet) -> None:
    world = scenario.world
    hosts = [h for h in fleet.hosts.ids() if h not in scenario.lost_hosts]
    if not hosts or not scenario.may_lose_a_host():
        return
    _lose(scenario, fleet, world.random("faults").choice(hosts), "host_lost")


def _destination_lost(scenario: FleetScenario, fleet: Fleet) -> None:
    moving = sorted(
        (m, d) for m, d in scenario.destinations.items() if d not in scenario.lost_hosts
    )
    if not moving or not scenario.may_lose_a_host():
        return
    migration, host = scenario.world.random("faults").choice(moving)
    _lose(scenario, fleet, host, "destination_lost", migration=migration)


def _source_down(scenario: FleetScenario, fleet: Fleet) -> None:
    world = scenario.world
    sources = sorted(
        (m, s)
        for m, s in scenario.live_sources.items()
        if s not in scenario.lost_hosts and s not in scenario.unreachable
    )
    if not sources:
        return
    rng = world.random("faults")
    migration, host = rng.choice(sources)
    scenario.driver.host_down(host)
    scenario.unreachable.add(host)
    fleet.hosts.set_agent(host, alive=False)
    scenario.down_until[host] = world.clock.monotonic() + rng.uniform(60, 900)
    world.background(scenario.host_back(fleet, host))
    world.fault("source_down", resource=host, migration=migration)


#: The fleet's fault sites, besides the core ones (process, store, network).
FLEET_FAULTS = (
    FaultSite("actor_crash", "an instance actor's handler raises", _actor_crash),
    FaultSite("host_down", "a host agent stops heartbeating for 1-15 min", _host_down),
    FaultSite("host_lost", "a host and every instance on it are gone", _host_lost),
    FaultSite("driver_failure", "a driver call fails (move calls included)"),
    FaultSite("driver_timeout", "a driver call hangs for an hour"),
    FaultSite("move_crash", "the process dies right after a phase of a move"),
    FaultSite("destination_lost", "the destination host of a move is gone", _destination_lost),
    FaultSite(
        "source_down", "the source of a live migration stops answering for 1-15 min", _source_down
    ),
)


# -- the scenario ---------------------------------------------------------------------------


class FleetScenario(Scenario[Fleet]):
    """Clients booting, acting on and deleting instances of a fleet of ``hosts`` hosts.

    Args:
        world: the run's world.
        hosts: hosts in the fleet.
        instances: how many instances the workload keeps around (it boots up to this).
        planted_bugs: names from :data:`PLANTED_BUGS` to switch on.
    """

    faults: ClassVar[Sequence[FaultSite]] = FLEET_FAULTS
    invariants = FLEET_INVARIANTS

    def __init__(
        self,
        world: World,
        *,
        hosts: int = 50,
        instances: int = 500,
        planted_bugs: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(world)
        self.hosts = hosts
        self.instances = instances
        self.planted_bugs = planted_bugs
        seed = world.config.seed
        self.driver = FakeDriver(
            env=Environment(clock=world.clock, seed=derive_seed(seed, "driver")),
            hang_seconds=3600.0,
        )
        self.known: dict[str, str] = {}  # instance id -> "booting" / "live" / "deleted"
        self.next_instance = 0
        self.acknowledged: dict[str, TaskRecord] = {}  # task id -> the record a client saw
        self.lost_hosts: set[str] = set()
        self.down_until: dict[str, float] = {}
        #: Hosts the driver cannot reach until they are back (``source_down``).
        self.unreachable: set[str] = set()
        #: Moves in flight, as their migration events tell: the destination of each that
        #: claimed one, and the source of each live migration.
        self.destinations: dict[str, str] = {}
        self.live_sources: dict[str, str] = {}
        self.fleet: Fleet | None = None
        #: Leases asked for, and how many the workload asked for so far.
        self.leases: list[str] = []
        self.next_lease = 0
        #: Boots into a lease while it had room for them that found no host (a problem).
        self.lease_boots_refused: list[str] = []
        #: Boots into each lease in flight.
        self.lease_boots: dict[str, int] = {}

    # -- incarnations ---------------------------------------------------------------------

    async def open(self) -> Fleet:
        world = self.world
        store: Store = world.store
        if "skip-journal-tail" in self.planted_bugs:
            store = _ForgetfulStore(store)
        fleet = Fleet.open(
            None,
            driver=self.driver,
            env=world.env(),
            store=store,
            instance_actor=_EarlyReleaseInstance
            if "release-source-early" in self.planted_bugs
            else _SimInstance,
            host_actor=_LeakyHost
            if "leak-claim" in self.planted_bugs
            else _StartOnlyHost
            if "fit-at-start-only" in self.planted_bugs
            else HostActor,
            heartbeat_interval=20.0,
        )
        await fleet.__aenter__()
        self.fleet = fleet
        for flavor in _FLAVORS:
            await fleet.flavors.add(flavor)
        for image in _IMAGES:
            await fleet.images.add(image)
        existing = {h.id for h in await fleet.hosts.list()}
        for n in range(self.hosts):
            host = f"h-{n:03d}"
            if host not in existing:
                await fleet.hosts.add(
                    host, capacity=Capacity(vcpus=16, ram_mb=65536, disk_gb=1000), zone=f"az{n % 3}"
                )
            if host in self.lost_hosts:
                fleet.hosts.set_agent(host, alive=False)
            elif self.down_until.get(host, 0) > world.clock.monotonic():
                fleet.hosts.set_agent(host, alive=False)
                world.background(self.host_back(fleet, host))  # its timer died with the process
            elif host in self.unreachable:
                self.driver.host_up(host)  # its time came while no process ran
                self.unreachable.discard(host)
        self.destinations.clear()
        self.live_sources.clear()
        world.background(self._follow_moves(fleet.subscribe("migration.*.*")))
        await self.resolve(fleet)
        self._driver_faults()
        world.background(self._janitor(fleet))
        return fleet

    async def _follow_moves(self, subscription: Any) -> None:
        """Track the moves in flight (the move fault sites aim at them), and kill the
        process right after a phase of a move now and then (``move_crash``)."""
        world = self.world
        rng = world.random("faults")
        async for event in subscription:
            record = event.payload
            migration = record.resource_id
            payload = record.payload or {}
            if record.event == "start" and payload.get("kind") == "live_migrate":
                if payload.get("source") is not None:
                    self.live_sources[migration] = payload["source"]
            elif record.event == "claimed" and payload.get("destination") is not None:
                self.destinations[migration] = payload["destination"]
            if record.target in MIGRATION_TERMINALS or record.target == "parked":
                self.destinations.pop(migration, None)
                self.live_sources.pop(migration, None)
            if rng.random() < 0.01 * world.rate("move_crash"):
                world.crash("move_crash", resource=migration, phase=record.target)
                return

    def may_lose_a_host(self) -> bool:
        """Whether another host may be lost (a tenth of the fleet at most)."""
        return len(self.lost_hosts) < max(1, self.hosts // 10)

    async def heal(self, fleet: Fleet) -> None:
        world = self.world
        self._driver_faults()
        for host in sorted(self.down_until):
            if host not in self.lost_hosts:
                self.driver.host_up(host)
                self.unreachable.discard(host)
                fleet.hosts.set_agent(host, alive=True)
        await fleet.hosts.list()
        await fleet.hosts.heartbeat_all()
        report = await fleet.recover()
        world.log("recovered", orphans=len(report.orphans), ghosts=len(report.ghosts))
        await self._settle_leases(fleet)
        await self.resolve(fleet)
        if self.driver.injected_failures:
            world.faults["driver_failure"] = self.driver.injected_failures
        if self.driver.injected_hangs:
            world.faults["driver_timeout"] = self.driver.injected_hangs

    async def _settle_leases(self, fleet: Fleet) -> None:
        """Wait for the leases' tasks (a start or an end due while no process ran)."""
        for _ in range(400):
            busy = False
            for lease_id in self.leases:
                with contextlib.suppress(StatewardError):
                    tasks = await fleet.tasks.list(lease_id)
                    busy = busy or any(not t.status.is_terminal for t in tasks)
            if not busy:
                return
            await self.world.clock.sleep(10.0)

    async def close(self, fleet: Fleet) -> None:
        await fleet.__aexit__(None, None, None)

    def reproduce(self, config: SimConfig) -> str:
        return FleetConfig.of(self, config).command()

    async def _janitor(self, fleet: Fleet) -> None:
        """What an operator's cron would do: resume flows a store failure interrupted."""
        while True:
            await self.world.clock.sleep(300.0)
            with contextlib.suppress(StatewardError):
                await fleet.resume()

    def _driver_faults(self) -> None:
        world = self.world
        # Copying a guest takes a while, so that faults find moves in flight.
        self.driver.latency = {
            **dict.fromkeys(Operation, 0.0),
            **dict.fromkeys(_MOVE_CALLS, 2.0),
            Operation.TRANSFER: 30.0,
        }
        self.driver.failures = dict.fromkeys(Operation, world.rate("driver_failure") * 0.03)
        self.driver.hangs = dict.fromkeys(Operation, world.rate("driver_timeout") * 0.005)

    async def host_back(self, fleet: Fleet, host: str) -> None:
        """A host that went down comes back when its time is up."""
        clock = self.world.clock
        await clock.sleep(max(0.0, self.down_until[host] - clock.monotonic()))
        if host not in self.lost_hosts and self.fleet is fleet:
            self.driver.host_up(host)
            self.unreachable.discard(host)
            fleet.hosts.set_agent(host, alive=True)
            self.world.log("recovered", resource=host)

    # -- the workload ---------------------------------------------------------------------

    async def operate(self, fleet: Fleet, rng: random.Random) -> None:
        live = sorted(i for i, s in self.known.items() if s == "live")
        if rng.random() < 0.08:
            await self._lease(fleet, rng)
        elif live and rng.random() < 0.005:
            await self._drain(fleet, rng)
        elif len(live) < self.instances and (not live or rng.random() < 0.5):
            await self._boot(fleet, rng)
        elif live:
            await self._act(fleet, rng, rng.choice(live))

    async def _boot(self, fleet: Fleet, rng: random.Random) -> None:
        self.next_instance += 1
        instance = f"i-{self.world.config.seed % 1000:03d}-{self.next_instance:05d}"
        flavor = rng.choice(_FLAVORS).name
        image = rng.choice(_IMAGES)
        reservation, room = None, False
        if self.leases and rng.random() < 0.3:
            reservation, flavor, room = await self._lease_to_boot_into(fleet, rng, flavor)
        self.known[instance] = "booting"
        key = f"{instance}:boot"

        async def call() -> TaskRecord:
            return await fleet.instances.boot(
                instance,
                flavor=flavor,
                image=image,
                reservation=reservation,
                idempotency_key=key,
            )

        if reservation is not None:
            self.lease_boots[reservation] = self.lease_boots.get(reservation, 0) + 1
        alone = reservation is not None and self.lease_boots[reservation] == 1
        try:
            record = await self._operation(fleet, "boot", instance, key, call)
        finally:
            if reservation is not None:
                self.lease_boots[reservation] -= 1
        if record is not None:
            self.known[instance] = "live"  # when in error, a later delete cleans it up
            if room and alone and record.error_type == "NoValidHost":
                with contextlib.suppress(StatewardError):
                    lease = await fleet.leases.get(reservation or "")
                    if lease.state == "active" and lease.end > fleet.env.clock.now():
                        self.lease_boots_refused.append(
                            f"{instance} into {reservation}: {record.error_message}"
                        )

    async def _lease_to_boot_into(
        self, fleet: Fleet, rng: random.Random, flavor: str
    ) -> tuple[str | None, str, bool]:
        """An active lease to boot into, a flavor it takes, and whether a host had room."""
        lease_id = rng.choice(self.leases)
        try:
            lease = await fleet.leases.get(lease_id)
        except StatewardError:
            return None, flavor, False
        if lease.state != "active":
            return None, flavor, False
        slots = [r.flavor for r in lease.reservations if isinstance(r, InstanceReservation)]
        if slots and len(slots) == len(lease.reservations):
            flavor = rng.choice(slots)
        size = next(f for f in _FLAVORS if f.name == flavor)
        need = (size.vcpus, size.ram_mb, size.disk_gb)
        room = False
        for host in lease.hosts:
            with contextlib.suppress(StatewardError):
                status = await fleet.hosts.get(host)
                free = status.leases.get(lease_id)
                if status.up and status.state == "enabled" and free is not None:
                    room = room or all(a <= b for a, b in zip(need, free, strict=True))
        return lease_id, flavor, room

    async def _lease(self, fleet: Fleet, rng: random.Random) -> None:
        """Ask for a lease, update one, end one early or delete one."""
        clock = self.world.clock
        now = fleet.env.clock.now()
        choice = rng.random()
        try:
            if not self.leases or choice < 0.55:
                await self._new_lease(fleet, rng, now)
                return
            lease_id = rng.choice(self.leases)
            lease = await fleet.leases.get(lease_id)
            if choice < 0.8 and lease.state in ("pending", "active"):
                end = lease.end + rng.uniform(-0.5, 1.0) * (lease.end - max(now, lease.start))
                if lease.state == "pending" and rng.random() < 0.5:
                    shift = rng.uniform(-0.5, 1.0) * max(0.0, lease.start - now)
                    start = lease.start + shift
                    await fleet.leases.update(
                        lease_id, start=start, end=max(end, start + 60) + shift
                    )
                else:
                    await fleet.leases.update(lease_id, end=max(end, now + 60))
            elif choice < 0.92 and lease.state in ("pending", "active"):
                await fleet.tasks.wait((await fleet.leases.end(lease_id)).id, timeout=3600)
            elif lease.state in ("ended", "failed"):
                await fleet.tasks.wait((await fleet.leases.delete(lease_id)).id, timeout=3600)
        except (StatewardError, TimeoutError) as error:
            self.world.log("lease refused", error=type(error).__name__)
            await clock.sleep(1.0)  # did not fit, refused, or the fleet was busy

    async def _new_lease(self, fleet: Fleet, rng: random.Random, now: float) -> None:
        self.next_lease += 1
        lease_id = f"l-{self.world.config.seed % 1000:03d}-{self.next_lease:04d}"
        start = now + rng.uniform(0, 1800)
        if self.leases and rng.random() < 0.3:  # back to back with another one
            with contextlib.suppress(StatewardError):
                other = await fleet.leases.get(rng.choice(self.leases))
                if other.end > now:
                    start = other.end
        if rng.random() < 0.25:
            reservations: tuple[Any, ...] = (HostReservation(count=1),)
        else:
            flavor = rng.choice(_FLAVORS).name
            # Mostly a few slots; now and then most of a host.
            count = rng.randint(1, 4) if rng.random() < 0.6 else rng.randint(8, 30)
            affinity = rng.choice((None, True, False))
            reservations = (InstanceReservation(flavor, count=count, affinity=affinity),)
        policy = rng.choice(list(LeasePolicy))
        self.leases.append(lease_id)
        self.world.log("lease", resource=lease_id, start=start, policy=policy.value)
        await fleet.leases.create(
            lease_id,
            start=start,
            end=start + rng.uniform(300, 3600),
            reservations=reservations,
            on_end=policy,
            notify_before=rng.uniform(0, 600),
            idempotency_key=f"{lease_id}:create",
        )

    async def _act(self, fleet: Fleet, rng: random.Random, instance: str) -> None:
        # Clients mostly ask for what the instance allows, as a UI offering its buttons
        # would; now and then for anything, as a script with a stale view would. A move
        # is asked for a quarter of the times one is allowed.
        try:
            status = await fleet.instances.get(instance)
        except StatewardError:
            status = None
        allowed = status.allowed if status is not None else ()
        moves = [a for a in allowed if a in _MOVES]
        if moves and status is not None and rng.random() < 0.25:
            await self._move(fleet, rng, status, rng.choice(moves))
            return
        choices = [a for a in allowed if a in ACTIONS] or list(ACTIONS)
        action = rng.choice(choices) if rng.random() < 0.9 else rng.choice(ACTIONS)
        image = rng.choice(_IMAGES) if action == "rebuild" else None
        key = f"{instance}:{action}:{self.world.clock.monotonic():.6f}"

        async def call() -> TaskRecord:
            return await fleet.instances.act(instance, action, image=image, idempotency_key=key)

        record = await self._operation(fleet, action, instance, key, call)
        if action == "delete" and record is not None and record.status is TaskStatus.SUCCEEDED:
            self.known[instance] = "deleted"

    async def _move(self, fleet: Fleet, rng: random.Random, status: Any, move: str) -> None:
        """One move of ``status``'s instance: ``move`` is one its state allows."""
        instance, instances = status.id, fleet.instances
        host = status.host_id
        now = self.world.clock.monotonic()
        if (
            move == "evacuate"
            and host not in self.lost_hosts
            and self.down_until.get(host, 0) < now
        ):
            move = "migrate"  # its host is up: the fleet would refuse an evacuation
        key = f"{instance}:{move}:{self.world.clock.monotonic():.6f}"
        flavor = rng.choice([f.name for f in _FLAVORS if f.name != status.flavor])
        calls: dict[str, Callable[[], Awaitable[TaskRecord]]] = {
            "migrate": lambda: instances.migrate(instance, idempotency_key=key),
            "live_migrate": lambda: instances.live_migrate(instance, idempotency_key=key),
            "resize": lambda: instances.resize(instance, flavor, idempotency_key=key),
            "evacuate": lambda: instances.evacuate(instance, idempotency_key=key),
            "confirm_resize": lambda: instances.confirm_resize(instance, idempotency_key=key),
            "revert_resize": lambda: instances.revert_resize(instance, idempotency_key=key),
        }
        await self._operation(fleet, move, instance, key, calls[move])

    async def _drain(self, fleet: Fleet, rng: random.Random) -> None:
        """Drain a host, then put it back in service (as an operator patching it would)."""
        hosts = [h for h in fleet.hosts.ids() if h not in self.lost_hosts | self.unreachable]
        if not hosts:
            return
        host = rng.choice(hosts)
        key = f"{host}:drain:{self.world.clock.monotonic():.6f}"

        async def call() -> TaskRecord:
            return await fleet.hosts.drain(host, concurrency=4, idempotency_key=key)

        record = await self._operation(fleet, "drain", host, key, call)
        if record is not None:
            with contextlib.suppress(StatewardError):
                await fleet.hosts.command(host, "enable")

    async def _operation(
        self,
        fleet: Fleet,
        kind: str,
        instance: str,
        key: str,
        call: Callable[[], Awaitable[TaskRecord]],
    ) -> TaskRecord | None:
        """Invoke, retry with the same key, wait for the task; record the outcome."""
        world = self.world
        history = world.history
        history.invoke(kind, instance, key)
        for _ in range(_ATTEMPTS):
            try:
                await world.network("request")
                submitted = await call()
                await world.network("reply")
                record = await asyncio.wait_for(
                    fleet.tasks.wait(submitted.id), timeout=_OPERATION_TIMEOUT
                )
            except MessageLost:
                continue  # the request or the reply was lost: try again, same key
            except StatewardError as error:
                if isinstance(error, _RETRYABLE):
                    await world.clock.sleep(5.0)
                    continue
                history.complete(key, "failed", type(error).__name__)
                return None
            except TimeoutError:
                continue
            if not record.status.is_terminal:
                await world.clock.sleep(60.0)  # interrupted: a recovery will resume it
                continue
            self._settled(record, key)
            return record
        # Indeterminate: it may or may not have happened. It stays open; a recovery asks
        # again with the same key and counts its outcome then.
        history.indeterminate(key)
        return None

    def _settled(self, record: TaskRecord, key: str) -> None:
        self.acknowledged[record.id] = record
        outcome = "ok" if record.status is TaskStatus.SUCCEEDED else "failed"
        self.world.history.complete(key, outcome, record.status.value)

    async def resolve(self, fleet: Fleet) -> None:
        """Operations left open by a crash or a give-up: look them up by their key."""
        history = self.world.history
        for key in sorted(history.open):
            operation = history.open[key]
            instance = operation.resource
            found = await fleet.engine.find(instance, key) if instance in fleet.system else None
            if found is None:
                history.complete(key, "not-started")
                continue
            record = await fleet.tasks.wait(found.id) if not self.world.in_chaos else found
            if not record.status.is_terminal:
                continue  # still in flight: settled by a later recovery
            self._settled(record, key)
            if record.status is TaskStatus.SUCCEEDED and operation.op != "drain":
                self.known[instance] = "deleted" if operation.op == "delete" else "live"


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    """One fleet simulation, as ``stateward simulate`` takes it.

    Attributes:
        seed: everything follows from it.
        hosts: hosts in the fleet.
        instances: how many instances the workload keeps around.
        duration: simulated seconds of chaos.
        faults: the fault sites allowed (each still switched on or off by the seed).
        clients: concurrent clients.
        think: mean simulated seconds between a client's operations.
        planted_bugs: deliberate bugs switched on (names from :data:`PLANTED_BUGS`).
    """

    seed: int
    hosts: int = 50
    instances: int = 500
    duration: float = 86_400.0
    faults: frozenset[str] = frozenset(FleetScenario.sites())
    clients: int = 20
    think: float = 300.0
    planted_bugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("hosts", "instances", "clients"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(name, expected="an int >= 1", got=value)
        FleetScenario.sites().check(self.faults)
        unknown = set(self.planted_bugs) - set(PLANTED_BUGS)
        if unknown:
            raise InvalidArgument(
                "planted_bugs",
                expected=f"names from {', '.join(PLANTED_BUGS)}",
                got=sorted(unknown),
            )
        self.sim_config()  # the world's own checks (duration > 0, ...)

    def sim_config(self) -> SimConfig:
        """The world's part of the configuration."""
        return SimConfig(
            seed=self.seed,
            duration=self.duration,
            faults=self.faults,
            clients=self.clients,
            think=self.think,
        )

    def scenario(self) -> Callable[[World], FleetScenario]:
        """The scenario factory for :func:`~stateward.sim.simulate`."""
        return functools.partial(
            FleetScenario,
            hosts=self.hosts,
            instances=self.instances,
            planted_bugs=self.planted_bugs,
        )

    @classmethod
    def of(cls, scenario: FleetScenario, config: SimConfig) -> FleetConfig:
        """The configuration that made ``scenario`` run under ``config``."""
        return cls(
            seed=config.seed,
            hosts=scenario.hosts,
            instances=scenario.instances,
            duration=config.duration,
            faults=config.faults if config.faults is not None else frozenset(FleetScenario.sites()),
            clients=config.clients,
            think=config.think,
            planted_bugs=scenario.planted_bugs,
        )

    def command(self, *, check_determinism: bool = False) -> str:
        """The one-line ``stateward simulate`` command that runs this again.

        Every option that differs from the default is spelled out, so the line reproduces
        the run exactly whatever the command's defaults become.
        """
        defaults = FleetConfig(seed=0)
        parts = ["stateward", "simulate", "--seed", str(self.seed)]
        if self.hosts != defaults.hosts:
            parts += ["--hosts", str(self.hosts)]
        if self.instances != defaults.instances:
            parts += ["--instances", str(self.instances)]
        if self.duration != defaults.duration:
            parts += ["--duration", _number(self.duration)]
        if self.faults != defaults.faults:
            chosen = [name for name in FleetScenario.sites() if name in self.faults]
            parts += ["--faults", ",".join(chosen) if chosen else "none"]
        if self.clients != defaults.clients:
            parts += ["--clients", str(self.clients)]
        for bug in sorted(self.planted_bugs):
            parts += ["--planted-bug", bug]
        if check_determinism:
            parts.append("--check-determinism")
        return " ".join(parts)


def _number(value: float) -> str:
    """A float the way a person types it, and as ``float()`` reads it back."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def simulate_fleet(config: FleetConfig) -> SimResult:
    """Run one fleet simulation to the end."""
    return simulate(config.scenario(), config.sim_config())

"""The deterministic chaos simulator: a whole fleet on virtual time, under faults.

The real runtime, flows and cloud domain run unchanged. What makes a run repeatable is the
environment: a :class:`~stateward.runtime.VirtualClock` shared by every event loop of the
run, random streams seeded per concern, seeded ids, a :class:`~stateward.runtime.MemoryStore`
that runs on the loop (no thread) and the seeded :class:`~stateward.actors.FakeDriver`.

A *process crash* abandons the current incarnation: its event loop is simply never run again,
so no task runs its cleanup, and the next incarnation opens the store's durable image
(:meth:`MemoryStore.image`): whatever was not committed is lost, exactly. The driver is the
outside world and survives. Opening the fleet runs recovery and reconciliation.

A run has three phases (after TigerBeetle's simulator): *chaos* — clients issue operations
while fault sites fire; *heal* — faults off, hosts back, the fleet recovers; *liveness* —
every client operation must have completed. Invariants are pure checks of the state, run
after every incarnation and at the end (safety), and after the heal (liveness). Each client
operation is recorded as invoked, then ok, failed or indeterminate (after Jepsen).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from stateward.actors import (
    ACTIONS,
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    InstanceActor,
    Operation,
)
from stateward.flows import TASKS, TaskRecord, TaskStatus
from stateward.runtime import (
    PLANTED_BUGS,
    ActorError,
    AskTimeout,
    CommitFailed,
    Environment,
    InvalidArgument,
    MemoryStore,
    StatewardError,
    StoreUnavailable,
    VirtualClock,
)

__all__ = (
    "FAULTS",
    "SimConfig",
    "SimResult",
    "Violation",
    "simulate",
)

#: Every fault site, each switched on or off per seed (FoundationDB's "buggify").
FAULTS = (
    "actor_crash",
    "host_down",
    "host_lost",
    "driver_failure",
    "driver_timeout",
    "message_delay",
    "message_loss",
    "store_failure",
    "store_false_failure",
    "disk_full",
    "process_crash",
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


@dataclass(frozen=True)
class SimConfig:
    """One simulated run.

    Attributes:
        seed: everything follows from it.
        hosts: hosts in the fleet.
        instances: how many instances the workload keeps around (it boots up to this).
        duration: simulated seconds of chaos.
        faults: the fault sites allowed (each still switched on or off by the seed).
        clients: concurrent clients.
        think: mean simulated seconds between a client's operations.
        planted_bugs: deliberate bugs switched on (to prove the simulator finds them).
    """

    seed: int
    hosts: int = 50
    instances: int = 500
    duration: float = 86_400.0
    faults: frozenset[str] = frozenset(FAULTS)
    clients: int = 20
    think: float = 300.0
    planted_bugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("hosts", "instances", "clients"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(name, expected="an int >= 1", got=value)
        for name in ("duration", "think"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InvalidArgument(name, expected="seconds > 0", got=value)
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise InvalidArgument(
                "faults", expected=f"names from {', '.join(FAULTS)}", got=sorted(unknown)
            )
        unknown = set(self.planted_bugs) - set(PLANTED_BUGS)
        if unknown:
            raise InvalidArgument(
                "planted_bugs",
                expected=f"names from {', '.join(PLANTED_BUGS)}",
                got=sorted(unknown),
            )


@dataclass(frozen=True)
class Violation:
    """An invariant that did not hold."""

    invariant: str
    detail: str
    resources: tuple[str, ...] = ()


@dataclass
class SimResult:
    """What a run did and whether every invariant held."""

    config: SimConfig
    violations: list[Violation] = field(default_factory=list)
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    enabled_faults: tuple[str, ...] = ()
    simulated: float = 0.0
    wall: float = 0.0
    events: int = 0
    incarnations: int = 0
    digest: str = ""
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations

    def history_of(self, resources: tuple[str, ...], last: int = 20) -> list[dict[str, Any]]:
        """The last events that name any of ``resources``."""
        chosen = [e for e in self.trace if e.get("resource") in resources]
        return chosen[-last:]


class _Crash:
    """A message that makes a simulated instance actor's handler raise."""


class _SimInstance(InstanceActor):
    async def receive(self, message: Any) -> Any:
        if isinstance(message, _Crash):
            raise RuntimeError("injected actor crash")
        return await super().receive(message)


class _Sim:
    """The state of one run across its incarnations."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = VirtualClock()
        self.rng = random.Random(_derive(config.seed, "plan"))
        # Which fault sites fire in this run, and how often: decided once, from the seed.
        self.rates: dict[str, float] = {}
        for name in FAULTS:
            on = name in config.faults and self.rng.random() < 0.75
            if on:
                self.rates[name] = self.rng.uniform(0.3, 1.0)
        self.result = SimResult(config, enabled_faults=tuple(n for n in FAULTS if n in self.rates))
        driver_env = Environment(
            clock=self.clock, seed=_derive(config.seed, "driver"), planted_bugs=config.planted_bugs
        )
        self.driver = FakeDriver(env=driver_env, hang_seconds=3600.0)
        self.store = MemoryStore(clock=self.clock)
        self.chaos_end = config.duration
        self.known: dict[str, str] = {}  # instance id -> "booting" / "live" / "deleted"
        self.next_instance = 0
        self.acknowledged: dict[str, TaskRecord] = {}  # task id -> the record a client saw
        self.unresolved: dict[str, tuple[str, str, str]] = {}  # key -> (op, instance, kind)
        self.lost_hosts: set[str] = set()
        self.down_until: dict[str, float] = {}
        self.abandoned: list[asyncio.AbstractEventLoop] = []
        self.fleet: Fleet | None = None
        self.in_chaos = True
        self.workload_rng = random.Random(_derive(config.seed, "workload"))
        self.fault_rng = random.Random(_derive(config.seed, "faults"))

    # -- the event log --------------------------------------------------------------------

    def log(self, kind: str, **detail: Any) -> None:
        entry = {"at": round(self.clock.monotonic(), 6), "kind": kind, **detail}
        self.result.trace.append(entry)
        self.result.events += 1

    # -- the run --------------------------------------------------------------------------

    def run(self) -> SimResult:
        started = time.perf_counter()
        quiet = logging.getLogger("asyncio")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            incarnation = 0
            while True:
                incarnation += 1
                crash_at = math.inf
                if "process_crash" in self.rates and self.clock.monotonic() < self.chaos_end:
                    gap = self.fault_rng.expovariate(
                        self.rates["process_crash"] * 6 / self.config.duration
                    )
                    crash_at = self.clock.monotonic() + gap
                final = crash_at >= self.chaos_end
                loop = self.clock.new_event_loop()
                self.log("incarnation", number=incarnation)
                try:
                    loop.run_until_complete(self._incarnation(min(crash_at, self.chaos_end), final))
                finally:
                    self.abandoned.append(loop)
                if final:
                    break
                # A crash: nothing pending survives, only what the store committed.
                self.result.faults["process_crash"] += 1
                self.log("fault", fault="process_crash")
                self.store = self.store.image()
            self.result.incarnations = incarnation
            if self.driver.injected_failures:
                self.result.faults["driver_failure"] = self.driver.injected_failures
            if self.driver.injected_hangs:
                self.result.faults["driver_timeout"] = self.driver.injected_hangs
            self.result.simulated = self.clock.monotonic()
            self.result.wall = time.perf_counter() - started
            self.result.digest = hashlib.sha256(
                b"\n".join(msgspec.json.encode(e) for e in self.result.trace)
            ).hexdigest()
        finally:
            self._bury()
            quiet.setLevel(level)
        return self.result

    def _bury(self) -> None:
        """Drop the abandoned incarnations. Their tasks never run again; collecting them here,
        with warnings about never-awaited coroutines silenced, keeps that noise out of the
        caller's process."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for loop in self.abandoned:
                if loop.is_closed():
                    continue
                # The run is over and checked: only now may their cleanup run (bounded).
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    ending = asyncio.gather(*tasks, return_exceptions=True)
                    with contextlib.suppress(BaseException):
                        loop.run_until_complete(asyncio.wait_for(ending, timeout=60.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
            self.abandoned.clear()
            gc.collect()

    async def _incarnation(self, until: float, final: bool) -> None:
        config = self.config
        env = Environment(
            clock=self.clock,
            seed=_derive(config.seed, f"process-{len(self.abandoned)}"),
            planted_bugs=config.planted_bugs,
        )
        fleet = Fleet.open(
            None,
            driver=self.driver,
            env=env,
            store=self.store,
            instance_actor=_SimInstance,
            heartbeat_interval=20.0,
        )
        await fleet.__aenter__()
        self.fleet = fleet
        for flavor in _FLAVORS:
            fleet.flavors.add(flavor)
        for image in _IMAGES:
            fleet.images.add(image)
        existing = {h.host_id for h in await fleet.hosts.list()}
        for n in range(config.hosts):
            host = f"h-{n:03d}"
            if host not in existing:
                await fleet.hosts.add(
                    host, capacity=Capacity(vcpus=16, ram_mb=65536, disk_gb=1000), zone=f"az{n % 3}"
                )
            if host in self.lost_hosts or self.down_until.get(host, 0) > self.clock.monotonic():
                fleet.hosts.set_agent(host, alive=False)
        await self._check_safety(fleet, "after recovery")
        await self._resolve_unresolved(fleet)
        self._set_driver_faults(on=True)
        workers = [
            asyncio.get_running_loop().create_task(self._client(fleet, n))
            for n in range(config.clients)
        ]
        chaos = asyncio.get_running_loop().create_task(self._faults(fleet))
        janitor = asyncio.get_running_loop().create_task(self._janitor(fleet))
        await self.clock.sleep(max(0.0, until - self.clock.monotonic()))
        if not final:
            return  # crash: abandon everything as it is
        # Heal: no new faults, everything back, then let the fleet settle.
        self.in_chaos = False
        chaos.cancel()
        janitor.cancel()
        for worker in workers:
            worker.cancel()
        await asyncio.wait([chaos, janitor, *workers])
        self._set_driver_faults(on=False)
        self.store.clear_faults()
        for host in sorted(self.down_until):
            if host not in self.lost_hosts:
                fleet.hosts.set_agent(host, alive=True)
        await fleet.hosts.list()
        await fleet.hosts.heartbeat_all()
        report = await fleet.recover()
        self.log("heal", orphans=len(report.orphans), ghosts=len(report.ghosts))
        await self._resolve_unresolved(fleet)
        await self._check_safety(fleet, "after heal")
        await self._check_liveness(fleet)
        await fleet.__aexit__(None, None, None)
        await self.store.aclose()

    async def _janitor(self, fleet: Fleet) -> None:
        """What an operator's cron would do: resume flows a store failure interrupted."""
        while True:
            await self.clock.sleep(300.0)
            with contextlib.suppress(StatewardError):
                await fleet.resume()

    def _set_driver_faults(self, *, on: bool) -> None:
        rate = self.rates.get("driver_failure", 0.0) * 0.03 if on else 0.0
        self.driver.failures = dict.fromkeys(Operation, rate)
        hang = self.rates.get("driver_timeout", 0.0) * 0.005 if on else 0.0
        self.driver.hangs = dict.fromkeys(Operation, hang)

    # -- the workload ---------------------------------------------------------------------

    async def _client(self, fleet: Fleet, number: int) -> None:
        rng = random.Random(_derive(self.config.seed, f"client-{number}-{len(self.abandoned)}"))
        while self.in_chaos:
            await self.clock.sleep(rng.expovariate(1 / self.config.think))
            live = sorted(i for i, s in self.known.items() if s == "live")
            if len(live) < self.config.instances and (not live or rng.random() < 0.5):
                await self._boot(fleet, rng)
            elif live:
                await self._act(fleet, rng, rng.choice(live))

    async def _boot(self, fleet: Fleet, rng: random.Random) -> None:
        self.next_instance += 1
        instance = f"i-{self.config.seed % 1000:03d}-{self.next_instance:05d}"
        flavor = rng.choice(_FLAVORS).name
        image = rng.choice(_IMAGES)
        self.known[instance] = "booting"
        key = f"{instance}:boot"

        async def call() -> TaskRecord:
            return await fleet.instances.boot(
                instance, flavor=flavor, image=image, idempotency_key=key
            )

        record = await self._operation(fleet, "boot", instance, key, call)
        if record is not None and record.status is TaskStatus.SUCCEEDED:
            self.known[instance] = "live"
        elif record is not None:
            self.known[instance] = "live"  # in error: a later delete cleans it up

    async def _act(self, fleet: Fleet, rng: random.Random, instance: str) -> None:
        # Clients mostly ask for what the instance allows, as a UI offering its buttons
        # would; now and then for anything, as a script with a stale view would.
        try:
            allowed = (await fleet.instances.get(instance)).allowed
        except StatewardError:
            allowed = ()
        choices = [a for a in allowed if a in ACTIONS] or list(ACTIONS)
        action = rng.choice(choices) if rng.random() < 0.9 else rng.choice(ACTIONS)
        image = rng.choice(_IMAGES) if action == "rebuild" else None
        key = f"{instance}:{action}:{self.clock.monotonic():.6f}"

        async def call() -> TaskRecord:
            return await fleet.instances.act(instance, action, image=image, idempotency_key=key)

        record = await self._operation(fleet, action, instance, key, call)
        if action == "delete" and record is not None and record.status is TaskStatus.SUCCEEDED:
            self.known[instance] = "deleted"

    async def _operation(
        self,
        fleet: Fleet,
        kind: str,
        instance: str,
        key: str,
        call: Callable[[], Any],
    ) -> TaskRecord | None:
        """Invoke, retry with the same key, wait for the task; record the outcome."""
        self.log("invoke", op=kind, resource=instance, key=key)
        self.unresolved[key] = (kind, instance, key)
        for _ in range(_ATTEMPTS):
            try:
                await self._network("request")
                submitted: TaskRecord = await call()
                await self._network("reply")
                record = await asyncio.wait_for(
                    fleet.tasks.wait(submitted.id), timeout=_OPERATION_TIMEOUT
                )
            except _Lost:
                continue  # the request or the reply was lost: try again, same key
            except StatewardError as error:
                if isinstance(error, _RETRYABLE):
                    await self.clock.sleep(5.0)
                    continue
                self._outcome(kind, instance, key, "failed", type(error).__name__)
                return None
            except TimeoutError:
                continue
            if not record.status.is_terminal:
                await self.clock.sleep(60.0)  # interrupted: a recovery will resume it
                continue
            self.acknowledged[record.id] = record
            outcome = "ok" if record.status is TaskStatus.SUCCEEDED else "failed"
            self._outcome(kind, instance, key, outcome, record.status.value)
            return record
        # Indeterminate: it may or may not have happened. It stays unresolved; a recovery
        # asks again with the same key and counts its outcome then.
        self.log("info", op=kind, resource=instance, key=key)
        return None

    def _outcome(self, kind: str, instance: str, key: str, outcome: str, detail: str) -> None:
        self.unresolved.pop(key, None)
        self.result.operations[kind, outcome] += 1
        self.log(outcome, op=kind, resource=instance, key=key, detail=detail)

    async def _network(self, direction: str) -> None:
        if not self.in_chaos:
            return
        if (
            "message_delay" in self.rates
            and self.fault_rng.random() < 0.05 * self.rates["message_delay"]
        ):
            self.result.faults["message_delay"] += 1
            await self.clock.sleep(self.fault_rng.uniform(1.0, 30.0))
        if (
            "message_loss" in self.rates
            and self.fault_rng.random() < 0.02 * self.rates["message_loss"]
        ):
            self.result.faults["message_loss"] += 1
            self.log("fault", fault="message_loss", direction=direction)
            raise _Lost

    async def _resolve_unresolved(self, fleet: Fleet) -> None:
        """Operations left in flight by a crash: ask again with the same key."""
        for key in sorted(self.unresolved):
            kind, instance, _ = self.unresolved[key]
            if instance not in fleet.system:
                self.unresolved.pop(key)
                self.result.operations[kind, "not-started"] += 1
                continue
            found = await fleet.engine.find(instance, key)
            if found is None:
                self.unresolved.pop(key)
                self.result.operations[kind, "not-started"] += 1
                continue
            record = await fleet.tasks.wait(found.id) if not self.in_chaos else found
            if not record.status.is_terminal:
                continue  # still in flight: settled by a later recovery
            if record.status.is_terminal:
                self.acknowledged[record.id] = record
                outcome = "ok" if record.status is TaskStatus.SUCCEEDED else "failed"
                self._outcome(kind, instance, key, outcome, record.status.value)
                if record.status is TaskStatus.SUCCEEDED:
                    self.known[instance] = "deleted" if kind == "delete" else "live"

    # -- faults ---------------------------------------------------------------------------

    async def _faults(self, fleet: Fleet) -> None:
        rng = self.fault_rng
        sites = [
            s
            for s in self.rates
            if s
            not in (
                "process_crash",
                "driver_failure",
                "driver_timeout",
                "message_delay",
                "message_loss",
            )
        ]
        if not sites:
            return
        while self.in_chaos:
            await self.clock.sleep(rng.expovariate(1 / 600.0))
            site = rng.choice(sites)
            if rng.random() > self.rates[site]:
                continue
            await self._fire(fleet, site, rng)

    async def _fire(self, fleet: Fleet, site: str, rng: random.Random) -> None:
        hosts = [h for h in fleet.hosts.ids() if h not in self.lost_hosts]
        if site == "actor_crash":
            live = sorted(i for i, s in self.known.items() if s == "live" and i in fleet.system)
            if not live:
                return
            target = rng.choice(live)
            with contextlib.suppress(StatewardError):
                fleet.system.lookup(target).tell_nowait(_Crash())
            self._fault(site, resource=target)
        elif site == "host_down" and hosts:
            host = rng.choice(hosts)
            fleet.hosts.set_agent(host, alive=False)
            self.down_until[host] = self.clock.monotonic() + rng.uniform(60, 900)
            asyncio.get_running_loop().create_task(self._host_back(fleet, host))
            self._fault(site, resource=host)
        elif (
            site == "host_lost" and len(self.lost_hosts) < max(1, self.config.hosts // 10) and hosts
        ):
            host = rng.choice(hosts)
            self.lost_hosts.add(host)
            fleet.hosts.set_agent(host, alive=False)
            lost = self.driver.lose_host(host)
            self._fault(site, resource=host, instances=len(lost))
        elif site == "store_failure":
            self.store.fail_writes(1, reason="I/O error")
            self._fault(site)
        elif site == "store_false_failure":
            self.store.fail_writes(1, reason="I/O error", after_commit=True)
            self._fault(site)
        elif site == "disk_full":
            self.store.fail_writes(rng.randint(2, 10), reason="disk full")
            self._fault(site)

    def _fault(self, site: str, **detail: Any) -> None:
        self.result.faults[site] += 1
        self.log("fault", fault=site, **detail)

    async def _host_back(self, fleet: Fleet, host: str) -> None:
        await self.clock.sleep(max(0.0, self.down_until[host] - self.clock.monotonic()))
        if host not in self.lost_hosts and self.fleet is fleet:
            fleet.hosts.set_agent(host, alive=True)
            self.log("recovered", resource=host)

    # -- invariants -----------------------------------------------------------------------

    def _violate(self, invariant: str, detail: str, *resources: str) -> None:
        self.result.violations.append(Violation(invariant, detail, tuple(resources)))
        self.log(
            "violation",
            invariant=invariant,
            detail=detail,
            resource=resources[0] if resources else None,
        )

    async def _check_safety(self, fleet: Fleet, when: str) -> None:
        """Ownership, claims and capacity: must hold at every instant, so after every
        incarnation's recovery too."""
        owners: dict[str, list[str]] = {}
        states = {s.resource_id: s for s in await fleet.instances.summaries()}
        for status in await fleet.hosts.list():
            limit = (
                status.capacity.vcpus * 16.0,
                status.capacity.ram_mb * 1.5,
                status.capacity.disk_gb * 1.0,
            )
            used = status.usage
            if used.vcpus > limit[0] or used.ram_mb > limit[1] or used.disk_gb > limit[2]:
                self._violate(
                    "no over-commit", f"{when}: {status.host_id} uses {used}", status.host_id
                )
            total = Capacity()
            for claim in status.claims:
                total = total + claim.amount
                owners.setdefault(claim.instance_id, []).append(status.host_id)
                summary = states.get(claim.instance_id)
                if summary is None or summary.state in ("deleted", "new"):
                    self._violate(
                        "claims belong to live instances",
                        f"{when}: {status.host_id} holds {claim.claim_id} for "
                        f"{claim.instance_id} ({summary.state if summary else 'unknown'})",
                        claim.instance_id,
                        status.host_id,
                    )
            if total != used:
                self._violate(
                    "usage is the sum of claims", f"{when}: {status.host_id}", status.host_id
                )
        for instance, hosts in sorted(owners.items()):
            if len(hosts) > 1:
                self._violate(
                    "one owner", f"{when}: {instance} is claimed on {hosts}", instance, *hosts
                )
        # Every placed instance holds its room: a claim on the host it runs on.
        for instance_id, summary in sorted(states.items()):
            if summary.state in ("deleted", "new", "error") or "/" in summary.state:
                continue
            placed = await fleet.instances.get(instance_id)
            if placed.host is not None and placed.host not in owners.get(instance_id, []):
                self._violate(
                    "placed instances hold a claim",
                    f"{when}: {instance_id} runs on {placed.host} without a claim there",
                    instance_id,
                    placed.host,
                )

    async def _check_liveness(self, fleet: Fleet) -> None:
        """After the heal: nothing in flight, nothing orphaned, nothing lost."""
        again = await fleet.reconcile()
        for orphan in again.orphans:
            self._violate("no orphan", f"{orphan} exists on the driver only", orphan)
        for ghost in again.ghosts:
            self._violate("no ghost", f"{ghost} is missing on the driver", ghost)
        for port in again.orphan_ports:
            self._violate("no orphan", f"port {port} has no live owner", port)
        for document in await fleet.store.find_documents(
            TASKS, status=TaskStatus.RUNNING.value, limit=10
        ):
            self._violate(
                "every task terminal", f"{document.key} still running", document.resource_id or ""
            )
        for document in await fleet.store.find_documents(
            TASKS, status=TaskStatus.PENDING.value, limit=10
        ):
            self._violate(
                "every task terminal", f"{document.key} still pending", document.resource_id or ""
            )
        for key in sorted(self.unresolved):
            kind, instance, _ = self.unresolved[key]
            self._violate("every client operation completed", f"{kind} {key}", instance)
        for summary in await fleet.instances.summaries():
            if "/" in summary.state:
                self._violate(
                    "every instance settled",
                    f"{summary.resource_id} is {summary.state}",
                    summary.resource_id,
                )
        # Nothing acknowledged is lost, and task records agree with the journal.
        for task_id, seen in sorted(self.acknowledged.items()):
            try:
                stored = await fleet.engine.get(task_id)
            except StatewardError:
                self._violate(
                    "nothing acknowledged is lost", f"task {task_id} is gone", seen.resource_id
                )
                continue
            if stored.status is not seen.status:
                self._violate(
                    "nothing acknowledged is lost",
                    f"task {task_id} was {seen.status.value}, is {stored.status.value}",
                    seen.resource_id,
                )
            if stored.status is TaskStatus.SUCCEEDED and stored.resource_id in fleet.system:
                history = await fleet.store.history(stored.resource_id, limit=100_000)
                if not any(r.task_id == task_id for r in history):
                    self._violate(
                        "task records agree with the journal",
                        f"succeeded task {task_id} has no transition of {stored.resource_id}",
                        stored.resource_id,
                    )


class _Lost(Exception):
    """A message between client and fleet was lost."""


#: Errors a client retries with the same key: the fleet was busy, down or unreachable.
_RETRYABLE = (AskTimeout, CommitFailed, StoreUnavailable, ActorError)


def _derive(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def simulate(config: SimConfig) -> SimResult:
    """Run one simulation to the end; see :class:`SimResult`."""
    return _Sim(config).run()

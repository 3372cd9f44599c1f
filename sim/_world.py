"""The world of a simulated run: virtual time, seeded randomness, process incarnations.

Your system runs unchanged; what makes a run repeatable is what it is given: one
:class:`~stateward.runtime.VirtualClock` shared by every event loop of the run, random streams
seeded per concern (:meth:`World.random`), an :class:`~stateward.runtime.Environment` per
incarnation (:meth:`World.env`) and a :class:`~stateward.runtime.MemoryStore` that runs on the
loop (:attr:`World.store`).

A *process crash* abandons the current incarnation: its event loop is never run again, so no
task runs its cleanup, and the next incarnation opens the store's durable image
(:meth:`MemoryStore.image`): whatever was not committed is lost, exactly.

A run has three phases (after TigerBeetle's simulator): *chaos* — clients operate while
fault sites fire and the process may crash; *heal* — faults off, the system recovers;
*liveness* — everything must have settled. Safety invariants are checked after every
incarnation opens and after the heal, liveness invariants after the heal. The history
records every event; its digest identifies the run, so the same seed and code give the
same digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import logging
import math
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from stateward.runtime import Environment, InvalidArgument, MemoryStore, VirtualClock

from ._faults import (
    CORE_FAULTS,
    MESSAGE_DELAY,
    MESSAGE_LOSS,
    PROCESS_CRASH,
    Faults,
    FaultSite,
    MessageLost,
)
from ._history import Divergence, History, first_divergence
from ._invariants import EVERY_OPERATION_COMPLETED, Invariant, Problem, Violation

__all__ = (
    "SimConfig",
    "SimResult",
    "World",
    "Scenario",
    "simulate",
    "check_determinism",
    "sweep",
    "derive_seed",
    "UNEXPECTED_ERROR",
)

App = TypeVar("App")


def derive_seed(seed: int, name: str) -> int:
    """A seed for ``name`` from ``seed``: the same in every process (sha256, not ``hash``)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise InvalidArgument(name, expected="seconds > 0", got=value)
    return float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """One simulated run.

    Attributes:
        seed: everything follows from it.
        duration: simulated seconds of chaos.
        faults: the fault sites allowed, each still switched on or off by the seed; None
            for all of the scenario's.
        clients: concurrent clients.
        think: mean simulated seconds between one client's operations.
        fault_interval: mean simulated seconds between two timed faults.
        crashes: process crashes over the chaos phase, on average, at the full rate.
    """

    seed: int
    duration: float = 86_400.0
    faults: frozenset[str] | None = None
    clients: int = 20
    think: float = 300.0
    fault_interval: float = 600.0
    crashes: float = 6.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidArgument("seed", expected="an int >= 0", got=self.seed)
        if isinstance(self.clients, bool) or not isinstance(self.clients, int) or self.clients < 0:
            raise InvalidArgument("clients", expected="an int >= 0", got=self.clients)
        for name in ("duration", "think", "fault_interval", "crashes"):
            _seconds(name, getattr(self, name))
        if self.faults is not None and not (
            isinstance(self.faults, frozenset) and all(isinstance(f, str) for f in self.faults)
        ):
            raise InvalidArgument("faults", expected="a frozenset of site names", got=self.faults)


@dataclass
class SimResult:
    """What a run did and whether every invariant held."""

    config: SimConfig
    scenario: str
    violations: list[Violation] = field(default_factory=list)
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    enabled_faults: tuple[str, ...] = ()
    simulated: float = 0.0
    wall: float = 0.0
    incarnations: int = 0
    digest: str = ""
    trace: list[dict[str, Any]] = field(default_factory=list)
    reproduce: str = ""

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations

    @property
    def events(self) -> int:
        """Events in the history."""
        return len(self.trace)

    def history_of(self, resources: Iterable[str], last: int = 20) -> list[dict[str, Any]]:
        """The last events that name any of ``resources``."""
        wanted = set(resources)
        return [e for e in self.trace if e.get("resource") in wanted][-last:]


class Scenario(Generic[App]):
    """A system under test and its workload: subclass it, then :func:`simulate` it.

    The world makes one scenario per run, ``Scenario(world)``; per-run state (what clients
    know, what they were told) belongs on it. Override:

    - :meth:`open` (required): start the system for an incarnation on ``world.store`` with
      ``world.env()``, recover, and return it (the *app*, handed to everything else);
    - :meth:`operate`: one client operation (record it in ``world.history``); an exception
      it lets escape is a violation (:data:`UNEXPECTED_ERROR`), and the client goes on;
    - :meth:`heal`: with faults off, bring the system to rest;
    - :meth:`close`: close it after the final checks.

    Class attributes add :attr:`faults` before the core sites (:data:`CORE_FAULTS`) and name the
    :attr:`invariants` (besides "every client operation completed").
    """

    #: Fault sites of this scenario, besides the core ones.
    faults: ClassVar[Sequence[FaultSite]] = ()
    #: The invariants checked.
    invariants: ClassVar[Sequence[Invariant]] = ()

    def __init__(self, world: World) -> None:
        self.world = world

    @classmethod
    def sites(cls) -> Faults:
        """Every fault site of the scenario: its own, then the core ones."""
        return Faults((*cls.faults, *CORE_FAULTS))

    async def open(self) -> App:
        """Start the system for a new incarnation and return it."""
        raise NotImplementedError(f"{type(self).__name__} must define open()")

    async def operate(self, app: App, rng: random.Random) -> None:
        """One client operation; ``rng`` is the client's own stream."""

    async def heal(self, app: App) -> None:
        """Faults are off and the clients stopped: let the system settle."""

    async def close(self, app: App) -> None:
        """The run is over and checked: close the system."""

    def reproduce(self, config: SimConfig) -> str:
        """A line that runs ``config`` again."""
        name = type(self).__qualname__
        return f"stateward.sim.simulate({name}, {config!r})"


class World:
    """Everything a run shares across its incarnations.

    Attributes:
        config: the run's configuration.
        clock: the virtual clock of every incarnation.
        store: the store of the current incarnation (a new image after every crash).
        history: the events and the client operations.
        incarnation: the current process incarnation, from 1.
        in_chaos: True during the chaos phase.
        rates: the fault sites this seed switched on, each with its strength (0.3 to 1).
        faults: how often each site fired.
    """

    def __init__(self, config: SimConfig, sites: Faults) -> None:
        self.config = config
        self.clock = VirtualClock()
        self.store = MemoryStore(clock=self.clock)
        self.history = History(self.clock)
        self.incarnation = 0
        self.in_chaos = True
        self.faults: Counter[str] = Counter()
        self._streams: dict[str, random.Random] = {}
        self._background: list[asyncio.Task[Any]] = []
        #: Set by :meth:`crash`: the current incarnation died at once.
        self._crashed = False
        allowed = sites.check(config.faults if config.faults is not None else sites)
        plan = self.random("plan")
        self.rates: dict[str, float] = {}
        for name in sites:
            if name in allowed and plan.random() < 0.75:
                self.rates[name] = plan.uniform(0.3, 1.0)

    def random(self, stream: str) -> random.Random:
        """The random stream ``stream`` of this run: independent of every other one."""
        rng = self._streams.get(stream)
        if rng is None:
            rng = self._streams[stream] = random.Random(derive_seed(self.config.seed, stream))
        return rng

    def env(self, name: str = "process") -> Environment:
        """An environment on the run's clock, seeded for ``name`` in this incarnation."""
        seed = derive_seed(self.config.seed, f"{name}-{self.incarnation - 1}")
        return Environment(clock=self.clock, seed=seed)

    def rate(self, site: str) -> float:
        """How strongly ``site`` is on (0 when off, or outside the chaos phase)."""
        return self.rates.get(site, 0.0) if self.in_chaos else 0.0

    def fault(self, site: str, **detail: Any) -> None:
        """Count and log that ``site`` fired."""
        self.faults[site] += 1
        self.history.log("fault", fault=site, **detail)

    def log(self, kind: str, **detail: Any) -> None:
        """Log an event (see :meth:`History.log`)."""
        self.history.log(kind, **detail)

    def crash(self, site: str, **detail: Any) -> None:
        """Kill the process now, for ``site``: a fault aimed at a moment the scenario picks
        (right after a given commit, say). The incarnation's loop stops once the current
        callback returns, so nothing more of it runs: the next incarnation opens what the
        store committed. Only during the chaos phase; a no-op otherwise."""
        if self.in_chaos and not self._crashed:
            self.fault(site, **detail)
            self._crashed = True
            asyncio.get_running_loop().stop()

    def background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` during the chaos: cancelled at the heal, abandoned by a crash."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.append(task)
        return task

    async def network(self, direction: str) -> None:
        """A message between a client and the system crosses the network.

        Raises:
            MessageLost: the ``message_loss`` site lost it (the client decides what to do:
                typically retry with the same idempotency key).
        """
        rng = self.random("faults")
        delay = self.rate(MESSAGE_DELAY.name)
        if delay and rng.random() < 0.05 * delay:
            self.faults[MESSAGE_DELAY.name] += 1
            await self.clock.sleep(rng.uniform(1.0, 30.0))
        loss = self.rate(MESSAGE_LOSS.name)
        if loss and rng.random() < 0.02 * loss:
            self.fault(MESSAGE_LOSS.name, direction=direction)
            raise MessageLost(direction)


class _Run:
    """One run of a scenario: its incarnations, phases and checks."""

    def __init__(self, factory: Callable[[World], Scenario[Any]], config: SimConfig) -> None:
        sites = _scenario_type(factory).sites()
        self.world = World(config, sites)
        self.scenario = factory(self.world)
        if not isinstance(self.scenario, Scenario):
            raise InvalidArgument("scenario", expected="a Scenario", got=self.scenario)
        self.sites = sites
        self.invariants = (*type(self.scenario).invariants, EVERY_OPERATION_COMPLETED)
        self.result = SimResult(
            config,
            scenario=type(self.scenario).__qualname__,
            enabled_faults=tuple(n for n in sites if n in self.world.rates),
        )
        self.abandoned: list[asyncio.AbstractEventLoop] = []

    def run(self) -> SimResult:
        world, config = self.world, self.world.config
        started = time.perf_counter()
        quiet = logging.getLogger("asyncio")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            while True:
                world.incarnation += 1
                crash_at = math.inf
                crash_rate = world.rates.get(PROCESS_CRASH.name, 0.0)
                if crash_rate and world.clock.monotonic() < config.duration:
                    gap = world.random("faults").expovariate(
                        crash_rate * config.crashes / config.duration
                    )
                    crash_at = world.clock.monotonic() + gap
                final = crash_at >= config.duration
                loop = world.clock.new_event_loop()
                world.log("incarnation", number=world.incarnation)
                world._crashed = False
                try:
                    loop.run_until_complete(
                        self._incarnation(min(crash_at, config.duration), final)
                    )
                except RuntimeError:
                    if not world._crashed:  # not the loop a scenario's crash stopped
                        raise
                finally:
                    self.abandoned.append(loop)
                if final and not world._crashed:
                    break
                # A crash: nothing pending survives, only what the store committed.
                if not world._crashed:
                    world.fault(PROCESS_CRASH.name)
                world.store = world.store.image()
        finally:
            _bury(self.abandoned)
            quiet.setLevel(level)
        result = self.result
        result.incarnations = world.incarnation
        result.operations = Counter(world.history.outcomes)
        result.faults = Counter({n: world.faults[n] for n in self.sites if world.faults[n]})
        result.simulated = world.clock.monotonic()
        result.wall = time.perf_counter() - started
        result.trace = world.history.events
        result.digest = world.history.digest()
        result.reproduce = self.scenario.reproduce(config)
        return result

    async def _incarnation(self, until: float, final: bool) -> None:
        world, scenario = self.world, self.scenario
        world._background = []
        app = await scenario.open()
        await self._check(app, "after recovery", liveness=False)
        for number in range(world.config.clients):
            world.background(self._client(app, number))
        timed = [s for s in self.sites.values() if s.fire is not None and s.name in world.rates]
        if timed:
            world.background(self._faults(app, timed))
        await world.clock.sleep(max(0.0, until - world.clock.monotonic()))
        if not final:
            return  # crash: abandon everything as it is
        # Heal: no new faults, the clients stop, then the system settles.
        world.in_chaos = False
        for task in world._background:
            task.cancel()
        if world._background:
            await asyncio.wait(world._background)
        world.store.clear_faults()
        await scenario.heal(app)
        world.log("heal")
        await self._check(app, "after heal", liveness=False)
        await self._check(app, "after heal", liveness=True)
        await scenario.close(app)
        await world.store.aclose()

    async def _client(self, app: Any, number: int) -> None:
        world = self.world
        rng = world.random(f"client-{number}-{world.incarnation - 1}")
        mean = world.config.think
        while world.in_chaos:
            await world.clock.sleep(rng.expovariate(1 / mean))
            try:
                await self.scenario.operate(app, rng)
            except Exception as exc:  # a finding, not the end of the client
                self._violate(
                    Invariant(UNEXPECTED_ERROR, _nothing),
                    Problem(f"client {number}: {type(exc).__name__}: {exc}"),
                    "during chaos",
                )

    async def _faults(self, app: Any, timed: list[FaultSite]) -> None:
        world = self.world
        rng = world.random("faults")
        while world.in_chaos:
            await world.clock.sleep(rng.expovariate(1 / world.config.fault_interval))
            site = rng.choice(timed)
            if rng.random() > world.rates[site.name]:
                continue
            assert site.fire is not None
            fired = site.fire(self.scenario, app)
            if fired is not None:
                await fired

    async def _check(self, app: Any, when: str, *, liveness: bool) -> None:
        for invariant in self.invariants:
            if invariant.liveness is not liveness:
                continue
            for problem in await invariant.check(self.scenario, app):
                found = problem if isinstance(problem, Problem) else Problem(str(problem))
                self._violate(invariant, found, when)

    def _violate(self, invariant: Invariant, found: Problem, when: str) -> None:
        violation = Violation(invariant.name, f"{when}: {found.detail}", found.resources)
        self.result.violations.append(violation)
        self.world.log(
            "violation",
            invariant=violation.invariant,
            detail=violation.detail,
            resource=found.resources[0] if found.resources else None,
        )


#: The violation an exception escaping a client's operation is: the scenario handles the
#: errors it expects, so anything else is a finding.
UNEXPECTED_ERROR = "clients see no unexpected error"


async def _nothing(scenario: Any, app: Any) -> list[Problem]:
    return []


def _scenario_type(factory: Callable[[World], Scenario[Any]]) -> type[Scenario[Any]]:
    """The Scenario class a factory makes (a class, or a ``functools.partial`` of one)."""
    target = getattr(factory, "func", factory)
    if isinstance(target, type) and issubclass(target, Scenario):
        return target
    raise InvalidArgument(
        "scenario", expected="a Scenario subclass, or functools.partial of one", got=factory
    )


#: Rounds of cancelling an abandoned incarnation's tasks (and those their cleanup starts).
_BURIAL_ROUNDS = 10


def _bury(abandoned: list[asyncio.AbstractEventLoop]) -> None:
    """Drop the abandoned incarnations. Their tasks never run again; collecting them here,
    with warnings about never-awaited coroutines silenced, keeps that noise out of the
    caller's process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for loop in abandoned:
            if loop.is_closed():
                continue
            # The run is over and checked: only now may their cleanup run (bounded). A
            # cleanup may start tasks of its own (an actor's mailbox drained, a timer due
            # meanwhile): those are cancelled in the next round.
            for _ in range(_BURIAL_ROUNDS):
                tasks = asyncio.all_tasks(loop)
                if not tasks:
                    break
                for task in tasks:
                    task.cancel()
                # ``asyncio.wait`` returns at its (virtual) deadline even if a task refuses to
                # end, as one may when Ctrl-C interrupted the loop mid-callback; ``wait_for``
                # would wait for the cancellation to finish, with no timer left to wake the
                # loop: forever.
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.wait(tasks, timeout=60.0))
            with contextlib.suppress(BaseException):
                loop.run_until_complete(loop.shutdown_asyncgens())
            _forget_anyio_states(loop)
            loop.close()
        abandoned.clear()
        gc.collect()


def _forget_anyio_states(loop: asyncio.AbstractEventLoop) -> None:
    """Drop anyio's state of the loop's tasks. anyio keeps it in a weak-keyed mapping whose
    values (a task's cancel scope) refer back to the task, so a task abandoned inside a task
    group (a crashed incarnation's, which opened the app) would never be collected, and
    with it everything the incarnation built."""
    with contextlib.suppress(ImportError, AttributeError):
        from anyio._backends import _asyncio as anyio_asyncio

        states = anyio_asyncio._task_states
        for task in [t for t in list(states) if t.get_loop() is loop]:
            states.pop(task, None)


def simulate(scenario: Callable[[World], Scenario[Any]], config: SimConfig) -> SimResult:
    """Run ``scenario`` (a :class:`Scenario` subclass) once, as ``config`` says.

    Raises:
        InvalidArgument: ``config`` names a fault site the scenario does not have.
    """
    if not isinstance(config, SimConfig):
        raise InvalidArgument("config", expected="a SimConfig", got=config)
    return _Run(scenario, config).run()


def check_determinism(
    scenario: Callable[[World], Scenario[Any]], config: SimConfig
) -> tuple[SimResult, Divergence | None]:
    """Run ``config`` twice; the first result, and where the two histories first differ."""
    first = simulate(scenario, config)
    second = simulate(scenario, config)
    return first, first_divergence(first.trace, second.trace)


def sweep(
    scenario: Callable[[World], Scenario[Any]], config: SimConfig, seeds: Iterable[int]
) -> Iterator[SimResult]:
    """Run ``config`` under each of ``seeds`` in turn, yielding each result."""
    for seed in seeds:
        yield simulate(scenario, dataclasses.replace(config, seed=seed))

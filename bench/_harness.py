"""The benchmark harness: sizes, rows, rounds, goals and results.

A *row* compares one subject (a stateward feature or a peer library) with one baseline. Both
sides are measured in the same process and the same run, with their rounds interleaved
(subject, baseline, subject, …) so that drift such as CPU frequency changes or a noisy
neighbour hits both alike. Every side is warmed up first, then measured for a fixed number of
rounds of a fixed size; the figure kept is the best round for throughputs (the least disturbed
one, as ``timeit`` does) and the median round for memory (which is nearly deterministic, so the
median only removes a rare outlier). Latency rows also keep every per-operation time of the
measured rounds and report p50 and p99.

Ratios are oriented so that **a ratio above 1 always means "better than the baseline"**:
``value / baseline_value`` when higher is better (throughput), ``baseline_value / value`` when
lower is better (bytes, seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import gc
import importlib.util
import math
import os
import platform
import statistics
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from stateward.runtime import InvalidArgument

__all__ = (
    "Sizes",
    "TINY_SIZES",
    "QUICK_SIZES",
    "FULL_SIZES",
    "SIZES",
    "Round",
    "Aggregate",
    "Side",
    "Comparison",
    "Goal",
    "Row",
    "Result",
    "Skipped",
    "Report",
    "Registry",
    "compare",
    "percentile",
    "python_description",
    "machine_description",
    "run_rows",
    "Settings",
    "DEFAULT_SETTINGS",
    "TUNED_GC",
    "settings",
    "loop_runner",
    "applied",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much work each row does. Every figure is per round.

    Attributes:
        name: the preset's name (``tiny``, ``quick``, ``full``).
        rounds: measured rounds per side (after warm-up).
        warmup_rounds: unmeasured rounds per side, run first.
        messages: tells per round in ``actor.tell``.
        asks: sequential asks per round in ``actor.ask`` and ``fsm.actor_transition``.
        idle_actors: live actors kept idle per round in the memory rows.
        spawns: actors created per round in ``actor.spawn``.
        transitions: ``fire`` calls per round in ``fsm.transition``.
        peer_messages: tells per round in ``peer.pykka.tell`` (thread actors are slow).
        peer_asks: asks per round in ``peer.pykka.ask``.
        peer_rounds: measured rounds per side of the pykka rows.
        store_rounds: measured rounds per side of the ``store.*`` rows (each one fsyncs a
            real file or reopens a whole database, so they are fewer).
        durable_actors: durable FSM actors in ``store.durable_transition``.
        durable_transitions: transitions per actor per round in ``store.durable_transition``.
        recovery_resources: resources in the database of the ``store.recovery*`` rows.
        recovery_asks: resources asked after a lazy restore in ``store.recovery``.
        flows: concurrent stateward flows (one per resource) per round in the ``flow.*`` rows.
        taskflow_flows: flows per round of TaskFlow's in-memory serial engine (``flow.*``).
        taskflow_durable_flows: flows per round of TaskFlow with its SQLite backend in
            ``flow.boot_durable`` (each takes about a third of a second).
        dbos_flows: workflows per round of DBOS in ``peer.dbos.flow`` (a few dozen a
            second).
        fleet_boots: instances booted per round in ``fleet.boot`` (and flows of its
            baseline).
        fleet_instances: instances in the database of ``fleet.resident_memory``.
        fleet_rounds: measured rounds per side of ``fleet.boot`` (each boots a whole fleet,
            so they are fewer).
        fleet_memory_rounds: measured rounds per side of ``fleet.resident_memory`` (each
            restores a big database under tracemalloc; the figure barely moves between
            rounds).
        sim_duration: simulated seconds of chaos per round of the ``sim.*`` rows (100 hosts,
            1,000 instances, all faults).
        sim_rounds: measured rounds per side of the ``sim.*`` rows.
        sim_boots: instances booted per round of ``sim.events``'s baseline (``fleet.boot``'s
            round, on the real clock).
    """

    name: str
    rounds: int
    warmup_rounds: int
    messages: int
    asks: int
    idle_actors: int
    spawns: int
    transitions: int
    peer_messages: int
    peer_asks: int
    peer_rounds: int
    store_rounds: int
    durable_actors: int
    durable_transitions: int
    recovery_resources: int
    recovery_asks: int
    flows: int
    taskflow_flows: int
    taskflow_durable_flows: int
    dbos_flows: int
    fleet_boots: int
    fleet_instances: int
    fleet_rounds: int
    fleet_memory_rounds: int
    sim_duration: float
    sim_rounds: int
    sim_boots: int


#: For the test suite only: exercises every code path in well under a second.
TINY_SIZES = Sizes(
    name="tiny",
    rounds=1,
    warmup_rounds=1,
    messages=200,
    asks=100,
    idle_actors=50,
    spawns=100,
    transitions=400,
    peer_messages=100,
    peer_asks=20,
    peer_rounds=1,
    store_rounds=1,
    durable_actors=50,
    durable_transitions=2,
    recovery_resources=200,
    recovery_asks=20,
    flows=20,
    taskflow_flows=3,
    taskflow_durable_flows=2,
    dbos_flows=2,
    fleet_boots=20,
    fleet_instances=200,
    fleet_rounds=1,
    fleet_memory_rounds=1,
    sim_duration=300.0,
    sim_rounds=1,
    sim_boots=20,
)

#: ``stateward bench --quick``: the whole suite in under a minute on a 2-core machine.
QUICK_SIZES = Sizes(
    name="quick",
    rounds=3,
    warmup_rounds=1,
    messages=20_000,
    asks=2_000,
    idle_actors=1_000,
    spawns=2_000,
    transitions=50_000,
    peer_messages=5_000,
    peer_asks=500,
    peer_rounds=2,
    store_rounds=2,
    durable_actors=1_000,
    durable_transitions=3,
    recovery_resources=5_000,
    recovery_asks=500,
    flows=300,
    taskflow_flows=20,
    taskflow_durable_flows=3,
    dbos_flows=5,
    fleet_boots=300,
    fleet_instances=5_000,
    fleet_rounds=1,
    fleet_memory_rounds=1,
    sim_duration=3_600.0,
    sim_rounds=1,
    sim_boots=100,
)

#: ``stateward bench``: large enough rounds that timer resolution and loop start-up vanish.
FULL_SIZES = Sizes(
    name="full",
    rounds=7,
    warmup_rounds=2,
    messages=200_000,
    asks=50_000,
    idle_actors=20_000,
    spawns=20_000,
    transitions=1_000_000,
    peer_messages=100_000,
    peer_asks=10_000,
    peer_rounds=5,
    store_rounds=5,
    durable_actors=10_000,
    durable_transitions=5,
    recovery_resources=100_000,
    recovery_asks=1_000,
    flows=1_000,
    taskflow_flows=300,
    taskflow_durable_flows=20,
    dbos_flows=50,
    fleet_boots=10_000,
    fleet_instances=100_000,
    fleet_rounds=3,
    fleet_memory_rounds=3,
    sim_duration=86_400.0,
    sim_rounds=3,
    sim_boots=1_000,
)

SIZES: Mapping[str, Sizes] = MappingProxyType(
    {sizes.name: sizes for sizes in (TINY_SIZES, QUICK_SIZES, FULL_SIZES)}
)

#: The cyclic GC's thresholds as Python sets them.
_PYTHON_GC = gc.get_threshold()
#: The cyclic GC's thresholds the README recommends for a service, with ``gc.freeze()``.
TUNED_GC = (50_000, 20, 20)


@dataclass(frozen=True, slots=True)
class Settings:
    """How the process runs the rows: the event loop and the cyclic garbage collector.

    Attributes:
        loop: ``asyncio`` (the standard library's loop) or ``uvloop`` (the ``fast`` extra).
        gc: ``default`` (Python's thresholds) or ``tuned`` (the README's advice: objects
            alive when a row starts frozen, the young generation's threshold raised to
            :data:`TUNED_GC`).
    """

    loop: Literal["asyncio", "uvloop"] = "asyncio"
    gc: Literal["default", "tuned"] = "default"

    def to_json(self) -> dict[str, str]:
        """The settings as JSON-ready data."""
        return {"loop": self.loop, "gc": self.gc}


DEFAULT_SETTINGS = Settings()
_current = [DEFAULT_SETTINGS]


def settings() -> Settings:
    """The settings the rows run with now."""
    return _current[-1]


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if loop == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def loop_runner() -> asyncio.Runner:
    """An :class:`asyncio.Runner` on the event loop of the current settings."""
    return asyncio.Runner(loop_factory=_loop_factory(settings().loop))


@contextlib.contextmanager
def applied(chosen: Settings) -> Generator[None, None, None]:
    """Run with ``chosen``: its loop for every :func:`loop_runner`, and the collector set as
    it says (tuned: what is alive now frozen, the young threshold raised; default: Python's
    thresholds, nothing frozen). The collector is put back as it was on the way out."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count() > 0
    _current.append(chosen)
    try:
        if chosen.gc == "tuned":
            gc.collect()
            gc.freeze()
            gc.set_threshold(*TUNED_GC)
        else:
            gc.unfreeze()
            gc.set_threshold(*_PYTHON_GC)
        yield
    finally:
        _current.pop()
        gc.set_threshold(*thresholds)
        if frozen:
            gc.freeze()
        else:
            gc.unfreeze()


#: How the rounds of one side are reduced to one figure.
Aggregate = Literal["best", "median"]


@dataclass(frozen=True, slots=True)
class Round:
    """The outcome of one round of one side.

    Attributes:
        value: the round's figure in the row's unit (e.g. operations per second).
        latencies: per-operation times in seconds, when the row reports percentiles.
    """

    value: float
    latencies: Sequence[float] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    """One side of a comparison (the subject or the baseline) after all its rounds.

    Attributes:
        name: what was measured, e.g. ``stateward`` or ``asyncio.Queue actor``.
        value: the kept figure (best or median round).
        rounds: every measured round's figure, in run order.
        p50: median per-operation latency in seconds, if recorded.
        p99: 99th-percentile per-operation latency in seconds, if recorded.
    """

    name: str
    value: float
    rounds: tuple[float, ...]
    p50: float | None = None
    p99: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """What a row's measure function returns: both sides, and anything worth reporting.

    Attributes:
        subject: the measured side.
        baseline: the side it is compared with.
        details: extra facts for the JSON report (sizes, settings).
        waive_goal: why the row's goal does not apply to this run (e.g. the peer the goal
            is about is not installed and a stand-in baseline was used); None when it does.
    """

    subject: Side
    baseline: Side
    details: Mapping[str, object] = field(default_factory=dict)
    waive_goal: str | None = None


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``samples``.

    Args:
        samples: the observations, in any order; must not be empty.
        fraction: which percentile, from 0 to 1 (0.99 for p99).
    """
    if not samples:
        raise InvalidArgument("samples", expected="at least one observation", got=samples)
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _side(name: str, rounds: Sequence[Round], *, higher_is_better: bool, how: Aggregate) -> Side:
    values = tuple(r.value for r in rounds)
    if how == "median":
        kept = statistics.median(values)
    else:
        kept = max(values) if higher_is_better else min(values)
    latencies = [lat for r in rounds for lat in r.latencies]
    if not latencies:
        return Side(name=name, value=kept, rounds=values)
    return Side(
        name=name,
        value=kept,
        rounds=values,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
    )


def compare(
    subject: tuple[str, Callable[[], Round]],
    baseline: tuple[str, Callable[[], Round]],
    *,
    rounds: int,
    warmup_rounds: int,
    higher_is_better: bool,
    how: Aggregate = "best",
) -> tuple[Side, Side]:
    """Warm up both sides, then run their rounds interleaved and reduce each to one figure.

    Interleaving matters more than it looks: measuring all subject rounds and then all
    baseline rounds lets a slow drift of the machine masquerade as a difference. Each round
    starts after a full collection, untimed, so that neither side pays for the other's
    garbage.

    Args:
        subject: a name and a callable that runs one round of the subject.
        baseline: the same for the baseline.
        rounds: measured rounds per side.
        warmup_rounds: unmeasured rounds per side, run first (caches, JIT-like specialisation
            of the interpreter, allocator pools).
        higher_is_better: whether a bigger figure is better (it picks the best round).
        how: keep the best round or the median one.

    Returns:
        The subject's side and the baseline's side.
    """
    if rounds < 1:
        raise InvalidArgument("rounds", expected="at least 1", got=rounds)
    subject_name, run_subject = subject
    baseline_name, run_baseline = baseline

    def clean(run: Callable[[], Round]) -> Round:
        # Every round starts from a collected heap: the garbage one side left must not make
        # the other side's collections slower (a peer that allocates much would tax us).
        gc.collect()
        return run()

    for _ in range(warmup_rounds):
        clean(run_subject)
        clean(run_baseline)
    subject_rounds: list[Round] = []
    baseline_rounds: list[Round] = []
    for _ in range(rounds):
        subject_rounds.append(clean(run_subject))
        baseline_rounds.append(clean(run_baseline))
    return (
        _side(subject_name, subject_rounds, higher_is_better=higher_is_better, how=how),
        _side(baseline_name, baseline_rounds, higher_is_better=higher_is_better, how=how),
    )


GoalKind = Literal["min_ratio", "max_value"]


@dataclass(frozen=True, slots=True)
class Goal:
    """What a row must reach to pass: a minimum ratio, or a maximum absolute value.

    Build one with :meth:`min_ratio` or :meth:`max_value`.
    """

    kind: GoalKind
    bound: float

    @classmethod
    def min_ratio(cls, bound: float) -> Goal:
        """The ratio (oriented so that above 1 is better) must be at least ``bound``."""
        return cls("min_ratio", bound)

    @classmethod
    def max_value(cls, bound: float) -> Goal:
        """The measured value itself must be at most ``bound`` (for lower-is-better rows)."""
        return cls("max_value", bound)

    def met(self, *, value: float, ratio: float) -> bool:
        """Whether a result with this ``value`` and ``ratio`` reaches the goal."""
        if self.kind == "min_ratio":
            return ratio >= self.bound
        return value <= self.bound

    def describe(self, unit: str) -> str:
        """A short human form, e.g. ``ratio ≥ 0.5`` or ``≤ 2048 B/actor``."""
        if self.kind == "min_ratio":
            return f"ratio ≥ {self.bound:g}"
        return f"≤ {self.bound:g} {unit}"

    def to_json(self) -> dict[str, object]:
        """The goal as JSON-ready data."""
        return {"kind": self.kind, "bound": self.bound}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One registered benchmark.

    Attributes:
        name: a dotted name, unique in its registry (``actor.tell``).
        unit: the unit of ``value`` (``msg/s``, ``B/actor``).
        higher_is_better: whether a bigger value is better; it orients the ratio.
        measure: runs the benchmark at the given sizes and returns both sides.
        summary: one line saying what is measured against what.
        goal: what the row must reach; reference rows have none.
        requires: modules that must be importable, else the row is skipped with a note.
        unavailable: says why the row cannot run here (a server it needs is not configured
            or not reachable), or ``None`` when it can; such a row is skipped with that note.
    """

    name: str
    unit: str
    higher_is_better: bool
    measure: Callable[[Sizes], Comparison]
    summary: str
    goal: Goal | None = None
    requires: tuple[str, ...] = ()
    unavailable: Callable[[], str | None] | None = None

    def missing_requirements(self) -> tuple[str, ...]:
        """The modules of ``requires`` that cannot be imported here."""
        return tuple(name for name in self.requires if importlib.util.find_spec(name) is None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """A measured row, in the shape of the JSON contract plus extras."""

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    higher_is_better: bool
    subject: str
    goal: Goal | None
    p50: float | None
    p99: float | None
    baseline_p50: float | None
    baseline_p99: float | None
    rounds: tuple[float, ...]
    baseline_rounds: tuple[float, ...]
    details: Mapping[str, object]

    @property
    def ratio(self) -> float:
        """How much better than the baseline; above 1 is better, whatever the unit."""
        if self.higher_is_better:
            return self.value / self.baseline_value if self.baseline_value else math.inf
        return self.baseline_value / self.value if self.value else math.inf

    @property
    def passed(self) -> bool | None:
        """Whether the goal is met, or ``None`` for a reference row without a goal."""
        if self.goal is None:
            return None
        return self.goal.met(value=self.value, ratio=self.ratio)

    def to_json(self) -> dict[str, object]:
        """The result as the contract's JSON object (seven fixed keys, then extras)."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "higher_is_better": self.higher_is_better,
            "subject": self.subject,
            "goal": None if self.goal is None else self.goal.to_json(),
            "passed": self.passed,
            "p50": self.p50,
            "p99": self.p99,
            "baseline_p50": self.baseline_p50,
            "baseline_p99": self.baseline_p99,
            "rounds": list(self.rounds),
            "baseline_rounds": list(self.baseline_rounds),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row that was not run, and why."""

    name: str
    reason: str


def python_description() -> str:
    """The interpreter that ran the benchmarks, e.g. ``CPython 3.11.7``."""
    return f"{platform.python_implementation()} {platform.python_version()}"


def _cpu_model() -> str:
    """The CPU model name; ``platform.processor()`` is empty on most Linux systems."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def machine_description() -> str:
    """The machine that ran the benchmarks: OS, architecture, CPU model and CPU count."""
    processor = _cpu_model()
    parts = [f"{platform.system()} {platform.release()}", platform.machine()]
    if processor and processor != platform.machine():
        parts.append(processor)
    parts.append(f"{os.cpu_count() or 1} CPUs")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything one benchmark run produced."""

    python: str
    machine: str
    sizes: Sizes
    results: tuple[Result, ...]
    skipped: tuple[Skipped, ...]
    settings: Settings = DEFAULT_SETTINGS

    def to_json(self) -> dict[str, object]:
        """The report in the top-level shape of the JSON contract, and the settings."""
        return {
            "python": self.python,
            "machine": self.machine,
            "results": [result.to_json() for result in self.results],
            "settings": self.settings.to_json(),
        }


class Registry:
    """The benchmark rows, in registration order; names are unique."""

    def __init__(self, rows: Iterable[Row] = ()) -> None:
        self._rows: dict[str, Row] = {}
        for row in rows:
            self.add(row)

    def add(self, row: Row) -> Row:
        """Register ``row`` and return it.

        Raises:
            InvalidArgument: a row with the same name is already registered.
        """
        if row.name in self._rows:
            raise InvalidArgument("row.name", expected="a name not registered yet", got=row.name)
        self._rows[row.name] = row
        return row

    def names(self) -> tuple[str, ...]:
        """Every row name, in registration order."""
        return tuple(self._rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(tuple(self._rows.values()))

    def __len__(self) -> int:
        return len(self._rows)

    def select(self, globs: Sequence[str] | None) -> tuple[Row, ...]:
        """The rows whose names match any of ``globs`` (all rows when ``globs`` is empty).

        Raises:
            InvalidArgument: a glob matches no row; a typo must not silently run nothing.
        """
        if not globs:
            return tuple(self._rows.values())
        for glob in globs:
            if not fnmatch.filter(self._rows, glob):
                raise InvalidArgument(
                    "--only",
                    expected="a glob matching at least one of " + ", ".join(self._rows),
                    got=glob,
                )
        return tuple(
            row
            for name, row in self._rows.items()
            if any(fnmatch.fnmatchcase(name, glob) for glob in globs)
        )


#: The extra that installs each optional module a row may require (``peers`` otherwise).
_EXTRAS = {"uvloop": "fast", "asyncpg": "postgres"}


def run_rows(
    rows: Iterable[Row],
    sizes: Sizes,
    *,
    on_start: Callable[[Row], None] | None = None,
    on_done: Callable[[Row, Result | Skipped], None] | None = None,
    chosen: Settings = DEFAULT_SETTINGS,
) -> Report:
    """Run ``rows`` one after the other at ``sizes``.

    Args:
        rows: the rows to run, in order.
        sizes: how much work each row does.
        on_start: called before each row (progress display).
        on_done: called after each row with its result or the reason it was skipped.
        chosen: the event loop and GC settings every row runs with.
    """
    results: list[Result] = []
    skipped: list[Skipped] = []
    for row in rows:
        if on_start is not None:
            on_start(row)
        outcome: Result | Skipped
        missing = row.missing_requirements()
        if chosen.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            missing = (*missing, "uvloop")
        reason = None
        if missing:
            extras = sorted({_EXTRAS.get(name, "peers") for name in missing})
            reason = f"{', '.join(missing)} not importable; install the " + " and the ".join(
                f"{extra} extra (pip install 'stateward[{extra}]')" for extra in extras
            )
        elif row.unavailable is not None:
            reason = row.unavailable()
        if reason is not None:
            outcome = Skipped(row.name, reason)
            skipped.append(outcome)
        else:
            with applied(chosen):
                comparison = row.measure(sizes)
            details = {**comparison.details, **chosen.to_json()}
            if comparison.waive_goal is not None:
                details["goal_waived"] = comparison.waive_goal
            outcome = Result(
                name=row.name,
                value=comparison.subject.value,
                unit=row.unit,
                baseline=comparison.baseline.name,
                baseline_value=comparison.baseline.value,
                higher_is_better=row.higher_is_better,
                subject=comparison.subject.name,
                goal=None if comparison.waive_goal is not None else row.goal,
                p50=comparison.subject.p50,
                p99=comparison.subject.p99,
                baseline_p50=comparison.baseline.p50,
                baseline_p99=comparison.baseline.p99,
                rounds=comparison.subject.rounds,
                baseline_rounds=comparison.baseline.rounds,
                details=details,
            )
            results.append(outcome)
        if on_done is not None:
            on_done(row, outcome)
    return Report(
        python=python_description(),
        machine=machine_description(),
        sizes=sizes,
        results=tuple(results),
        skipped=tuple(skipped),
        settings=chosen,
    )

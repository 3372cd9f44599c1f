"""The simulator rows: how fast the chaos simulator runs a fleet on virtual time.

Both rows come from the same simulations: :data:`SIM_HOSTS` hosts and :data:`SIM_INSTANCES`
instances under every fault site (each still switched on or off by the seed, as on the
command line), seed :data:`SIM_SEED` every round, so every round does exactly the same work
(the event logs are identical) and only the wall time varies. A round is one whole
:func:`~stateward.sim.fleet.simulate_fleet` run: opening the fleet, the chaos phase of
``sizes.sim_duration`` simulated seconds, the heal and the liveness check, with every
invariant checked.

- ``sim.speed`` is simulated seconds per wall second. It is a ratio already, so its baseline
  is real time itself (one simulated second per second, value 1.0) and its ratio equals its
  value; the goal is a ratio of at least :data:`SPEED_GOAL`.
- ``sim.events`` is the simulator's events (its event-log entries: client invocations and
  outcomes, faults, incarnations, recoveries) per wall second. Its baseline is
  ``fleet.boot``'s round on the real clock (:func:`~stateward.bench._fleet_rows.fleet_boot_round`:
  boots per second on SQLite, ``Durability.FULL``), measured in the same run with its rounds
  interleaved, so the ratio shows what the deterministic environment costs against the real
  one. The units differ (events against boots): the ratio is a yardstick, not a speed-up.

The simulations of both rows run once per :class:`~stateward.bench._harness.Sizes` and are
shared (:func:`_measure`), so selecting both rows does not run them twice.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stateward.sim.fleet import FleetConfig, FleetScenario, simulate_fleet

from ._fleet_rows import fleet_boot_round
from ._flow_rows import quiet_logs
from ._harness import FULL_SIZES, Comparison, Goal, Round, Row, Side, Sizes, compare, loop_runner

__all__ = (
    "SIM_ROWS",
    "SIM_HOSTS",
    "SIM_INSTANCES",
    "SIM_SEED",
    "SPEED_GOAL",
)

#: The fleet of both rows, as the issue states it.
SIM_HOSTS = 100
SIM_INSTANCES = 1_000
#: The seed of every round (the same work each round).
SIM_SEED = 1
#: ``sim.speed`` must simulate at least this many seconds per wall second.
SPEED_GOAL = 1_000.0
#: The warm-up simulation's chaos phase is at most this long (simulated seconds).
WARMUP_DURATION = 1_800.0
#: Boots of the warm-up round of the baseline.
WARMUP_BOOTS = 100

SUBJECT = f"stateward simulate ({SIM_HOSTS} hosts, {SIM_INSTANCES:,} instances, all faults)"
REAL_TIME = "real time (1 simulated s per s)"
BOOT_BASELINE = "fleet.boot round on the real clock (SqliteStore, FULL, FakeDriver)"


@dataclass(frozen=True, slots=True)
class _Run:
    """One simulation round's figures."""

    speed: float
    events_per_second: float
    events: int
    simulated: float
    wall: float
    incarnations: int
    enabled_faults: tuple[str, ...]
    violations: tuple[str, ...]


def _config(sizes: Sizes, duration: float | None = None) -> FleetConfig:
    return FleetConfig(
        seed=SIM_SEED,
        hosts=SIM_HOSTS,
        instances=SIM_INSTANCES,
        duration=sizes.sim_duration if duration is None else duration,
        faults=frozenset(FleetScenario.sites()),
    )


def _simulate(config: FleetConfig) -> _Run:
    result = simulate_fleet(config)
    wall = result.wall
    return _Run(
        speed=result.simulated / wall,
        events_per_second=result.events / wall,
        events=result.events,
        simulated=result.simulated,
        wall=wall,
        incarnations=result.incarnations,
        enabled_faults=result.enabled_faults,
        violations=tuple(sorted({v.invariant for v in result.violations})),
    )


@functools.lru_cache(maxsize=2)
def _measure(sizes: Sizes) -> tuple[Comparison, Comparison]:
    """Both rows' comparisons, from one series of simulations (``sim.speed``, ``sim.events``)."""
    runs: list[_Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as directory,
        quiet_logs(),
        loop_runner() as runner,
    ):
        numbers = itertools.count()

        def sim_side() -> Round:
            run = _simulate(_config(sizes))
            runs.append(run)
            return Round(run.events_per_second)

        def boot_side(boots: int) -> Round:
            path = Path(directory) / f"fleet-{next(numbers)}.db"
            return runner.run(fleet_boot_round(path, boots=boots)).round

        warmup = ""
        if sizes.warmup_rounds:
            duration = min(sizes.sim_duration, WARMUP_DURATION)
            _simulate(_config(sizes, duration))
            boot_side(min(sizes.sim_boots, WARMUP_BOOTS))
            warmup = (
                f"one simulation of {duration:,.0f} simulated seconds and one round of "
                f"{min(sizes.sim_boots, WARMUP_BOOTS)} boots"
            )
        events_side, boots_side = compare(
            (SUBJECT, sim_side),
            (BOOT_BASELINE, lambda: boot_side(sizes.sim_boots)),
            rounds=sizes.sim_rounds,
            warmup_rounds=0,
            higher_is_better=True,
        )
    best = max(runs, key=lambda run: run.speed)
    speeds = tuple(run.speed for run in runs)
    common: dict[str, object] = {
        "hosts": SIM_HOSTS,
        "instances": SIM_INSTANCES,
        "seed": SIM_SEED,
        "chaos_seconds": sizes.sim_duration,
        "simulated_seconds": best.simulated,
        "faults": "all sites allowed; the seed switches each on or off",
        "enabled_faults": list(best.enabled_faults),
        "events": best.events,
        "incarnations": best.incarnations,
        "wall_seconds": [round(run.wall, 3) for run in runs],
        "invariants": "all held" if not best.violations else list(best.violations),
        "round": "one whole simulate(): open, chaos, heal, liveness check",
        "logging": "silenced",
    }
    if warmup:
        common["warmup"] = warmup
    if sizes.sim_duration != FULL_SIZES.sim_duration:
        common["size_note"] = (
            f"{sizes.name} sizes: {sizes.sim_duration:,.0f} simulated seconds of chaos per "
            f"round (full: {FULL_SIZES.sim_duration:,.0f}, one simulated day)"
        )
    speed = Comparison(
        subject=Side(name=SUBJECT, value=max(speeds), rounds=speeds),
        baseline=Side(name=REAL_TIME, value=1.0, rounds=tuple(1.0 for _ in speeds)),
        details={**common, "goal": f"≥ {SPEED_GOAL:,.0f} simulated s per wall s"},
    )
    events = Comparison(
        subject=events_side,
        baseline=boots_side,
        details={
            **common,
            "baseline_boots": sizes.sim_boots,
            "baseline_unit": "boot/s",
            "baseline_note": "the units differ (events vs boots): the ratio is what the "
            "deterministic environment costs against the real clock, not a speed-up",
        },
    )
    return speed, events


def _measure_speed(sizes: Sizes) -> Comparison:
    return _measure(sizes)[0]


def _measure_events(sizes: Sizes) -> Comparison:
    return _measure(sizes)[1]


#: The simulator rows, in report order.
SIM_ROWS = (
    Row(
        name="sim.speed",
        unit="sim s/s",
        higher_is_better=True,
        measure=_measure_speed,
        summary=f"simulated seconds per wall second, {SIM_HOSTS} hosts and {SIM_INSTANCES:,} "
        "instances under all faults (vs real time)",
        goal=Goal.min_ratio(SPEED_GOAL),
    ),
    Row(
        name="sim.events",
        unit="event/s",
        higher_is_better=True,
        measure=_measure_events,
        summary="simulator events per wall second, same runs (vs fleet.boot's boot/s on the "
        "real clock)",
    ),
)

"""What the process settings buy: the same workload with and without them, in one run.

The ``gc.*`` rows run a workload with the cyclic garbage collector tuned as the README advises
a service (``gc.freeze()`` of what is alive, ``gc.set_threshold(50_000, 20, 20)``) against
Python's defaults; the ``loop.uvloop.*`` rows run it on uvloop (the ``fast`` extra) against
the standard library's loop. The rounds alternate between the two settings, each on a fresh
loop, a fresh SQLite file (WAL, ``Durability.FULL``) and a fresh fleet or store. They are
reference rows, without goals: the figures say what the settings are worth on this machine.

``stateward bench --loop uvloop`` and ``--gc tuned`` run every other row with a setting too.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ._fleet_rows import fleet_boot_round
from ._flow_rows import quiet_logs, stateward_durable_round
from ._harness import Comparison, Round, Row, Settings, Sizes, applied, compare, loop_runner
from ._store_rows import durable_transition_round

__all__ = ("SETTINGS_ROWS",)

_Workload = Callable[[Path, Sizes], Coroutine[Any, Any, Round]]


async def _durable(path: Path, sizes: Sizes) -> Round:
    outcome = await durable_transition_round(
        path, actors=sizes.durable_actors, transitions=sizes.durable_transitions
    )
    return outcome.round


async def _flows(path: Path, sizes: Sizes) -> Round:
    return (await stateward_durable_round(path, flows=sizes.flows)).round


async def _boots(path: Path, sizes: Sizes) -> Round:
    return (await fleet_boot_round(path, boots=sizes.fleet_boots)).round


def _pair(
    workload: _Workload, subject: Settings, baseline: Settings
) -> Callable[[Sizes], Comparison]:
    """A row's measure: ``workload`` under ``subject`` against it under ``baseline``."""

    def measure(sizes: Sizes) -> Comparison:
        with tempfile.TemporaryDirectory(prefix="stateward-bench-") as name, quiet_logs():
            numbers = itertools.count()

            def side(chosen: Settings) -> Callable[[], Round]:
                def run() -> Round:
                    path = Path(name) / f"settings-{next(numbers)}.db"
                    try:
                        with applied(chosen), loop_runner() as runner:
                            return runner.run(workload(path, sizes))
                    finally:
                        for suffix in ("", "-wal", "-shm"):
                            path.with_name(path.name + suffix).unlink(missing_ok=True)

                return run

            subject_side, baseline_side = compare(
                (f"{subject.loop} loop, {subject.gc} GC", side(subject)),
                (f"{baseline.loop} loop, {baseline.gc} GC", side(baseline)),
                rounds=sizes.fleet_rounds,
                warmup_rounds=sizes.warmup_rounds,
                higher_is_better=True,
            )
        return Comparison(
            subject=subject_side,
            baseline=baseline_side,
            details={
                "subject_settings": subject.to_json(),
                "baseline_settings": baseline.to_json(),
            },
        )

    return measure


_DEFAULT = Settings()
#: What each row measures: its name, unit and workload, as named in its summary.
_WORKLOADS: tuple[tuple[str, str, _Workload, str], ...] = (
    ("durable_transition", "transition/s", _durable, "store.durable_transition's workload"),
    ("flow.boot_durable", "flow/s", _flows, "flow.boot_durable's flows"),
    ("fleet.boot", "boot/s", _boots, "fleet.boot's workload"),
)


def _row(prefix: str, workload: tuple[str, str, _Workload, str], subject: Settings) -> Row:
    name, unit, run, what = workload
    gc_row = subject.gc == "tuned"
    return Row(
        name=f"{prefix}.{name}",
        unit=unit,
        higher_is_better=True,
        measure=_pair(run, subject, _DEFAULT),
        summary=f"{what} with the README's GC tuning vs Python's defaults (reference)"
        if gc_row
        else f"{what} on uvloop vs asyncio's loop (reference)",
        requires=() if gc_row else ("uvloop",),
    )


_DURABLE, _FLOWS, _BOOTS = _WORKLOADS

#: The settings rows, in report order.
SETTINGS_ROWS = (
    _row("gc", _DURABLE, Settings(gc="tuned")),
    _row("gc", _BOOTS, Settings(gc="tuned")),
    *(_row("loop.uvloop", workload, Settings(loop="uvloop")) for workload in _WORKLOADS),
)

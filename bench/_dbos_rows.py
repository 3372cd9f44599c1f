"""``peer.dbos.flow``: stateward's durable flow against DBOS Transact, the durable-workflow
library users would pick today.

Both sides run the same workflow: :data:`~stateward.bench._flow_rows.FLOW_STEPS` no-op steps
in a row, each recorded durably before the workflow moves on (for DBOS, ``@DBOS.step``
functions called from a ``@DBOS.workflow``; for stateward, the ``flow.boot_durable`` flow of
idempotent steps). DBOS keeps its system database in SQLite (``sqlite:///``, a fresh file
per round, migrated untimed at launch) and runs its workflows one after the other in the
calling thread, as a sequential caller would: its SQLite writer serialises concurrent
workflows anyway. stateward runs its flows concurrently on a SQLite store (WAL,
``Durability.FULL``), sharing group commits, as a service embedding it would.

DBOS is imported inside the functions, so the row is skipped with a note without it (it is
in the ``peers`` extra). Its logs are silenced like everyone's; it reaches no network.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._flow_rows import FLOW_STEPS, package_version, quiet_logs, stateward_durable_round
from ._harness import Comparison, Goal, Round, Row, Sizes, compare, loop_runner
from ._stateward import STATEWARD

__all__ = ("DBOS_ROWS", "dbos_round")

#: The peer's name in reports.
DBOS_NAME = "DBOS Transact (SQLite system database, sequential)"
#: The goal, against DBOS measured in the same run.
DBOS_GOAL_RATIO = 100.0


@functools.cache
def _workflow() -> Callable[[], None]:
    """The DBOS workflow, registered once per process (DBOS keeps a global registry)."""
    from dbos import DBOS

    def step() -> None:
        return None

    steps = [DBOS.step(name=f"bench.step-{i}")(step) for i in range(FLOW_STEPS)]

    def boot() -> None:
        for run in steps:
            run()

    workflow: Callable[[], None] = DBOS.workflow(name="bench.boot")(boot)
    return workflow


def dbos_round(directory: Path, flows: int) -> Round:
    """Workflows per second of ``flows`` DBOS workflows, one after the other, on a fresh
    SQLite system database in ``directory``; each one's status is checked afterwards."""
    from dbos import DBOS, DBOSConfig

    workflow = _workflow()
    database = directory / "dbos.sqlite"
    config: DBOSConfig = {
        "name": "stateward-bench",
        "system_database_url": f"sqlite:///{database}",
        # DBOS installs a console handler of its own: only errors reach it.
        "log_level": "ERROR",
    }
    DBOS(config=config)
    try:
        DBOS.launch()
        latencies = [0.0] * flows
        clock = time.perf_counter
        start = clock()
        for index in range(flows):
            sent = clock()
            workflow()
            latencies[index] = clock() - sent
        elapsed = clock() - start
        done = DBOS.list_workflows(status="SUCCESS")
        if len(done) != flows:
            raise AssertionError(f"DBOS recorded {len(done)} successful workflows, not {flows}")
    finally:
        DBOS.destroy(destroy_registry=False)
    for leftover in directory.iterdir():
        leftover.unlink()
    return Round(flows / elapsed, latencies)


def _measure(sizes: Sizes) -> Comparison:

    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as name,
        quiet_logs(),
        loop_runner() as runner,
    ):
        directory = Path(name)
        numbers = itertools.count()

        def subject() -> Round:
            path = directory / f"flows-{next(numbers)}.db"
            try:
                return runner.run(stateward_durable_round(path, flows=sizes.flows)).round
            finally:
                for suffix in ("", "-wal", "-shm"):
                    path.with_name(path.name + suffix).unlink(missing_ok=True)

        def baseline() -> Round:
            scratch = directory / f"dbos-{next(numbers)}"
            scratch.mkdir()
            try:
                return dbos_round(scratch, sizes.dbos_flows)
            finally:
                scratch.rmdir()

        subject_side, baseline_side = compare(
            (f"{STATEWARD} FlowEngine (SqliteStore, FULL, concurrent)", subject),
            (DBOS_NAME, baseline),
            rounds=sizes.store_rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=True,
        )
    details: dict[str, Any] = {
        "steps": FLOW_STEPS,
        "stateward_flows": sizes.flows,
        "dbos_flows": sizes.dbos_flows,
        "dbos_version": package_version("dbos"),
        "dbos_database": "SQLite (sqlite:///, SQLAlchemy defaults), fresh per round",
        "stateward_steps": "idempotent (the record committed at submit and at the end)",
        "logging": "silenced on both sides",
    }
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


#: The DBOS row.
DBOS_ROWS = (
    Row(
        name="peer.dbos.flow",
        unit="flow/s",
        higher_is_better=True,
        measure=_measure,
        summary=f"{FLOW_STEPS}-step durable flows on SQLite vs the same workflow on DBOS "
        "Transact (@DBOS.step steps, SQLite system database)",
        goal=Goal.min_ratio(DBOS_GOAL_RATIO),
        requires=("dbos",),
    ),
)

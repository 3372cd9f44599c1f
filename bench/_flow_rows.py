"""The flow rows: stateward's FlowEngine against OpenStack TaskFlow 6.5, its serial engine.

Every row runs the same flow on both sides: :data:`FLOW_STEPS` no-op tasks in a linear
pattern, each with a no-op revert. ``flow.boot_durable`` and ``flow.boot_memory`` run it to
success; ``flow.revert`` makes the last step raise, so that the five completed steps are
reverted (stateward ends the task ``reverted``; TaskFlow's ``run()`` re-raises the failure
after reverting, and the row catches it).

- stateward submits one flow per resource, all of them at once, to one
  :class:`~stateward.flows.FlowEngine`, through a :class:`~stateward.runtime.SqliteStore`
  (WAL, ``Durability.FULL``, a fresh temporary file per round) or a
  :class:`~stateward.runtime.MemoryStore`. The steps are declared ``idempotent`` (no-ops
  are, as the fleet's driver steps are), so the record is committed when the flow is
  submitted and when it ends; ``flow.boot.commits`` counts that against the same flow with
  every step's start committed. A round is timed
  from the first submit until the last task ended; per-flow latency is submit to end.
- TaskFlow runs its flows one after the other (its serial engine runs one flow per engine,
  in the calling thread), in memory or with its SQLAlchemy persistence backend on a
  ``sqlite:///`` file (a fresh one per round, schema upgraded untimed). Each durable flow gets
  its own logbook and flow detail, saved before the engine is loaded, as a task record is
  created at submit on the stateward side. TaskFlow is slow with persistence (a few flows per
  second), so it runs a fixed small number of flows per round.

Correctness is checked after the clock stops: every stateward task ended with the expected
status (each step too) and is stored so, and every TaskFlow engine ended ``SUCCESS`` or
``REVERTED`` with each atom likewise.

Both sides run with their logging silenced (structlog filtered below ``CRITICAL`` and the
standard library's logging disabled): the engine logs every task's end, and what a log line
costs depends on the application's logging set-up, not on the engine.

The rows need the ``taskflow`` module (and, for the durable row, SQLAlchemy and alembic, which
TaskFlow's SQL backend imports); without them they are skipped with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import itertools
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ._harness import FULL_SIZES, Comparison, Goal, Round, Row, Sizes, compare, loop_runner
from ._stateward import STATEWARD

if TYPE_CHECKING:
    from stateward.flows import Flow, TaskRecord
    from stateward.runtime import Store

__all__ = (
    "FLOW_ROWS",
    "FLOW_STEPS",
    "FLOW_NAME",
    "TASKFLOW",
    "FlowOutcome",
    "StepFailed",
    "flow_resource",
    "boot_flow",
    "stateward_flows_round",
    "stateward_memory_round",
    "stateward_durable_round",
    "taskflow_round",
    "quiet_logs",
    "package_version",
)

#: Steps of the benchmark flow.
FLOW_STEPS = 6
#: The benchmark flow's name (a task record's ``kind``).
FLOW_NAME = "bench.boot"
#: The peer's name in reports.
TASKFLOW = "TaskFlow serial engine"
#: Modules TaskFlow needs for its SQL persistence backend.
_TASKFLOW_MODULE = "taskflow"
_SQL_MODULES = ("sqlalchemy", "alembic")

#: The subjects' names.
DURABLE_SUBJECT = f"{STATEWARD} FlowEngine (SqliteStore, FULL)"
MEMORY_SUBJECT = f"{STATEWARD} FlowEngine (MemoryStore)"
#: The baselines' names.
TASKFLOW_DURABLE = f"{TASKFLOW} (SQLite backend)"
TASKFLOW_MEMORY = f"{TASKFLOW} (in memory)"

#: The goals, stated against TaskFlow measured in the same run.
DURABLE_GOAL_RATIO = 1000.0
MEMORY_GOAL_RATIO = 50.0
#: Documents read per page when the stored records are checked (untimed).
_CHECK_PAGE = 1000


class StepFailed(RuntimeError):
    """What the last step of the reverting flow raises, on both sides."""


def flow_resource(index: int) -> str:
    """The resource the ``index``-th flow of a round runs for."""
    return f"vm-{index:06d}"


def _step_name(index: int) -> str:
    return f"step-{index}"


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence structlog and the standard library's logging, then restore both."""
    saved = structlog.get_config()
    previous_disable = logging.root.manager.disable
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous_disable)
        structlog.configure(**saved)


# --- stateward -----------------------------------------------------------------------------


def boot_flow(*, fail: bool = False, idempotent: bool = True) -> Flow:
    """The benchmark flow: :data:`FLOW_STEPS` no-op steps; the last raises when ``fail``.

    The steps are ``idempotent`` (a no-op is), as the fleet's driver steps are: none takes a
    checkpoint of its own. With ``idempotent=False`` each step's start is committed first.
    """
    from stateward.flows import Flow, linear, task

    async def nothing() -> None:
        return None

    async def boom() -> None:
        raise StepFailed("the last step failed on purpose")

    async def undo(result: Any, failure: Any) -> None:
        return None

    steps = [
        task(
            boom if fail and i == FLOW_STEPS - 1 else nothing,
            name=_step_name(i),
            revert=undo,
            idempotent=idempotent,
        )
        for i in range(FLOW_STEPS)
    ]
    return Flow(FLOW_NAME, linear(*steps))


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """One stateward round: the round, and the checkpoints (and rows) the store committed."""

    round: Round
    commits: int
    rows: int = 0


def _check_records(records: Sequence[TaskRecord], *, fail: bool) -> None:
    from stateward.flows import StepStatus, TaskStatus

    status = TaskStatus.REVERTED if fail else TaskStatus.SUCCEEDED
    steps = (
        [StepStatus.REVERTED] * (FLOW_STEPS - 1) + [StepStatus.FAILED]
        if fail
        else [StepStatus.SUCCEEDED] * FLOW_STEPS
    )
    for record in records:
        found = [s.status for s in record.steps]
        if record.status is not status or found != steps:
            raise AssertionError(
                f"task {record.id} ended {record.status} with steps {found}, "
                f"expected {status} with steps {steps}"
            )


async def _stored(store: Store, status: str) -> int:
    """How many task records the store holds with ``status``."""
    from stateward.flows import TASKS

    count = 0
    before: tuple[float, str] | None = None
    while True:
        page = await store.find_documents(TASKS, status=status, before=before, limit=_CHECK_PAGE)
        count += len(page)
        if len(page) < _CHECK_PAGE:
            return count
        before = (page[-1].created, page[-1].key)


async def stateward_flows_round(
    store: Store, *, flows: int, fail: bool, idempotent: bool = True
) -> FlowOutcome:
    """Flows per second of ``flows`` concurrent flows on ``store``, one per resource.

    Client tasks are created before the clock starts; each submits its flow and waits for
    its final record. After the clock stops, every record is checked (as returned and as
    stored).
    """
    from stateward.flows import FlowEngine, TaskStatus

    flow = boot_flow(fail=fail, idempotent=idempotent)
    clock = time.perf_counter
    latencies = [0.0] * flows
    records: list[TaskRecord | None] = [None] * flows
    before = store.statistics()
    async with FlowEngine(store, flows=(flow,)) as engine:

        async def client(index: int) -> None:
            sent = clock()
            handle = await engine.submit(flow, resource_id=flow_resource(index))
            records[index] = await handle.wait()
            latencies[index] = clock() - sent

        tasks = [asyncio.create_task(client(i)) for i in range(flows)]
        start = clock()
        await asyncio.gather(*tasks)
        elapsed = clock() - start
    after = store.statistics()
    ended = [r for r in records if r is not None]
    if len(ended) != flows:
        raise AssertionError(f"{flows - len(ended)} of {flows} flows returned no record")
    _check_records(ended, fail=fail)
    status = TaskStatus.REVERTED if fail else TaskStatus.SUCCEEDED
    stored = await _stored(store, status.value)
    if stored < flows:
        raise AssertionError(f"the store holds {stored} {status} tasks, expected {flows}")
    return FlowOutcome(
        Round(flows / elapsed, latencies),
        after.commits - before.commits,
        after.rows - before.rows,
    )


async def stateward_memory_round(*, flows: int, fail: bool, idempotent: bool = True) -> FlowOutcome:
    """:func:`stateward_flows_round` on a fresh MemoryStore."""
    from stateward.runtime import MemoryStore

    async with MemoryStore() as store:
        return await stateward_flows_round(store, flows=flows, fail=fail, idempotent=idempotent)


async def stateward_durable_round(path: Path, *, flows: int) -> FlowOutcome:
    """:func:`stateward_flows_round` on a fresh SqliteStore file (WAL, FULL), to success."""
    from stateward.runtime import Durability, open_sqlite_store

    async with open_sqlite_store(path, durability=Durability.FULL) as store:
        return await stateward_flows_round(store, flows=flows, fail=False)


# --- TaskFlow ------------------------------------------------------------------------------


@contextlib.contextmanager
def _taskflow_imports() -> Iterator[None]:
    # oslo.utils, which TaskFlow imports, warns about its own deprecated eventlet helpers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _taskflow_flow(*, fail: bool) -> Any:
    with _taskflow_imports():
        from taskflow import task
        from taskflow.patterns import linear_flow

    class Nothing(task.Task):  # type: ignore[misc]  # TaskFlow is untyped
        def execute(self) -> None:
            return None

        def revert(self, *args: Any, **kwargs: Any) -> None:
            return None

    class Boom(Nothing):
        def execute(self) -> None:
            raise StepFailed("the last step failed on purpose")

    flow = linear_flow.Flow(FLOW_NAME)
    for i in range(FLOW_STEPS):
        flow.add((Boom if fail and i == FLOW_STEPS - 1 else Nothing)(_step_name(i)))
    return flow


def _check_taskflow(engine: Any, *, fail: bool) -> None:
    with _taskflow_imports():
        from taskflow import states

    expected = states.REVERTED if fail else states.SUCCESS
    flow_state = engine.storage.get_flow_state()
    atoms = [engine.storage.get_atom_state(_step_name(i)) for i in range(FLOW_STEPS)]
    if flow_state != expected or any(a != expected for a in atoms):
        raise AssertionError(
            f"TaskFlow ended {flow_state} with atoms {atoms}, expected {expected} throughout"
        )


def taskflow_round(flows: int, *, fail: bool, database: Path | None = None) -> Round:
    """Flows per second of TaskFlow's serial engine running ``flows`` flows in turn.

    Args:
        flows: how many flows (one engine each).
        fail: make the last step raise; the engine reverts and re-raises, which is caught.
        database: a SQLite file for TaskFlow's SQL persistence backend; in memory when None.
    """
    with _taskflow_imports():
        from taskflow import engines
        from taskflow.persistence import backends, models

    flow = _taskflow_flow(fail=fail)
    backend: Any = None
    if database is not None:
        backend = backends.fetch({"connection": f"sqlite:///{database}"})
        with contextlib.closing(backend.get_connection()) as connection:
            connection.upgrade()
    clock = time.perf_counter
    latencies = [0.0] * flows
    finished: list[Any] = []
    try:
        start = clock()
        for i in range(flows):
            sent = clock()
            if backend is None:
                engine = engines.load(flow, engine="serial")
            else:
                book = models.LogBook(flow_resource(i))
                detail = models.FlowDetail(FLOW_NAME, uuid=f"{flow_resource(i)}-flow")
                book.add(detail)
                with contextlib.closing(backend.get_connection()) as connection:
                    connection.save_logbook(book)
                engine = engines.load(
                    flow, flow_detail=detail, book=book, backend=backend, engine="serial"
                )
            try:
                engine.run()
            except StepFailed:
                if not fail:
                    raise
            latencies[i] = clock() - sent
            finished.append(engine)
        elapsed = clock() - start
    finally:
        if backend is not None:
            backend.close()
    for engine in finished:
        _check_taskflow(engine, fail=fail)
    return Round(flows / elapsed, latencies)


def package_version(name: str) -> str:
    """The installed version of the distribution ``name``, or ``unknown``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --- rows ----------------------------------------------------------------------------------


def _details(sizes: Sizes, outcomes: Sequence[FlowOutcome]) -> dict[str, object]:
    measured = outcomes[sizes.warmup_rounds :] or outcomes
    details: dict[str, object] = {
        "flows": sizes.flows,
        "steps": FLOW_STEPS,
        "concurrent": True,
        "checkpoints_per_flow": statistics.fmean(o.commits for o in measured) / sizes.flows,
        "taskflow_version": package_version("taskflow"),
        "taskflow_engine": "serial, one flow after the other",
        "logging": "silenced on both sides",
    }
    if sizes.flows != FULL_SIZES.flows:
        details["size_note"] = (
            f"{sizes.name} sizes: {sizes.flows:,} stateward flows per round (the full run "
            f"uses {FULL_SIZES.flows:,})"
        )
    return details


def _measure_memory(sizes: Sizes, *, fail: bool) -> Comparison:
    outcomes: list[FlowOutcome] = []
    with quiet_logs(), loop_runner() as runner:

        def subject() -> Round:
            outcome = runner.run(stateward_memory_round(flows=sizes.flows, fail=fail))
            outcomes.append(outcome)
            return outcome.round

        subject_side, baseline_side = compare(
            (MEMORY_SUBJECT, subject),
            (TASKFLOW_MEMORY, lambda: taskflow_round(sizes.taskflow_flows, fail=fail)),
            rounds=sizes.rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=True,
        )
    details = _details(sizes, outcomes)
    details["taskflow_flows"] = sizes.taskflow_flows
    details["store"] = "MemoryStore"
    if fail:
        details["reverted_steps"] = FLOW_STEPS - 1
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


def _measure_boot_memory(sizes: Sizes) -> Comparison:
    return _measure_memory(sizes, fail=False)


def _measure_revert(sizes: Sizes) -> Comparison:
    return _measure_memory(sizes, fail=True)


def _discard(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _measure_boot_durable(sizes: Sizes) -> Comparison:
    outcomes: list[FlowOutcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="stateward-bench-") as directory,
        quiet_logs(),
        loop_runner() as runner,
    ):
        numbers = itertools.count()

        def fresh(prefix: str) -> Path:
            return Path(directory) / f"{prefix}-{next(numbers)}.db"

        def subject() -> Round:
            path = fresh("flows")
            try:
                outcome = runner.run(stateward_durable_round(path, flows=sizes.flows))
            finally:
                _discard(path)
            outcomes.append(outcome)
            return outcome.round

        def baseline() -> Round:
            path = fresh("taskflow")
            try:
                return taskflow_round(sizes.taskflow_durable_flows, fail=False, database=path)
            finally:
                _discard(path)

        subject_side, baseline_side = compare(
            (DURABLE_SUBJECT, subject),
            (TASKFLOW_DURABLE, baseline),
            rounds=sizes.store_rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=True,
        )
    details = _details(sizes, outcomes)
    details.update(
        {
            "taskflow_flows": sizes.taskflow_durable_flows,
            "durability": "FULL (WAL)",
            "taskflow_backend": "SQLAlchemy sqlite:/// (SQLite defaults: rollback journal, "
            "synchronous=FULL)",
            "temp_dir": tempfile.gettempdir(),
        }
    )
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


#: Flows per side of ``flow.boot.commits``: the count per flow is exact at any size.
COUNT_FLOWS = 100
#: Awaited commits a 6-step flow may take (its goal).
FLOW_COMMITS_GOAL = 3.0


def _measure_commits(sizes: Sizes) -> Comparison:
    """Store commits per flow: idempotent steps against steps that must not run twice."""
    with quiet_logs(), loop_runner() as runner:

        def side(idempotent: bool) -> Round:
            outcome = runner.run(
                stateward_memory_round(flows=COUNT_FLOWS, fail=False, idempotent=idempotent)
            )
            return Round(outcome.commits / COUNT_FLOWS)

        subject, baseline = compare(
            (f"{STATEWARD} FlowEngine, idempotent steps", lambda: side(True)),
            ("the same flow, every step's start committed", lambda: side(False)),
            rounds=1,
            warmup_rounds=0,
            higher_is_better=False,
        )
    return Comparison(
        subject=subject,
        baseline=baseline,
        details={
            "flows": COUNT_FLOWS,
            "steps": FLOW_STEPS,
            "counted": "store commits (each awaited by the engine) per flow, from submit to end",
        },
    )


#: The flow rows, in report order.
FLOW_ROWS = (
    Row(
        name="flow.boot.commits",
        unit="commit/flow",
        higher_is_better=False,
        measure=_measure_commits,
        summary=f"commits per {FLOW_STEPS}-step flow of idempotent steps vs the same flow with "
        "every step checkpointed (a deterministic count)",
        goal=Goal.max_value(FLOW_COMMITS_GOAL),
    ),
    Row(
        name="flow.boot_durable",
        unit="flow/s",
        higher_is_better=True,
        measure=_measure_boot_durable,
        summary=f"{FLOW_STEPS}-step durable flows on SQLite (FULL) vs TaskFlow with its SQLite "
        "backend",
        goal=Goal.min_ratio(DURABLE_GOAL_RATIO),
        requires=(_TASKFLOW_MODULE, *_SQL_MODULES),
    ),
    Row(
        name="flow.boot_memory",
        unit="flow/s",
        higher_is_better=True,
        measure=_measure_boot_memory,
        summary=f"{FLOW_STEPS}-step flows on a MemoryStore vs TaskFlow's in-memory engine",
        goal=Goal.min_ratio(MEMORY_GOAL_RATIO),
        requires=(_TASKFLOW_MODULE,),
    ),
    Row(
        name="flow.revert",
        unit="flow/s",
        higher_is_better=True,
        measure=_measure_revert,
        summary=f"{FLOW_STEPS}-step flows whose last step fails, reverting the other "
        f"{FLOW_STEPS - 1} (reference)",
        requires=(_TASKFLOW_MODULE,),
    ),
)

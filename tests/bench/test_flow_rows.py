"""The flow rows: they run at tiny sizes, check their flows, and skip without TaskFlow."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
import structlog

from stateward.bench import ROWS, TINY_SIZES, run_rows
from stateward.bench._flow_rows import (
    FLOW_STEPS,
    _check_records,
    boot_flow,
    quiet_logs,
    stateward_durable_round,
    stateward_memory_round,
    taskflow_round,
)
from stateward.flows import FlowEngine, TaskRecord, TaskStatus
from stateward.runtime import MemoryStore

CONTRACT_KEYS = {
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "higher_is_better",
}
FLOW_ROW_NAMES = ("flow.boot_durable", "flow.boot_memory", "flow.revert")


def test_flow_rows_run_and_produce_the_contract_keys() -> None:
    """Each flow row runs at tiny sizes and reports the contract keys and its details."""
    report = run_rows(ROWS.select(["flow.boot_*", "flow.revert"]), TINY_SIZES)
    assert report.skipped == ()
    assert tuple(r.name for r in report.results) == FLOW_ROW_NAMES
    for result in report.results:
        document = result.to_json()
        assert set(document) >= CONTRACT_KEYS
        assert result.unit == "flow/s"
        assert result.value > 0
        assert result.baseline_value > 0
        assert result.baseline.startswith("TaskFlow serial engine")
        assert result.p50 is not None
        assert result.baseline_p99 is not None
        assert result.details["steps"] == FLOW_STEPS
        assert result.details["flows"] == TINY_SIZES.flows
        assert "size_note" in result.details
        assert float(str(result.details["checkpoints_per_flow"])) >= 2
    durable, memory, revert = report.results
    # Idempotent steps: committed when submitted and when ended; a revert commits each step.
    assert durable.details["checkpoints_per_flow"] == memory.details["checkpoints_per_flow"] == 2
    assert float(str(revert.details["checkpoints_per_flow"])) > FLOW_STEPS
    assert durable.goal is not None
    assert memory.goal is not None
    assert revert.goal is None
    assert durable.details["taskflow_flows"] == TINY_SIZES.taskflow_durable_flows
    assert revert.details["reverted_steps"] == FLOW_STEPS - 1


def test_rows_are_skipped_with_a_note_without_taskflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without TaskFlow the three rows are skipped, each saying what is missing."""
    monkeypatch.setitem(sys.modules, "taskflow", None)  # makes `import taskflow` fail
    report = run_rows(ROWS.select(["flow.boot_*", "flow.revert"]), TINY_SIZES)
    assert report.results == ()
    assert tuple(s.name for s in report.skipped) == FLOW_ROW_NAMES
    for skipped in report.skipped:
        assert skipped.reason.startswith("taskflow")
        assert "not importable" in skipped.reason


def test_the_commit_row_counts_a_flow_of_idempotent_steps() -> None:
    """flow.boot.commits: two commits per flow of idempotent steps, eight when each step's
    start is committed; the goal (at most three) is met."""
    [result] = run_rows(ROWS.select(["flow.boot.commits"]), TINY_SIZES).results
    assert (result.value, result.baseline_value, result.passed) == (2, 8, True)


@pytest.mark.parametrize("fail", [False, True])
def test_taskflow_round_checks_its_engines(fail: bool) -> None:
    """A TaskFlow round runs its flows to SUCCESS, or reverts them and catches the failure."""
    round_ = taskflow_round(2, fail=fail)
    assert round_.value > 0
    assert len(round_.latencies) == 2


def test_taskflow_round_persists_to_sqlite(tmp_path: Path) -> None:
    """The durable TaskFlow round writes its logbooks to the SQLite file it is given."""
    database = tmp_path / "taskflow.db"
    assert taskflow_round(2, fail=False, database=database).value > 0
    assert database.stat().st_size > 0


@pytest.mark.parametrize("fail", [False, True])
def test_stateward_memory_round_checks_its_records(fail: bool) -> None:
    """A stateward round ends every flow as expected and counts its checkpoints."""
    with quiet_logs():
        outcome = asyncio.run(stateward_memory_round(flows=3, fail=fail))
    assert len(outcome.round.latencies) == 3
    # Submitted and ended; a revert also commits its status and each step's revert.
    assert outcome.commits == 3 * 2 if not fail else outcome.commits > 3 * FLOW_STEPS


def test_stateward_durable_round_commits_to_sqlite(tmp_path: Path) -> None:
    """The durable round commits every checkpoint to the SQLite file: two per flow."""
    with quiet_logs():
        outcome = asyncio.run(stateward_durable_round(tmp_path / "flows.db", flows=2))
    assert outcome.commits == outcome.rows == 2 * 2
    assert (tmp_path / "flows.db").stat().st_size > 0


def test_a_wrong_ending_fails_the_check() -> None:
    """The untimed check refuses a task that ended otherwise than expected."""

    async def ended() -> TaskRecord:
        with quiet_logs():
            async with MemoryStore() as store, FlowEngine(store) as engine:
                return await engine.run(boot_flow(fail=True), resource_id="vm-0")

    record = asyncio.run(ended())
    assert record.status is TaskStatus.REVERTED
    with pytest.raises(AssertionError, match="ended reverted"):
        _check_records([record], fail=False)


def test_quiet_logs_restores_the_configuration() -> None:
    """Silencing logs for a row leaves structlog and logging as they were."""
    before = structlog.get_config()
    with quiet_logs():
        assert logging.root.manager.disable == logging.CRITICAL
    assert structlog.get_config() == before
    assert logging.root.manager.disable == logging.NOTSET

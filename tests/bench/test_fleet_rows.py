"""The fleet rows: they run at tiny sizes, check their fleets and report the contract keys."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from stateward.bench import ROWS, TINY_SIZES, run_rows
from stateward.bench._fleet_rows import (
    FLEET_HOSTS,
    build_fleet_database,
    fleet_boot_round,
    fleet_drain_round,
    fleet_memory_round,
    fleet_move_round,
    instance_id,
)
from stateward.bench._flow_rows import quiet_logs

CONTRACT_KEYS = {
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "higher_is_better",
}


def test_fleet_rows_run_and_produce_the_contract_keys() -> None:
    """The fleet rows run at tiny sizes, with their goals, details and size notes."""
    report = run_rows(ROWS.select(["fleet.boot", "fleet.move", "fleet.d*", "fleet.r*"]), TINY_SIZES)
    assert report.skipped == ()
    assert tuple(r.name for r in report.results) == (
        "fleet.boot",
        "fleet.move",
        "fleet.drain",
        "fleet.resident_memory",
    )
    for result in report.results:
        assert set(result.to_json()) >= CONTRACT_KEYS
        assert result.value > 0
        assert result.baseline_value > 0
    boot, move, drain, memory = report.results
    assert drain.unit == "s"
    assert not drain.higher_is_better
    assert drain.goal is not None
    assert drain.details["concurrency"] == 10
    for result in (boot, memory):
        assert result.goal is not None
        assert "size_note" in result.details
    assert move.unit == "move/s"
    assert move.baseline.startswith("stateward fleet.boot")
    assert move.details["moves"] == max(1, TINY_SIZES.fleet_boots // 4)
    assert float(str(move.details["commits_per_move"])) > 0
    assert boot.unit == "boot/s"
    assert boot.higher_is_better
    assert boot.p50 is not None
    assert boot.p99 is not None
    assert boot.baseline.startswith("stateward FlowEngine")
    assert boot.details["boots"] == TINY_SIZES.fleet_boots
    assert boot.details["hosts"] == FLEET_HOSTS
    assert isinstance(boot.details["absolute_goal_met"], bool)
    assert memory.unit == "B/instance"
    assert not memory.higher_is_better
    assert memory.baseline == "asyncio.Queue actor"
    assert memory.details["instances"] == TINY_SIZES.fleet_instances


def test_the_count_rows_count_every_write_of_a_boot() -> None:
    """A boot writes its transition with its task's first record, the host's claim, three
    progress transitions, the task's end and the spawned transition: seven writes of eight
    rows, against eight writes of eight rows for one flow whose steps commit their starts."""
    report = run_rows(ROWS.select(["fleet.boot.*"]), TINY_SIZES)
    commits, rows = report.results
    assert (commits.name, commits.value, commits.baseline_value) == ("fleet.boot.commits", 7, 8)
    assert (rows.name, rows.value, rows.baseline_value) == ("fleet.boot.rows", 8, 8)
    assert commits.passed is False  # the goal is 4: the closing figures say why
    assert commits.unit == "commit/boot"
    assert not commits.higher_is_better


def test_fleet_boot_round_boots_every_instance(tmp_path: Path) -> None:
    """A boot round counts every boot and its latency, and leaves the hosts' claims."""
    with quiet_logs():
        outcome = asyncio.run(fleet_boot_round(tmp_path / "f.db", boots=12, clients=5))
    assert len(outcome.round.latencies) == 12
    assert all(latency > 0 for latency in outcome.round.latencies)
    assert outcome.commits >= 12
    db = sqlite3.connect(tmp_path / "f.db")
    try:
        states = db.execute("SELECT state FROM resources WHERE kind = 'instance'").fetchall()
    finally:
        db.close()
    assert states == [("active",)] * 12


def _migrations(path: Path) -> list[tuple[str, str]]:
    """Every migration's kind and state in the database at ``path``."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT kind, state FROM resources WHERE kind LIKE 'migration%'"
        ).fetchall()
    finally:
        db.close()


def test_fleet_move_round_moves_every_instance_off_its_first_host(tmp_path: Path) -> None:
    """A move round migrates each instance once and checks where it ended."""
    with quiet_logs():
        outcome = asyncio.run(fleet_move_round(tmp_path / "m.db", moves=6, clients=3))
    assert len(outcome.round.latencies) == 6
    assert all(latency > 0 for latency in outcome.round.latencies)
    assert outcome.commits >= 6
    assert _migrations(tmp_path / "m.db") == [("migration_migrate", "completed")] * 6


def test_fleet_drain_round_times_the_moves_off_one_host(tmp_path: Path) -> None:
    """A drain round empties the host, whichever way it moves the instances."""
    with quiet_logs():
        together = asyncio.run(fleet_drain_round(tmp_path / "d.db", instances=8, concurrency=4))
        in_turn = asyncio.run(fleet_drain_round(tmp_path / "s.db", instances=8, concurrency=0))
    # Eight live migrations of at least four 10 ms driver calls each, one after the other;
    # two waves of four.
    assert in_turn >= 8 * 4 * 0.01
    assert together >= 2 * 4 * 0.01
    for name in ("d.db", "s.db"):
        assert _migrations(tmp_path / name) == [("migration_live_migrate", "completed")] * 8


def test_fleet_database_replicates_booted_instances(tmp_path: Path) -> None:
    """The built database restores as a fleet of active instances with their claims."""
    path = tmp_path / "fleet.db"
    with quiet_logs():
        reference = asyncio.run(build_fleet_database(path, 150))
        outcome = asyncio.run(fleet_memory_round(path, reference, instances=150))
    assert outcome.actors == 150 + FLEET_HOSTS
    assert outcome.round.value > 0
    db = sqlite3.connect(path)
    try:
        (tasks,) = db.execute(
            "SELECT count(*) FROM documents WHERE status = 'succeeded'"
        ).fetchone()
        (last,) = db.execute("SELECT max(id) FROM resources WHERE kind = 'instance'").fetchone()
    finally:
        db.close()
    assert tasks == 150
    assert last == instance_id(149)

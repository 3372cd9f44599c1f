"""The durable store rows: they run at tiny sizes, and the recovery builder writes real rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateward.bench import ROWS, TINY_SIZES, run_rows
from stateward.bench._store_rows import (
    RECOVERY_HISTORY,
    Probe,
    Tally,
    build_recovery_database,
    expected_resource,
    release_databases,
    resource_id,
    tally_actor,
)
from stateward.runtime import Fire, open_actor_system, open_sqlite_store

CONTRACT_KEYS = {
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "higher_is_better",
}
STORE_ROW_NAMES = ("store.durable_transition", "store.recovery", "store.recovery_eager")


def test_store_rows_run_and_produce_the_contract_keys() -> None:
    """Each store row runs at tiny sizes and reports the contract keys and its details."""
    try:
        report = run_rows(ROWS.select(["store.*"]), TINY_SIZES)
    finally:
        release_databases()
    assert tuple(r.name for r in report.results) == STORE_ROW_NAMES
    for result in report.results:
        assert set(result.to_json()) >= CONTRACT_KEYS
        assert result.value > 0
        assert result.baseline_value > 0
    durable, lazy, eager = report.results
    assert durable.p50 is not None
    assert durable.p99 is not None
    assert float(str(durable.details["avg_batch_size"])) >= 1
    assert lazy.p50 is not None
    assert "goal_waived" in eager.details


async def test_recovery_builder_rows_load_through_the_real_store(tmp_path: Path) -> None:
    """The store loads a built resource with the head, snapshot and tail FSMActor writes."""
    path = tmp_path / "recovery.db"
    await build_recovery_database(path, 5)
    async with open_sqlite_store(path) as store:
        loaded = await store.load(resource_id(3))
        listing = await store.resources()
    assert loaded is not None
    state, revision, _ = expected_resource(3)
    assert (loaded.state, loaded.revision, loaded.snapshot_revision) == (state, revision, 1)
    assert [r.sequence for r in loaded.tail] == list(range(2, RECOVERY_HISTORY + 1))
    assert [r.payload for r in loaded.tail] == [{"n": 3 + s} for s in range(2, 4)]
    assert [s.resource_id for s in listing] == [resource_id(i) for i in range(5)]


@pytest.mark.parametrize("eager", [False, True])
async def test_recovery_builder_rows_rebuild_the_actor_state(tmp_path: Path, eager: bool) -> None:
    """A restored actor holds the built state and data, and carries on from its revision."""
    path = tmp_path / "recovery.db"
    await build_recovery_database(path, 4)
    actor = tally_actor()
    state, revision, data = expected_resource(2)
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        assert await system.restore({actor.machine.name: actor}, eager=eager) == 4
        ref = system.lookup(resource_id(2))
        assert await ref.ask(Probe()) == (state, revision, data)
        record = await ref.ask(Fire("restart", payload={"n": 10}))
    assert (record.source, record.sequence) == (state, revision + 1)
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        await system.restore({actor.machine.name: actor})
        reply = await system.lookup(resource_id(2)).ask(Probe())
    assert reply == ("pending", revision + 1, Tally(data.count + 1, data.total + 10, "restart"))

"""``stateward inspect`` task views: task records written by the real FlowEngine on SqliteStore."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog

from stateward.bench import main
from stateward.flows import TASKS, Flow, FlowEngine, Retry, TaskRecord, linear, task
from stateward.runtime import SCHEMA_VERSION, open_sqlite_store

SPAWN_ERROR = "no capacity on host-3"


@dataclass(frozen=True)
class Tasks:
    """The ids of the tasks the fixture database holds."""

    succeeded: str
    reverted: str
    parked: str


async def _claim() -> dict[str, int]:
    return {"port": 7}


async def _spawn() -> None:
    raise RuntimeError(SPAWN_ERROR)


async def _undo(result: Any, failure: Any) -> None:
    return None


async def _build(path: Path) -> Tasks:
    """A succeeded boot and a reverted resize on vm-1, a parked migrate on vm-2.

    The migrate is abandoned mid-flow by closing its engine (as a crash would leave it),
    then resumed by an engine that registers version 2 of its flow: it is parked.
    """
    copying = asyncio.Event()

    async def copy() -> None:
        copying.set()
        await asyncio.Event().wait()  # never finishes: the engine is closed meanwhile

    async def copied() -> None:
        return None

    boot = Flow(
        "boot",
        linear(task(_claim, name="claim", revert=_undo), task(_claim, name="plug", revert=_undo)),
    )
    resize = Flow(
        "resize",
        linear(
            task(_claim, name="claim", revert=_undo),
            task(_spawn, name="spawn", retry=Retry(attempts=2, backoff=0.0, jitter=0.0)),
        ),
    )
    migrate_v1 = Flow("migrate", linear(task(_claim, name="prepare"), task(copy, name="copy")))
    migrate_v2 = Flow(
        "migrate", linear(task(_claim, name="prepare"), task(copied, name="copy")), version=2
    )
    with structlog.testing.capture_logs():
        async with open_sqlite_store(path) as store:
            first = FlowEngine(store)
            succeeded = await first.run(boot, resource_id="vm-1", idempotency_key="req-1")
            reverted = await first.run(resize, resource_id="vm-1")
            handle = await first.submit(migrate_v1, resource_id="vm-2")
            await copying.wait()
            await first.aclose()
            second = FlowEngine(store, flows=[migrate_v2])
            assert await second.resume() == ()
            await second.aclose()
    return Tasks(succeeded.id, reverted.id, handle.task_id)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Tasks]:
    """The database and the ids of its three tasks."""
    path = tmp_path / "tasks.db"
    return path, asyncio.run(_build(path))


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _rows(out: str) -> list[list[str]]:
    """The cells of every table row of rich's output."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]


def test_task_shows_fields_steps_and_history(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--task`` prints the record's fields, a steps table and its history."""
    path, ids = built
    assert main(["inspect", str(path), "--task", ids.reverted]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    fields = {r[0]: r[1] for r in rows if len(r) == 2}
    assert fields["id"] == ids.reverted
    assert fields["kind"] == "resize"
    assert fields["flow version"] == "1"
    assert fields["resource"] == "vm-1"
    assert fields["status"] == "reverted"
    assert fields["idempotency key"] == "-"
    assert fields["error"] == f"RuntimeError: spawn: {SPAWN_ERROR}"
    assert fields["created (UTC)"].endswith("+00:00")
    steps = [r for r in rows if len(r) == 8]
    assert [(r[0], r[1], r[2], r[3]) for r in steps] == [
        ("1", "claim", "reverted", "1"),
        ("2", "spawn", "failed", "2"),
    ]
    assert steps[1][6] == f"RuntimeError: {SPAWN_ERROR}"
    assert steps[1][7] == "0.000s"
    assert steps[0][6] == "-"
    history = [r for r in rows if len(r) == 4]
    assert [r[1] for r in history] == ["pending", "running", "retry", "reverting", "reverted"]
    assert history[2][2] == "spawn"
    assert f"attempt 1 failed (RuntimeError: {SPAWN_ERROR})" in history[2][3]


def test_task_json_is_the_whole_record(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--task --json`` holds the record as the engine stored it, plus ISO times."""
    path, ids = built
    document = _json(capsys, str(path), "--task", ids.succeeded)
    assert document["schema_version"] == SCHEMA_VERSION
    found = document["task"]
    with sqlite3.connect(path) as con:
        (body,) = con.execute(
            "SELECT body FROM documents WHERE collection = ? AND key = ?", (TASKS, ids.succeeded)
        ).fetchone()
    con.close()
    stored = msgspec.msgpack.decode(body, type=TaskRecord)
    assert found["id"] == stored.id
    assert found["status"] == "succeeded"
    assert found["idempotency_key"] == "req-1"
    assert found["error"] is None
    assert found["version"] == stored.version
    assert [s["name"] for s in found["steps"]] == ["claim", "plug"]
    assert [s["result"] for s in found["steps"]] == [{"port": 7}, {"port": 7}]
    assert all(s["finished_iso"].endswith("+00:00") for s in found["steps"])
    assert [e["event"] for e in found["history"]] == ["pending", "running", "succeeded"]
    assert found["created_iso"].endswith("+00:00")


def test_resource_tasks_newest_first(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--resource ID --tasks`` lists the resource's tasks newest first, with errors."""
    path, ids = built
    assert main(["inspect", str(path), "--resource", "vm-1", "--tasks"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (ids.reverted, "resize", "reverted"),
        (ids.succeeded, "boot", "succeeded"),
    ]
    assert rows[0][5] == f"RuntimeError: spawn: {SPAWN_ERROR}"
    assert rows[1][5] == "-"
    document = _json(capsys, str(path), "--resource", "vm-1", "--tasks")
    assert document["total"] == 2
    assert document["truncated"] is False
    assert [(t["id"], t["kind"], t["status"]) for t in document["tasks"]] == [
        (ids.reverted, "resize", "reverted"),
        (ids.succeeded, "boot", "succeeded"),
    ]
    assert document["tasks"][0]["created"] >= document["tasks"][1]["created"]


def test_resource_tasks_limit_says_when_more_exist(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limit`` keeps the newest tasks and says how many there are."""
    path, ids = built
    assert main(["inspect", str(path), "--resource", "vm-1", "--tasks", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert [r[0] for r in _rows(out)] == [ids.reverted]
    assert "showing the newest 1 of 2 tasks; raise --limit for more" in out


def test_parked_lists_parked_tasks(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--parked`` lists the task parked by a flow version change, and why."""
    path, ids = built
    assert main(["inspect", str(path), "--parked"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert [r[:4] for r in rows[:1]] == [[ids.parked, "migrate", "vm-2", "1"]]
    why = " ".join(" ".join(r[-1] for r in rows).split())  # the folded "parked because" cell
    assert why == "flow 'migrate' v1 is v2 here; not run against a definition it was not made with"
    document = _json(capsys, str(path), "--parked")
    assert document["total"] == 1
    (parked,) = document["tasks"]
    assert (parked["id"], parked["status"], parked["flow_version"]) == (ids.parked, "parked", 1)
    assert parked["error"].startswith("flow 'migrate' v1 is v2 here; not run against")
    record = _json(capsys, str(path), "--task", ids.parked)["task"]
    assert [s["status"] for s in record["steps"]] == ["succeeded", "running"]
    assert record["history"][-1]["event"] == "parked"


def test_unknown_task_exits_1(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown task id exits 1 and says how to find task ids."""
    path, _ = built
    assert main(["inspect", str(path), "--task", "task-nope"]) == 1
    err = capsys.readouterr().err
    assert f"stateward inspect: error: {path}: has no task 'task-nope'; `stateward inspect" in err
    assert "--resource ID --tasks` lists a resource's tasks" in err


def test_unknown_resource_tasks_exits_1(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tasks`` of a resource with neither tasks nor a head exits 1."""
    path, _ = built
    assert main(["inspect", str(path), "--resource", "vm-9", "--tasks"]) == 1
    assert "has no resource 'vm-9' and no task for it" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tasks"], "--tasks lists one resource's tasks: add --resource ID"),
        (["--task", "t", "--kind", "boot"], "--kind filters the resource list"),
        (["--parked", "--kind", "boot"], "--kind filters the resource list"),
        (["--task", "t", "--parked"], "not allowed with argument"),
        (["--task", "t", "--resource", "vm-1"], "not allowed with argument"),
    ],
)
def test_bad_task_options_are_usage_errors(
    built: tuple[Path, Tasks],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """Task options that make no sense together exit 2 with the usage line."""
    path, _ = built
    assert main(["inspect", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: stateward inspect")
    assert message in err


def test_reads_tasks_beside_an_open_write_transaction(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer's uncommitted task change is invisible and does not block inspect."""
    path, ids = built
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "UPDATE documents SET status = 'parked' WHERE collection = ? AND key = ?",
            (TASKS, ids.succeeded),
        )
        assert [t["id"] for t in _json(capsys, str(path), "--parked")["tasks"]] == [ids.parked]
        writer.execute("COMMIT")
    finally:
        writer.close()
    listed = _json(capsys, str(path), "--parked")["tasks"]
    assert {t["id"] for t in listed} == {ids.parked, ids.succeeded}


def test_never_writes_to_the_file(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """The task views leave the database file byte for byte as it was."""
    path, ids = built
    before = path.read_bytes()
    assert main(["inspect", str(path), "--task", ids.reverted]) == 0
    assert main(["inspect", str(path), "--resource", "vm-1", "--tasks", "--json"]) == 0
    assert main(["inspect", str(path), "--parked"]) == 0
    capsys.readouterr()
    assert path.read_bytes() == before


def test_undecodable_task_is_shown_not_fatal_in_lists(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """A task body that is not a msgpack TaskRecord shows as such in a list; ``--task`` on
    it exits 1. Bodies are decoded with msgspec, never unpickled."""
    path, ids = built
    with sqlite3.connect(path) as con:
        con.execute(
            "UPDATE documents SET body = ? WHERE collection = ? AND key = ?",
            (b"\x80\x04K\x01.", TASKS, ids.succeeded),  # a pickle of 1
        )
    con.close()
    document = _json(capsys, str(path), "--resource", "vm-1", "--tasks")
    broken = next(t for t in document["tasks"] if t["id"] == ids.succeeded)
    assert broken["status"] == "succeeded"  # from the indexed column
    assert broken["kind"] is None
    assert broken["decode_error"].startswith("undecodable task record:")
    assert main(["inspect", str(path), "--resource", "vm-1", "--tasks"]) == 0
    assert "<undecodable task record:" in capsys.readouterr().out
    assert main(["inspect", str(path), "--task", ids.succeeded]) == 1
    err = capsys.readouterr().err
    assert f"holds task {ids.succeeded!r} but its record cannot be read" in err


def test_schema_without_documents_says_so(
    built: tuple[Path, Tasks], capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema-1 database (before task records) exits 1 from a task view and says why."""
    path, ids = built
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE documents")
        con.execute("DELETE FROM schema_version WHERE version > 1")
    con.close()
    for argv in (["--task", ids.parked], ["--parked"], ["--resource", "vm-1", "--tasks"]):
        assert main(["inspect", str(path), *argv]) == 1
        err = capsys.readouterr().err
        assert (
            f"{path}: has no task records: its schema version 1 predates the documents table" in err
        )
        assert "open it once with this stateward's SqliteStore" in err

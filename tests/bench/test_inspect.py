"""``stateward inspect``: a database written by the real SqliteStore, read through ``main``."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from stateward.bench import main
from stateward.runtime import (
    SCHEMA_VERSION,
    Fire,
    FSMActor,
    Machine,
    ResourceSummary,
    StateKind,
    Transition,
    TransitionRecord,
    open_actor_system,
    open_sqlite_store,
)

DOOR = Machine(
    "door",
    states={"closed": StateKind.STABLE, "open": StateKind.STABLE, "gone": StateKind.TERMINAL},
    initial="closed",
    transitions=[
        Transition("closed", "open", "open"),
        Transition("open", "close", "closed"),
        Transition("closed", "remove", "gone"),
    ],
)
LAMP = Machine(
    "lamp",
    states={"off": StateKind.STABLE, "on": StateKind.STABLE},
    initial="off",
    transitions=[Transition("off", "switch", "on"), Transition("on", "switch", "off")],
)
QUARANTINE_REASON = "journal row 2 cannot be decoded: test"


class Door(FSMActor):
    """A durable door."""

    machine = DOOR
    snapshot_every = 2


class Lamp(FSMActor):
    """A durable lamp."""

    machine = LAMP


async def _build(path: Path) -> None:
    async with (
        open_sqlite_store(path) as store,
        open_actor_system(store=store) as system,
    ):
        doors = [system.spawn(Door, address=f"door-{i}") for i in range(3)]
        lamp = system.spawn(Lamp, address="lamp-1")
        for round_ in range(3):
            for ref in doors:
                await ref.ask(Fire("open", payload={"round": round_}, task_id=f"t-{round_}"))
                await ref.ask(Fire("close", payload=None, cause="draught"))
        await lamp.ask(Fire("switch", payload={"watts": 40, "tags": ["a", "b"]}))
        await doors[2].ask("remove")
        await store.quarantine("door-1", QUARANTINE_REASON)


async def _read(path: Path, resource_id: str) -> tuple[list[ResourceSummary], list[Any]]:
    async with open_sqlite_store(path) as store:
        return list(await store.resources()), list(await store.history(resource_id))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with three doors (one quarantined, one removed) and a lamp."""
    path = tmp_path / "state.db"
    asyncio.run(_build(path))
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lists_resources_as_a_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default view is a table with each resource's id, kind, state, revision and time."""
    assert main(["inspect", str(db)]) == 0
    out = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    assert set(lines) == {"door-0", "door-1", "door-2", "lamp-1"}
    assert "│ door │ closed │        6 │" in lines["door-0"]
    assert "│ door │ gone   │        7 │" in lines["door-2"]
    assert "│ lamp │ on     │        1 │" in lines["lamp-1"]
    assert QUARANTINE_REASON in lines["door-1"]
    assert "+00:00" in lines["door-0"]  # an ISO time, in UTC


def test_json_list_matches_the_store(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--json`` lists exactly what SqliteStore.resources() returns."""
    document = _json(capsys, str(db))
    summaries, _ = asyncio.run(_read(db, "door-0"))
    assert document["truncated"] is False
    assert document["schema_version"] == SCHEMA_VERSION
    assert [
        ResourceSummary(
            r["id"], r["kind"], r["state"], r["revision"], r["updated"], r["quarantined"]
        )
        for r in document["resources"]
    ] == summaries
    assert document["resources"][1]["quarantined"] == QUARANTINE_REASON


def test_kind_filters_the_list(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--kind`` keeps only the resources of that kind."""
    assert [r["id"] for r in _json(capsys, str(db), "--kind", "lamp")["resources"]] == ["lamp-1"]
    assert _json(capsys, str(db), "--kind", "nothing")["resources"] == []


def test_limit_says_when_more_exist(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--limit`` cuts the list by id and says so, in the table and in the JSON."""
    assert main(["inspect", str(db), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "door-1" in out
    assert "door-2" not in out
    assert "showing the first 2 resources; more exist" in out
    document = _json(capsys, str(db), "--limit", "2")
    assert [r["id"] for r in document["resources"]] == ["door-0", "door-1"]
    assert document["truncated"] is True
    assert _json(capsys, str(db), "--limit", "4")["truncated"] is False


def test_history_table_is_in_order(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--resource`` shows the transitions oldest first with task, cause and payload."""
    assert main(["inspect", str(db), "--resource", "door-2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [int(row.split("│")[1]) for row in rows] == list(range(1, 8))
    assert "closed → open" in rows[0]
    assert "│ open " in rows[0]
    assert "t-0" in rows[0]
    assert '{"round":0}' in rows[0]
    assert "draught" in rows[1]
    assert "closed → gone" in rows[6]
    assert "door-2 (door): gone at revision 7" in out


def test_history_json_matches_the_store(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--resource --json`` gives the same records as SqliteStore.history()."""
    document = _json(capsys, str(db), "--resource", "door-0")
    _, history = asyncio.run(_read(db, "door-0"))
    assert document["resource"]["revision"] == 6
    assert document["total"] == 6
    assert document["truncated"] is False
    assert [
        TransitionRecord(
            "door-0",
            h["sequence"],
            h["source"],
            h["event"],
            h["target"],
            h["task_id"],
            h["cause"],
            h["at"],
            h["payload"],
        )
        for h in document["history"]
    ] == history


def test_history_limit_keeps_the_latest(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``--limit N`` the history shows the last N transitions, still oldest first."""
    document = _json(capsys, str(db), "--resource", "door-0", "--limit", "2")
    assert [h["sequence"] for h in document["history"]] == [5, 6]
    assert document["truncated"] is True
    assert main(["inspect", str(db), "--resource", "door-0", "--limit", "2"]) == 0
    assert "showing the last 2 of 6 transitions" in capsys.readouterr().out


def test_quarantined_resource_history_says_why(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The history of a quarantined resource starts with the reason."""
    assert main(["inspect", str(db), "--resource", "door-1"]) == 0
    assert f"quarantined: {QUARANTINE_REASON}" in capsys.readouterr().out


def test_undecodable_payload_is_shown_not_fatal(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A payload that is not msgpack is reported in its row; the other rows still show."""
    with sqlite3.connect(db) as con:
        con.execute(
            "UPDATE journal SET payload = x'c1' WHERE resource_id = 'lamp-1' AND sequence = 1"
        )
    con.close()
    assert main(["inspect", str(db), "--resource", "lamp-1"]) == 0
    assert "<undecodable msgpack" in capsys.readouterr().out
    entry = _json(capsys, str(db), "--resource", "lamp-1")["history"][0]
    assert entry["payload"] is None
    assert entry["payload_error"].startswith("undecodable msgpack")


def test_names_are_not_rich_markup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ids that look like rich markup are printed as they are."""
    path = tmp_path / "markup.db"

    async def build() -> None:
        async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
            await system.spawn(Lamp, address="[bold]x[/bold]").ask("switch")

    asyncio.run(build())
    assert main(["inspect", str(path)]) == 0
    assert "[bold]x[/bold]" in capsys.readouterr().out


def test_reads_beside_an_open_write_transaction(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A writer's open transaction neither blocks inspect nor shows in it, and inspect
    takes no lock that would stop the writer from committing."""
    writer = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO resources (id, kind, state, revision, updated) "
            "VALUES ('lamp-2', 'lamp', 'on', 1, 5.0)"
        )
        writer.execute(
            "INSERT INTO journal (resource_id, sequence, source, event, target, at) "
            "VALUES ('lamp-2', 1, 'off', 'switch', 'on', 5.0)"
        )
        writer.execute("UPDATE resources SET state = 'off' WHERE id = 'lamp-1'")
        listed = _json(capsys, str(db))["resources"]
        assert [r["id"] for r in listed] == ["door-0", "door-1", "door-2", "lamp-1"]
        assert listed[3]["state"] == "on"
        assert main(["inspect", str(db), "--resource", "lamp-2"]) == 1
        assert "has no resource 'lamp-2'" in capsys.readouterr().err
        writer.execute("COMMIT")
    finally:
        writer.close()
    # timeout=0: a lock left behind by inspect would fail this at once.
    other = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    listed = _json(capsys, str(db))["resources"]
    assert [r["id"] for r in listed][-1] == "lamp-2"
    assert listed[3]["state"] == "off"


def test_never_writes_to_the_file(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inspecting leaves the database file byte for byte as it was."""
    before = db.read_bytes()
    assert main(["inspect", str(db)]) == 0
    assert main(["inspect", str(db), "--resource", "door-0", "--json"]) == 0
    capsys.readouterr()
    assert db.read_bytes() == before


def test_missing_database_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that does not exist exits 2 with the usage line and says what is expected."""
    missing = tmp_path / "nope.db"
    assert main(["inspect", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: stateward inspect")
    assert f"{missing}: no such file; give the path of a database a stateward SqliteStore" in err
    assert not missing.exists()


def test_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory exits 2 and says so."""
    assert main(["inspect", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err


def test_not_a_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not SQLite at all exits 1 and says so."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a database\n" * 10)
    assert main(["inspect", str(path)]) == 1
    assert f"{path}: is not a SQLite database" in capsys.readouterr().err


def test_not_a_stateward_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SQLite file without stateward's schema exits 1 and says so."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE things (x)")
    con.close()
    assert main(["inspect", str(path)]) == 1
    assert "is a SQLite database but not a stateward one" in capsys.readouterr().err


def test_newer_schema_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database from a newer stateward exits 1 with the SchemaError message."""
    newer = tmp_path / "newer.db"
    shutil.copy(db, newer)
    with sqlite3.connect(newer) as con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    con.close()
    assert main(["inspect", str(newer)]) == 1
    assert (
        f"stateward inspect: error: database {newer} has schema version {SCHEMA_VERSION + 1}, "
        f"but this stateward supports up to {SCHEMA_VERSION}; it was written by a newer "
        "stateward: upgrade to open it"
    ) in capsys.readouterr().err


def test_unknown_resource(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--resource`` with an id that is not stored exits 1 and says how to list them."""
    assert main(["inspect", str(db), "--resource", "door-9"]) == 1
    err = capsys.readouterr().err
    assert f"{db}: has no resource 'door-9'; `stateward inspect {db}` lists the" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--limit", "0"], "--limit: expected an integer from 1 to 1,000,000, got 0"),
        (["--resource", "door-0", "--kind", "door"], "--kind filters the resource list"),
    ],
)
def test_bad_options_are_usage_errors(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Options that make no sense exit 2 with the usage line."""
    assert main(["inspect", str(db), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: stateward inspect")
    assert message in err


def test_payloads_are_msgpack_not_pickle(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stored payload is the msgpack of plain data, and inspect shows it as that data."""
    with sqlite3.connect(db) as con:
        (raw,) = con.execute(
            "SELECT payload FROM journal WHERE resource_id = 'lamp-1' AND sequence = 1"
        ).fetchone()
    con.close()
    assert msgspec.msgpack.decode(raw) == {"watts": 40, "tags": ["a", "b"]}
    entry = _json(capsys, str(db), "--resource", "lamp-1")["history"][0]
    assert entry["payload"] == {"watts": 40, "tags": ["a", "b"]}


def test_unfinished_schema_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file whose schema creation was cut short exits 1 and says how to complete it."""
    path = tmp_path / "half.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    con.close()
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: has no stateward schema yet: its creation never finished; open it" in err

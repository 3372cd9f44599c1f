"""Tests of the read-only store reader: what it reads, that it never writes, how it fails."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stateward.runtime import (
    SCHEMA_VERSION,
    Document,
    InvalidArgument,
    ReadFailure,
    SchemaError,
    StoreUnavailable,
    TransitionRecord,
    Write,
    open_sqlite_store,
    open_store_reader,
)

BIG = 4 * 1024 * 1024


def record(resource_id: str, sequence: int, payload: object = None) -> TransitionRecord:
    """A transition of ``resource_id`` to revision ``sequence``."""
    return TransitionRecord(
        resource_id, sequence, "off", "flip", "on", None, None, float(sequence), payload
    )


def task(key: str, resource_id: str, status: str, created: float) -> Document:
    """A document of collection ``task``."""
    return Document("task", key, 1, b"\x80", resource_id, status, None, created, created)


async def build(path: Path) -> None:
    """A database of two lamps (lamp-1 with three transitions) and three task documents."""
    async with open_sqlite_store(path) as store:
        for sequence in (1, 2, 3):
            await store.commit(Write("lamp", record("lamp-1", sequence, {"n": sequence})))
        await store.commit(
            Write(
                "lamp",
                record("lamp-2", 1),
                documents=(
                    task("t-1", "lamp-1", "succeeded", 1.0),
                    task("t-2", "lamp-1", "parked", 2.0),
                    task("t-3", "lamp-2", "parked", 3.0),
                ),
            )
        )


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    """A database built by :func:`build`."""
    path = tmp_path / "lamps.db"
    await build(path)
    return path


def digest(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reason_of(path: Path) -> str:
    """The reason the reader refuses ``path``."""
    with pytest.raises(StoreUnavailable) as info:
        open_store_reader(path).close()
    return info.value.reason


def test_reads_heads_journal_and_documents(db: Path) -> None:
    """The reader returns the heads by id, a journal newest first, documents newest first."""
    with open_store_reader(db) as reader:
        assert reader.schema_version == SCHEMA_VERSION
        heads = reader.heads()
        assert [(h.id, h.kind, h.state, h.revision) for h in heads] == [
            ("lamp-1", "lamp", "on", 3),
            ("lamp-2", "lamp", "on", 1),
        ]
        assert reader.heads(kind="door") == ()
        assert [h.id for h in reader.heads(limit=1)] == ["lamp-1"]
        assert reader.head("lamp-9") is None
        journal = reader.journal("lamp-1", limit=2)
        assert [e.sequence for e in journal] == [3, 2]
        assert journal[0].payload.data == b"\x81\xa1n\x03"
        assert reader.journal_count("lamp-1") == 3
        parked = list(reader.documents("task", status="parked"))
        assert [d.key for d in parked] == ["t-3", "t-2"]
        assert reader.document_count("task", resource_id="lamp-1") == 2
        found = reader.document("task", "t-1")
        assert found is not None
        assert (found.resource_id, found.status, found.body.data) == (
            "lamp-1",
            "succeeded",
            b"\x80",
        )
        counts = reader.counts()
        assert (counts.resources, counts.journal, counts.documents) == (2, 4, 3)


def test_never_writes_to_the_file(db: Path) -> None:
    """Reading leaves the database file byte for byte as it was."""
    before = digest(db)
    with open_store_reader(db) as reader:
        reader.heads()
        list(reader.documents("task"))
    assert digest(db) == before


def test_missing_file_is_not_created(tmp_path: Path) -> None:
    """A path that does not exist is refused as missing, and nothing is created there."""
    missing = tmp_path / "nope.db"
    assert reason_of(missing) == ReadFailure.MISSING
    assert list(tmp_path.iterdir()) == []


def test_reads_a_read_only_file_in_a_read_only_folder(db: Path, tmp_path: Path) -> None:
    """A process that cannot write the file or its folder still reads it, and writes nothing."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "lamps.db"
    shutil.copy(db, path)
    path.chmod(0o444)
    folder.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv is missing: cannot drop write access")
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    code = (
        "import sys; from stateward.runtime import open_store_reader\n"
        "with open_store_reader(sys.argv[1]) as r: print([h.id for h in r.heads()])"
    )
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=50,
            check=False,
        )
    finally:
        folder.chmod(0o755)
    assert (done.returncode, done.stdout, done.stderr) == (0, "['lamp-1', 'lamp-2']\n", "")
    assert sorted(p.name for p in folder.iterdir()) == ["lamps.db"]
    assert digest(path) == digest(db)


def test_newer_schema_is_a_schema_error(db: Path) -> None:
    """A database from a newer stateward raises SchemaError with both versions."""
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaError) as info:
        open_store_reader(db)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("CREATE TABLE things (x)", ReadFailure.NOT_STATEWARD),
        ("CREATE TABLE schema_version (version INTEGER)", ReadFailure.UNFINISHED),
        (
            "CREATE TABLE schema_version (version); INSERT INTO schema_version VALUES ('abc')",
            ReadFailure.BAD_VERSION,
        ),
        (
            "CREATE TABLE schema_version (version); INSERT INTO schema_version VALUES (1)",
            ReadFailure.MISSING_TABLES,
        ),
    ],
)
def test_foreign_databases_are_refused(tmp_path: Path, setup: str, reason: ReadFailure) -> None:
    """A SQLite file that is not a whole stateward database is refused with its reason."""
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.executescript(setup)
    assert reason_of(path) == reason


def test_missing_tables_and_bad_versions_are_named(tmp_path: Path) -> None:
    """The detail names the missing tables, or what schema_version holds."""
    path = tmp_path / "half.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.executescript(
            "CREATE TABLE schema_version (version); INSERT INTO schema_version VALUES (1)"
        )
    with pytest.raises(StoreUnavailable) as info:
        open_store_reader(path)
    assert info.value.detail == "journal, quarantine, resources"
    with contextlib.closing(sqlite3.connect(path)) as con, con:
        con.execute("UPDATE schema_version SET version = 'abc'")
    with pytest.raises(StoreUnavailable) as info:
        open_store_reader(path)
    assert info.value.detail == "text 'abc'"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello, this is not a database\n" * 100, ReadFailure.NOT_SQLITE),
        (None, ReadFailure.DIRECTORY),
    ],
)
def test_files_that_are_no_database(tmp_path: Path, content: bytes | None, reason: str) -> None:
    """Text is not SQLite; a folder is no database file."""
    path = tmp_path / "x"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    assert reason_of(path) == reason


async def test_a_reader_sees_one_snapshot(db: Path) -> None:
    """Commits made after the reader opened are invisible to it, and visible to a new one."""
    reader = open_store_reader(db)
    try:
        assert reader.journal_count("lamp-1") == 3
        async with open_sqlite_store(db, create=False) as store:
            await store.commit(Write("lamp", record("lamp-1", 4)))
            await store.commit(Write("lamp", record("lamp-3", 1)))
            assert reader.journal_count("lamp-1") == 3
            assert [h.id for h in reader.heads()] == ["lamp-1", "lamp-2"]
            with open_store_reader(db) as fresh:
                assert fresh.journal_count("lamp-1") == 4
                assert len(fresh.heads()) == 3
    finally:
        reader.close()


def test_hostile_values_are_read_bounded(db: Path) -> None:
    """Huge texts are cut, bad cells are reported in their row, payloads read up to a bound."""
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute(
            "INSERT INTO resources (id, kind, state, revision, updated)"
            " VALUES (?, CAST(? AS TEXT), ?, ?, ?)",
            ("a" * BIG, b"\xff\xfe", "on", "seven", 1.0),
        )
        con.execute(
            "INSERT INTO resources (id, kind, state, revision, updated) VALUES (?, ?, ?, ?, ?)",
            ("b" * 8, b"\xff\xfe", "on", 1, 1.0),
        )
        con.execute(
            "INSERT INTO journal (resource_id, sequence, source, event, target, at, payload)"
            " VALUES ('lamp-2', 2, 'on', 'flip', 'off', 'later', ?)",
            (b"x" * BIG,),
        )
    with open_store_reader(db, text_bytes=16) as reader:
        first, blob = reader.heads()[:2]
        assert blob.errors == {"kind": "kind is a blob of 2 bytes, expected text"}
        assert first.id == "a" * 16 + f"… [{BIG - 16:,} bytes cut]"
        assert first.cut == {"id": BIG - 16}
        assert first.kind is None
        assert first.revision is None
        assert first.errors == {
            "kind": "kind is not UTF-8: b'\\xff\\xfe'",
            "revision": "revision is text 'seven', expected an integer",
        }
        latest = reader.journal("lamp-2", payload_bytes=100)[0]
        assert isinstance(latest.payload.data, bytes)
        assert (latest.payload.size, len(latest.payload.data)) == (BIG, 100)
        assert not latest.payload.whole
        assert latest.at is None
        assert latest.errors == {"at": "at is text 'later', expected a number"}


def test_closed_reader_and_bad_arguments(db: Path) -> None:
    """A closed reader refuses to read; bad arguments are InvalidArgument, not sqlite errors."""
    reader = open_store_reader(db)
    with pytest.raises(InvalidArgument, match="limit"):
        reader.heads(limit=0)
    with pytest.raises(InvalidArgument, match="resource_id"):
        reader.head(7)  # type: ignore[arg-type]
    reader.close()
    with pytest.raises(StoreUnavailable, match="the reader is closed"):
        reader.heads()
    with pytest.raises(InvalidArgument, match="path"):
        open_store_reader(":memory:")

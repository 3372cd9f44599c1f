"""Opening a SQLite store: what it accepts as a path, which files it claims, what it refuses.

Opening writes nothing until the file is known to be a stateward database (or a new one the
caller asked for): another application's database, a file that is not a database at all, a
read-only file and a bad path are refused with a typed error that says what to do, and the
file is left byte for byte as it was. New files are created ``0600``; several processes may
create the same new database at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.runtime import (
    SCHEMA_VERSION,
    InvalidArgument,
    SchemaError,
    SqliteStore,
    StatewardError,
    StoreUnavailable,
    TransitionRecord,
    Write,
    open_sqlite_store,
)

CHILD = Path(__file__).with_name("sqlite_open_child.py")
#: Processes that open one new database at the same instant.
OPENERS = 16
#: A child that has not answered after this long is stuck.
WATCHDOG = 30.0
#: stateward's own tables, as the schema's migrations create them.
STATEWARD_TABLES = {"schema_version", "resources", "journal", "quarantine", "documents"}


def write(resource_id: str, sequence: int) -> Write:
    """A Write of ``resource_id`` at revision ``sequence``."""
    record = TransitionRecord(resource_id, sequence, "open", "deposit", "open", None, None, 1.0)
    return Write("account", record, b"\x80" if sequence == 1 else None)


def digest(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_rows(path: Path, sql: str) -> list[Any]:
    """Rows of ``sql`` read with a separate, read-only sqlite3 connection."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        return db.execute(sql).fetchall()


def mode_of(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def foreign_database(path: Path) -> None:
    """Another application's database: its own tables, the default rollback journal."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada'), ('grace')")


def add_schema_version(path: Path, version: int) -> None:
    """Give the database at ``path`` a schema_version table (stateward's shape) at ``version``."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (?)", (version,))


async def open_fails(path: Path, error: type[Exception], match: str, **options: Any) -> None:
    """Opening ``path`` with ``options`` raises ``error`` matching ``match``."""
    with pytest.raises(error, match=match):
        async with open_sqlite_store(path, **options):
            pass


async def refused(path: Path, error: type[Exception], match: str) -> None:
    """Opening ``path`` raises ``error`` matching ``match`` and leaves the file as it was."""
    before = digest(path)
    await open_fails(path, error, match)
    assert digest(path) == before


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block with the process umask set to ``mask``."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def outside_files(directory: Path) -> list[str]:
    """Names of the files in ``directory``, sorted."""
    return sorted(p.name for p in directory.iterdir())


def modes(directory: Path) -> dict[str, int]:
    """The permission bits of each file in ``directory``, by name."""
    return {p.name: mode_of(p) for p in directory.iterdir()}


# --------------------------------------------------------------------------------------------
# Several processes creating one new database


def test_processes_creating_one_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Sixteen processes opening the same new file at the same instant all open it and write."""
    path = tmp_path / "shared.db"
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(path), "wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(OPENERS)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = [child.communicate(timeout=WATCHDOG)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert answers == ["ok\n"] * OPENERS
    assert [c.returncode for c in children] == [0] * OPENERS
    applied = [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert sqlite_rows(path, "SELECT version FROM schema_version ORDER BY version") == applied
    assert sqlite_rows(path, "SELECT count(*) FROM resources") == [(OPENERS,)]


# --------------------------------------------------------------------------------------------
# Files that are not stateward databases


async def test_foreign_database_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """Another application's database raises StoreUnavailable; not one byte of it changes."""
    path = tmp_path / "app.db"
    foreign_database(path)
    before = digest(path)
    with pytest.raises(
        StoreUnavailable,
        match=rf"^store open failed: {re.escape(str(path))} is not a stateward database "
        r"\(it has no schema_version table; its tables: users\); nothing was changed: give "
        r"the path of a stateward database, or a new path to create one$",
    ) as info:
        async with open_sqlite_store(path):
            pass
    assert (info.value.operation, info.value.reason) == (
        "open",
        f"{path} is not a stateward database",
    )
    assert digest(path) == before
    assert sqlite_rows(path, "PRAGMA journal_mode") == [("delete",)]
    assert outside_files(tmp_path) == ["app.db"]


async def test_foreign_schema_version_table_is_not_enough(tmp_path: Path) -> None:
    """A database with a table named schema_version but not stateward's tables is refused."""
    path = tmp_path / "app.db"
    foreign_database(path)
    add_schema_version(path, 1)
    await refused(
        path,
        StoreUnavailable,
        r"is not a stateward database \(its schema_version table says 1, but it lacks "
        r"stateward's tables journal, quarantine, resources\)",
    )


async def test_foreign_database_with_a_high_schema_version_is_foreign(tmp_path: Path) -> None:
    """A foreign schema_version above stateward's is not mistaken for a newer stateward."""
    path = tmp_path / "app.db"
    foreign_database(path)
    add_schema_version(path, SCHEMA_VERSION + 40)
    await refused(path, StoreUnavailable, r"is not a stateward database")


async def test_foreign_wal_database_is_left_unchanged(tmp_path: Path) -> None:
    """A foreign database already in WAL mode is refused; its file and WAL mode stay."""
    path = tmp_path / "app.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE events (at REAL)")
    await refused(path, StoreUnavailable, r"its tables: events\)")
    assert sqlite_rows(path, "SELECT name FROM sqlite_master") == [("events",)]


async def test_not_a_database_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    """A file that is not SQLite says so (not "database error") and is left as it was."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"shopping list: eggs, milk\n" * 200)
    before = digest(path)
    with pytest.raises(
        StoreUnavailable,
        match=r"^store open failed: the file is not an SQLite database \(file is not a "
        r"database\); nothing was changed: give the path of a stateward database, or a new "
        r"path to create one$",
    ) as info:
        async with open_sqlite_store(path):
            pass
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert digest(path) == before
    assert outside_files(tmp_path) == ["notes.txt"]


async def test_newer_schema_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A database from a newer stateward raises SchemaError and keeps its journal mode."""
    path = tmp_path / "newer.db"
    add_schema_version(path, SCHEMA_VERSION + 1)
    await refused(path, SchemaError, r"written by a newer stateward: upgrade to open it$")
    assert sqlite_rows(path, "PRAGMA journal_mode") == [("delete",)]


# --------------------------------------------------------------------------------------------
# create=: new databases only when asked for


async def test_missing_file_is_created_by_default(tmp_path: Path) -> None:
    """With the default create=True a missing file becomes a new database."""
    path = tmp_path / "new.db"
    async with open_sqlite_store(path) as store:
        await store.commit(write("acct-1", 1))
    assert {name for (name,) in sqlite_rows(path, "SELECT name FROM sqlite_master")} >= (
        STATEWARD_TABLES
    )


async def test_missing_file_is_not_created_without_create(tmp_path: Path) -> None:
    """create=False refuses a missing file, says what to do, and creates nothing."""
    path = tmp_path / "missing.db"
    await open_fails(
        path,
        StoreUnavailable,
        rf"^store open failed: {re.escape(str(path))} does not exist; nothing was created: "
        r"check the path, or pass create=True to make a new database$",
        create=False,
    )
    assert outside_files(tmp_path) == []


async def test_empty_file_is_a_new_database_only_with_create(tmp_path: Path) -> None:
    """A 0-byte file is refused with create=False (and stays empty), used with create=True."""
    path = tmp_path / "empty.db"
    path.touch()
    await open_fails(
        path,
        StoreUnavailable,
        rf"^store open failed: {re.escape(str(path))} is empty, not a stateward database; "
        r"nothing was changed: pass create=True to make it a new database$",
        create=False,
    )
    assert path.read_bytes() == b""
    assert outside_files(tmp_path) == ["empty.db"]
    async with open_sqlite_store(path, create=True) as store:
        await store.commit(write("acct-1", 1))
    async with open_sqlite_store(path, create=False) as store:
        assert [r.sequence for r in await store.history("acct-1")] == [1]


async def test_create_must_be_a_bool(tmp_path: Path) -> None:
    """A create= that is not a bool is InvalidArgument."""
    with pytest.raises(InvalidArgument, match=r"^create: expected a bool, got 'yes'$"):
        open_sqlite_store(tmp_path / "x.db", create="yes")  # type: ignore[arg-type]


async def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory given as the path is refused with advice, and left alone."""
    with pytest.raises(
        StoreUnavailable,
        match=rf"^store open failed: {re.escape(str(tmp_path))} is a directory; nothing was "
        r"changed: give the path of a database file$",
    ):
        async with open_sqlite_store(tmp_path):
            pass
    assert outside_files(tmp_path) == []


async def test_missing_folder_is_refused(tmp_path: Path) -> None:
    """A path in a folder that does not exist says so; nothing is created."""
    path = tmp_path / "no" / "such" / "x.db"
    with pytest.raises(
        StoreUnavailable, match=r"^store open failed: cannot create .*x\.db \(\[Errno 2\]"
    ):
        async with open_sqlite_store(path):
            pass
    assert outside_files(tmp_path) == []


# --------------------------------------------------------------------------------------------
# Paths that are not paths

NOT_PATHS = [None, 5, 0.0, b"x", True, ["a.db"], "", ":memory:", "bad\x00name.db", "\ud800.db"]


@pytest.mark.parametrize("value", NOT_PATHS, ids=repr)
async def test_non_paths_are_invalid_and_create_nothing(
    value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path that is not a str or os.PathLike file path is InvalidArgument; no file appears."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument, match=r"^path: expected a file path \(a str or "):
        open_sqlite_store(value)
    with pytest.raises(InvalidArgument, match=r"^path: expected a file path"):
        SqliteStore(value)
    assert outside_files(tmp_path) == []


def test_invalid_path_message_says_what_to_do() -> None:
    """The InvalidArgument for a non-path names what is accepted and what was given."""
    with pytest.raises(InvalidArgument) as info:
        open_sqlite_store(None)  # type: ignore[arg-type]
    assert str(info.value) == (
        "path: expected a file path (a str or os.PathLike of a file name; "
        "use MemoryStore for a store in memory), got None"
    )


def test_path_like_objects_are_paths(tmp_path: Path) -> None:
    """An os.PathLike other than Path is accepted and kept as its str."""

    class Where:
        def __fspath__(self) -> str:
            return str(tmp_path / "like.db")

    assert open_sqlite_store(Where()).path == str(tmp_path / "like.db")


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.binary(max_size=8),
        st.lists(st.text(max_size=3), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
        st.sampled_from(["", ":memory:", "x\x00y", "\udfff"]),
    )
)
def test_property_non_paths_raise_invalid_argument(value: Any) -> None:
    """Any non-path value passed as path raises InvalidArgument and creates nothing."""
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        with pytest.raises(InvalidArgument):
            open_sqlite_store(value)
        assert outside_files(Path(folder)) == []


# --------------------------------------------------------------------------------------------
# File permissions


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277], ids=oct)
async def test_new_database_wal_and_shm_are_private(tmp_path: Path, mask: int) -> None:
    """A new database and its -wal and -shm files are 0600, whatever the umask."""
    path = tmp_path / "private.db"
    with umask(mask):
        async with open_sqlite_store(path) as store:
            await store.commit(write("acct-1", 1))
            files = modes(tmp_path)
    assert files == {"private.db": 0o600, "private.db-wal": 0o600, "private.db-shm": 0o600}


async def test_existing_file_keeps_the_permissions_its_owner_gave(tmp_path: Path) -> None:
    """A file the user created beforehand keeps its mode (the -wal and -shm files follow it)."""
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    with umask(0o022):
        async with open_sqlite_store(path) as store:
            await store.commit(write("acct-1", 1))
            files = modes(tmp_path)
    assert files == {"shared.db": 0o640, "shared.db-wal": 0o640, "shared.db-shm": 0o640}


# --------------------------------------------------------------------------------------------
# Read-only databases


def without_write_access() -> list[str]:
    """A command prefix that runs a child unable to write files it lacks permission for.

    Root writes any file whatever its mode: as root the child runs without the capability
    that allows it (``CAP_DAC_OVERRIDE``), through ``setpriv``.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: cannot drop write access")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


async def one_write(path: Path) -> None:
    """Create the database at ``path`` with one committed write."""
    async with open_sqlite_store(path) as store:
        await store.commit(write("acct-1", 1))


def test_read_only_database_is_refused_at_open(tmp_path: Path) -> None:
    """A database the process cannot write fails at open, saying so, not at the first commit."""
    path = tmp_path / "ro.db"
    asyncio.run(one_write(path))
    path.chmod(0o444)
    before = digest(path)
    answer = subprocess.run(
        [*without_write_access(), sys.executable, str(CHILD), str(path), "now"],
        capture_output=True,
        text=True,
        timeout=WATCHDOG,
        check=True,
    ).stdout
    assert answer == (
        f"error StoreUnavailable: store open failed: {path} is read-only for this process "
        f"([Errno 13] Permission denied: '{path}'); nothing was changed: make the file writable "
        "(stateward writes on every command), or inspect it with `stateward inspect`\n"
    )
    assert digest(path) == before


# --------------------------------------------------------------------------------------------
# Open failures: advice and cause


async def test_open_errors_never_promise_a_retry(tmp_path: Path) -> None:
    """No open failure says the store retries on the next command: nothing retries it."""
    foreign = tmp_path / "app.db"
    foreign_database(foreign)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00garbage" * 1000)
    for path, create in ((foreign, True), (garbage, True), (tmp_path / "none.db", False)):
        with pytest.raises(StatewardError) as info:
            async with open_sqlite_store(path, create=create):
                pass
        assert "retries on the next command" not in str(info.value)

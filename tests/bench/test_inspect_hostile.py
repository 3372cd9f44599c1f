"""``stateward inspect`` on hostile databases: rows the runtime's schema admits but no
stateward wrote (wrong types, invalid UTF-8, deep nesting, huge values), and data the
runtime does write that plain JSON cannot hold (integer keys, control characters).

Each database starts as an empty one made by the real SqliteStore; the hostile rows are
then written with sqlite3 directly, in the runtime's own tables and columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateward.bench import _cli, main
from stateward.flows import TASKS, HistoryEvent, StepRecord, TaskRecord, TaskStatus
from stateward.runtime import (
    Fire,
    FSMActor,
    Machine,
    StateKind,
    Transition,
    open_actor_system,
    open_sqlite_store,
)

#: A lamp: enough to journal a transition with its payload.
LAMP = Machine(
    "lamp",
    states=dict.fromkeys(("off", "on"), StateKind.STABLE),
    initial="off",
    transitions=[Transition(a, "switch", b) for a, b in (("off", "on"), ("on", "off"))],
)
#: A row of 20 MiB: far more than inspect may hold in memory for one row.
BIG = 20 * 1024 * 1024


class Lamp(FSMActor):
    """A durable lamp."""

    machine = LAMP


class BadText(bytes):
    """Bytes to store as TEXT (through ``CAST``), invalid UTF-8 included."""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database with the schema the real SqliteStore creates."""
    path = tmp_path_factory.mktemp("template") / "empty.db"

    async def create() -> None:
        async with open_sqlite_store(path):
            pass

    asyncio.run(create())
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    """A copy of the empty database for one test."""
    path = tmp_path / "hostile.db"
    shutil.copy(template, path)
    return path


def _insert(con: sqlite3.Connection, table: str, **values: object) -> None:
    """Insert one row; a :class:`BadText` value is stored as TEXT holding its raw bytes."""
    marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, BadText) else "?" for v in values.values())
    con.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})",
        [bytes(v) if isinstance(v, BadText) else v for v in values.values()],
    )


def _resource(con: sqlite3.Connection, resource_id: object, **values: object) -> None:
    row: dict[str, object] = {"kind": "lamp", "state": "on", "revision": 1, "updated": 5.0}
    _insert(con, "resources", id=resource_id, **{**row, **values})


def _journal(
    con: sqlite3.Connection, resource_id: object, sequence: object, **values: object
) -> None:
    row: dict[str, object] = {"source": "off", "event": "switch", "target": "on", "at": 5.0}
    _insert(con, "journal", resource_id=resource_id, sequence=sequence, **{**row, **values})


def _task_body(**changes: Any) -> bytes:
    record = TaskRecord(
        id="t-1",
        kind="boot",
        flow_version=1,
        resource_id="vm-1",
        request={},
        idempotency_key=None,
        status=TaskStatus.SUCCEEDED,
        created=1.0,
        updated=2.0,
        steps=[StepRecord(name="claim")],
        history=[HistoryEvent(at=1.0, event="running")],
    )
    return msgspec.msgpack.encode(msgspec.structs.replace(record, **changes))


def _document(con: sqlite3.Connection, key: object, body: object, **values: object) -> None:
    row: dict[str, object] = {
        "collection": TASKS,
        "version": 1,
        "resource_id": "vm-1",
        "status": "succeeded",
        "created": 1.0,
        "updated": 2.0,
    }
    _insert(con, "documents", key=key, body=body, **{**row, **values})


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(path)
    try:
        with con:
            yield con
    finally:
        con.close()


def _cells(out: str) -> str:
    """The text of every column of rich's tables, each cell's wrapped lines joined again."""
    columns: dict[int, list[str]] = {}
    for line in out.splitlines():
        for number, fragment in enumerate(line.split("│")[1:-1]):
            if fragment.strip():
                columns.setdefault(number, []).append(fragment.strip())
    return " | ".join(" ".join(fragments) for _, fragments in sorted(columns.items()))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _str32(text: bytes) -> bytes:
    """The msgpack of a string too long for the shorter forms."""
    return b"\xdb" + struct.pack(">I", len(text)) + text


async def _lamps(path: Path, *calls: tuple[str, Fire]) -> None:
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        for address, fire in calls:
            await system.spawn(Lamp, address=address).ask(fire)


# --- data the runtime writes -----------------------------------------------------------


def test_payload_with_integer_keys_is_rendered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A payload the runtime journals with integer keys shows in the table and in JSON."""
    path = tmp_path / "ports.db"
    asyncio.run(_lamps(path, ("lamp-1", Fire("switch", payload={"ports": {8080: "http"}}))))
    code, out, err = _run(capsys, str(path), "--resource", "lamp-1")
    assert (code, err) == (0, "")
    assert '{"ports":{8080:"http"}}' in out
    entry = _json(capsys, str(path), "--resource", "lamp-1")["history"][0]
    assert entry["payload"] == {"ports": {"8080": "http"}}


def test_control_characters_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Escape sequences in ids, causes and payloads never reach the terminal raw."""
    path = tmp_path / "escapes.db"
    lamp = "lamp-\x1b[2J"
    fire = Fire("switch", payload={"x": "\x1b[31mred\x9b"}, cause="\x9b2J\u202eevil")
    asyncio.run(_lamps(path, (lamp, fire)))
    for argv in ([str(path)], [str(path), "--resource", lamp]):
        code, out, err = _run(capsys, *argv)
        assert (code, err) == (0, "")
        assert "lamp-\\x1b[2J" in out
        assert not {"\x1b", "\x9b", "\u202e"} & set(out)
    code, out, _ = _run(capsys, str(path), "--resource", lamp)
    assert "\\x9b2J\\u202eevil" in out
    for argv in ([str(path)], [str(path), "--resource", lamp]):
        code, out, _ = _run(capsys, *argv, "--json")
        assert code == 0
        assert not {"\x1b", "\x9b", "\u202e"} & set(out)
        document = json.loads(out)
    assert document["resource"]["id"] == lamp
    assert document["history"][0]["cause"] == "\x9b2J\u202eevil"
    assert document["history"][0]["payload"] == {"x": "\x1b[31mred\x9b"}


def test_markup_in_names_is_not_interpreted(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rich markup in an id, kind or state is printed as it is, in titles too."""
    with _writing(db) as con:
        _resource(con, "[/x]", kind="[bold]k", state=":smile:[red]")
        _journal(con, "[/x]", 1, event="[/]", cause="[link=x]y")
    code, out, err = _run(capsys, str(db), "--resource", "[/x]")
    assert (code, err) == (0, "")
    assert "[/x] ([bold]k): :smile:[red] at revision 1" in out
    assert "[/]" in out
    assert "[link=x]y" in out


# --- bad rows are shown as bad, the rest still listed -------------------------------------


def test_invalid_utf8_id_is_one_bad_row(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resource id that is not UTF-8 shows as one undecodable row; the others still list."""
    with _writing(db) as con:
        _resource(con, "lamp-1")
        _resource(con, BadText(b"lamp-\xff"))
        _resource(con, "lamp-3")
    code, out, err = _run(capsys, str(db))
    assert (code, err) == (0, "")
    assert "lamp-1" in out
    assert "lamp-3" in out
    assert "<undecodable: id is not UTF-8: b'lamp-\\xff'>" in out
    listed = _json(capsys, str(db))["resources"]
    assert [r["id"] for r in listed] == ["lamp-1", "lamp-3", None]
    assert listed[2]["errors"] == {"id": "id is not UTF-8: b'lamp-\\xff'"}
    assert listed[2]["state"] == "on"


@pytest.mark.parametrize(
    ("revision", "reason"),
    [
        ("abc", "revision is text 'abc', expected an integer"),
        (1.5, "revision is a real 1.5, expected an integer"),
        (b"\x00\x01\x02", "revision is a blob of 3 bytes, expected an integer"),
    ],
)
def test_non_integer_revision_is_shown_as_bad(
    db: Path, capsys: pytest.CaptureFixture[str], revision: object, reason: str
) -> None:
    """A revision that is not an integer marks its cell undecodable; the rows still list."""
    with _writing(db) as con:
        _resource(con, "lamp-1", revision=revision)
        _resource(con, "lamp-2")
    code, out, err = _run(capsys, str(db))
    assert (code, err) == (0, "")
    assert f"<undecodable: {reason}>" in out
    assert "lamp-2" in out
    listed = _json(capsys, str(db))["resources"]
    assert listed[0]["revision"] is None
    assert listed[0]["errors"] == {"revision": reason}
    assert listed[1]["revision"] == 1
    assert "errors" not in listed[1]
    code, out, err = _run(capsys, str(db), "--resource", "lamp-1")
    assert (code, err) == (0, "")
    assert f"at revision <undecodable: {reason}>" in " ".join(out.split())  # the title wraps


def test_non_integer_sequence_is_shown_as_bad(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A journal row whose sequence or time is not a number is one bad row among good ones."""
    with _writing(db) as con:
        _resource(con, "lamp-1", revision=3)
        _journal(con, "lamp-1", 1)
        _journal(con, "lamp-1", "two")
        _journal(con, "lamp-1", 3, at="noon", task_id=BadText(b"\xc3"))
    code, out, err = _run(capsys, str(db), "--resource", "lamp-1")
    assert (code, err) == (0, "")
    cells = _cells(out)
    assert "<undecodable: sequence is text 'two', expected an integer>" in cells
    assert "<undecodable: at is text 'noon', expected a number>" in cells
    assert "<undecodable: task_id is not UTF-8: b'\\xc3'>" in cells
    history = _json(capsys, str(db), "--resource", "lamp-1")["history"]
    assert [h["sequence"] for h in history] == [1, 3, None]
    assert history[2]["errors"] == {"sequence": "sequence is text 'two', expected an integer"}
    assert history[0]["event"] == "switch"


def test_deeply_nested_payload_renders_to_a_bounded_depth(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A payload nested far deeper than Python recurses shows its first levels and a marker."""
    with _writing(db) as con:
        _resource(con, "deep")
        _journal(con, "deep", 1, payload=b"\x91" * 50_000 + b"\xc0")
        _journal(con, "deep", 2, payload=b"\x81\xa1k" * 20_000 + b"\x01")
    code, out, err = _run(capsys, str(db), "--resource", "deep")
    assert (code, err) == (0, "")
    assert "[[[[[[[[[[" in out
    assert '{"k":{"k":{"k":' in out
    history = _json(capsys, str(db), "--resource", "deep")["history"]
    payload, depth = history[0]["payload"], 0
    while isinstance(payload, list):
        (payload,) = payload
        depth += 1
    assert depth == 32
    assert payload == "<nested deeper than 32 levels>"
    assert "payload_error" not in history[0]


@pytest.mark.parametrize(
    "body",
    [
        BadText(b"\xff\xfe"),
        b"\x91" * 50_000 + b"\xc0",
        b"\xc1",
    ],
)
def test_bad_task_rows_are_shown_as_bad(
    db: Path, capsys: pytest.CaptureFixture[str], body: bytes
) -> None:
    """Task rows with a bad key, time or body are each one bad row; the good task lists."""
    with _writing(db) as con:
        _document(con, "t-good", _task_body(id="t-good"), created=3.0)
        _document(con, BadText(b"t-\xff"), _task_body(), created=2.0)
        _document(con, "t-when", _task_body(id="t-when"), created="yesterday")
        _document(con, "t-body", body, status="parked")
    for argv in (["--resource", "vm-1", "--tasks"], ["--parked"]):
        code, out, err = _run(capsys, str(db), *argv)
        assert (code, err) == (0, "")
        assert "<undecodable" in out
    code, out, _ = _run(capsys, str(db), "--resource", "vm-1", "--tasks")
    cells = _cells(out)
    assert "t-good" in cells
    assert "<undecodable: id is not UTF-8: b't-\\xff'>" in cells
    assert "<undecodable: created is text 'yesterday', expected a number>" in cells
    tasks = _json(capsys, str(db), "--resource", "vm-1", "--tasks")["tasks"]
    assert {t["id"] for t in tasks} == {"t-good", "t-when", "t-body", None}
    good = next(t for t in tasks if t["id"] == "t-good")
    assert good["kind"] == "boot"
    assert "errors" not in good
    broken = next(t for t in tasks if t["id"] == "t-body")
    assert broken["kind"] is None
    assert broken["decode_error"].startswith("undecodable task record:")


def test_task_with_integer_keys_in_results_is_rendered(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step result with integer keys shows in ``--task`` as a table and as JSON."""
    body = _task_body(steps=[StepRecord(name="claim", result={"ports": {8080: "http"}})])
    with _writing(db) as con:
        _document(con, "t-1", body)
    code, _, err = _run(capsys, str(db), "--task", "t-1")
    assert (code, err) == (0, "")
    task = _json(capsys, str(db), "--task", "t-1")["task"]
    assert task["steps"][0]["result"] == {"ports": {"8080": "http"}}


def test_bad_schema_version_is_refused(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A schema version that is not a number exits 1 and says what the table holds."""
    with _writing(db) as con:
        con.execute("INSERT INTO schema_version (version) VALUES ('abc')")
    code, out, err = _run(capsys, str(db))
    assert code == 1
    assert out == ""
    assert "its schema_version table holds text 'abc', not a version number" in err


# --- size ---------------------------------------------------------------------------------


def test_large_rows_are_read_bounded(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows of 20 MiB are shown cut, with how many bytes were cut, and never read whole."""
    with _writing(db) as con:
        _resource(con, "a" * BIG)
        _resource(con, "big", state="s" * BIG)
        payload = b"\x81\xa4blob" + _str32(b"x" * BIG)
        _journal(con, "big", 1, payload=payload, cause="c" * BIG)
    views = (
        [str(db)],
        [str(db), "--json"],
        [str(db), "--resource", "big"],
        [str(db), "--resource", "big", "--json"],
    )
    outputs = []
    tracemalloc.start()
    try:
        for argv in views:
            tracemalloc.reset_peak()
            code = main(["inspect", *argv])
            _, peak = tracemalloc.get_traced_memory()
            captured = capsys.readouterr()
            assert (code, captured.err) == (0, "")
            assert peak < BIG // 8, (argv, peak)
            assert len(captured.out) < 100_000
            outputs.append(captured.out)
    finally:
        tracemalloc.stop()
    table, listed, history, entry = outputs
    assert f"[{BIG - 1024:,} bytes cut]" in table
    assert '{"blob":"xxxx' in history
    assert f"[{len(payload) - 65536:,} bytes cut]" in history
    resources = json.loads(listed)["resources"]
    assert resources[0]["id"].startswith("a" * 1024)
    assert resources[0]["cut"] == {"id": BIG - 1024}
    (record,) = json.loads(entry)["history"]
    assert record["payload"] is None
    assert record["payload_error"] == (
        f"payload of {len(payload):,} bytes is larger than the 65,536 bytes inspect reads: "
        f"{len(payload) - 65536:,} bytes cut"
    )
    assert record["payload_preview"].startswith('{"blob":"xxxx')
    assert record["cut"] == {"cause": BIG - 1024}


@pytest.mark.parametrize("limit", ["9223372036854775807", "1000001", str(10**30)])
def test_limit_out_of_range_is_a_usage_error(
    db: Path, capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    """``--limit`` beyond the documented maximum exits 2 with the range."""
    code, out, err = _run(capsys, str(db), "--limit", limit)
    assert code == 2
    assert out == ""
    assert err.startswith("usage: stateward inspect")
    assert f"--limit: expected an integer from 1 to 1,000,000, got {limit}" in err
    assert _run(capsys, str(db), "--limit", "1000000")[0] == 0


# --- messages -----------------------------------------------------------------------------


def test_error_messages_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path or id with escape sequences is shown escaped in error messages too."""
    missing = tmp_path / "x\x1b[2J.db"
    code, _, err = _run(capsys, str(missing))
    assert code == 2
    assert "x\\x1b[2J.db: no such file" in err
    assert "\x1b" not in err


def test_a_device_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A device is not a database file: exit 2 before SQLite reads anything."""
    code, out, err = _run(capsys, os.devnull)
    assert (code, out) == (2, "")
    assert f"{os.devnull}: is not a regular file; give the path of a database file" in err


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO, whose open would wait forever for a writer, is refused at once with exit 2."""
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "stateward.bench", "inspect", str(fifo)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"{fifo}: is not a regular file" in done.stderr


def test_argument_that_is_not_text_is_a_usage_error(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An argument that cannot be UTF-8 (bytes the shell passed undecoded) exits 2."""
    for flag in ("--resource", "--task", "--kind"):
        code, _, err = _run(capsys, str(db), flag, "vm-\udcff")
        assert code == 2
        assert f"{flag}: expected UTF-8 text, got 'vm-\\udcff'" in err


def test_unexpected_error_is_one_line_and_exit_1(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error nobody foresaw exits 1 with one line naming it, not a traceback."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\x1b[2J")

    monkeypatch.setattr(_cli, "run_inspect", broken)
    code, out, err = _run(capsys, str(db))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("stateward inspect: error: unexpected RuntimeError: boom\\x1b[2J")
    assert "Traceback" not in err


# --- the property -------------------------------------------------------------------------

_CELLS = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.binary(max_size=12).map(BadText),
)
_PAYLOADS = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.integers(-5, 5) | st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    ).map(msgspec.msgpack.encode),
)
_HOSTILE_RESOURCE = st.fixed_dictionaries(
    {"id": _CELLS, "kind": _CELLS, "state": _CELLS, "revision": _CELLS, "updated": _CELLS}
)
_HOSTILE_ENTRY = st.fixed_dictionaries(
    {
        "sequence": _CELLS,
        "source": _CELLS,
        "event": _CELLS,
        "task_id": _CELLS,
        "at": _CELLS,
        "payload": _PAYLOADS,
    }
)


_HOSTILE_TASK = st.fixed_dictionaries(
    {
        "key": _CELLS,
        "status": st.sampled_from(["succeeded", "parked"]) | _CELLS,
        "created": _CELLS,
        "updated": _CELLS,
        "body": st.one_of(
            _CELLS,
            _PAYLOADS,
            st.fixed_dictionaries(
                {},
                optional={
                    "kind": st.text(max_size=8),
                    "request": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                    "error_message": st.text(max_size=8),
                },
            ).map(lambda changes: _task_body(**changes)),
        ),
    }
)
#: The views the property runs, each as a table and as JSON.
_VIEWS = (
    ("list",),
    ("--resource", "good-1"),
    ("--resource", "vm-1", "--tasks"),
    ("--parked",),
    ("--task", "t-good"),
)


def _inspect_quietly(path: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["inspect", str(path), *argv, "--limit", "50"])
    return code, out.getvalue(), err.getvalue()


def _hostile_database(
    path: Path,
    resources: list[dict[str, object]],
    entries: list[dict[str, object]],
    tasks: list[dict[str, object]],
) -> None:
    """One good resource, transition and task, among hostile rows of each table."""
    rows = [
        *(("resources", {"id": f"hostile-{n}", **r}) for n, r in enumerate(resources)),
        *(("journal", {"resource_id": "good-1", "target": "on", **e}) for e in entries),
        *(
            ("documents", {"collection": TASKS, "version": 1, "resource_id": "vm-1", **t})
            for t in tasks
        ),
    ]
    with _writing(path) as con:
        _resource(con, "good-1")
        _journal(con, "good-1", 1, payload=msgspec.msgpack.encode({"n": 1}))
        _document(con, "t-good", _task_body(id="t-good"))
        for table, row in rows:
            # A row the schema refuses (null where NOT NULL, a key taken) is not written.
            with contextlib.suppress(sqlite3.IntegrityError):
                _insert(con, table, **row)


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    resources=st.lists(_HOSTILE_RESOURCE, max_size=3),
    entries=st.lists(_HOSTILE_ENTRY, max_size=3),
    tasks=st.lists(_HOSTILE_TASK, max_size=3),
)
def test_hostile_rows_never_hide_good_ones(
    template: Path,
    resources: list[dict[str, object]],
    entries: list[dict[str, object]],
    tasks: list[dict[str, object]],
) -> None:
    """Whatever hostile rows a database holds, every view exits 0 without a traceback,
    prints nothing a terminal acts on, and still shows every good row."""
    documents: dict[tuple[str, ...], Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.db"
        shutil.copy(template, path)
        _hostile_database(path, resources, entries, tasks)
        for view in _VIEWS:
            argv = view[1:] if view == ("list",) else view
            for as_json in ((), ("--json",)):
                code, out, err = _inspect_quietly(path, *argv, *as_json)
                assert (code, err) == (0, ""), (view, as_json)
                assert all(char == "\n" or char.isprintable() for char in out), view
                if as_json:
                    documents[view] = json.loads(out)
    assert "good-1" in [r["id"] for r in documents["list",]["resources"]]
    history = documents["--resource", "good-1"]["history"]
    assert next(h for h in history if h["sequence"] == 1)["payload"] == {"n": 1}
    assert "t-good" in [t["id"] for t in documents["--resource", "vm-1", "--tasks"]["tasks"]]
    assert documents["--task", "t-good"]["task"]["id"] == "t-good"


@pytest.mark.parametrize("argv", [[], ["--json"]])
def test_a_closed_pipe_ends_quietly(db: Path, argv: list[str]) -> None:
    """Output piped into a reader that stops early (``| head``) ends without a traceback."""
    with _writing(db) as con:
        _resource(con, "lamp-1")
    child = subprocess.Popen(
        [sys.executable, "-m", "stateward.bench", "inspect", str(db), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    child.stdout.close()  # before the child writes anything: its first write fails
    err = child.stderr.read()
    child.stderr.close()
    assert child.wait(timeout=30) == 1
    assert err == b""

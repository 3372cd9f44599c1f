"""``stateward inspect``: read a stateward SQLite database offline, without disturbing it.

The database may belong to a running process. It is opened read-only
(``file:...?mode=ro``, plus ``PRAGMA query_only``), so this module can never take a write
lock, and every view reads inside one read transaction: in WAL mode that is a consistent
snapshot of what was committed when it started, and a writer's open transaction is invisible.

Payloads are msgpack, decoded with msgspec (never pickle: a row cannot run code). A payload
that does not decode is shown as such instead of stopping the listing.

Task records (the flows layer's documents of collection ``"task"``) are msgpack-encoded
:class:`stateward.flows.TaskRecord` structs, decoded with msgspec into that type.

Views (one per invocation, in :data:`VIEWS`):

- ``resources``: the resource heads, ordered by id, optionally of one kind;
- ``history``: one resource's head and its last transitions, oldest first;
- ``task``: one task record: its fields, a table of its steps and its history;
- ``tasks``: one resource's tasks, newest first;
- ``parked``: the tasks parked because their flow's definition changed, newest first.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from stateward.flows import TASKS, StepRecord, TaskRecord, TaskStatus
from stateward.runtime import (
    SCHEMA_VERSION,
    ResourceSummary,
    SchemaError,
    StatewardError,
    TransitionRecord,
)

__all__ = (
    "DEFAULT_LIMIT",
    "InspectFailed",
    "Options",
    "VIEWS",
    "TASK_VIEWS",
    "run_inspect",
)

#: Rows a view shows unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 100
#: How long a read waits for a lock (only a rollback-journal database being written has one;
#: in WAL mode readers never wait).
BUSY_TIMEOUT = 2.0
#: Payloads longer than this are cut in tables (``--json`` always has them whole).
PAYLOAD_WIDTH = 80

_decoder = msgspec.msgpack.Decoder()
_task_decoder = msgspec.msgpack.Decoder(TaskRecord)
_json = msgspec.json.Encoder(enc_hook=repr, order="deterministic")


class InspectFailed(StatewardError):
    """The database cannot be inspected.

    Args:
        path: the database given.
        problem: what is wrong with it.
        hint: what to do about it.
        usage: True when the command line itself is wrong (exit code 2), False when the
            file is (exit code 1).
    """

    def __init__(self, path: str, problem: str, *, hint: str, usage: bool = False) -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        self.usage = usage
        super().__init__(f"{path}: {problem}; {hint}")


@dataclass(frozen=True, slots=True)
class Options:
    """What to show, as parsed from the command line.

    Attributes:
        db: the database file.
        resource: show this resource's history instead of the resource list.
        kind: list only resources of this kind.
        limit: rows to show at most.
        as_json: print JSON instead of tables.
        task: show this task record (its steps and history).
        tasks: with ``resource``, list that resource's tasks instead of its history.
        parked: list the parked tasks.
    """

    db: Path
    resource: str | None = None
    kind: str | None = None
    limit: int = DEFAULT_LIMIT
    as_json: bool = False
    task: str | None = None
    tasks: bool = False
    parked: bool = False


@dataclass(frozen=True, slots=True)
class _Entry:
    """A journal record with its payload decoded, or the reason it could not be."""

    record: TransitionRecord
    payload_error: str | None


# --- reading -----------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(path: Path, *, tasks: bool = False) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction, its schema checked.

    Args:
        path: the database.
        tasks: the view reads task records, so the documents table must exist.
    """
    shown = str(path)
    if not path.exists():
        raise InspectFailed(
            shown,
            "no such file",
            hint="give the path of a database a stateward SqliteStore wrote",
            usage=True,
        )
    if path.is_dir():
        raise InspectFailed(
            shown,
            "is a directory",
            hint="give the path of a database file a stateward SqliteStore wrote",
            usage=True,
        )
    try:
        db = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise InspectFailed(
            shown, f"cannot be opened ({exc})", hint="check its permissions"
        ) from exc
    try:
        try:
            db.execute("PRAGMA query_only = ON")
            db.execute("BEGIN")
            _check_schema(db, shown, tasks=tasks)
            yield db
        except sqlite3.DatabaseError as exc:
            raise _translate(shown, exc) from exc
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")  # a read transaction: nothing to keep
    finally:
        db.close()


def _translate(path: str, error: sqlite3.DatabaseError) -> InspectFailed:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_NOTADB:
        return InspectFailed(
            path, "is not a SQLite database", hint="give the file a stateward SqliteStore wrote"
        )
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return InspectFailed(
            path,
            f"stayed locked by a writer for {BUSY_TIMEOUT:g} s",
            hint="try again; stateward's own databases use WAL, where readers never wait",
        )
    return InspectFailed(path, f"cannot be read ({error})", hint="check the file")


def _check_schema(db: sqlite3.Connection, path: str, *, tasks: bool = False) -> None:
    try:
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise InspectFailed(
            path,
            "is a SQLite database but not a stateward one (it has no schema_version table)",
            hint="give the file a stateward SqliteStore wrote",
        ) from exc
    found = int(row[0]) if row is not None and row[0] is not None else 0
    if found > SCHEMA_VERSION:
        raise SchemaError(path, found=found, supported=SCHEMA_VERSION)
    if tasks and found > 0 and not _has_table(db, "documents"):
        raise InspectFailed(
            path,
            f"has no task records: its schema version {found} predates the documents table "
            "that holds them",
            hint="open it once with this stateward's SqliteStore, which adds the table; "
            "`stateward inspect` without task options still lists its resources after that",
        )
    if found < SCHEMA_VERSION:
        # Inspecting never writes, so it cannot migrate: the owning SqliteStore does that.
        problem = (
            "has no stateward schema yet: its creation never finished"
            if found == 0
            else f"has schema version {found}, from an older stateward (this one reads "
            f"{SCHEMA_VERSION})"
        )
        raise InspectFailed(
            path,
            problem,
            hint="open it once with this stateward's SqliteStore, which brings the schema "
            "up to date",
        )


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def _resources(
    db: sqlite3.Connection, *, kind: str | None, limit: int
) -> tuple[list[ResourceSummary], bool]:
    """Up to ``limit`` resource heads by id, and whether more exist."""
    rows = db.execute(
        "SELECT r.id, r.kind, r.state, r.revision, r.updated, q.reason FROM resources r "
        "LEFT JOIN quarantine q ON q.resource_id = r.id "
        "WHERE (? IS NULL OR r.kind = ?) ORDER BY r.id LIMIT ?",
        (kind, kind, limit + 1),
    ).fetchall()
    found = [
        ResourceSummary(str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]), r[5])
        for r in rows[:limit]
    ]
    return found, len(rows) > limit


def _history(
    db: sqlite3.Connection, path: str, resource_id: str, *, limit: int
) -> tuple[ResourceSummary, list[_Entry], int]:
    """A resource's head, its last ``limit`` journal records oldest first, and how many it has.

    Raises:
        InspectFailed: there is no such resource.
    """
    head = db.execute(
        "SELECT r.id, r.kind, r.state, r.revision, r.updated, q.reason FROM resources r "
        "LEFT JOIN quarantine q ON q.resource_id = r.id WHERE r.id = ?",
        (resource_id,),
    ).fetchone()
    if head is None:
        raise InspectFailed(
            path,
            f"has no resource {resource_id!r}",
            hint=f"`stateward inspect {path}` lists the resources it holds",
        )
    summary = ResourceSummary(
        str(head[0]), str(head[1]), str(head[2]), int(head[3]), float(head[4]), head[5]
    )
    (total,) = db.execute(
        "SELECT count(*) FROM journal WHERE resource_id = ?", (resource_id,)
    ).fetchone()
    rows = db.execute(
        "SELECT resource_id, sequence, source, event, target, task_id, cause, at, payload "
        "FROM journal WHERE resource_id = ? ORDER BY sequence DESC LIMIT ?",
        (resource_id, limit),
    ).fetchall()
    return summary, [_entry(row) for row in reversed(rows)], int(total)


def _entry(row: tuple[Any, ...]) -> _Entry:
    payload: Any = None
    error = None
    if row[8] is not None:
        try:
            payload = _decoder.decode(row[8])
        except msgspec.DecodeError as exc:
            error = f"undecodable msgpack: {exc}"
    record = TransitionRecord(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        row[5],
        row[6],
        float(row[7]),
        payload,
    )
    return _Entry(record, error)


@dataclass(frozen=True, slots=True)
class _TaskRow:
    """A task document: its indexed columns, and its record when the body decodes."""

    key: str
    resource_id: str | None
    status: str | None
    created: float
    updated: float
    record: TaskRecord | None
    decode_error: str | None


_TASK_COLUMNS = "key, resource_id, status, created, updated, body"


def _task_row(row: tuple[Any, ...]) -> _TaskRow:
    record: TaskRecord | None = None
    error = None
    try:
        record = _task_decoder.decode(row[5])
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        error = f"undecodable task record: {exc}"
    return _TaskRow(str(row[0]), row[1], row[2], float(row[3]), float(row[4]), record, error)


def _task(db: sqlite3.Connection, path: str, task_id: str) -> TaskRecord:
    """One task record.

    Raises:
        InspectFailed: there is no such task, or its record does not decode.
    """
    row = db.execute(
        f"SELECT {_TASK_COLUMNS} FROM documents WHERE collection = ? AND key = ?",
        (TASKS, task_id),
    ).fetchone()
    if row is None:
        raise InspectFailed(
            path,
            f"has no task {task_id!r}",
            hint=f"`stateward inspect {path} --resource ID --tasks` lists a resource's tasks",
        )
    found = _task_row(row)
    if found.record is None:
        raise InspectFailed(
            path,
            f"holds task {task_id!r} but its record cannot be read ({found.decode_error})",
            hint="the row was not written by this stateward's flow engine; check the file",
        )
    return found.record


def _resource_tasks(
    db: sqlite3.Connection, path: str, resource_id: str, *, limit: int
) -> tuple[list[_TaskRow], int]:
    """A resource's last ``limit`` tasks, newest first, and how many it has.

    Raises:
        InspectFailed: the resource has no tasks and is not a stored resource either.
    """
    (total,) = db.execute(
        "SELECT count(*) FROM documents WHERE collection = ? AND resource_id = ?",
        (TASKS, resource_id),
    ).fetchone()
    if not total:
        known = db.execute("SELECT 1 FROM resources WHERE id = ?", (resource_id,)).fetchone()
        if known is None:
            raise InspectFailed(
                path,
                f"has no resource {resource_id!r} and no task for it",
                hint=f"`stateward inspect {path}` lists the resources it holds",
            )
    rows = db.execute(
        f"SELECT {_TASK_COLUMNS} FROM documents WHERE collection = ? AND resource_id = ? "
        "ORDER BY created DESC, key DESC LIMIT ?",
        (TASKS, resource_id, limit),
    ).fetchall()
    return [_task_row(row) for row in rows], int(total)


def _parked_tasks(db: sqlite3.Connection, *, limit: int) -> tuple[list[_TaskRow], int]:
    """The last ``limit`` parked tasks, newest first, and how many there are."""
    (total,) = db.execute(
        "SELECT count(*) FROM documents WHERE collection = ? AND status = ?",
        (TASKS, TaskStatus.PARKED.value),
    ).fetchone()
    rows = db.execute(
        f"SELECT {_TASK_COLUMNS} FROM documents WHERE collection = ? AND status = ? "
        "ORDER BY created DESC, key DESC LIMIT ?",
        (TASKS, TaskStatus.PARKED.value, limit),
    ).fetchall()
    return [_task_row(row) for row in rows], int(total)


# --- rendering ---------------------------------------------------------------------------


def _iso_time(at: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC time with milliseconds."""
    try:
        return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return repr(at)


def _summary_json(summary: ResourceSummary) -> dict[str, Any]:
    return {
        "id": summary.resource_id,
        "kind": summary.kind,
        "state": summary.state,
        "revision": summary.revision,
        "updated": summary.updated,
        "updated_iso": _iso_time(summary.updated),
        "quarantined": summary.quarantined,
    }


def _entry_json(entry: _Entry) -> dict[str, Any]:
    r = entry.record
    found: dict[str, Any] = {
        "sequence": r.sequence,
        "at": r.at,
        "at_iso": _iso_time(r.at),
        "source": r.source,
        "event": r.event,
        "target": r.target,
        "task_id": r.task_id,
        "cause": r.cause,
        "payload": r.payload,
    }
    if entry.payload_error is not None:
        found["payload_error"] = entry.payload_error
    return found


def _payload_text(entry: _Entry) -> Text:
    if entry.payload_error is not None:
        return Text(f"<{entry.payload_error}>", style="red")
    if entry.record.payload is None:
        return Text("")
    shown = _json.encode(entry.record.payload).decode()
    if len(shown) > PAYLOAD_WIDTH:
        shown = shown[: PAYLOAD_WIDTH - 1] + "…"
    return Text(shown)


def _optional(value: str | None) -> Text:
    return Text(value) if value is not None else Text("-", style="dim")


def _resources_table(path: str, found: list[ResourceSummary], kind: str | None) -> Table:
    which = f" of kind {kind!r}" if kind is not None else ""
    table = Table(title=f"resources{which} in {path}")
    table.add_column("id")
    table.add_column("kind")
    table.add_column("state")
    table.add_column("revision", justify="right")
    table.add_column("updated (UTC)")
    table.add_column("quarantined")
    for s in found:
        table.add_row(
            Text(s.resource_id),
            Text(s.kind),
            Text(s.state),
            str(s.revision),
            _iso_time(s.updated),
            Text(s.quarantined, style="red") if s.quarantined else Text(""),
        )
    return table


def _history_table(summary: ResourceSummary, entries: list[_Entry]) -> Table:
    table = Table(
        title=(
            f"{summary.resource_id} ({summary.kind}): {summary.state} "
            f"at revision {summary.revision}"
        )
    )
    table.add_column("seq", justify="right")
    table.add_column("time (UTC)")
    table.add_column("transition")
    table.add_column("event")
    table.add_column("task")
    table.add_column("cause")
    table.add_column("payload", overflow="fold")
    for entry in entries:
        r = entry.record
        table.add_row(
            str(r.sequence),
            _iso_time(r.at),
            Text(f"{r.source} → {r.target}"),
            Text(r.event),
            _optional(r.task_id),
            _optional(r.cause),
            _payload_text(entry),
        )
    return table


def _time_text(at: float | None) -> Text:
    return Text(_iso_time(at)) if at is not None else Text("-", style="dim")


def _time_json(at: float | None) -> str | None:
    return _iso_time(at) if at is not None else None


def _parked_because(record: TaskRecord) -> str | None:
    """The detail of the task's last ``parked`` history event."""
    for event in reversed(record.history):
        if event.event == TaskStatus.PARKED.value:
            return event.detail
    return None


def _task_error(record: TaskRecord) -> str | None:
    """Why the task failed (or was parked), in one line; None when it did not."""
    if record.error_message is not None:
        kind = f"{record.error_type}: " if record.error_type else ""
        return kind + record.error_message
    if record.status is TaskStatus.PARKED:
        return _parked_because(record)
    return None


def _step_error(step: StepRecord) -> str | None:
    if step.error_type is None and step.error_message is None:
        return None
    return f"{step.error_type or 'error'}: {step.error_message or ''}"


def _status_text(status: str | None) -> Text:
    if status is None:
        return Text("-", style="dim")
    style = {
        TaskStatus.SUCCEEDED.value: "green",
        TaskStatus.FAILED.value: "red",
        TaskStatus.REVERTED.value: "yellow",
        TaskStatus.REVERT_FAILED.value: "bold red",
        TaskStatus.PARKED.value: "bold yellow",
    }.get(status, "")
    return Text(status, style=style)


def _plain(value: Any) -> Any:
    """Plain data of ``value`` with every field, defaults included (a stable JSON shape)."""
    if isinstance(value, msgspec.Struct):
        return {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return msgspec.to_builtins(value)


def _task_json(record: TaskRecord) -> dict[str, Any]:
    found: dict[str, Any] = _plain(record)
    found["created_iso"] = _iso_time(record.created)
    found["updated_iso"] = _iso_time(record.updated)
    found["error"] = _task_error(record)
    for step in found["steps"]:
        step["started_iso"] = _time_json(step["started"])
        step["finished_iso"] = _time_json(step["finished"])
    for event in found["history"]:
        event["at_iso"] = _iso_time(event["at"])
    return found


def _task_row_json(row: _TaskRow) -> dict[str, Any]:
    record = row.record
    found: dict[str, Any] = {
        "id": row.key,
        "kind": record.kind if record is not None else None,
        "flow_version": record.flow_version if record is not None else None,
        "resource_id": row.resource_id,
        "status": row.status,
        "created": row.created,
        "created_iso": _iso_time(row.created),
        "updated": row.updated,
        "updated_iso": _iso_time(row.updated),
        "error": _task_error(record) if record is not None else None,
    }
    if row.decode_error is not None:
        found["decode_error"] = row.decode_error
    return found


def _task_fields(record: TaskRecord) -> Table:
    table = Table(title=f"task {record.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("id", Text(record.id))
    table.add_row("kind", Text(record.kind))
    table.add_row("flow version", str(record.flow_version))
    table.add_row("resource", Text(record.resource_id))
    table.add_row("status", _status_text(record.status.value))
    table.add_row("created (UTC)", _iso_time(record.created))
    table.add_row("updated (UTC)", _iso_time(record.updated))
    table.add_row("idempotency key", _optional(record.idempotency_key))
    error = _task_error(record)
    table.add_row("error", Text(error, style="red") if error is not None else _optional(None))
    return table


def _steps_table(record: TaskRecord) -> Table:
    table = Table(title="steps")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("started (UTC)")
    table.add_column("finished (UTC)")
    table.add_column("error", overflow="fold")
    table.add_column("delays")
    for number, step in enumerate(record.steps, start=1):
        error = _step_error(step)
        table.add_row(
            str(number),
            Text(step.name),
            _status_text(step.status.value),
            str(step.attempts),
            _time_text(step.started),
            _time_text(step.finished),
            Text(error, style="red") if error is not None else _optional(None),
            Text(", ".join(f"{d:.3f}s" for d in step.delays)) if step.delays else _optional(None),
        )
    return table


def _task_history_table(record: TaskRecord) -> Table:
    table = Table(title="history")
    table.add_column("time (UTC)")
    table.add_column("event")
    table.add_column("step")
    table.add_column("detail", overflow="fold")
    for event in record.history:
        table.add_row(
            _iso_time(event.at), Text(event.event), _optional(event.step), _optional(event.detail)
        )
    return table


def _tasks_table(title: str, rows: list[_TaskRow], *, parked: bool) -> Table:
    """A resource's tasks (status, error), or parked tasks (resource, version, why)."""
    table = Table(title=title)
    table.add_column("id")
    table.add_column("kind")
    if parked:
        table.add_column("resource")
        table.add_column("flow version", justify="right")
    else:
        table.add_column("status")
    table.add_column("created (UTC)")
    table.add_column("parked (UTC)" if parked else "updated (UTC)")
    table.add_column("parked because" if parked else "error", overflow="fold")
    for row in rows:
        record = row.record
        if record is None:
            error: Text = Text(f"<{row.decode_error}>", style="red")
        else:
            why = _task_error(record)
            error = Text(why, style="red") if why is not None else _optional(None)
        cells: list[RenderableType] = [
            Text(row.key),
            Text(record.kind) if record is not None else _optional(None),
        ]
        if parked:
            cells.append(_optional(row.resource_id))
            cells.append(str(record.flow_version) if record is not None else _optional(None))
        else:
            cells.append(_status_text(row.status))
        cells.extend([_iso_time(row.created), _iso_time(row.updated), error])
        table.add_row(*cells)
    return table


# --- views -------------------------------------------------------------------------------

#: What a view returns: the JSON document, and the tables and notes for people.
_Rendered = tuple[dict[str, Any], RenderableType]


def _view_resources(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    found, more = _resources(db, kind=options.kind, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
        "kind": options.kind,
        "limit": options.limit,
        "truncated": more,
        "resources": [_summary_json(s) for s in found],
    }
    parts: list[RenderableType] = [_resources_table(path, found, options.kind)]
    if more:
        parts.append(
            Text(
                f"showing the first {len(found)} resources; more exist: "
                "raise --limit or filter with --kind",
                style="yellow",
            )
        )
    elif not found:
        parts.append(Text("no resources" + (f" of kind {options.kind!r}" if options.kind else "")))
    return document, Group(*parts)


def _view_history(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    assert options.resource is not None
    summary, entries, total = _history(db, path, options.resource, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
        "resource": _summary_json(summary),
        "limit": options.limit,
        "total": total,
        "truncated": total > len(entries),
        "history": [_entry_json(e) for e in entries],
    }
    parts: list[RenderableType] = []
    if summary.quarantined is not None:
        parts.append(Text(f"quarantined: {summary.quarantined}", style="bold red"))
    parts.append(_history_table(summary, entries))
    if total > len(entries):
        parts.append(
            Text(
                f"showing the last {len(entries)} of {total} transitions; raise --limit for more",
                style="yellow",
            )
        )
    return document, Group(*parts)


def _view_task(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    assert options.task is not None
    record = _task(db, path, options.task)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
        "task": _task_json(record),
    }
    parts: list[RenderableType] = [
        _task_fields(record),
        _steps_table(record),
        _task_history_table(record),
    ]
    return document, Group(*parts)


def _view_resource_tasks(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    assert options.resource is not None
    rows, total = _resource_tasks(db, path, options.resource, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
        "resource_id": options.resource,
        "limit": options.limit,
        "total": total,
        "truncated": total > len(rows),
        "tasks": [_task_row_json(row) for row in rows],
    }
    parts: list[RenderableType] = [
        _tasks_table(f"tasks of {options.resource}, newest first", rows, parked=False)
    ]
    if total > len(rows):
        parts.append(
            Text(
                f"showing the newest {len(rows)} of {total} tasks; raise --limit for more",
                style="yellow",
            )
        )
    elif not rows:
        parts.append(Text(f"{options.resource} has no tasks"))
    return document, Group(*parts)


def _view_parked(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    rows, total = _parked_tasks(db, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
        "limit": options.limit,
        "total": total,
        "truncated": total > len(rows),
        "tasks": [_task_row_json(row) for row in rows],
    }
    parts: list[RenderableType] = [
        _tasks_table(f"parked tasks in {path}, newest first", rows, parked=True)
    ]
    if total > len(rows):
        parts.append(
            Text(
                f"showing the newest {len(rows)} of {total} parked tasks; raise --limit for more",
                style="yellow",
            )
        )
    elif not rows:
        parts.append(Text("no parked tasks"))
    return document, Group(*parts)


#: Each view: whether the options select it, and how it reads and renders.
VIEWS: tuple[
    tuple[str, Callable[[Options], bool], Callable[[sqlite3.Connection, Options], _Rendered]],
    ...,
] = (
    ("task", lambda o: o.task is not None, _view_task),
    ("parked", lambda o: o.parked, _view_parked),
    ("tasks", lambda o: o.resource is not None and o.tasks, _view_resource_tasks),
    ("history", lambda o: o.resource is not None, _view_history),
    ("resources", lambda o: True, _view_resources),
)
#: The views that read task records (they need the documents table).
TASK_VIEWS = frozenset({"task", "parked", "tasks"})


def run_inspect(options: Options, *, console: Console, out: TextIO | None = None) -> None:
    """Read what ``options`` select from the database and print it.

    Args:
        options: what to show.
        console: where tables go.
        out: where JSON goes; ``sys.stdout`` by default.

    Raises:
        InspectFailed: the file is missing or not a stateward database, it stayed locked too
            long, it has no such resource or task, or it predates task records.
        SchemaError: a newer stateward wrote the database.
    """
    name, view = next((name, render) for name, selects, render in VIEWS if selects(options))
    with _snapshot(options.db, tasks=name in TASK_VIEWS) as db:
        document, renderable = view(db, options)
    if options.as_json:
        stream = out if out is not None else sys.stdout
        stream.write(_json.encode(document).decode() + "\n")
    else:
        console.print(renderable)

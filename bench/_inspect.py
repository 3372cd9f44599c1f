"""``stateward inspect``: read a stateward SQLite database offline, without disturbing it.

The database may belong to a running process. It is opened read-only
(``file:...?mode=ro``, plus ``PRAGMA query_only``), so this module can never take a write
lock, and every view reads inside one read transaction: in WAL mode that is a consistent
snapshot of what was committed when it started, and a writer's open transaction is invisible.

Payloads are msgpack, decoded with msgspec (never pickle: a row cannot run code). A payload
that does not decode is shown as such instead of stopping the listing.

Views (one per invocation; the ``--task``, ``--tasks`` and ``--parked`` views of the flows
layer will join :data:`VIEWS` the same way):

- ``resources``: the resource heads, ordered by id, optionally of one kind;
- ``history``: one resource's head and its last transitions, oldest first.
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
    """

    db: Path
    resource: str | None = None
    kind: str | None = None
    limit: int = DEFAULT_LIMIT
    as_json: bool = False


@dataclass(frozen=True, slots=True)
class _Entry:
    """A journal record with its payload decoded, or the reason it could not be."""

    record: TransitionRecord
    payload_error: str | None


# --- reading -----------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection inside one read transaction, its schema checked."""
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
            _check_schema(db, shown)
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


def _check_schema(db: sqlite3.Connection, path: str) -> None:
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


#: Each view: whether the options select it, and how it reads and renders.
VIEWS: tuple[
    tuple[str, Callable[[Options], bool], Callable[[sqlite3.Connection, Options], _Rendered]],
    ...,
] = (
    ("history", lambda o: o.resource is not None, _view_history),
    ("resources", lambda o: True, _view_resources),
)


def run_inspect(options: Options, *, console: Console, out: TextIO | None = None) -> None:
    """Read what ``options`` select from the database and print it.

    Args:
        options: what to show.
        console: where tables go.
        out: where JSON goes; ``sys.stdout`` by default.

    Raises:
        InspectFailed: the file is missing or not a stateward database, it stayed locked too
            long, or it has no such resource.
        SchemaError: a newer stateward wrote the database.
    """
    view = next(render for _, selects, render in VIEWS if selects(options))
    with _snapshot(options.db) as db:
        document, renderable = view(db, options)
    if options.as_json:
        stream = out if out is not None else sys.stdout
        stream.write(_json.encode(document).decode() + "\n")
    else:
        console.print(renderable)

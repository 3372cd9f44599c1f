"""``stateward inspect``: read a stateward SQLite database offline, without disturbing it.

The database may belong to a running process. It is opened read-only
(``file:...?mode=ro``, plus ``PRAGMA query_only``), so this module can never take a write
lock, and every view reads inside one read transaction: in WAL mode that is a consistent
snapshot of what was committed when it started, and a writer's open transaction is invisible.

The file may also hold rows no stateward wrote: the schema admits text where an integer
belongs, bytes that are not UTF-8, values of any size and nesting. Nothing in a row can stop
the listing or flood the terminal:

- every column is read bounded, in SQL (its type, its size, and ``substr`` of at most
  :data:`TEXT_BYTES`, :data:`PAYLOAD_BYTES` or :data:`TASK_BYTES` bytes), so a row of
  40 MB never enters memory whole; what was not read is marked ``… [N bytes cut]``;
- a cell that cannot be decoded (not UTF-8, the wrong type) is shown as
  ``<undecodable: why>`` in its row, which is still listed, and under ``errors`` in JSON;
- payloads are msgpack, read by this module's own bounded reader (never pickle: a row cannot
  run code): map keys of any type are rendered, nesting deeper than :data:`MAX_DEPTH` levels
  is replaced by a marker, and a payload cut short shows the part that was read;
- text is printed escaped (:func:`printable`): control characters, terminal escape
  sequences and invisible format characters appear as ``\\x1b``, ``\\u202e``, never raw, and
  rich markup in a name is never interpreted.

Task records (the flows layer's documents of collection ``"task"``) are msgpack-encoded
:class:`stateward.flows.TaskRecord` structs, read by the same reader and converted with
msgspec into that type.

Views (one per invocation, in :data:`VIEWS`):

- ``resources``: the resource heads, ordered by id, optionally of one kind;
- ``history``: one resource's head and its last transitions, oldest first;
- ``task``: one task record: its fields, a table of its steps and its history;
- ``tasks``: one resource's tasks, newest first;
- ``parked``: the tasks parked because their flow's definition changed, newest first;
- ``timers``: the pending durable timers, soonest first;
- ``migrations``: the moves (migration resources), by id: kind, instance, source,
  destination, flavors, state and why it failed, was cancelled or is parked, folded from
  each migration's journal.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import re
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import msgspec
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from stateward.actors import EVACUATE, LIVE_MIGRATE, MIGRATE, RESIZE
from stateward.flows import TASKS, StepRecord, TaskRecord, TaskStatus
from stateward.runtime import (
    DocumentRow,
    HeadRow,
    JournalRow,
    RawCell,
    ReadFailure,
    StatewardError,
    StoreReader,
    StoreUnavailable,
    Timer,
    is_dsn,
    open_store_reader,
    redact_dsn,
)

__all__ = (
    "DEFAULT_LIMIT",
    "InspectFailed",
    "MAX_DEPTH",
    "MAX_LIMIT",
    "Options",
    "PAYLOAD_BYTES",
    "TASK_BYTES",
    "TASK_VIEWS",
    "TEXT_BYTES",
    "VIEWS",
    "printable",
    "run_inspect",
)

#: Rows a view shows unless ``--limit`` says otherwise.
DEFAULT_LIMIT = 100
#: The largest ``--limit``: every row is bounded, and so is the number of rows.
MAX_LIMIT = 1_000_000
#: How long a read waits for a lock (only a rollback-journal database being written has one;
#: in WAL mode readers never wait).
BUSY_TIMEOUT = 2.0
#: Payloads are previewed in tables up to this many characters.
PAYLOAD_WIDTH = 80
#: Bytes read of a text column (ids, states, events, causes, reasons), and characters shown
#: of a text inside a task record.
TEXT_BYTES = 1024
#: Bytes read of a journal payload; a longer one is shown as far as these bytes go.
PAYLOAD_BYTES = 65_536
#: Bytes read of a task record; a longer record is reported, not decoded.
TASK_BYTES = 1_048_576
#: Levels of nesting shown of a payload or task record; deeper values become a marker.
MAX_DEPTH = 32

_json = msgspec.json.Encoder(enc_hook=repr, order="deterministic")
#: Characters a JSON document could carry raw that a terminal may act on: DEL, the C1
#: controls and every other non-ASCII character that is not printable (checked one by one).
_JSON_SUSPECT = re.compile("[\x7f-\U0010ffff]")
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


class InspectFailed(StatewardError):
    """The database cannot be inspected.

    Args:
        path: the database given (shown escaped).
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
        super().__init__(f"{printable(path)}: {problem}; {hint}")


@dataclass(frozen=True, slots=True)
class Options:
    """What to show, as parsed from the command line.

    Attributes:
        db: the database file, or a PostgreSQL DSN.
        schema: the PostgreSQL schema the store wrote.
        resource: show this resource's history instead of the resource list.
        kind: list only resources of this kind.
        limit: rows to show at most.
        as_json: print JSON instead of tables.
        task: show this task record (its steps and history).
        tasks: with ``resource``, list that resource's tasks instead of its history.
        parked: list the parked tasks.
        timers: list the pending timers.
        migrations: list the migrations.
        leases: list the leases, and the holds on each host.
    """

    db: Path | str
    schema: str = "stateward"
    resource: str | None = None
    kind: str | None = None
    limit: int = DEFAULT_LIMIT
    as_json: bool = False
    task: str | None = None
    tasks: bool = False
    parked: bool = False
    timers: bool = False
    migrations: bool = False
    leases: bool = False


# --- escaping ----------------------------------------------------------------------------


def _escape_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped the way ``repr`` does.

    Control characters (escape sequences included), format characters such as
    right-to-left overrides, lone surrogates and the like become ``\\x1b``, ``\\u202e``, ...;
    everything else is left as it is.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape_char(char) for char in text)


def _json_char(match: re.Match[str]) -> str:
    char = match[0]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_text(document: Any) -> str:
    """``document`` as JSON in which no character a terminal could act on appears raw.

    msgspec escapes the C0 controls; the others are escaped here as ``\\uXXXX``, which
    every JSON reader decodes back to the same string.
    """
    text = _json.encode(document).decode()
    return text if text.isascii() and "\x7f" not in text else _JSON_SUSPECT.sub(_json_char, text)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- msgpack, bounded --------------------------------------------------------------------


class _Undecodable(Exception):
    """Why bytes are not msgpack (becomes a row's error; never leaves this module)."""


class _Deeper:
    """Stands for a value nested deeper than :data:`MAX_DEPTH`."""

    __slots__ = ()


class _Nothing:
    """No value (not even nil) was read."""

    __slots__ = ()


_DEEPER = _Deeper()
_NOTHING = _Nothing()
_DEEPER_TEXT = f"<nested deeper than {MAX_DEPTH} levels>"


class _Ended(Exception):
    """The bytes ended inside a value; ``partial`` is the part of a string that was there."""

    def __init__(self, partial: Any = _NOTHING) -> None:
        super().__init__()
        self.partial = partial


_ARRAY, _MAP, _SCALAR = 0, 1, 2
_CONSTANTS: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
_NUMBERS = {
    0xCA: ">f",
    0xCB: ">d",
    0xCC: ">B",
    0xCD: ">H",
    0xCE: ">I",
    0xCF: ">Q",
    0xD0: ">b",
    0xD1: ">h",
    0xD2: ">i",
    0xD3: ">q",
}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
#: Markers followed by a length: what they hold, and the format of the length (msgpack's
#: 8-, 16- and 32-bit forms in marker order; arrays and maps have no 8-bit form).
_SIZED = {
    marker: (kind, form)
    for kind, first, forms in (
        ("bin", 0xC4, (">B", ">H", ">I")),
        ("ext", 0xC7, (">B", ">H", ">I")),
        ("str", 0xD9, (">B", ">H", ">I")),
        ("array", 0xDC, (">H", ">I")),
        ("map", 0xDE, (">H", ">I")),
    )
    for marker, form in enumerate(forms, start=first)
}


class _Reader:
    """The tokens of msgpack bytes: scalars, and the headers of arrays and maps."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise _Ended
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _unpack(self, form: str) -> Any:
        return struct.unpack(form, self._take(struct.calcsize(form)))[0]

    def token(self) -> tuple[int, Any]:
        """The next token: (_ARRAY, items), (_MAP, pairs) or (_SCALAR, value)."""
        start = self.pos
        byte = self._take(1)[0]
        if byte <= 0x7F:
            return _SCALAR, byte
        if byte >= 0xE0:
            return _SCALAR, byte - 0x100
        if byte <= 0x8F:
            return _MAP, byte & 0x0F
        if byte <= 0x9F:
            return _ARRAY, byte & 0x0F
        if byte <= 0xBF:
            return _SCALAR, self._str(byte & 0x1F, start)
        if byte in _CONSTANTS:
            return _SCALAR, _CONSTANTS[byte]
        if byte in _NUMBERS:
            return _SCALAR, self._unpack(_NUMBERS[byte])
        if byte in _FIXEXT:
            return _SCALAR, self._ext(_FIXEXT[byte])
        if byte in _SIZED:
            kind, form = _SIZED[byte]
            length: int = self._unpack(form)
            if kind == "array":
                return _ARRAY, length
            if kind == "map":
                return _MAP, length
            if kind == "str":
                return _SCALAR, self._str(length, start)
            if kind == "bin":
                return _SCALAR, self._bin(length)
            return _SCALAR, self._ext(length)
        raise _Undecodable(f"byte 0x{byte:02x} at offset {start} is not msgpack")

    def _str(self, length: int, start: int) -> str:
        partial = len(self.data) - self.pos < length
        chunk = self.data[self.pos :] if partial else self._take(length)
        try:
            text: str = codecs.getincrementaldecoder("utf-8")().decode(chunk, final=not partial)
        except UnicodeDecodeError:
            raise _Undecodable(f"the string at offset {start} is not UTF-8") from None
        if partial:
            self.pos = len(self.data)
            raise _Ended(text)
        return text

    def _bin(self, length: int) -> bytes:
        if len(self.data) - self.pos < length:
            chunk = self.data[self.pos :]
            self.pos = len(self.data)
            raise _Ended(chunk)
        return self._take(length)

    def _ext(self, length: int) -> Any:
        code: int = self._unpack(">b")
        data = self._take(length)
        if code == -1:
            return _timestamp(data)
        return f"<msgpack extension {code} of {length:,} bytes>"


def _timestamp(data: bytes) -> Any:
    """msgpack's timestamp extension as a UTC datetime (or a marker if out of range)."""
    if len(data) == 4:
        seconds, nanoseconds = struct.unpack(">I", data)[0], 0
    elif len(data) == 8:
        packed = struct.unpack(">Q", data)[0]
        seconds, nanoseconds = packed & (2**34 - 1), packed >> 34
    elif len(data) == 12:
        nanoseconds, seconds = struct.unpack(">Iq", data)
    else:
        return f"<msgpack timestamp of {len(data)} bytes>"
    try:
        return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanoseconds // 1000)
    except (OverflowError, OSError, ValueError):
        return f"<msgpack timestamp {seconds} s>"


class _Frame:
    """An array or map being filled: its container, the values still to come, its key."""

    __slots__ = ("container", "key", "left")

    def __init__(self, container: list[Any] | dict[Any, Any], left: int) -> None:
        self.container = container
        self.left = left
        self.key: Any = _NOTHING


def _hashable(value: Any) -> Any:
    """A map key: arrays (and maps) used as keys become tuples."""
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    return value


def _place(frames: list[_Frame], item: Any) -> Any:
    """Put ``item`` into the innermost open container; the whole value once it is complete,
    else _NOTHING."""
    while frames:
        frame = frames[-1]
        if isinstance(frame.container, dict):
            if frame.key is _NOTHING:
                frame.key = _hashable(item)
                frame.left -= 1
                return _NOTHING
            frame.container[frame.key] = item
            frame.key = _NOTHING
        else:
            frame.container.append(item)
        frame.left -= 1
        if frame.left:
            return _NOTHING
        frames.pop()
        item = frame.container
    return item


def _fold(frames: list[_Frame], partial: Any) -> Any:
    """What the open containers hold when the bytes ran out, ``partial`` innermost."""
    item = partial
    for frame in reversed(frames):
        if item is not _NOTHING:
            if isinstance(frame.container, list):
                frame.container.append(item)
            elif frame.key is not _NOTHING:
                frame.container[frame.key] = item
        item = frame.container
    return item


def _msgpack(data: bytes, *, complete: bool) -> Any:
    """The msgpack value in ``data``, nested at most :data:`MAX_DEPTH` levels deep.

    Iterative, so no nesting can exhaust the stack: a container deeper than the bound is
    skipped by counting the values it holds and replaced by a marker. With ``complete``
    false, ``data`` is a prefix and the value is what the prefix holds (_NOTHING if none).

    Raises:
        _Undecodable: the bytes are not msgpack.
    """
    if not data:
        raise _Undecodable("no bytes")
    reader = _Reader(data)
    frames: list[_Frame] = []
    skip = 0  # tokens still to skip inside a container nested too deep
    root: Any = _NOTHING
    try:
        while root is _NOTHING:
            kind, value = reader.token()
            slots = value if kind == _ARRAY else 2 * value if kind == _MAP else 0
            item: Any
            if skip:
                skip += slots - 1
                if skip:
                    continue
                item = _DEEPER
            elif kind != _SCALAR and len(frames) >= MAX_DEPTH:
                skip = slots
                if skip:
                    continue
                item = _DEEPER
            elif kind != _SCALAR and slots:
                frames.append(_Frame([] if kind == _ARRAY else {}, slots))
                continue
            else:
                item = value if kind == _SCALAR else [] if kind == _ARRAY else {}
            root = _place(frames, item)
    except _Ended as ended:
        if complete:
            raise _Undecodable("the bytes end inside a value") from None
        return _fold(frames, _DEEPER if skip else ended.partial)
    if reader.pos < len(data):
        raise _Undecodable(f"{len(data) - reader.pos:,} bytes follow the value")
    return root


class _Full(Exception):
    """The preview is as long as it may be."""


class _Preview:
    """One line of JSON-like text for a value, stopped once it is ``limit`` long."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.room = limit

    def emit(self, text: str) -> None:
        self.parts.append(text)
        self.room -= len(text)
        if self.room < 0:
            raise _Full

    def walk(self, value: Any) -> None:
        if isinstance(value, dict):
            self.emit("{")
            for number, (key, item) in enumerate(value.items()):
                if number:
                    self.emit(",")
                self.walk(key)
                self.emit(":")
                self.walk(item)
            self.emit("}")
        elif isinstance(value, list | tuple):
            self.emit("[")
            for number, item in enumerate(value):
                if number:
                    self.emit(",")
                self.walk(item)
            self.emit("]")
        else:
            self.emit(self._scalar(value))

    def _scalar(self, value: Any) -> str:
        if value is None or isinstance(value, bool):
            return {None: "null", True: "true", False: "false"}[value]
        if isinstance(value, str):
            return msgspec.json.encode(value[: self.room + 1]).decode()
        if isinstance(value, bytes):
            return repr(value[: self.room + 1])
        if isinstance(value, datetime):
            return f'"{value.isoformat()}"'
        if value is _DEEPER:
            return "…"
        return repr(value)


def _preview(value: Any, limit: int) -> str:
    """``value`` as one line of JSON-like text (map keys of any type), at most ``limit``
    characters, cut with ``…``."""
    preview = _Preview(limit)
    with contextlib.suppress(_Full):
        preview.walk(value)
    return _clip("".join(preview.parts), limit)


def _jsonable(value: Any) -> Any:
    """``value`` as data JSON can hold: every field of a struct, enums as their values,
    map keys as text (``8080`` becomes ``"8080"``), the depth marker as a string."""
    if isinstance(value, msgspec.Struct):
        return {name: _jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else _preview(key, TEXT_BYTES): _jsonable(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if value is _DEEPER:
        return _DEEPER_TEXT
    return value


# --- reading -----------------------------------------------------------------------------

#: The inspector's words for each way the reader fails: (problem, hint, usage error).
_READ_FAILURES: dict[ReadFailure, tuple[str, str, bool]] = {
    ReadFailure.MISSING: (
        "no such file",
        "give the path of a database a stateward SqliteStore wrote",
        True,
    ),
    ReadFailure.DIRECTORY: (
        "is a directory",
        "give the path of a database file a stateward SqliteStore wrote",
        True,
    ),
    ReadFailure.NOT_A_FILE: (
        # A FIFO would block SQLite's open until some writer appeared; a device is no file.
        "is not a regular file",
        "give the path of a database file a stateward SqliteStore wrote",
        True,
    ),
    ReadFailure.CANNOT_OPEN: ("cannot be opened ({cause})", "check its permissions", False),
    ReadFailure.NOT_SQLITE: (
        "is not a SQLite database",
        "give the file a stateward SqliteStore wrote",
        False,
    ),
    ReadFailure.LOCKED: (
        f"stayed locked by a writer for {BUSY_TIMEOUT:g} s",
        "try again; stateward's own databases use WAL, where readers never wait",
        False,
    ),
    ReadFailure.NOT_STATEWARD: (
        "is a SQLite database but not a stateward one (it has no schema_version table)",
        "give the file a stateward SqliteStore wrote",
        False,
    ),
    ReadFailure.BAD_VERSION: (
        "its schema_version table holds {detail}, not a version number",
        "give the file a stateward SqliteStore wrote",
        False,
    ),
    ReadFailure.MISSING_TABLES: (
        "is a SQLite database but not a stateward one (it lacks stateward's tables {detail})",
        "give the file a stateward SqliteStore wrote",
        False,
    ),
    ReadFailure.UNFINISHED: (
        "has no stateward schema yet: its creation never finished",
        "open it once with this stateward's SqliteStore, which brings the schema up to date",
        False,
    ),
    ReadFailure.UNREADABLE: ("cannot be read ({cause})", "check the file", False),
    ReadFailure.CANNOT_CONNECT: ("cannot be reached ({detail})", "check the server", False),
}


def _failed(path: str, error: StoreUnavailable) -> InspectFailed | StoreUnavailable:
    """The reader's failure in the inspector's words (one it does not know stays as is)."""
    try:
        reason = ReadFailure(error.reason)
    except ValueError:
        return error
    if is_dsn(path):  # the reader words a server's failures itself
        problem = str(reason) + (f" ({error.detail})" if error.detail else "")
        return InspectFailed(redact_dsn(path), problem, hint=error.advice or "check the server")
    problem, hint, usage = _READ_FAILURES[reason]
    problem = problem.format(cause=error.__cause__, detail=error.detail)
    return InspectFailed(path, problem, hint=hint, usage=usage)


def _check_version(reader: StoreReader, *, tasks: bool) -> None:
    """Refuse a schema older than this stateward's (inspecting cannot migrate it).

    Args:
        reader: the open database.
        tasks: the view reads task records, which the documents table holds.
    """
    found, latest = reader.schema_version, reader.latest_version
    if found >= latest:
        return
    store = "SqliteStore" if reader.schema is None else "PostgresStore"
    if tasks and not reader.has_documents:
        raise InspectFailed(
            reader.path,
            f"has no task records: its schema version {found} predates the documents table "
            "that holds them",
            hint=f"open it once with this stateward's {store}, which adds the table; "
            "`stateward inspect` without task options still lists its resources after that",
        )
    raise InspectFailed(
        reader.path,
        f"has schema version {found}, from an older stateward (this one reads {latest})",
        hint=f"open it once with this stateward's {store}, which brings the schema up to date",
    )


def _resources(reader: StoreReader, *, kind: str | None, limit: int) -> tuple[list[HeadRow], bool]:
    """Up to ``limit`` resource heads by id, and whether more exist."""
    found = list(reader.heads(kind=kind, limit=limit + 1))
    return found[:limit], len(found) > limit


@dataclass(frozen=True, slots=True)
class _Payload:
    """A journal payload as shown: a preview for tables, the JSON of its value, or why not.

    Attributes:
        preview: one line of text for a table.
        json: the value encoded as JSON, when it was read whole and decoded.
        error: why there is no value (undecodable, or cut).
        cut: bytes not read.
    """

    preview: str
    json: msgspec.Raw | None
    error: str | None = None
    cut: int = 0


def _payload(value: RawCell) -> _Payload | None:
    if value.type == "null":
        return None
    if value.type not in ("blob", "text") or not isinstance(value.data, bytes):
        error = f"undecodable msgpack: the payload is {value.describe()}, expected bytes"
        return _Payload(f"<{error}>", None, error)
    if value.whole:
        try:
            decoded = _msgpack(value.data, complete=True)
        except _Undecodable as exc:
            error = f"undecodable msgpack: {exc}"
            return _Payload(f"<{error}>", None, error)
        return _Payload(
            _preview(decoded, TEXT_BYTES), msgspec.Raw(_json.encode(_jsonable(decoded)))
        )
    cut = value.size - len(value.data)
    error = (
        f"payload of {value.size:,} bytes is larger than the {PAYLOAD_BYTES:,} bytes inspect "
        f"reads: {cut:,} bytes cut"
    )
    try:
        partial = _msgpack(value.data, complete=False)
    except _Undecodable as exc:
        return _Payload(f"<undecodable msgpack: {exc}>", None, error, cut)
    shown = "" if partial is _NOTHING else _preview(partial, TEXT_BYTES)
    return _Payload(shown, None, error, cut)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A journal record as shown: the row as read, its payload decoded for display."""

    row: JournalRow
    payload: _Payload | None


def _history(
    reader: StoreReader, resource_id: str, *, limit: int
) -> tuple[HeadRow, list[_Entry], int]:
    """A resource's head, its last ``limit`` journal records oldest first, and how many it has.

    Raises:
        InspectFailed: there is no such resource.
    """
    head = reader.head(resource_id)
    if head is None:
        path = reader.path
        raise InspectFailed(
            path,
            f"has no resource {resource_id!r}",
            hint=f"`stateward inspect {printable(path)}` lists the resources it holds",
        )
    total = reader.journal_count(resource_id)
    rows = reader.journal(resource_id, limit=limit, payload_bytes=PAYLOAD_BYTES)
    entries = [_Entry(row, _payload(row.payload)) for row in rows]
    return head, entries[::-1], total


@dataclass(frozen=True, slots=True)
class _TaskRow:
    """A task document as a list shows it: its indexed columns and a summary of its record.

    Attributes:
        id, resource_id, status, created, updated: the indexed columns (``id`` is the
            document's key).
        kind, flow_version, error: from the record, when it decodes.
        decode_error: why the record does not decode.
        errors, cut: the columns that cannot be decoded, and the texts cut.
    """

    id: str | None
    resource_id: str | None
    status: str | None
    created: float | None
    updated: float | None
    kind: str | None
    flow_version: int | None
    error: str | None
    decode_error: str | None
    errors: Mapping[str, str]
    cut: Mapping[str, int]


def _task_record(value: RawCell) -> tuple[TaskRecord | None, str | None]:
    """The task record of a document's body, or why it cannot be read."""
    if value.type not in ("blob", "text") or not isinstance(value.data, bytes):
        return None, f"undecodable task record: the body is {value.describe()}, expected bytes"
    if not value.whole:
        return None, (
            f"undecodable task record: {value.size:,} bytes, more than the {TASK_BYTES:,} "
            "bytes inspect reads"
        )
    try:
        return msgspec.convert(_msgpack(value.data, complete=True), TaskRecord), None
    except _Undecodable as exc:
        return None, f"undecodable task record: not msgpack: {exc}"
    except msgspec.ValidationError as exc:
        return None, f"undecodable task record: {exc}"


def _task_row(row: DocumentRow) -> tuple[_TaskRow, TaskRecord | None]:
    record, decode_error = _task_record(row.body)
    # A task's key is its id: its field, and the field its messages name, is "id".
    errors = {name: why for name, why in row.errors.items() if name != "key"}
    if "key" in row.errors:
        errors["id"] = "id" + row.errors["key"].removeprefix("key")
    cut = {("id" if name == "key" else name): size for name, size in row.cut.items()}
    found = _TaskRow(
        id=row.key,
        resource_id=row.resource_id,
        status=row.status,
        created=row.created,
        updated=row.updated,
        kind=record.kind if record is not None else None,
        flow_version=record.flow_version if record is not None else None,
        error=_task_error(record) if record is not None else None,
        decode_error=decode_error,
        errors=errors,
        cut=cut,
    )
    return found, record


def _task(reader: StoreReader, task_id: str) -> TaskRecord:
    """One task record.

    Raises:
        InspectFailed: there is no such task, or its record does not decode.
    """
    path = reader.path
    row = reader.document(TASKS, task_id, body_bytes=TASK_BYTES)
    if row is None:
        raise InspectFailed(
            path,
            f"has no task {task_id!r}",
            hint=f"`stateward inspect {printable(path)} --resource ID --tasks` lists a "
            "resource's tasks",
        )
    found, record = _task_row(row)
    if record is None:
        raise InspectFailed(
            path,
            f"holds task {task_id!r} but its record cannot be read ({found.decode_error})",
            hint="the row was not written by this stateward's flow engine; check the file",
        )
    return record


def _task_rows(rows: Iterable[DocumentRow]) -> list[_TaskRow]:
    """Task rows, one record decoded at a time (only its summary is kept)."""
    return [_task_row(row)[0] for row in rows]


def _resource_tasks(
    reader: StoreReader, resource_id: str, *, limit: int
) -> tuple[list[_TaskRow], int]:
    """A resource's last ``limit`` tasks, newest first, and how many it has.

    Raises:
        InspectFailed: the resource has no tasks and is not a stored resource either.
    """
    total = reader.document_count(TASKS, resource_id=resource_id)
    if not total and reader.head(resource_id) is None:
        path = reader.path
        raise InspectFailed(
            path,
            f"has no resource {resource_id!r} and no task for it",
            hint=f"`stateward inspect {printable(path)}` lists the resources it holds",
        )
    rows = reader.documents(TASKS, resource_id=resource_id, limit=limit, body_bytes=TASK_BYTES)
    return _task_rows(rows), total


def _parked_tasks(reader: StoreReader, *, limit: int) -> tuple[list[_TaskRow], int]:
    """The last ``limit`` parked tasks, newest first, and how many there are."""
    parked = TaskStatus.PARKED.value
    total = reader.document_count(TASKS, status=parked)
    rows = reader.documents(TASKS, status=parked, limit=limit, body_bytes=TASK_BYTES)
    return _task_rows(rows), total


# --- rendering ---------------------------------------------------------------------------


def _iso_time(at: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC time with milliseconds."""
    try:
        return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return repr(at)


def _iso_or_none(at: float | None) -> str | None:
    return _iso_time(at) if at is not None else None


def _text(value: str) -> Text:
    """A table cell or line: escaped, never read as markup."""
    return Text(printable(value))


def _optional(value: str | None) -> Text:
    return _text(value) if value is not None else Text("-", style="dim")


def _undecodable(reason: str) -> Text:
    return Text(printable(f"<undecodable: {reason}>"), style="red")


def _field(value: str | None, name: str, errors: Mapping[str, str]) -> str:
    """A field for a title or a composed cell: its text, or why it cannot be shown."""
    if name in errors:
        return f"<undecodable: {errors[name]}>"
    return "-" if value is None else value


def _cell(value: str | None, name: str, errors: Mapping[str, str]) -> Text:
    """A table cell of one field: its text, ``-`` for none, or why it cannot be shown."""
    if name in errors:
        return _undecodable(errors[name])
    return _optional(value)


def _time_cell(at: float | None, name: str, errors: Mapping[str, str]) -> Text:
    return _cell(_iso_or_none(at), name, errors)


def _head_json(head: HeadRow) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": head.id,
        "kind": head.kind,
        "state": head.state,
        "revision": head.revision,
        "updated": head.updated,
        "updated_iso": _iso_or_none(head.updated),
        "quarantined": head.quarantined,
    }
    if head.errors:
        found["errors"] = head.errors
    if head.cut:
        found["cut"] = head.cut
    return found


def _entry_json(entry: _Entry) -> dict[str, Any]:
    found: dict[str, Any] = {
        "sequence": entry.row.sequence,
        "at": entry.row.at,
        "at_iso": _iso_or_none(entry.row.at),
        "source": entry.row.source,
        "event": entry.row.event,
        "target": entry.row.target,
        "task_id": entry.row.task_id,
        "cause": entry.row.cause,
        "payload": entry.payload.json if entry.payload is not None else None,
    }
    payload = entry.payload
    if payload is not None and payload.error is not None:
        found["payload_error"] = payload.error
        if payload.cut:
            found["payload_preview"] = payload.preview
    if entry.row.errors:
        found["errors"] = entry.row.errors
    if entry.row.cut:
        found["cut"] = entry.row.cut
    return found


def _payload_text(payload: _Payload | None) -> Text:
    if payload is None:
        return Text("")
    if payload.cut:
        return Text(printable(_clip(payload.preview, PAYLOAD_WIDTH))) + Text(
            f" [{payload.cut:,} bytes cut]", style="yellow"
        )
    if payload.error is not None:
        return Text(printable(f"<{payload.error}>"), style="red")
    return _text(_clip(payload.preview, PAYLOAD_WIDTH))


def _resources_table(path: str, found: list[HeadRow], kind: str | None) -> Table:
    which = f" of kind {kind!r}" if kind is not None else ""
    table = Table(title=_text(f"resources{which} in {path}"))
    table.add_column("id")
    table.add_column("kind")
    table.add_column("state")
    table.add_column("revision", justify="right")
    table.add_column("updated (UTC)")
    table.add_column("quarantined")
    for head in found:
        errors = head.errors
        revision = str(head.revision) if head.revision is not None else None
        table.add_row(
            _cell(head.id, "id", errors),
            _cell(head.kind, "kind", errors),
            _cell(head.state, "state", errors),
            _cell(revision, "revision", errors),
            _time_cell(head.updated, "updated", errors),
            Text(printable(head.quarantined), style="red")
            if head.quarantined
            else _cell("", "quarantined", errors),
        )
    return table


def _history_table(head: HeadRow, entries: list[_Entry]) -> Table:
    errors = head.errors
    revision = str(head.revision) if head.revision is not None else None
    table = Table(
        title=_text(
            f"{_field(head.id, 'id', errors)} ({_field(head.kind, 'kind', errors)}): "
            f"{_field(head.state, 'state', errors)} at revision "
            f"{_field(revision, 'revision', errors)}"
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
        row = entry.row
        errors = row.errors
        sequence = str(row.sequence) if row.sequence is not None else None
        transition = _text(
            f"{_field(row.source, 'source', errors)} → {_field(row.target, 'target', errors)}"
        )
        if "source" in errors or "target" in errors:
            transition.stylize("red")
        table.add_row(
            _cell(sequence, "sequence", errors),
            _time_cell(entry.row.at, "at", errors),
            transition,
            _cell(entry.row.event, "event", errors),
            _cell(entry.row.task_id, "task_id", errors),
            _cell(entry.row.cause, "cause", errors),
            _payload_text(entry.payload),
        )
    return table


def _time_text(at: float | None) -> Text:
    return Text(_iso_time(at)) if at is not None else Text("-", style="dim")


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
        return _clip(kind + record.error_message, TEXT_BYTES)
    if record.status is TaskStatus.PARKED:
        because = _parked_because(record)
        return _clip(because, TEXT_BYTES) if because is not None else None
    return None


def _step_error(step: StepRecord) -> str | None:
    if step.error_type is None and step.error_message is None:
        return None
    return f"{step.error_type or 'error'}: {step.error_message or ''}"


def _long(value: str | None) -> Text:
    """A text of a task record in a cell: at most :data:`TEXT_BYTES` characters."""
    return _optional(_clip(value, TEXT_BYTES) if value is not None else None)


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
    return Text(printable(status), style=style)


def _task_json(record: TaskRecord) -> dict[str, Any]:
    found: dict[str, Any] = _jsonable(record)
    found["created_iso"] = _iso_time(record.created)
    found["updated_iso"] = _iso_time(record.updated)
    found["error"] = _task_error(record)
    for step in found["steps"]:
        step["started_iso"] = _iso_or_none(step["started"])
        step["finished_iso"] = _iso_or_none(step["finished"])
    for event in found["history"]:
        event["at_iso"] = _iso_time(event["at"])
    return found


def _task_row_json(row: _TaskRow) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "flow_version": row.flow_version,
        "resource_id": row.resource_id,
        "status": row.status,
        "created": row.created,
        "created_iso": _iso_or_none(row.created),
        "updated": row.updated,
        "updated_iso": _iso_or_none(row.updated),
        "error": row.error,
    }
    if row.decode_error is not None:
        found["decode_error"] = row.decode_error
    if row.errors:
        found["errors"] = row.errors
    if row.cut:
        found["cut"] = row.cut
    return found


def _task_fields(record: TaskRecord) -> Table:
    table = Table(title=_text(f"task {_clip(record.id, TEXT_BYTES)}"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("id", _long(record.id))
    table.add_row("kind", _long(record.kind))
    table.add_row("flow version", Text(str(record.flow_version)))
    table.add_row("resource", _long(record.resource_id))
    table.add_row("status", _status_text(record.status.value))
    table.add_row("created (UTC)", Text(_iso_time(record.created)))
    table.add_row("updated (UTC)", Text(_iso_time(record.updated)))
    table.add_row("idempotency key", _long(record.idempotency_key))
    error = _task_error(record)
    table.add_row("error", Text(printable(error), style="red") if error else _optional(None))
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
        delays = ", ".join(f"{d:.3f}s" for d in step.delays)
        table.add_row(
            Text(str(number)),
            _long(step.name),
            _status_text(step.status.value),
            Text(str(step.attempts)),
            _time_text(step.started),
            _time_text(step.finished),
            Text(printable(_clip(error, TEXT_BYTES)), style="red") if error else _optional(None),
            _long(delays) if delays else _optional(None),
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
            Text(_iso_time(event.at)), _long(event.event), _long(event.step), _long(event.detail)
        )
    return table


def _tasks_table(title: str, rows: list[_TaskRow], *, parked: bool) -> Table:
    """A resource's tasks (status, error), or parked tasks (resource, version, why)."""
    table = Table(title=_text(title))
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
        errors = row.errors
        if row.decode_error is not None:
            error = Text(printable(f"<{row.decode_error}>"), style="red")
        else:
            error = Text(printable(row.error), style="red") if row.error else _optional(None)
        cells: list[RenderableType] = [_cell(row.id, "id", errors), _long(row.kind)]
        if parked:
            cells.append(_cell(row.resource_id, "resource_id", errors))
            version = str(row.flow_version) if row.flow_version is not None else None
            cells.append(_optional(version))
        elif "status" in errors:
            cells.append(_undecodable(errors["status"]))
        else:
            cells.append(_status_text(row.status))
        cells.append(_time_cell(row.created, "created", errors))
        cells.append(_time_cell(row.updated, "updated", errors))
        cells.append(error)
        table.add_row(*cells)
    return table


# --- views -------------------------------------------------------------------------------

#: What a view returns: the JSON document, and the tables and notes for people.
_Rendered = tuple[dict[str, Any], RenderableType]


def _view_resources(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    found, more = _resources(reader, kind=options.kind, limit=options.limit)
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "kind": options.kind,
        "limit": options.limit,
        "truncated": more,
        "resources": [_head_json(head) for head in found],
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
        parts.append(_text("no resources" + (f" of kind {options.kind!r}" if options.kind else "")))
    return document, Group(*parts)


def _view_history(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    assert options.resource is not None
    head, entries, total = _history(reader, options.resource, limit=options.limit)
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "resource": _head_json(head),
        "limit": options.limit,
        "total": total,
        "truncated": total > len(entries),
        "history": [_entry_json(e) for e in entries],
    }
    parts: list[RenderableType] = []
    if head.quarantined is not None:
        parts.append(Text(printable(f"quarantined: {head.quarantined}"), style="bold red"))
    parts.append(_history_table(head, entries))
    if total > len(entries):
        parts.append(
            Text(
                f"showing the last {len(entries)} of {total} transitions; raise --limit for more",
                style="yellow",
            )
        )
    return document, Group(*parts)


def _view_task(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    assert options.task is not None
    record = _task(reader, options.task)
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "task": _task_json(record),
    }
    parts: list[RenderableType] = [
        _task_fields(record),
        _steps_table(record),
        _task_history_table(record),
    ]
    return document, Group(*parts)


def _view_resource_tasks(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    assert options.resource is not None
    rows, total = _resource_tasks(reader, options.resource, limit=options.limit)
    document = {
        "database": path,
        "schema_version": reader.schema_version,
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
        parts.append(_text(f"{options.resource} has no tasks"))
    return document, Group(*parts)


def _view_parked(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    rows, total = _parked_tasks(reader, limit=options.limit)
    document = {
        "database": path,
        "schema_version": reader.schema_version,
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


def _timer_row(row: DocumentRow) -> dict[str, Any]:
    """A pending timer's fields, from its document (the id and due time from the indexed
    columns, the rest from its body, or why that cannot be read)."""
    found: dict[str, Any] = {
        "id": row.key,
        "at": _iso_or_none(row.created),
        "owner": row.resource_id,
        "name": None,
        "target": None,
        "error": None,
    }
    data = row.body.data
    if not isinstance(data, bytes) or not row.body.whole:
        found["error"] = "body not readable in full"
        return found
    try:
        timer = msgspec.msgpack.decode(data, type=Timer)
    except msgspec.MsgspecError as exc:
        found["error"] = f"body is not a timer: {exc}"
        return found
    found.update(name=timer.name, target=timer.address, owner=timer.owner)
    return found


def _view_timers(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    total = reader.document_count(TIMER_DOCUMENTS, status="pending")
    rows = [
        _timer_row(row)
        for row in reader.documents(
            TIMER_DOCUMENTS, status="pending", limit=options.limit, oldest_first=True
        )
    ]
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "limit": options.limit,
        "total": total,
        "truncated": total > len(rows),
        "timers": rows,
    }
    table = Table(title=_text(f"pending timers in {path}, soonest first"))
    for column in ("id", "due (UTC)", "name", "owner", "delivered to"):
        table.add_column(column)
    for row in rows:
        cells = [_optional(row[k]) for k in ("id", "at", "name", "owner", "target")]
        if row["error"] is not None:
            cells[2] = Text(printable(f"<{row['error']}>"), style="red")
        table.add_row(*cells)
    parts: list[RenderableType] = [table]
    if total > len(rows):
        parts.append(
            Text(
                f"showing the soonest {len(rows)} of {total} pending timers; raise --limit "
                "for more",
                style="yellow",
            )
        )
    elif not rows:
        parts.append(Text("no pending timers"))
    return document, Group(*parts)


#: The resource kinds of migrations, one per kind of move.
MIGRATION_KINDS = tuple(m.name for m in (MIGRATE, RESIZE, LIVE_MIGRATE, EVACUATE))
#: What the migrations view folds from a migration's journal: the payload field, by event.
_MIGRATION_FIELDS = {
    "start": ("kind", "instance_id", "source", "old_flavor", "new_flavor"),
    "claimed": ("destination",),
    "failed": ("reason",),
    "cancelled": ("reason",),
    "park": ("reason",),
}


def _migration_row(reader: StoreReader, head: HeadRow) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": head.id,
        "state": head.state,
        "kind": None,
        "instance_id": None,
        "source": None,
        "destination": None,
        "old_flavor": None,
        "new_flavor": None,
        "reason": None,
        "updated": _iso_or_none(head.updated),
        "error": None,
    }
    if head.id is None:
        found["error"] = "id not readable"
        return found
    for row in reversed(reader.journal(head.id, limit=MAX_LIMIT)):
        fields = _MIGRATION_FIELDS.get(row.event or "", ())
        payload = _payload(row.payload) if fields else None
        if payload is None or payload.json is None:
            if payload is not None:
                found["error"] = payload.error
            continue
        data = msgspec.json.decode(payload.json)
        if isinstance(data, dict):
            found.update({k: data[k] for k in fields if k in data})
    return found


def _view_migrations(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    heads = sorted(
        (h for kind in MIGRATION_KINDS for h in reader.heads(kind=kind, limit=options.limit + 1)),
        key=lambda h: h.id or "",
    )
    rows = [_migration_row(reader, h) for h in heads[: options.limit]]
    more = len(heads) > options.limit
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "limit": options.limit,
        "truncated": more,
        "migrations": rows,
    }
    table = Table(title=_text(f"migrations in {path}, by id"))
    columns = ("id", "kind", "instance_id", "source", "destination", "state", "reason")
    for column in ("id", "kind", "instance", "from", "to", "state", "reason"):
        table.add_column(column)
    for row in rows:
        cells = [_optional(row[k]) for k in columns]
        if row["old_flavor"] != row["new_flavor"] and row["new_flavor"] is not None:
            cells[1] = _text(f"{row['kind']} {row['old_flavor']}→{row['new_flavor']}")
        if row["error"] is not None:
            cells[6] = Text(printable(f"<{row['error']}>"), style="red")
        table.add_row(*cells)
    parts: list[RenderableType] = [table]
    if more:
        parts.append(
            Text(
                f"showing the first {len(rows)} migrations; raise --limit for more", style="yellow"
            )
        )
    elif not rows:
        parts.append(Text("no migrations"))
    return document, Group(*parts)


def _lease_row(reader: StoreReader, head: HeadRow) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": head.id,
        "state": head.state,
        "project": None,
        "start": None,
        "end": None,
        "reservations": None,
        "on_end": None,
        "holds": [],
        "reason": None,
        "error": None,
    }
    if head.id is None:
        found["error"] = "id not readable"
        return found
    for row in reversed(reader.journal(head.id, limit=MAX_LIMIT)):
        if row.event not in ("create", "created", "updated", "failed", "update_failed", "ended"):
            continue
        payload = _payload(row.payload)
        if payload is None or payload.json is None:
            if payload is not None:
                found["error"] = payload.error
            continue
        data = msgspec.json.decode(payload.json)
        if not isinstance(data, dict):
            continue
        spec = data.get("spec")
        if isinstance(spec, dict):
            found.update({k: spec.get(k) for k in ("project", "start", "end", "on_end")})
            found["reservations"] = spec.get("reservations")
        if row.event in ("created", "updated"):
            found["holds"] = data.get("holds") or []
        if row.event == "ended":
            found["holds"] = []
        if row.event in ("failed", "update_failed"):
            found["reason"] = data.get("reason")
    return found


def _reserved(reservations: Any) -> str:
    if not isinstance(reservations, list):
        return "-"
    parts = []
    for r in reservations:
        if isinstance(r, dict) and r.get("kind") == "host":
            named = r.get("hosts") or []
            parts.append(f"hosts {','.join(named)}" if named else f"{r.get('count')} host(s)")
        elif isinstance(r, dict):
            parts.append(f"{r.get('count')} x {r.get('flavor')}")
    return "; ".join(parts) or "-"


def _view_leases(reader: StoreReader, options: Options) -> _Rendered:
    path = reader.path
    heads = sorted(reader.heads(kind="lease", limit=options.limit + 1), key=lambda h: h.id or "")
    rows = [_lease_row(reader, h) for h in heads[: options.limit]]
    more = len(heads) > options.limit
    calendars: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        for hold in row["holds"]:
            if isinstance(hold, dict):
                calendars.setdefault(str(hold.get("host")), []).append(
                    {
                        "lease": row["id"],
                        "start": row["start"],
                        "end": row["end"],
                        "amount": hold.get("amount"),
                        "whole": hold.get("whole", False),
                    }
                )
    for holds in calendars.values():
        holds.sort(key=lambda h: (h["start"] or 0, h["lease"] or ""))
    document = {
        "database": path,
        "schema_version": reader.schema_version,
        "limit": options.limit,
        "truncated": more,
        "leases": rows,
        "calendars": dict(sorted(calendars.items())),
    }
    table = Table(title=_text(f"leases in {path}, by id"))
    for column in ("id", "state", "project", "start", "end", "reserves", "on end", "hosts"):
        table.add_column(column)
    for row in rows:
        hosts = sorted({str(h.get("host")) for h in row["holds"] if isinstance(h, dict)})
        cells = [
            _optional(row["id"]),
            _optional(row["state"]),
            _optional(row["project"]),
            _optional(_iso_or_none(row["start"])),
            _optional(_iso_or_none(row["end"])),
            _text(_reserved(row["reservations"])),
            _optional(row["on_end"]),
            _text(", ".join(hosts) or "-"),
        ]
        if row["error"] is not None:
            cells[-1] = Text(printable(f"<{row['error']}>"), style="red")
        table.add_row(*cells)
    parts: list[RenderableType] = [table]
    if calendars:
        held = Table(title=_text("holds by host, by start"))
        for column in ("host", "lease", "from", "to", "amount"):
            held.add_column(column)
        for host, holds in sorted(calendars.items()):
            for hold in holds:
                amount = hold["amount"] if isinstance(hold["amount"], dict) else {}
                size = (
                    "whole host"
                    if hold["whole"]
                    else (
                        f"{amount.get('vcpus')} vcpus, {amount.get('ram_mb')} MB, "
                        f"{amount.get('disk_gb')} GB"
                    )
                )
                held.add_row(
                    _text(host),
                    _optional(hold["lease"]),
                    _optional(_iso_or_none(hold["start"])),
                    _optional(_iso_or_none(hold["end"])),
                    _text(size),
                )
        parts.append(held)
    if more:
        parts.append(
            Text(f"showing the first {len(rows)} leases; raise --limit for more", style="yellow")
        )
    elif not rows:
        parts.append(Text("no leases"))
    return document, Group(*parts)


#: Each view: whether the options select it, and how it reads and renders.
VIEWS: tuple[
    tuple[str, Callable[[Options], bool], Callable[[StoreReader, Options], _Rendered]],
    ...,
] = (
    ("task", lambda o: o.task is not None, _view_task),
    ("parked", lambda o: o.parked, _view_parked),
    ("timers", lambda o: o.timers, _view_timers),
    ("migrations", lambda o: o.migrations, _view_migrations),
    ("leases", lambda o: o.leases, _view_leases),
    ("tasks", lambda o: o.resource is not None and o.tasks, _view_resource_tasks),
    ("history", lambda o: o.resource is not None, _view_history),
    ("resources", lambda o: True, _view_resources),
)
#: The views that read task records (they need the documents table).
TASK_VIEWS = frozenset({"task", "parked", "tasks", "timers"})
#: The store collection timers are kept in.
TIMER_DOCUMENTS = "timer"


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
    try:
        with open_store_reader(
            options.db, text_bytes=TEXT_BYTES, busy_timeout=BUSY_TIMEOUT, schema=options.schema
        ) as reader:
            _check_version(reader, tasks=name in TASK_VIEWS)
            document, renderable = view(reader, options)
    except StoreUnavailable as exc:
        raise _failed(str(options.db), exc) from exc
    if options.as_json:
        stream = out if out is not None else sys.stdout
        stream.write(_json_text(document) + "\n")
    else:
        console.print(renderable)

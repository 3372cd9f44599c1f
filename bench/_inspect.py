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
- ``parked``: the tasks parked because their flow's definition changed, newest first.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import re
import sqlite3
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from stateward.flows import TASKS, StepRecord, TaskRecord, TaskStatus
from stateward.runtime import SCHEMA_VERSION, SchemaError, StatewardError

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


# --- bounded cells -----------------------------------------------------------------------


def _bounded(column: str, limit: int = TEXT_BYTES) -> str:
    """SQL for three values of ``column``: its type, its size in bytes, and the column
    itself with at most ``limit`` bytes of a text or blob (read as bytes, decoded here)."""
    return (
        f"typeof({column}), length(CAST({column} AS BLOB)), "
        f"CASE WHEN typeof({column}) IN ('text', 'blob') "
        f"THEN substr(CAST({column} AS BLOB), 1, {limit}) ELSE {column} END"
    )


@dataclass(frozen=True, slots=True)
class _Column:
    """A column a view reads, and how.

    Attributes:
        name: the field it becomes (in JSON and in messages).
        kind: how it is decoded: ``text``, ``optional`` (text or null), ``integer``,
            ``number`` (an integer or a real), or ``raw`` (left to the caller).
        limit: bytes of a text or blob read at most.
        sql: the column in the query, when it is not ``name``.
    """

    name: str
    kind: Literal["text", "optional", "integer", "number", "raw"]
    limit: int = TEXT_BYTES
    sql: str | None = None


def _select(columns: Sequence[_Column], source: str) -> str:
    """A query of ``columns`` from ``source``, each read bounded."""
    return f"SELECT {', '.join(_bounded(c.sql or c.name, c.limit) for c in columns)} FROM {source}"


@dataclass(frozen=True, slots=True)
class _Value:
    """One column as read: SQLite's type for it, its size in bytes, and its bounded value."""

    type: str
    size: int
    data: Any

    @classmethod
    def read(cls, row: Sequence[Any], start: int) -> _Value:
        """The three values :func:`_bounded` selected, from ``row[start]`` on."""
        kind, size, data = row[start : start + 3]
        if kind in ("text", "blob") and data is None:
            data = b""  # ``substr`` of an empty text or blob is null
        return cls(kind, size or 0, data)

    @property
    def whole(self) -> bool:
        """All of a text or blob was read."""
        return not isinstance(self.data, bytes) or len(self.data) >= self.size


def _describe(value: _Value) -> str:
    """What a value is, for a message: ``text 'abc'``, ``a real 1.5``, ``null``, ..."""
    if value.type == "null":
        return "null"
    if value.type == "integer":
        return f"an integer {value.data}"
    if value.type == "real":
        return f"a real {value.data!r}"
    if value.type == "text":
        shown = bytes(value.data[:40]).decode("utf-8", errors="backslashreplace")
        return f"text {shown!r}" + ("…" if value.size > 40 else "")
    return f"a blob of {value.size:,} bytes"


def _bytes_shown(data: bytes, size: int) -> str:
    return repr(data[:40]) + ("…" if size > 40 else "")


class _Fields:
    """The columns of one row, decoded by kind into :attr:`values`.

    A value that cannot be decoded is noted in :attr:`errors` (by field) and read as None;
    a text that was cut is noted in :attr:`cut` with the bytes not read; a ``raw`` column
    is its :class:`_Value`.
    """

    def __init__(self, columns: Sequence[_Column], row: Sequence[Any]) -> None:
        self._values = {c.name: _Value.read(row, 3 * i) for i, c in enumerate(columns)}
        self.errors: dict[str, str] = {}
        self.cut: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        for column in columns:
            name = column.name
            if column.kind == "raw":
                self.values[name] = self._values[name]
            elif column.kind == "integer":
                self.values[name] = self.integer(name)
            elif column.kind == "number":
                self.values[name] = self.number(name)
            else:
                self.values[name] = self.text(name, optional=column.kind == "optional")

    def _bad(self, name: str, problem: str) -> None:
        self.errors[name] = f"{name} {problem}"

    def text(self, name: str, *, optional: bool = False) -> str | None:
        """A text column, its cut marked; None when it is null and may be."""
        value = self._values[name]
        if value.type == "null" and optional:
            return None
        if value.type != "text":
            self._bad(name, f"is {_describe(value)}, expected text")
            return None
        try:
            text: str = codecs.getincrementaldecoder("utf-8")().decode(
                value.data, final=value.whole
            )
        except UnicodeDecodeError:
            self._bad(name, f"is not UTF-8: {_bytes_shown(value.data, value.size)}")
            return None
        if not value.whole:
            cut = value.size - len(value.data)
            self.cut[name] = cut
            text += f"… [{cut:,} bytes cut]"
        return text

    def integer(self, name: str) -> int | None:
        """An integer column."""
        value = self._values[name]
        if value.type != "integer":
            self._bad(name, f"is {_describe(value)}, expected an integer")
            return None
        found: int = value.data
        return found

    def number(self, name: str) -> float | None:
        """A real column (an integer is a number too)."""
        value = self._values[name]
        if value.type not in ("integer", "real"):
            self._bad(name, f"is {_describe(value)}, expected a number")
            return None
        return float(value.data)


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
    if not path.is_file():
        # A FIFO would block SQLite's open until some writer appeared; a device is no file.
        raise InspectFailed(
            shown,
            "is not a regular file",
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
        row = db.execute(
            f"SELECT {_bounded('m', 40)} FROM (SELECT max(version) AS m FROM schema_version)"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        raise InspectFailed(
            path,
            "is a SQLite database but not a stateward one (it has no schema_version table)",
            hint="give the file a stateward SqliteStore wrote",
        ) from exc
    version = _Value.read(row, 0)
    if version.type not in ("integer", "null"):
        raise InspectFailed(
            path,
            f"its schema_version table holds {_describe(version)}, not a version number",
            hint="give the file a stateward SqliteStore wrote",
        )
    found: int = version.data or 0
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
            if found <= 0
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


@dataclass(frozen=True, slots=True)
class _Head:
    """A resource head as read; a field that cannot be decoded is None, with its reason."""

    id: str | None
    kind: str | None
    state: str | None
    revision: int | None
    updated: float | None
    quarantined: str | None
    errors: dict[str, str] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)


_HEAD_COLUMNS = (
    _Column("id", "text", sql="r.id"),
    _Column("kind", "text", sql="r.kind"),
    _Column("state", "text", sql="r.state"),
    _Column("revision", "integer", sql="r.revision"),
    _Column("updated", "number", sql="r.updated"),
    _Column("quarantined", "optional", sql="q.reason"),
)
_HEAD_SELECT = _select(_HEAD_COLUMNS, "resources r LEFT JOIN quarantine q ON q.resource_id = r.id")


def _head(row: Sequence[Any]) -> _Head:
    fields = _Fields(_HEAD_COLUMNS, row)
    return _Head(**fields.values, errors=fields.errors, cut=fields.cut)


def _resources(db: sqlite3.Connection, *, kind: str | None, limit: int) -> tuple[list[_Head], bool]:
    """Up to ``limit`` resource heads by id, and whether more exist."""
    found: list[_Head] = []
    more = False
    for row in db.execute(
        f"{_HEAD_SELECT} WHERE (? IS NULL OR r.kind = ?) ORDER BY r.id LIMIT ?",
        (kind, kind, limit + 1),
    ):
        if len(found) == limit:
            more = True
            break
        found.append(_head(row))
    return found, more


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


def _payload(value: _Value) -> _Payload | None:
    if value.type == "null":
        return None
    if value.type not in ("blob", "text"):
        error = f"undecodable msgpack: the payload is {_describe(value)}, expected bytes"
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
    """A journal record as read; a field that cannot be decoded is None, with its reason."""

    sequence: int | None
    source: str | None
    event: str | None
    target: str | None
    task_id: str | None
    cause: str | None
    at: float | None
    payload: _Payload | None
    errors: dict[str, str]
    cut: dict[str, int]


_ENTRY_COLUMNS = (
    _Column("sequence", "integer"),
    _Column("source", "text"),
    _Column("event", "text"),
    _Column("target", "text"),
    _Column("task_id", "optional"),
    _Column("cause", "optional"),
    _Column("at", "number"),
    _Column("payload", "raw", PAYLOAD_BYTES),
)
_ENTRY_SELECT = _select(_ENTRY_COLUMNS, "journal")


def _entry(row: Sequence[Any]) -> _Entry:
    fields = _Fields(_ENTRY_COLUMNS, row)
    values = {**fields.values, "payload": _payload(fields.values["payload"])}
    return _Entry(**values, errors=fields.errors, cut=fields.cut)


def _history(
    db: sqlite3.Connection, path: str, resource_id: str, *, limit: int
) -> tuple[_Head, list[_Entry], int]:
    """A resource's head, its last ``limit`` journal records oldest first, and how many it has.

    Raises:
        InspectFailed: there is no such resource.
    """
    row = db.execute(f"{_HEAD_SELECT} WHERE r.id = ?", (resource_id,)).fetchone()
    if row is None:
        raise InspectFailed(
            path,
            f"has no resource {resource_id!r}",
            hint=f"`stateward inspect {printable(path)}` lists the resources it holds",
        )
    (total,) = db.execute(
        "SELECT count(*) FROM journal WHERE resource_id = ?", (resource_id,)
    ).fetchone()
    entries = [
        _entry(found)
        for found in db.execute(
            f"{_ENTRY_SELECT} WHERE resource_id = ? ORDER BY sequence DESC LIMIT ?",
            (resource_id, limit),
        )
    ]
    return _head(row), entries[::-1], int(total)


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
    errors: dict[str, str]
    cut: dict[str, int]


_TASK_COLUMNS = (
    _Column("id", "text", sql="key"),
    _Column("resource_id", "optional"),
    _Column("status", "optional"),
    _Column("created", "number"),
    _Column("updated", "number"),
    _Column("body", "raw", TASK_BYTES),
)
_TASK_SELECT = _select(_TASK_COLUMNS, "documents")


def _task_record(value: _Value) -> tuple[TaskRecord | None, str | None]:
    """The task record of a document's body, or why it cannot be read."""
    if value.type not in ("blob", "text"):
        return None, f"undecodable task record: the body is {_describe(value)}, expected bytes"
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


def _task_row(row: Sequence[Any]) -> tuple[_TaskRow, TaskRecord | None]:
    fields = _Fields(_TASK_COLUMNS, row)
    values = dict(fields.values)
    record, decode_error = _task_record(values.pop("body"))
    found = _TaskRow(
        **values,
        kind=record.kind if record is not None else None,
        flow_version=record.flow_version if record is not None else None,
        error=_task_error(record) if record is not None else None,
        decode_error=decode_error,
        errors=fields.errors,
        cut=fields.cut,
    )
    return found, record


def _task(db: sqlite3.Connection, path: str, task_id: str) -> TaskRecord:
    """One task record.

    Raises:
        InspectFailed: there is no such task, or its record does not decode.
    """
    row = db.execute(
        f"{_TASK_SELECT} WHERE collection = ? AND key = ?", (TASKS, task_id)
    ).fetchone()
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


def _task_rows(db: sqlite3.Connection, where: str, arguments: tuple[Any, ...]) -> list[_TaskRow]:
    """Task rows newest first, one record decoded at a time (only its summary is kept)."""
    return [
        _task_row(row)[0]
        for row in db.execute(
            f"{_TASK_SELECT} WHERE {where} ORDER BY created DESC, key DESC LIMIT ?", arguments
        )
    ]


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
                hint=f"`stateward inspect {printable(path)}` lists the resources it holds",
            )
    rows = _task_rows(db, "collection = ? AND resource_id = ?", (TASKS, resource_id, limit))
    return rows, int(total)


def _parked_tasks(db: sqlite3.Connection, *, limit: int) -> tuple[list[_TaskRow], int]:
    """The last ``limit`` parked tasks, newest first, and how many there are."""
    parked = TaskStatus.PARKED.value
    (total,) = db.execute(
        "SELECT count(*) FROM documents WHERE collection = ? AND status = ?", (TASKS, parked)
    ).fetchone()
    rows = _task_rows(db, "collection = ? AND status = ?", (TASKS, parked, limit))
    return rows, int(total)


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


def _field(value: str | None, name: str, errors: dict[str, str]) -> str:
    """A field for a title or a composed cell: its text, or why it cannot be shown."""
    if name in errors:
        return f"<undecodable: {errors[name]}>"
    return "-" if value is None else value


def _cell(value: str | None, name: str, errors: dict[str, str]) -> Text:
    """A table cell of one field: its text, ``-`` for none, or why it cannot be shown."""
    if name in errors:
        return _undecodable(errors[name])
    return _optional(value)


def _time_cell(at: float | None, name: str, errors: dict[str, str]) -> Text:
    return _cell(_iso_or_none(at), name, errors)


def _head_json(head: _Head) -> dict[str, Any]:
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
        "sequence": entry.sequence,
        "at": entry.at,
        "at_iso": _iso_or_none(entry.at),
        "source": entry.source,
        "event": entry.event,
        "target": entry.target,
        "task_id": entry.task_id,
        "cause": entry.cause,
        "payload": entry.payload.json if entry.payload is not None else None,
    }
    payload = entry.payload
    if payload is not None and payload.error is not None:
        found["payload_error"] = payload.error
        if payload.cut:
            found["payload_preview"] = payload.preview
    if entry.errors:
        found["errors"] = entry.errors
    if entry.cut:
        found["cut"] = entry.cut
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


def _resources_table(path: str, found: list[_Head], kind: str | None) -> Table:
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


def _history_table(head: _Head, entries: list[_Entry]) -> Table:
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
        errors = entry.errors
        sequence = str(entry.sequence) if entry.sequence is not None else None
        transition = _text(
            f"{_field(entry.source, 'source', errors)} → {_field(entry.target, 'target', errors)}"
        )
        if "source" in errors or "target" in errors:
            transition.stylize("red")
        table.add_row(
            _cell(sequence, "sequence", errors),
            _time_cell(entry.at, "at", errors),
            transition,
            _cell(entry.event, "event", errors),
            _cell(entry.task_id, "task_id", errors),
            _cell(entry.cause, "cause", errors),
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


def _view_resources(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    found, more = _resources(db, kind=options.kind, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
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


def _view_history(db: sqlite3.Connection, options: Options) -> _Rendered:
    path = str(options.db)
    assert options.resource is not None
    head, entries, total = _history(db, path, options.resource, limit=options.limit)
    document = {
        "database": path,
        "schema_version": SCHEMA_VERSION,
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
        parts.append(_text(f"{options.resource} has no tasks"))
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
        stream.write(_json_text(document) + "\n")
    else:
        console.print(renderable)

"""Every store's query methods refuse arguments a database cannot take, before touching it.

An int beyond SQLite's 64 bits, a negative sequence, a string with a lone surrogate, a cursor
of the wrong shape or a value of the wrong type raises :class:`InvalidArgument` naming the
parameter, never ``OverflowError``, ``UnicodeEncodeError`` or a :class:`StoreUnavailable`
that would blame the disk; and the store goes on serving every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.runtime import (
    InvalidArgument,
    MemoryStore,
    StatewardError,
    Store,
    StoreUnavailable,
    TransitionRecord,
    Write,
    open_postgres_store,
    open_sqlite_store,
)
from stateward.testing import postgres_server

BIG = 2**63
STORES = ["memory", "sqlite", "postgres"]


@contextlib.asynccontextmanager
async def open_store(kind: str, path: Path) -> AsyncIterator[Store]:
    """A MemoryStore, a SqliteStore at ``path``, or a PostgresStore on a schema of the test
    server made for ``path`` and dropped afterwards."""
    if kind == "memory":
        async with MemoryStore() as memory:
            yield memory
        return
    if kind == "sqlite":
        async with open_sqlite_store(path) as sqlite:
            yield sqlite
        return
    server = postgres_server()
    schema = "test_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    try:
        async with open_postgres_store(server.dsn, schema=schema) as postgres:
            yield postgres
    finally:
        server.drop_schema(schema)


#: A hostile call must end within this (it touches no lock): longer is a hang.
CALL_DEADLINE = 10.0

Query = Callable[[Store], Awaitable[object]]


def write(resource_id: str, sequence: int) -> Write:
    """A Write of ``resource_id`` at revision ``sequence``."""
    record = TransitionRecord(resource_id, sequence, "open", "deposit", "open", None, None, 1.0)
    return Write("account", record, b"\x80" if sequence == 1 else None)


BAD_QUERIES: list[tuple[str, Query, str]] = [
    ("history after 2**63", lambda s: s.history("a", after=BIG), "after"),
    ("history after -1", lambda s: s.history("a", after=-1), "after"),
    ("history after str", lambda s: s.history("a", after="3"), "after"),  # type: ignore[arg-type]
    ("history after float", lambda s: s.history("a", after=1.5), "after"),  # type: ignore[arg-type]
    ("history after bool", lambda s: s.history("a", after=True), "after"),
    ("history limit 2**63", lambda s: s.history("a", limit=BIG), "limit"),
    ("history id int", lambda s: s.history(5), "resource_id"),  # type: ignore[arg-type]
    ("history id surrogate", lambda s: s.history("\ud800"), "resource_id"),
    ("between start nan", lambda s: s.history_between(math.nan, 1.0), "start"),
    ("between end huge", lambda s: s.history_between(0.0, 10**400), "end"),
    ("between start str", lambda s: s.history_between("0", 1.0), "start"),  # type: ignore[arg-type]
    (
        "between after sequence 2**64",
        lambda s: s.history_between(0.0, 9.0, after=(0.0, "a", 2**64)),
        "after[2]",
    ),
    (
        "between after short",
        lambda s: s.history_between(0.0, 9.0, after=(0.0, "a")),  # type: ignore[arg-type]
        "after",
    ),
    (
        "between after id bytes",
        lambda s: s.history_between(0.0, 9.0, after=(0.0, b"a", 1)),  # type: ignore[arg-type]
        "after[1]",
    ),
    ("between limit 2**63", lambda s: s.history_between(0.0, 1.0, limit=BIG), "limit"),
    ("resources after int", lambda s: s.resources(after=5), "after"),  # type: ignore[arg-type]
    ("resources kind bytes", lambda s: s.resources(kind=b"x"), "kind"),  # type: ignore[arg-type]
    ("resources limit 2**63", lambda s: s.resources(limit=BIG), "limit"),
    ("resources limit 0", lambda s: s.resources(limit=0), "limit"),
    ("load int", lambda s: s.load(7), "resource_id"),  # type: ignore[arg-type]
    ("load surrogate", lambda s: s.load("x\udfff"), "resource_id"),
    ("load_many str", lambda s: s.load_many("abc"), "resource_ids"),
    ("load_many ints", lambda s: s.load_many([1, 2]), "resource_ids[]"),  # type: ignore[list-item]
    ("load_many none", lambda s: s.load_many(None), "resource_ids"),  # type: ignore[arg-type]
    ("get_document int", lambda s: s.get_document(1, "k"), "collection"),  # type: ignore[arg-type]
    ("get_document key none", lambda s: s.get_document("c", None), "key"),  # type: ignore[arg-type]
    (
        "find_documents status int",
        lambda s: s.find_documents("c", status=3),  # type: ignore[arg-type]
        "status",
    ),
    (
        "find_documents before key int",
        lambda s: s.find_documents("c", before=(0.0, 5)),  # type: ignore[arg-type]
        "before[1]",
    ),
    (
        "find_documents before created huge",
        lambda s: s.find_documents("c", before=(10**400, "k")),
        "before[0]",
    ),
    ("find_documents limit 2**63", lambda s: s.find_documents("c", limit=BIG), "limit"),
    ("quarantine id none", lambda s: s.quarantine(None, "why"), "resource_id"),  # type: ignore[arg-type]
    ("quarantine reason surrogate", lambda s: s.quarantine("a", "\ud800"), "reason"),
]


@pytest.mark.parametrize(
    ("query", "name"), [(q, n) for _, q, n in BAD_QUERIES], ids=[case for case, _, _ in BAD_QUERIES]
)
@pytest.mark.parametrize("kind", STORES)
async def test_bad_query_arguments_are_invalid_arguments(
    tmp_path: Path, query: Query, name: str, kind: str
) -> None:
    """Each bad query argument raises InvalidArgument naming it; the store stays healthy."""
    async with open_store(kind, tmp_path / "q.db") as store:
        await store.commit(write("a", 1))
        with pytest.raises(InvalidArgument) as info:
            await query(store)
        assert info.value.name == name
        assert store.statistics().degraded is False
        assert store.statistics().quarantined == 0
        assert [r.sequence for r in await store.history("a")] == [1]


async def test_history_after_beyond_64_bits_says_what_fits(tmp_path: Path) -> None:
    """The message of an out-of-range sequence says the range SQLite holds."""
    async with open_sqlite_store(tmp_path / "q.db") as store:
        with pytest.raises(
            InvalidArgument,
            match=r"^after: expected an int .*2\*\*63 - 1.*, got 9223372036854775808$",
        ):
            await store.history("a", after=BIG)


async def test_wide_time_bounds_are_valid(tmp_path: Path) -> None:
    """Infinite time bounds and ints as times are valid: they select everything."""
    async with open_sqlite_store(tmp_path / "q.db") as store:
        await store.commit(write("a", 1))
        assert len(await store.history_between(-math.inf, math.inf)) == 1
        assert len(await store.history_between(0, 2**70)) == 1
        assert len(await store.history_between(0, 9, after=(0, "", 0))) == 1
        assert await store.history("a", after=2**63 - 1) == ()


# --------------------------------------------------------------------------------------------
# Property: any argument to any query gives a result or a typed error, and the store goes on

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([BIG, -BIG - 1, 2**64, 10**400]),
    st.floats(),
    st.text(max_size=4),
    st.sampled_from(["\ud800", "a\udfff", "", "a", "\x00"]),
    st.binary(max_size=4),
    st.tuples(st.floats(), st.text(max_size=2)),
    st.tuples(st.integers(), st.text(max_size=2), st.integers()),
    st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=3),
)

CALLS: dict[str, Callable[[Store, list[Any]], Awaitable[object]]] = {
    "load": lambda s, a: s.load(a[0]),
    "load_many": lambda s, a: s.load_many(a[0]),
    "get_document": lambda s, a: s.get_document(a[0], a[1]),
    "find_documents": lambda s, a: s.find_documents(
        a[0], resource_id=a[1], status=a[2], dedupe=a[3], before=a[4], limit=a[5]
    ),
    "quarantine": lambda s, a: s.quarantine(a[0], a[1]),
    "history": lambda s, a: s.history(a[0], after=a[1], limit=a[2]),
    "history_between": lambda s, a: s.history_between(a[0], a[1], after=a[2], limit=a[3]),
    "resources": lambda s, a: s.resources(kind=a[0], after=a[1], limit=a[2]),
}

#: A resource no generated value can name: it must keep working after every example.
PROBE = "probe-resource-that-no-example-names"


async def run_calls(kind: str, path: Path, calls: list[tuple[str, list[Any]]]) -> None:
    """Make every call; each returns or raises a StatewardError that blames no disk."""
    async with open_store(kind, path) as store:
        for name, arguments in calls:
            try:
                await asyncio.wait_for(CALLS[name](store, arguments), CALL_DEADLINE)
            except StoreUnavailable as exc:
                raise AssertionError(f"{name}{tuple(arguments)!r} blamed the store: {exc}") from exc
            except StatewardError:
                pass
        loaded = await store.load(PROBE)
        revision = loaded.revision if loaded is not None else 0
        await store.commit(write(PROBE, revision + 1))
        assert [r.sequence for r in await store.history(PROBE)][-1] == revision + 1
        assert store.statistics().degraded is False


@pytest.mark.parametrize("kind", STORES)
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(CALLS)), st.lists(ANYTHING, min_size=6, max_size=6)),
        min_size=1,
        max_size=8,
    )
)
def test_property_any_query_argument_gives_a_typed_error(
    kind: str, calls: list[tuple[str, list[Any]]]
) -> None:
    """Any arguments to any query: a result or a typed error, never a hang; the store goes on."""
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run_calls(kind, Path(folder) / "property.db", calls))

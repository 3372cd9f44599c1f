"""The flow engine's public calls refuse bad arguments with InvalidArgument, before the store."""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from flow_support import STORES, open_store
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.flows import TASKS, Busy, Flow, FlowEngine, TaskNotFound, TaskStatus, task
from stateward.runtime import (
    Document,
    Environment,
    InvalidArgument,
    MemoryStore,
    StatewardError,
    VirtualClock,
    Write,
)


async def echo(x: Any) -> Any:
    """Return the flow's input ``x``."""
    return x


ECHO = Flow("echo", task(echo, provides="out"), inputs=("x",))

#: Nested 10,000 lists deep: deeper than msgpack encodes.
DEEP: list[Any] = []
_level = DEEP
for _ in range(10_000):
    _level.append([])
    _level = _level[0]


class CountingStore(MemoryStore):
    """A MemoryStore that counts the reads and writes it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Count, then queue the write."""
        self.calls += 1
        return super().submit(write)

    async def get_document(self, collection: str, key: str) -> Document | None:
        """Count, then read one document."""
        self.calls += 1
        return await super().get_document(collection, key)

    async def find_documents(self, collection: str, **options: Any) -> tuple[Document, ...]:
        """Count, then list documents."""
        self.calls += 1
        return await super().find_documents(collection, **options)


# --------------------------------------------------------------------------------------------
# submit


async def test_non_string_idempotency_key_is_refused_and_nothing_is_written() -> None:
    """An idempotency key of 12345 gets InvalidArgument naming it; no task record is written."""
    store = CountingStore()
    async with store, FlowEngine(store, flows=[ECHO]) as engine:
        with pytest.raises(
            InvalidArgument, match=r"^idempotency_key: expected a non-empty str or None, got 12345$"
        ) as caught:
            await engine.submit(ECHO, resource_id="web-1", inputs={"x": 1}, idempotency_key=12345)  # type: ignore[arg-type]
        assert caught.value.got == 12345
        assert store.calls == 0
        assert await store.find_documents(TASKS) == ()
        assert engine.statistics().running == 0


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"idempotency_key": 12345}, "idempotency_key"),
        ({"idempotency_key": b"key"}, "idempotency_key"),
        ({"idempotency_key": ["key"]}, "idempotency_key"),
        ({"idempotency_key": "\ud800"}, "idempotency_key"),
        ({"resource_id": 5}, "resource_id"),
        ({"resource_id": ""}, "resource_id"),
        ({"resource_id": "web-\udfff"}, "resource_id"),
        ({"resource_id": None}, "resource_id"),
        ({"task_id": 7}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"task_id": "t-\ud800"}, "task_id"),
        ({"inputs": 5}, "inputs"),
        ({"inputs": "x"}, "inputs"),
        ({"inputs": [("x", 1)]}, "inputs"),
        ({"inputs": {1: "one", "x": 1}}, "inputs"),
        ({"inputs": {"x": 1, "\ud800": 2}}, "inputs"),
        ({"inputs": {"x": 2**64}}, "inputs"),
        ({"inputs": {"x": -(2**63) - 1}}, "inputs"),
        ({"inputs": {"x": "\ud800"}}, "inputs"),
        ({"inputs": {"x": DEEP}}, "inputs"),
        ({"inputs": {"x": object()}}, "inputs"),
        ({"inputs": {}}, "inputs"),
        ({"flow": "echo"}, "flow"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else str(v),
)
async def test_submit_refuses_each_bad_argument_before_the_store(
    options: dict[str, Any], name: str
) -> None:
    """Each malformed submit argument gets InvalidArgument naming it, and the store is not
    touched: no record that a later read could not decode is ever written."""
    arguments: dict[str, Any] = {"flow": ECHO, "resource_id": "web-1", "inputs": {"x": 1}}
    arguments.update(options)
    flow = arguments.pop("flow")
    store = CountingStore()
    async with store, FlowEngine(store, flows=[ECHO]) as engine:
        with pytest.raises(InvalidArgument) as caught:
            await engine.submit(flow, **arguments)
        assert caught.value.name == name
        assert str(caught.value).startswith(f"{name}: expected ")
        assert store.calls == 0
        record = await engine.run(ECHO, resource_id="web-2", inputs={"x": 2})
        assert record.status is TaskStatus.SUCCEEDED


async def test_submit_accepts_a_str_subclass_as_plain_text() -> None:
    """A str subclass (a StrEnum member) is accepted and stored as the plain str it holds."""

    class Name(enum.StrEnum):
        WEB = "web-1"

    async with MemoryStore() as store, FlowEngine(store, flows=[ECHO]) as engine:
        record = await engine.run(
            ECHO, resource_id=Name.WEB, inputs={"x": 1}, idempotency_key=Name.WEB
        )
        assert type(record.resource_id) is str
        assert type(record.idempotency_key) is str
        assert await engine.find("web-1", "web-1") == record


# --------------------------------------------------------------------------------------------
# queries

BAD_QUERIES: list[tuple[str, Callable[[FlowEngine], Awaitable[Any]], str]] = [
    ("get-int", lambda e: e.get(5), "task_id"),  # type: ignore[arg-type]
    ("get-surrogate", lambda e: e.get("t-\ud800"), "task_id"),
    ("cancel-list", lambda e: e.cancel(["t"]), "task_id"),  # type: ignore[arg-type]
    ("find-key", lambda e: e.find("r", 12345), "idempotency_key"),  # type: ignore[arg-type]
    ("find-resource", lambda e: e.find(None, "k"), "resource_id"),  # type: ignore[arg-type]
    ("tasks-resource", lambda e: e.tasks(b"r"), "resource_id"),  # type: ignore[arg-type]
    ("tasks-2**63", lambda e: e.tasks("r", limit=2**63), "limit"),
    ("tasks-2**70", lambda e: e.tasks("r", limit=2**70), "limit"),
    ("tasks-0", lambda e: e.tasks("r", limit=0), "limit"),
    ("tasks-negative", lambda e: e.tasks("r", limit=-1), "limit"),
    ("tasks-float", lambda e: e.tasks("r", limit=1.5), "limit"),  # type: ignore[arg-type]
    ("tasks-bool", lambda e: e.tasks("r", limit=True), "limit"),
    ("tasks-before-huge", lambda e: e.tasks("r", before=(10**400, "t")), "before"),
    ("tasks-before-nan", lambda e: e.tasks("r", before=(math.nan, "t")), "before"),
    ("tasks-before-swapped", lambda e: e.tasks("r", before=("t", 1.0)), "before"),  # type: ignore[arg-type]
    ("tasks-before-short", lambda e: e.tasks("r", before=(1.0,)), "before"),  # type: ignore[arg-type]
    ("tasks-before-scalar", lambda e: e.tasks("r", before=5), "before"),  # type: ignore[arg-type]
    ("tasks-before-surrogate", lambda e: e.tasks("r", before=(1.0, "\ud800")), "before"),
    ("actions-2**63", lambda e: e.actions("r", limit=2**63), "limit"),
    ("actions-negative", lambda e: e.actions("r", limit=-5), "limit"),
    ("parked-2**64", lambda e: e.parked(limit=2**64), "limit"),
    ("parked-str", lambda e: e.parked(limit="10"), "limit"),  # type: ignore[arg-type]
    ("last-fault-int", lambda e: e.last_fault(1), "resource_id"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize(
    ("query", "name"), [(q, n) for _, q, n in BAD_QUERIES], ids=[i for i, _, _ in BAD_QUERIES]
)
async def test_queries_refuse_bad_arguments_with_invalid_argument(
    kind: str, tmp_path: Path, query: Callable[[FlowEngine], Awaitable[Any]], name: str
) -> None:
    """Out-of-range page sizes (2**63 and up, zero, negative, non-int), malformed page marks
    and non-text ids get InvalidArgument naming the parameter, never OverflowError."""
    async with open_store(kind, tmp_path) as store, FlowEngine(store, flows=[ECHO]) as engine:
        with pytest.raises(InvalidArgument) as caught:
            await query(engine)
        assert caught.value.name == name
        record = await engine.run(ECHO, resource_id="r", inputs={"x": 1})
        assert await engine.tasks("r", limit=2**63 - 1) == (record,)
        assert await engine.tasks("r", before=(record.created + 1, "")) == (record,)


@pytest.mark.parametrize(
    ("query", "name"), [(q, n) for _, q, n in BAD_QUERIES], ids=[i for i, _, _ in BAD_QUERIES]
)
async def test_queries_refuse_bad_arguments_before_the_store(
    query: Callable[[FlowEngine], Awaitable[Any]], name: str
) -> None:
    """The engine itself refuses each bad query argument: the store is never asked."""
    store = CountingStore()
    async with store, FlowEngine(store, flows=[ECHO]) as engine:
        with pytest.raises(InvalidArgument) as caught:
            await query(engine)
        assert caught.value.name == name
        assert store.calls == 0


async def test_handle_refuses_a_non_text_task_id() -> None:
    """handle() with an unhashable task id raises InvalidArgument, not TypeError."""
    async with MemoryStore() as store, FlowEngine(store) as engine:
        with pytest.raises(InvalidArgument, match=r"^task_id: "):
            engine.handle({"t": 1})  # type: ignore[arg-type]
        assert engine.handle("missing") is None


# --------------------------------------------------------------------------------------------
# Any call, any argument: a typed error or an answer, and the engine keeps working

garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["", "r", "\ud800", "t-1", "task-1"])
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)
ids = garbage | st.sampled_from(["r", "s", "web-1"])
calls = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.fixed_dictionaries(
                {
                    "resource_id": ids,
                    "inputs": garbage | st.dictionaries(st.just("x"), garbage),
                    "idempotency_key": garbage,
                    "task_id": garbage | st.none(),
                }
            ),
        ),
        st.tuples(st.just("get"), st.fixed_dictionaries({"task_id": ids})),
        st.tuples(st.just("cancel"), st.fixed_dictionaries({"task_id": ids})),
        st.tuples(st.just("handle"), st.fixed_dictionaries({"task_id": ids})),
        st.tuples(
            st.just("find"), st.fixed_dictionaries({"resource_id": ids, "idempotency_key": ids})
        ),
        st.tuples(
            st.just("tasks"),
            st.fixed_dictionaries(
                {"resource_id": ids, "before": garbage | st.none(), "limit": garbage}
            ),
        ),
        st.tuples(st.just("last_fault"), st.fixed_dictionaries({"resource_id": ids})),
        st.tuples(
            st.just("actions"), st.fixed_dictionaries({"resource_id": ids, "limit": garbage})
        ),
        st.tuples(st.just("parked"), st.fixed_dictionaries({"limit": garbage})),
    ),
    min_size=1,
    max_size=8,
)


async def call(engine: FlowEngine, name: str, arguments: dict[str, Any]) -> None:
    """Make one public call of ``engine`` with ``arguments``."""
    if name == "submit":
        await engine.submit(ECHO, **arguments)
    elif name == "handle":
        engine.handle(**arguments)
    elif name in ("get", "cancel", "last_fault"):
        await getattr(engine, name)(*arguments.values())
    elif name == "find":
        await engine.find(**arguments)
    elif name in ("tasks", "actions"):
        resource_id = arguments.pop("resource_id")
        await getattr(engine, name)(resource_id, **arguments)
    else:
        await engine.parked(**arguments)


async def hammer(sequence: list[tuple[str, dict[str, Any]]]) -> None:
    """Make every call (each a typed error or an answer), then check the engine and the store
    still work: a flow on another resource completes, and a new engine resumes and reads."""
    env = Environment(clock=VirtualClock.current(), seed=3)
    async with MemoryStore() as store:
        async with FlowEngine(store, env=env, flows=[ECHO], on_busy=Busy.QUEUE) as engine:
            for name, arguments in sequence:
                try:
                    async with asyncio.timeout(60):
                        await call(engine, name, dict(arguments))
                except StatewardError:
                    pass
            async with asyncio.timeout(60):
                record = await engine.run(ECHO, resource_id="healthy", inputs={"x": [1, "a"]})
            assert record.status is TaskStatus.SUCCEEDED
            assert record.step("echo").result == [1, "a"]
        async with FlowEngine(store, env=env, flows=[ECHO]) as second:
            async with asyncio.timeout(60):
                for handle in await second.resume():
                    await handle.wait()
            for document in await store.find_documents(TASKS, limit=1000):
                stored = await second.get(document.key)
                assert stored.resource_id in {
                    r.resource_id for r in await second.tasks(stored.resource_id)
                }
            assert second.statistics().quarantined == 0
            with pytest.raises(TaskNotFound):
                await second.get("no-such-task")


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(sequence=calls)
def test_any_call_gets_a_typed_error_or_an_answer(
    sequence: list[tuple[str, dict[str, Any]]],
) -> None:
    """Random public calls with arguments of random types each answer or raise a
    StatewardError, within a minute of virtual time; afterwards a flow on another resource
    completes and every record written reads back in a new engine."""
    VirtualClock().run(hammer(sequence))

"""One bad command or one bad resource is refused alone: every other resource keeps working.

Each test sends something hostile (a value the database cannot store, a payload msgpack
cannot encode, an address that is no plain string) beside innocent commands of other actors,
and checks that the hostile one gets a typed error while the others commit, the store stays
healthy and the system keeps running.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.runtime import (
    Actor,
    ActorNotFound,
    CommandRejected,
    DriveTo,
    Fire,
    FSMActor,
    InvalidArgument,
    InvalidCommand,
    Machine,
    MemoryStore,
    ResourceQuarantined,
    StartReason,
    StateKind,
    StatewardError,
    Store,
    StoreUnavailable,
    Transition,
    TransitionRecord,
    VirtualClock,
    Write,
    open_actor_system,
    open_sqlite_store,
)

OFFERS = Machine(
    "offers",
    initial="open",
    states={"open": StateKind.STABLE, "held": StateKind.STABLE, "gone": StateKind.TERMINAL},
    transitions=[
        Transition("open", "offer", "open"),
        Transition("open", "hold", "held"),
        Transition("held", "release", "open"),
        Transition("open", "close", "gone"),
    ],
)


class Offers(FSMActor):
    """A small durable actor: offer loops, hold and release toggle."""

    machine = OFFERS


class Region(enum.StrEnum):
    """Addresses a caller may well keep in an enum."""

    WEST = "region-west"


#: Values that fit a Python str or int but no database column.
HOSTILE_IDS: list[Any] = [{"x": 1}, 2**63, "lone \ud800 surrogate", ["a"], 1.5]
#: Payloads msgpack cannot carry: too big an int, a lone surrogate, too deep a nesting.
HOSTILE_PAYLOADS: list[Any] = [{"n": 2**70}, {"s": "\udfff"}, {"\ud800": 1}]


def deep(depth: int) -> list[Any]:
    """A list nested ``depth`` levels deep."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


StoreOpener = Callable[[], Any]


@asynccontextmanager
async def memory_store() -> AsyncIterator[Store]:
    """A MemoryStore, closed afterwards."""
    async with MemoryStore() as store:
        yield store


@pytest.fixture(params=["memory", "sqlite"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOpener:
    """Opens the store under test: in memory or on a SQLite file."""
    if request.param == "memory":
        return memory_store
    return lambda: open_sqlite_store(tmp_path / "containment.db")


@pytest.mark.parametrize("field", ["task_id", "cause"])
@pytest.mark.parametrize(
    "value", HOSTILE_IDS, ids=["dict", "int64+1", "surrogate", "list", "float"]
)
async def test_a_bad_task_id_or_cause_is_refused_alone(
    opener: StoreOpener, field: str, value: Any
) -> None:
    """A task_id or cause no column can hold fails its own ask; concurrent asks commit."""
    async with opener() as store, open_actor_system(store=store) as system:
        bad = system.spawn(Offers, address="bad")
        refs = [system.spawn(Offers, address=f"good-{i}") for i in range(20)]
        results = await asyncio.gather(
            bad.ask(Fire("offer", **{field: value})),
            *(r.ask("offer") for r in refs),
            return_exceptions=True,
        )
        assert isinstance(results[0], InvalidCommand)
        assert f"expected {field}:" in str(results[0])
        assert all(isinstance(r, TransitionRecord) for r in results[1:])
        stats = store.statistics()
        assert (stats.degraded, stats.failures, stats.commits) == (False, 0, 20)
        assert (await bad.ask("offer")).sequence == 1  # nothing of the refusal was kept
        assert system.statistics().crashes == 0


@pytest.mark.parametrize(
    "payload", [*HOSTILE_PAYLOADS, deep(5000)], ids=["huge-int", "surrogate", "key", "deep"]
)
async def test_an_unencodable_payload_is_refused_without_a_crash(
    opener: StoreOpener, payload: Any
) -> None:
    """A payload msgpack cannot encode is an InvalidCommand, however often it is sent."""
    async with opener() as store, open_actor_system(store=store) as system:
        bad = system.spawn(Offers, address="bad")
        other = system.spawn(Offers, address="other")
        for _ in range(6):  # more than the root's restart intensity allows crashes
            with pytest.raises(InvalidCommand, match=r"^bad refused a command: expected a payload"):
                await bad.ask(Fire("offer", payload=payload))
        assert (await other.ask("offer")).sequence == 1
        assert (await bad.ask("offer")).sequence == 1
        assert system.statistics().crashes == 0


async def test_the_store_refuses_an_unstorable_write_at_submit(opener: StoreOpener) -> None:
    """A Write with a field no column holds raises InvalidArgument before it joins a batch."""
    async with opener() as store:
        good = TransitionRecord("r-1", 1, "open", "offer", "open", None, None, 1.0)
        for record in (
            TransitionRecord("r-1", 1, "open", "offer", "open", {"x": 1}, None, 1.0),  # type: ignore[arg-type]
            TransitionRecord("r-1", 2**63, "open", "offer", "open", None, None, 1.0),
            TransitionRecord("r-\ud800", 1, "open", "offer", "open", None, None, 1.0),
            TransitionRecord("r-1", 1, "open", "offer", "open", None, None, float("nan")),
        ):
            with pytest.raises(InvalidArgument, match=r"^record\.\w+: expected"):
                store.submit(Write("offers", record))
        await store.commit(Write("offers", good))
        assert store.statistics().failures == 0


async def test_a_batch_with_one_unencodable_payload_commits_the_rest(opener: StoreOpener) -> None:
    """The write whose payload cannot be encoded fails alone; its batch commits without it."""
    async with opener() as store:

        def offer(resource: str, sequence: int, payload: Any = None) -> Write:
            record = TransitionRecord(
                resource, sequence, "open", "offer", "open", None, None, 1.0, payload
            )
            return Write("offers", record)

        writes = [offer(f"r-{i}", 1, {"i": i}) for i in range(10)]
        writes.insert(4, offer("poison", 1, {"n": 2**70}))
        writes.append(offer("poison", 2))  # follows the refused write: its base never landed
        results = await asyncio.gather(*(store.submit(w) for w in writes), return_exceptions=True)
        assert isinstance(results[4], InvalidArgument)
        assert isinstance(results[4].__cause__, OverflowError)
        assert isinstance(results[-1], StatewardError)
        assert [r for i, r in enumerate(results) if i not in (4, len(results) - 1)] == [None] * 10
        assert not store.statistics().degraded
        for i in range(10):
            assert [r.payload for r in await store.history(f"r-{i}")] == [{"i": i}]
        assert await store.history("poison") == ()


async def test_a_str_enum_address_is_journaled_and_restored_by_its_value(tmp_path: Path) -> None:
    """An address given as a StrEnum member is the member's value, and rehydrates."""
    path = tmp_path / "enum.db"
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        ref = system.spawn(Offers, address=Region.WEST)
        assert type(ref.address) is str
        assert ref.address == "region-west"
        await ref.ask("hold")
        assert await system.passivate(Region.WEST)
        assert (await ref.ask("release")).sequence == 2
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        assert await system.restore({"offers": Offers}) == 1
        assert (await system.lookup("region-west").ask("hold")).sequence == 3


async def test_addresses_that_no_store_holds_are_refused_at_spawn() -> None:
    """Empty, non-str and invalid-Unicode addresses fail at spawn and lookup, typed."""
    async with open_actor_system() as system:
        for address in ("", "bad \ud800", 7, None, b"x"):
            with pytest.raises(InvalidArgument, match=r"^address: expected a non-empty str"):
                system.spawn(Offers, address=address)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^address: expected a str"):
            system.lookup(["x"])  # type: ignore[arg-type]
        with pytest.raises(ActorNotFound):
            system.lookup("nobody")
        assert ["x"] not in system


async def test_drive_to_an_unhashable_goal_is_an_invalid_command() -> None:
    """DriveTo(goal=[...]) is refused as a command; a StrEnum goal is followed."""

    class Goal(enum.StrEnum):
        HELD = "held"

    async with open_actor_system() as system:
        ref = system.spawn(Offers, address="o-1")
        with pytest.raises(InvalidCommand, match=r"expected a state of machine 'offers'"):
            await ref.ask(DriveTo(goal=["held"]))  # type: ignore[arg-type]
        records = await ref.ask(DriveTo(goal=Goal.HELD))
        assert [r.target for r in records] == ["held"]
        assert system.statistics().crashes == 0


hostile = st.one_of(
    st.none(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(alphabet=st.characters(codec=None), max_size=8),
    st.sampled_from(["\ud800", "offer", "hold", "held", "open", "gone"]),
    st.floats(allow_nan=True),
    st.binary(max_size=4),
    st.builds(deep, st.integers(min_value=0, max_value=3000)),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)
commands = st.one_of(
    st.builds(Fire, event=hostile, payload=hostile, task_id=hostile, cause=hostile),
    st.builds(DriveTo, goal=hostile, task_id=hostile, cause=hostile),
    hostile,
)


async def run_hostile(messages: list[Any]) -> None:
    """Send ``messages`` to one actor beside innocent traffic; check containment."""
    async with MemoryStore() as store, open_actor_system(store=store) as system:
        target = system.spawn(Offers, address="target")
        others = [system.spawn(Offers, address=f"other-{i}") for i in range(3)]
        for message in messages:
            results = await asyncio.wait_for(
                asyncio.gather(
                    target.ask(message), *(o.ask("offer") for o in others), return_exceptions=True
                ),
                timeout=5,
            )
            outcome = results[0]
            assert not isinstance(outcome, BaseException) or isinstance(outcome, CommandRejected), (
                repr(outcome)
            )
            assert all(isinstance(r, TransitionRecord) for r in results[1:]), results
        assert system.statistics().crashes == 0
        assert not store.statistics().degraded
        assert store.statistics().failures == 0


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(commands, min_size=1, max_size=6))
def test_any_command_is_answered_or_refused_and_contained(messages: list[Any]) -> None:
    """Whatever is asked of one actor, it answers or refuses typed; its neighbours commit."""
    VirtualClock().run(run_hostile(messages))


def corrupt_overflow_page(path: Path, marker: bytes) -> None:
    """Point the first overflow page holding ``marker`` at a page past the end of the file.

    SQLite then finds the pages of that one row corrupt ("database disk image is
    malformed") while every other row reads as before.
    """
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for start in range(0, len(data), page_size):
        if data[start + 4 : start + 4 + 64] == marker * 64:
            data[start : start + 4] = (2**32 - 1).to_bytes(4, "big")
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no overflow page holds the marker")


async def seed_with_a_corrupt_resource(path: Path) -> None:
    """Ten resources, and ``victim`` whose newest row has pages that are then corrupted.

    The victim's id sorts last and its first row is small: a scan of another resource's
    rows ends by reading the next row, and that must not be the one with corrupt pages.
    """
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        for i in range(10):
            await system.spawn(Offers, address=f"ok-{i}").ask(Fire("offer", payload={"i": i}))
        victim = system.spawn(Offers, address="victim")
        await victim.ask("offer")
        await victim.ask(Fire("offer", payload={"blob": "V" * 20_000}))
    corrupt_overflow_page(path, b"V")


@pytest.mark.parametrize("eager", [False, True], ids=["lazy", "eager"])
async def test_a_corrupt_page_quarantines_its_resource_alone(tmp_path: Path, eager: bool) -> None:
    """A resource whose page is corrupt is quarantined on restore; the others all work."""
    path = tmp_path / "corrupt.db"
    await seed_with_a_corrupt_resource(path)
    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        restored = await system.restore({"offers": Offers}, eager=eager)
        assert restored == (10 if eager else 11)
        if not eager:
            victim = system.lookup("victim")
            for _ in range(5):  # every ask, not only the first, says why
                with pytest.raises(ResourceQuarantined, match=r"^resource victim is quarantined"):
                    await victim.ask("offer")
        for i in range(10):
            assert (await system.lookup(f"ok-{i}").ask("offer")).sequence == 2
        assert system.statistics().restarts == 0
        assert not store.statistics().degraded


async def test_a_store_failure_under_a_handler_is_answered_not_a_crash() -> None:
    """StoreUnavailable from a handler goes to the asker; the actor reloads, uncounted."""
    starts: list[StartReason] = []

    class Reader(Actor):
        async def rehydrate(self, reason: StartReason) -> None:
            starts.append(reason)
            self.scratch = 0

        async def receive(self, message: Any) -> Any:
            self.scratch += 1
            if message == "read":
                raise StoreUnavailable("load", reason="I/O error")
            return self.scratch

    async with open_actor_system(max_restarts=1, period=60.0) as system:
        reader = system.spawn(Reader, address="reader")
        other = system.spawn(Reader, address="other")
        for _ in range(4):  # beyond the restart intensity, were these crashes
            with pytest.raises(StoreUnavailable, match=r"^store load failed: I/O error"):
                await reader.ask("read")
        assert await reader.ask("count") == 1  # memory from before the failure is gone
        assert await other.ask("count") == 1
        stats = system.statistics()
        assert (stats.crashes, stats.restarts, stats.escalations) == (0, 0, 0)
        assert starts.count(StartReason.RESTART) == 4

"""Any call of the fleet's public API, with any argument: a typed error or an answer, never
a hang, and the fleet (and a reopen of it) works on afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet, GroupPolicy
from stateward.flows import TaskStatus
from stateward.runtime import (
    Durability,
    Environment,
    MemoryStore,
    Overflow,
    StatewardError,
    VirtualClock,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)
#: Virtual seconds a single call may take before it counts as a hang.
PATIENCE = 3600.0

#: Nested 10,000 lists deep: deeper than any encoder or repr goes.
DEEP: list[Any] = []
_level = DEEP
for _ in range(10_000):
    _level.append([])
    _level = _level[0]


class _Deep:
    """Stands for DEEP in generated examples (which hypothesis prints)."""

    def __repr__(self) -> str:
        return "DEEP"


def unmark(value: Any) -> Any:
    """``value`` with every stand-in replaced by DEEP itself."""
    if isinstance(value, _Deep):
        return DEEP
    if isinstance(value, list):
        return [unmark(v) for v in value]
    if isinstance(value, tuple):
        return tuple(unmark(v) for v in value)
    if isinstance(value, dict):
        return {k: unmark(v) for k, v in value.items()}
    return value


garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**400])
    | st.floats()
    | st.text(max_size=4)
    | st.sampled_from(["", "\ud800", "a\udfff", "x" * 300, "\x00", "a.b c"])
    | st.binary(max_size=4)
    | st.builds(_Deep),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)
#: Values a careless caller passes: garbage, or something close to what the call wants.
names = garbage | st.sampled_from(["base", "web-1", "h-0", "h-1", "nope"])
texts = names | st.sampled_from(["m1.small", "cirros", "nova", "default", "key-1"])
anything = (
    texts
    | st.sampled_from(list(GroupPolicy) + list(Overflow) + list(Durability))
    | st.sampled_from([HOST_SIZE, Capacity(), SMALL, 16.0, 0.5, 300.0, "task.#", "instance.*.*"])
)
#: Each public call: (positional arguments, required keywords, optional keywords).
SIGNATURES: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    "instances.boot": (
        1,
        ("flavor", "image"),
        ("zone", "group", "group_policy", "networks", "volumes", "idempotency_key"),
    ),
    "instances.act": (2, (), ("image", "idempotency_key")),
    "instances.stop": (1, (), ("idempotency_key",)),
    "instances.start": (1, (), ("idempotency_key",)),
    "instances.pause": (1, (), ("idempotency_key",)),
    "instances.unpause": (1, (), ("idempotency_key",)),
    "instances.suspend": (1, (), ("idempotency_key",)),
    "instances.resume": (1, (), ("idempotency_key",)),
    "instances.reboot": (1, (), ("hard", "idempotency_key")),
    "instances.rebuild": (1, ("image",), ("idempotency_key",)),
    "instances.delete": (1, (), ("idempotency_key",)),
    "instances.get": (1, (), ()),
    "instances.summaries": (0, (), ()),
    "instances.list": (0, (), ()),
    "hosts.add": (1, ("capacity",), ("zone", "cpu_ratio", "ram_ratio", "disk_ratio")),
    "hosts.get": (1, (), ()),
    "hosts.command": (2, (), ()),
    "hosts.heartbeat": (1, (), ()),
    "hosts.set_agent": (1, ("alive",), ()),
    "hosts.list": (0, (), ()),
    "hosts.ids": (0, (), ()),
    "hosts.heartbeat_all": (0, (), ()),
    "tasks.get": (1, (), ()),
    "tasks.wait": (1, (), ("timeout",)),
    "tasks.list": (1, (), ("limit",)),
    "tasks.last_fault": (1, (), ()),
    "tasks.actions": (1, (), ()),
    "tasks.parked": (0, (), ()),
    "flavors.add": (1, (), ("name",)),
    "flavors.get": (1, (), ()),
    "flavors.contains": (1, (), ()),
    "images.add": (1, (), ("name",)),
    "images.get": (1, (), ()),
    "images.contains": (1, (), ()),
    "subscribe": (1, (), ("buffer", "overflow")),
    "open": (
        1,
        (),
        (
            "env",
            "store",
            "durability",
            "weigher",
            "networks",
            "heartbeat_interval",
            "reconcile",
            "idle_after",
            "instance_actor",
        ),
    ),
    "reconcile": (0, (), ()),
    "resume": (0, (), ()),
    "recover": (0, (), ()),
}


def _call(name: str) -> st.SearchStrategy[tuple[str, list[Any], dict[str, Any]]]:
    positional, required, optional = SIGNATURES[name]
    if name == "open":
        # One setting at a time, often in memory (None): such a fleet is opened too.
        return st.tuples(
            st.just(name),
            st.lists(st.none() | anything, min_size=1, max_size=1),
            st.dictionaries(st.sampled_from(optional), anything, max_size=1),
        )
    keywords = st.fixed_dictionaries(
        dict.fromkeys(required, anything), optional=dict.fromkeys(optional, anything)
    )
    return st.tuples(
        st.just(name), st.lists(anything, min_size=positional, max_size=positional), keywords
    )


#: (call, positional arguments, keyword arguments)
calls = st.lists(st.one_of([_call(name) for name in SIGNATURES]), min_size=1, max_size=8)


async def call(fleet: Fleet, name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Make the public call ``name`` of ``fleet`` with ``args`` and ``kwargs``."""
    if name == "open":
        kwargs.setdefault("env", fleet.env)
        other = Fleet.open(*args[:1], driver=FakeDriver(env=fleet.env), **kwargs)
        if other.path is None and other.env is fleet.env:
            async with other:  # in memory and on the virtual clock: open it too
                pass
        return
    if name == "subscribe":
        fleet.subscribe(*args, **kwargs).close()
        return
    owner, _, method = name.partition(".")
    target: Any = getattr(fleet, owner) if method else fleet
    if method == "contains":
        _ = args[0] in target if args else None
        return
    result = getattr(target, method or owner)(*args, **kwargs)
    if isinstance(result, Awaitable):
        await result


async def scenario(sequence: list[tuple[str, list[Any], dict[str, Any]]]) -> None:
    """Run every call against a fleet with one host and one active instance, each within
    PATIENCE virtual seconds and ending in an answer or a StatewardError; then a new boot
    succeeds and the fleet reopens with every instance."""
    env = Environment(clock=VirtualClock.current(), seed=11)
    store = MemoryStore()
    driver = FakeDriver(env=env)
    async with Fleet.open(None, driver=driver, env=env, store=store) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-0", capacity=HOST_SIZE)
        booted = await fleet.instances.boot("base", flavor="m1.small", image="cirros")
        assert (await fleet.tasks.wait(booted.id)).status is TaskStatus.SUCCEEDED
        for name, args, kwargs in sequence:
            try:
                async with asyncio.timeout(PATIENCE):
                    await call(fleet, name, unmark(args), unmark(kwargs))
            except StatewardError:
                pass
        # Room for one more, whatever the calls did to the first host.
        await fleet.hosts.add("spare-host", capacity=HOST_SIZE)
        fresh = await fleet.instances.boot(
            "fresh-instance", flavor="m1.small", image="cirros", zone="nova"
        )
        async with asyncio.timeout(PATIENCE):
            assert (await fleet.tasks.wait(fresh.id)).status is TaskStatus.SUCCEEDED
        assert (await fleet.instances.get("fresh-instance")).state == "active"
        await fleet.instances.get("base")
    async with asyncio.timeout(PATIENCE):
        async with Fleet.open(None, driver=driver, env=env, store=store) as fleet:
            assert (await fleet.instances.get("fresh-instance")).state == "active"
            await fleet.instances.get("base")
    await store.aclose()


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(sequence=calls)
def test_any_fleet_call_gets_a_typed_error_or_an_answer(
    sequence: list[tuple[str, list[Any], dict[str, Any]]],
) -> None:
    """Random public calls of the fleet with arguments of random types (wrong types, huge
    ints, lone surrogates, deep nesting) each answer or raise a StatewardError, without
    hanging; afterwards a new instance boots and the fleet reopens."""
    VirtualClock().run(scenario(sequence))

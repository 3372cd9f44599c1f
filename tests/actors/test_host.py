"""Hosts: configuration, a claims ledger that never over-commits, liveness, durability."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.actors import (
    Capacity,
    Claim,
    ClaimCapacity,
    ClaimRefused,
    Configure,
    GetHost,
    Heartbeat,
    HostActor,
    ReleaseClaim,
)
from stateward.runtime import (
    CommitFailed,
    Environment,
    InvalidArgument,
    InvalidCommand,
    InvalidTransition,
    MemoryStore,
    VirtualClock,
    open_actor_system,
)

SMALL = Configure(Capacity(vcpus=4, ram_mb=4096, disk_gb=40), cpu_ratio=1.0, ram_ratio=1.0)


def claim(n: int, vcpus: int = 1, ram_mb: int = 512, disk_gb: int = 5) -> ClaimCapacity:
    return ClaimCapacity(f"claim-{n}", f"task-{n}", f"i-{n}", Capacity(vcpus, ram_mb, disk_gb))


async def test_claims_fill_the_host_and_no_more() -> None:
    """Claims are granted while they fit; the one that does not is refused, saying why."""
    async with open_actor_system() as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(SMALL)
        await host.ask(Heartbeat())
        for n in range(4):
            await host.ask(claim(n))
        with pytest.raises(ClaimRefused, match="host h-1 refused claim claim-4: vcpus 1 > 0 free"):
            await host.ask(claim(4))
        status = await host.ask(GetHost())
        assert status.usage == Capacity(4, 2048, 20)
        assert len(status.claims) == 4


async def test_claim_and_release_are_idempotent() -> None:
    """A repeated claim returns the held claim; releasing twice is harmless."""
    async with open_actor_system() as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(SMALL)
        await host.ask(Heartbeat())
        first = await host.ask(claim(1))
        assert await host.ask(claim(1)) == first
        assert (await host.ask(GetHost())).usage == Capacity(1, 512, 5)
        assert await host.ask(ReleaseClaim("claim-1")) is True
        assert await host.ask(ReleaseClaim("claim-1")) is False
        assert (await host.ask(GetHost())).usage == Capacity()
        await host.ask(claim(2))
        with pytest.raises(InvalidCommand, match="the same amount and task as claim claim-2"):
            await host.ask(ClaimCapacity("claim-2", "task-2", "i-2", Capacity(2, 512, 5)))


async def test_allocation_ratios_allow_overcommit() -> None:
    """Allocation ratios scale what may be claimed."""
    async with open_actor_system() as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(Configure(Capacity(2, 1024, 10), cpu_ratio=4.0, ram_ratio=1.0))
        await host.ask(Heartbeat())
        for n in range(8):
            await host.ask(claim(n, vcpus=1, ram_mb=128, disk_gb=1))
        with pytest.raises(ClaimRefused, match="vcpus 1 > 0 free"):
            await host.ask(claim(8, vcpus=1, ram_mb=128, disk_gb=1))


@pytest.mark.virtual_time
async def test_down_disabled_and_maintenance_hosts_take_no_claims() -> None:
    """Without a recent heartbeat, or when not enabled, a host refuses claims."""
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with open_actor_system(env=env) as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(SMALL)
        with pytest.raises(ClaimRefused, match="host is down"):
            await host.ask(claim(1))
        await host.ask(Heartbeat())
        await host.ask(claim(1))
        await asyncio.sleep(HostActor.heartbeat_timeout + 1)
        assert (await host.ask(GetHost())).up is False
        with pytest.raises(ClaimRefused, match="host is down"):
            await host.ask(claim(2))
        await host.ask(Heartbeat())
        await host.ask("disable")
        with pytest.raises(ClaimRefused, match="host is disabled"):
            await host.ask(claim(3))
        assert await host.ask(ReleaseClaim("claim-1")) is True  # releases still work
        await host.ask("start_maintenance")
        with pytest.raises(InvalidTransition, match="cannot `enable` in state `maintenance`"):
            await host.ask("enable")


async def test_ledger_survives_restart_and_reload() -> None:
    """The ledger is journaled: a new system on the same store sees the same claims."""
    store = MemoryStore()
    async with open_actor_system(store=store) as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(SMALL)
        await host.ask(Heartbeat())
        await host.ask(claim(1))
        await host.ask(claim(2))
        await host.ask(ReleaseClaim("claim-1"))
    async with open_actor_system(store=store) as system:
        await system.restore({"host": HostActor})
        status = await system.lookup("h-1").ask(GetHost())
        assert [c.id for c in status.claims] == ["claim-2"]
        assert status.capacity == SMALL.capacity
    await store.aclose()


async def test_failed_commit_leaves_the_ledger_unchanged() -> None:
    """A claim whose commit fails is not granted, in memory or in the store."""
    store = MemoryStore(retries=0)
    async with open_actor_system(store=store) as system:
        host = system.spawn(HostActor, address="h-1")
        await host.ask(SMALL)
        await host.ask(Heartbeat())
        store.fail_writes(1)
        with pytest.raises(CommitFailed):
            await host.ask(claim(1))
        assert (await host.ask(GetHost())).usage == Capacity()
    await store.aclose()


def test_bad_configuration_is_refused() -> None:
    """Negative capacity and bad ratios or zones are typed errors."""
    with pytest.raises(InvalidArgument, match="vcpus: expected an int >= 0"):
        Capacity(vcpus=-1)
    with pytest.raises(InvalidArgument, match="cpu_ratio"):
        Configure(Capacity(1, 1, 1), cpu_ratio=0)
    with pytest.raises(InvalidArgument, match="zone"):
        Configure(Capacity(1, 1, 1), zone="")


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 9), st.integers(1, 3), st.integers(1, 2048)),
        max_size=40,
    )
)
def test_usage_is_the_sum_of_live_claims_and_never_over_capacity(
    commands: list[tuple[bool, int, int, int]],
) -> None:
    """Under any sequence of concurrent claims and releases, usage is the sum of the live
    claims and never exceeds capacity."""

    async def scenario() -> None:
        async with open_actor_system() as system:
            host = system.spawn(HostActor, address="h-1")
            await host.ask(SMALL)
            await host.ask(Heartbeat())

            async def send(is_claim: bool, n: int, vcpus: int, ram: int) -> None:
                if is_claim:
                    with contextlib.suppress(ClaimRefused, InvalidCommand):
                        await host.ask(
                            ClaimCapacity(f"c-{n}", f"t-{n}", f"i-{n}", Capacity(vcpus, ram, 1))
                        )
                else:
                    await host.ask(ReleaseClaim(f"c-{n}"))

            await asyncio.gather(*(send(*c) for c in commands))
            status = await host.ask(GetHost())
            total = Capacity()
            for held in status.claims:
                total = total + held.amount
            assert status.usage == total
            assert (total.vcpus, total.ram_mb, total.disk_gb) <= (4, 4096, 40)
            assert total.ram_mb <= 4096

    asyncio.run(scenario())


def test_a_claim_is_stored_under_the_names_ledgers_always_had() -> None:
    """Claim.id is encoded as ``claim_id``: ledgers and journals written before the field
    was renamed decode, and new ones read the same."""
    claim = Claim("c-1", "t-1", "web-1", Capacity(1, 512, 10))
    plain = msgspec.to_builtins(claim)
    assert plain["claim_id"] == "c-1"
    assert "id" not in plain
    stored = {"claim_id": "c-1", "task_id": "t-1", "instance_id": "web-1", "amount": {}}
    assert msgspec.convert(stored, Claim).id == "c-1"

"""The scheduler: filters with counts, weighers, server groups, lost races, no over-commit."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.actors import (
    Capacity,
    ClaimCapacity,
    Configure,
    Flavor,
    GetHost,
    GroupPolicy,
    Heartbeat,
    HostActor,
    NoValidHost,
    Placement,
    PlacementRequest,
    Scheduler,
    ServerGroup,
    Weigher,
)
from stateward.runtime import (
    Actor,
    ActorRef,
    ActorSystem,
    Environment,
    InvalidArgument,
    VirtualClock,
    open_actor_system,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=1024, disk_gb=10)
LARGE = Flavor("m1.large", vcpus=4, ram_mb=8192, disk_gb=40)


async def add_host(
    system: ActorSystem,
    host_id: str,
    vcpus: int = 4,
    ram_mb: int = 4096,
    disk_gb: int = 40,
    *,
    zone: str = "nova",
) -> ActorRef:
    """Spawn a configured, heartbeating host without overcommit."""
    host = system.spawn(HostActor, address=host_id)
    capacity = Capacity(vcpus, ram_mb, disk_gb)
    await host.ask(Configure(capacity, cpu_ratio=1.0, ram_ratio=1.0, zone=zone))
    await host.ask(Heartbeat())
    return host


def request(
    n: int,
    flavor: Flavor = SMALL,
    *,
    zone: str | None = None,
    group: ServerGroup | None = None,
) -> PlacementRequest:
    """The placement of instance ``i-n`` for task ``t-n``."""
    return PlacementRequest(f"i-{n}", f"t-{n}", flavor, zone=zone, group=group)


class RacingHost(Actor):
    """Stands in front of a real host and, before each of the first ``races`` claims reaches
    it, lets a rival claim all the host's free room: a lost race, made deterministic."""

    def __init__(self, host: ActorRef, races: int) -> None:
        self.host = host
        self.races = races

    async def receive(self, message: Any) -> Any:
        if isinstance(message, ClaimCapacity) and self.races > 0:
            self.races -= 1
            status = await self.host.ask(GetHost())
            vcpus, ram_mb, disk_gb = (int(x) for x in status.free)
            rival = f"rival-{self.races}"
            await self.host.ask(
                ClaimCapacity(rival, rival, rival, Capacity(vcpus, ram_mb, disk_gb))
            )
        return await self.host.ask(message)


def racing(system: ActorSystem, host: ActorRef, races: int = 1) -> ActorRef:
    """A :class:`RacingHost` in front of ``host``."""
    return system.spawn(lambda: RacingHost(host, races), address=f"race/{host.address}")


async def claim_ids(host: ActorRef) -> list[str]:
    """The ids of the claims a host holds."""
    status = await host.ask(GetHost())
    return [c.id for c in status.claims]


# --------------------------------------------------------------------------------------------
# input


#: What a flavor's size must be, as error messages say it.
FLAVOR_SIZE = re.escape("an int from 1 to 2**63 - 1")


def test_bad_input_is_refused() -> None:
    """Non-positive sizes, empty names and bad options are InvalidArgument, naming the field."""
    with pytest.raises(InvalidArgument, match=rf"vcpus: expected {FLAVOR_SIZE}, got -1"):
        Flavor("m1", vcpus=-1, ram_mb=1, disk_gb=1)
    with pytest.raises(InvalidArgument, match=rf"ram_mb: expected {FLAVOR_SIZE}, got 0"):
        Flavor("m1", vcpus=1, ram_mb=0, disk_gb=1)
    with pytest.raises(InvalidArgument, match=rf"disk_gb: expected {FLAVOR_SIZE}, got True"):
        Flavor("m1", vcpus=1, ram_mb=1, disk_gb=True)
    with pytest.raises(InvalidArgument, match="name: expected a non-empty str, got ''"):
        Flavor("", vcpus=1, ram_mb=1, disk_gb=1)
    with pytest.raises(InvalidArgument, match="name: expected a non-empty str"):
        ServerGroup("", GroupPolicy.AFFINITY)
    with pytest.raises(InvalidArgument, match="instance_id: expected a non-empty str"):
        PlacementRequest("", "t-1", SMALL)
    with pytest.raises(InvalidArgument, match="zone: expected a non-empty str"):
        PlacementRequest("i-1", "t-1", SMALL, zone="")
    with pytest.raises(InvalidArgument, match="alternates: expected an int >= 0, got -1"):
        Scheduler({}, alternates=-1)
    assert SMALL.amount == Capacity(1, 1024, 10)


async def test_group_reused_with_another_policy_is_refused() -> None:
    """A group name with members cannot be used with the opposite policy."""
    async with open_actor_system() as system:
        scheduler = Scheduler({"h-1": await add_host(system, "h-1")})
        await scheduler.place(request(1, group=ServerGroup("g", GroupPolicy.AFFINITY)))
        with pytest.raises(InvalidArgument, match="expected policy affinity for server group g"):
            await scheduler.place(request(2, group=ServerGroup("g", GroupPolicy.ANTI_AFFINITY)))


# --------------------------------------------------------------------------------------------
# filters


async def test_capacity_filter_eliminates_hosts_without_room() -> None:
    """Hosts without room are filtered out and counted; the claim lands where it fits."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 2, 16384, 100),
            "h-2": await add_host(system, "h-2", 8, 2048, 100),
            "h-3": await add_host(system, "h-3", 8, 8192, 100),
        }
        scheduler = Scheduler(hosts)
        placement = await scheduler.place(request(1, LARGE))
        assert placement.host_id == "h-3"
        assert placement.claim.id == "t-1:i-1"
        assert placement.claim.amount == LARGE.amount
        with pytest.raises(NoValidHost) as caught:
            await scheduler.place(request(2, LARGE))
        assert str(caught.value) == ("no valid host for i-2 among 3 hosts: capacity eliminated 3")
        assert caught.value.eliminated == (
            ("reservation", 0),
            ("capacity", 3),
            ("enabled_and_up", 0),
            ("zone", 0),
            ("server_group", 0),
        )
        assert caught.value.tried == ()
        assert caught.value.hosts == 3
        assert caught.value.instance_id == "i-2"


@pytest.mark.virtual_time
async def test_enabled_and_up_filter_eliminates_disabled_and_down_hosts() -> None:
    """A disabled host and one that stopped heartbeating get nothing, even with most room."""
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with open_actor_system(env=env) as system:
        down = await add_host(system, "h-1", 16, 65536, 400)
        await asyncio.sleep(HostActor.heartbeat_timeout + 1)
        disabled = await add_host(system, "h-2", 16, 65536, 400)
        await disabled.ask("disable")
        small = await add_host(system, "h-3", 2, 2048, 20)
        scheduler = Scheduler({"h-1": down, "h-2": disabled, "h-3": small})
        assert (await scheduler.place(request(1))).host_id == "h-3"
        await small.ask("disable")
        with pytest.raises(NoValidHost, match=r"among 3 hosts: enabled_and_up eliminated 3$"):
            await scheduler.place(request(2))


async def test_zone_filter_keeps_only_the_requested_zone() -> None:
    """A request for a zone lands there; any zone is fine without one."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 16, 65536, 400, zone="az-1"),
            "h-2": await add_host(system, "h-2", 2, 2048, 20, zone="az-2"),
        }
        scheduler = Scheduler(hosts)
        assert (await scheduler.place(request(1, zone="az-2"))).host_id == "h-2"
        assert (await scheduler.place(request(2))).host_id == "h-1"
        with pytest.raises(NoValidHost, match=r"among 2 hosts: zone eliminated 2$"):
            await scheduler.place(request(3, zone="az-9"))


@pytest.mark.virtual_time
async def test_no_valid_host_counts_what_each_filter_eliminated() -> None:
    """The error names each filter with the exact number of hosts it removed, in order."""
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with open_actor_system(env=env) as system:
        hosts = {"h-01": await add_host(system, "h-01")}
        await asyncio.sleep(HostActor.heartbeat_timeout + 1)  # h-01 is now down
        hosts["h-02"] = await add_host(system, "h-02")
        await hosts["h-02"].ask("disable")
        hosts["h-03"] = await add_host(system, "h-03", zone="az-2")
        for n in range(4, 13):
            hosts[f"h-{n:02}"] = await add_host(system, f"h-{n:02}", 1, 512, 5)
        scheduler = Scheduler(hosts)
        with pytest.raises(NoValidHost) as caught:
            await scheduler.place(request(7, zone="nova"))
        assert str(caught.value) == (
            "no valid host for i-7 among 12 hosts: capacity eliminated 9, "
            "enabled_and_up eliminated 2, zone eliminated 1"
        )


async def test_unreachable_hosts_are_counted_and_skipped() -> None:
    """A stopped host cannot answer; it is reported as unreachable and the rest still work."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 16, 65536, 400),
            "h-2": await add_host(system, "h-2", 1, 1024, 10),
        }
        await system.stop("h-1")
        scheduler = Scheduler(hosts)
        assert (await scheduler.place(request(1))).host_id == "h-2"
        with pytest.raises(NoValidHost) as caught:
            await scheduler.place(request(2))
        assert str(caught.value) == (
            "no valid host for i-2 among 2 hosts: unreachable eliminated 1, capacity eliminated 1"
        )


async def test_no_hosts_at_all() -> None:
    """With no hosts, the error says so rather than listing nothing."""
    scheduler = Scheduler({})
    with pytest.raises(NoValidHost, match="among 0 hosts: no hosts are known"):
        await scheduler.place(request(1))


async def test_hosts_callable_is_read_on_every_placement() -> None:
    """A callable host source sees hosts added after the scheduler was made."""
    async with open_actor_system() as system:
        hosts: dict[str, ActorRef] = {}
        scheduler = Scheduler(lambda: hosts)
        with pytest.raises(NoValidHost):
            await scheduler.place(request(1))
        hosts["h-1"] = await add_host(system, "h-1")
        assert (await scheduler.place(request(1))).host_id == "h-1"


# --------------------------------------------------------------------------------------------
# server groups


async def test_affinity_places_members_together() -> None:
    """Members of an affinity group follow the first one, against the spread weigher."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 4, 4096, 40),
            "h-2": await add_host(system, "h-2", 4, 4096, 40),
            "h-3": await add_host(system, "h-3", 4, 4096, 40),
        }
        scheduler = Scheduler(hosts, weigher=Weigher.SPREAD)
        group = ServerGroup("web", GroupPolicy.AFFINITY)
        placed = [await scheduler.place(request(n, group=group)) for n in range(4)]
        assert [p.host_id for p in placed] == ["h-1"] * 4
        assert scheduler.membership == {"web": {f"i-{n}": "h-1" for n in range(4)}}
        with pytest.raises(NoValidHost) as caught:
            await scheduler.place(request(4, group=group))
        assert str(caught.value) == (
            "no valid host for i-4 among 3 hosts: capacity eliminated 1, server_group eliminated 2"
        )
        # Outside the group, spreading goes on as usual.
        assert (await scheduler.place(request(5))).host_id == "h-2"


async def test_anti_affinity_spreads_members_and_runs_out_of_hosts() -> None:
    """Anti-affinity members get a host each (even under PACK); one more finds none, and a
    forgotten member frees its host for the group."""
    async with open_actor_system() as system:
        hosts = {h: await add_host(system, h) for h in ("h-1", "h-2", "h-3")}
        scheduler = Scheduler(hosts, weigher=Weigher.PACK)
        group = ServerGroup("db", GroupPolicy.ANTI_AFFINITY)
        placed = [await scheduler.place(request(n, group=group)) for n in range(3)]
        assert [p.host_id for p in placed] == ["h-1", "h-2", "h-3"]
        with pytest.raises(NoValidHost, match=r"among 3 hosts: server_group eliminated 3$"):
            await scheduler.place(request(3, group=group))
        # A deleted member gives its claim back and leaves the group; membership follows
        # the ledgers, so the host is free for the group again.
        assert await scheduler.release(placed[1].host_id, placed[1].claim.id) is True
        assert scheduler.forget("i-1") is True
        assert scheduler.forget("i-1") is False
        assert (await scheduler.place(request(3, group=group))).host_id == "h-2"


async def test_concurrent_anti_affinity_placements_never_share_a_host() -> None:
    """Members placed concurrently still land on distinct hosts (placements in one group are
    serialised, so none decides on stale membership)."""
    async with open_actor_system() as system:
        hosts = {h: await add_host(system, h) for h in ("h-1", "h-2", "h-3")}
        scheduler = Scheduler(hosts)
        group = ServerGroup("db", GroupPolicy.ANTI_AFFINITY)
        results = await asyncio.gather(
            *(scheduler.place(request(n, group=group)) for n in range(4)),
            return_exceptions=True,
        )
        placed = [r for r in results if isinstance(r, Placement)]
        assert sorted(p.host_id for p in placed) == ["h-1", "h-2", "h-3"]
        assert [type(r) for r in results if not isinstance(r, Placement)] == [NoValidHost]


# --------------------------------------------------------------------------------------------
# weighers


async def test_spread_and_pack_choose_different_hosts() -> None:
    """SPREAD picks the host with most free RAM, PACK the one with least."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 4, 8192, 100),
            "h-2": await add_host(system, "h-2", 4, 2048, 100),
            "h-3": await add_host(system, "h-3", 4, 4096, 100),
        }
        spread = await Scheduler(hosts, weigher=Weigher.SPREAD).place(request(1))
        pack = await Scheduler(hosts, weigher=Weigher.PACK).place(request(2))
        assert (spread.host_id, pack.host_id) == ("h-1", "h-2")


async def test_free_vcpus_break_ram_ties() -> None:
    """With equal free RAM, SPREAD prefers more free vcpus and PACK fewer."""
    async with open_actor_system() as system:
        hosts = {
            "h-1": await add_host(system, "h-1", 2, 4096, 100),
            "h-2": await add_host(system, "h-2", 8, 4096, 100),
        }
        pack = await Scheduler(hosts, weigher=Weigher.PACK).place(request(1))
        assert pack.host_id == "h-1"
        assert await Scheduler(hosts).release(pack.host_id, pack.claim.id) is True
        assert (await Scheduler(hosts, weigher=Weigher.SPREAD).place(request(2))).host_id == "h-2"


async def test_ties_go_to_the_smallest_host_id() -> None:
    """Equal hosts are taken in host id order, whatever the mapping's order."""
    async with open_actor_system() as system:
        hosts = {h: await add_host(system, h) for h in ("h-c", "h-a", "h-b")}
        spread = Scheduler(hosts, weigher=Weigher.SPREAD)
        assert [(await spread.place(request(n))).host_id for n in range(3)] == [
            "h-a",
            "h-b",
            "h-c",
        ]
        pack = Scheduler(hosts, weigher=Weigher.PACK)
        assert [(await pack.place(request(n))).host_id for n in range(3, 5)] == ["h-a", "h-a"]


# --------------------------------------------------------------------------------------------
# claims, races and retries


async def test_lost_race_moves_on_to_the_next_host() -> None:
    """When the best host fills up between GetHost and the claim, the next one gets it."""
    async with open_actor_system() as system:
        best = await add_host(system, "h-1", 8, 8192, 100)
        second = await add_host(system, "h-2", 4, 4096, 100)
        scheduler = Scheduler({"h-1": racing(system, best), "h-2": second})
        placement = await scheduler.place(request(1))
        assert placement.host_id == "h-2"
        assert await claim_ids(best) == ["rival-0"]
        assert await claim_ids(second) == ["t-1:i-1"]


async def test_concurrent_placements_for_the_last_slots_both_win() -> None:
    """Two placements that both chose the same one-slot host: one claims it, the other is
    refused and takes the next host instead of failing."""
    async with open_actor_system() as system:
        hosts = {h: await add_host(system, h, 1, 1024, 10) for h in ("h-1", "h-2")}
        scheduler = Scheduler(hosts, alternates=1)
        first, second = await asyncio.gather(
            scheduler.place(request(1)), scheduler.place(request(2))
        )
        assert (first.host_id, second.host_id) == ("h-1", "h-2")


@pytest.mark.parametrize("alternates", [0, 2])
async def test_alternates_bound_the_retries(alternates: int) -> None:
    """After the first refused claim, at most ``alternates`` more hosts are tried."""
    async with open_actor_system() as system:
        hosts = {}
        for n in range(1, 6):
            host = await add_host(system, f"h-{n}", 4, 1024 * (10 - n), 100)
            hosts[f"h-{n}"] = racing(system, host)
        scheduler = Scheduler(hosts, alternates=alternates)
        with pytest.raises(NoValidHost) as caught:
            await scheduler.place(request(1))
        tried = tuple(f"h-{n}" for n in range(1, alternates + 2))
        assert caught.value.tried == tried
        assert str(caught.value) == (
            f"no valid host for i-1 among 5 hosts: claims refused on {', '.join(tried)}"
        )
        # The hosts beyond the bound were never asked to claim (no rival filled them).
        for n in range(alternates + 2, 6):
            assert await claim_ids(system.lookup(f"h-{n}")) == []


async def test_placing_again_returns_the_claim_already_held() -> None:
    """A retried placement finds its claim and claims nothing more, even where the weigher
    would now prefer another host."""
    async with open_actor_system() as system:
        hosts = {h: await add_host(system, h) for h in ("h-1", "h-2")}
        scheduler = Scheduler(hosts)
        group = ServerGroup("g", GroupPolicy.ANTI_AFFINITY)
        first = await scheduler.place(request(1, group=group))
        assert await scheduler.place(request(1, group=group)) == first
        assert await claim_ids(hosts["h-1"]) == ["t-1:i-1"]
        assert await claim_ids(hosts["h-2"]) == []


async def test_release_gives_the_room_back() -> None:
    """Releasing a placement's claim frees the host; unknown hosts are InvalidArgument."""
    async with open_actor_system() as system:
        hosts = {"h-1": await add_host(system, "h-1", 1, 1024, 10)}
        scheduler = Scheduler(hosts)
        placement = await scheduler.place(request(1))
        with pytest.raises(NoValidHost):
            await scheduler.place(request(2))
        assert await scheduler.release(placement.host_id, placement.claim.id) is True
        assert await scheduler.release(placement.host_id, placement.claim.id) is False
        assert (await scheduler.place(request(2))).host_id == "h-1"
        with pytest.raises(InvalidArgument, match=r"host_id: expected one of \['h-1'\]"):
            await scheduler.release("h-9", "t-1:i-1")


# --------------------------------------------------------------------------------------------
# properties


@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(
    sizes=st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.booleans()), min_size=100, max_size=100
    ),
    weigher=st.sampled_from(Weigher),
)
def test_concurrent_placements_never_over_commit(
    sizes: list[tuple[int, int, bool]], weigher: Weigher
) -> None:
    """100 concurrent placements on three small hosts each succeed or raise NoValidHost; no
    host holds more than its capacity, every placement's claim is held where it says, and
    anti-affinity members never share a host."""

    async def scenario() -> None:
        async with open_actor_system() as system:
            hosts = {h: await add_host(system, h, 8, 8192, 80) for h in ("h-1", "h-2", "h-3")}
            scheduler = Scheduler(hosts, weigher=weigher, alternates=2)
            group = ServerGroup("g", GroupPolicy.ANTI_AFFINITY)
            requests = [
                request(n, Flavor(f"f-{n}", vcpus, ram * 512, 1), group=group if grouped else None)
                for n, (vcpus, ram, grouped) in enumerate(sizes)
            ]
            results = await asyncio.gather(
                *(scheduler.place(r) for r in requests), return_exceptions=True
            )
            assert all(isinstance(r, Placement | NoValidHost) for r in results)
            placed = [r for r in results if isinstance(r, Placement)]
            held: dict[str, set[str]] = {}
            for host_id, host in hosts.items():
                status = await host.ask(GetHost())
                used = Capacity()
                for claim in status.claims:
                    used = used + claim.amount
                assert used.vcpus <= 8
                assert used.ram_mb <= 8192
                assert used.disk_gb <= 80
                held[host_id] = {c.id for c in status.claims}
            assert sum(len(ids) for ids in held.values()) == len(placed)
            for placement in placed:
                assert placement.claim.id in held[placement.host_id]
            members = scheduler.membership.get("g", {})
            assert len(set(members.values())) == len(members)

    asyncio.run(scenario())

"""The fleet's public API refuses bad arguments with InvalidArgument before anything is
committed, and the fleet (and a reopen of it) works on as before."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    GroupPolicy,
    UnknownName,
)
from stateward.flows import TaskStatus
from stateward.runtime import (
    Durability,
    InvalidArgument,
    MemoryStore,
    Overflow,
    StatewardError,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)
LONE_SURROGATE = "\ud800"


async def setup(fleet: Fleet) -> None:
    """One flavor, one image, one host."""
    await fleet.flavors.add(SMALL)
    await fleet.images.add("cirros")
    await fleet.hosts.add("h-0", capacity=HOST_SIZE)


async def boot(fleet: Fleet, name: str, **options: Any) -> TaskStatus:
    """Boot ``name`` and wait for the boot's end."""
    record = await fleet.instances.boot(name, flavor="m1.small", image="cirros", **options)
    return (await fleet.tasks.wait(record.id)).status


# -- item: a non-string idempotency key --------------------------------------------------------


async def test_a_non_string_idempotency_key_is_refused_and_commits_nothing(
    tmp_path: Path,
) -> None:
    """``idempotency_key=12345`` is InvalidArgument (expected str or None, got 12345) on boot
    and on every command; nothing is committed, the same name boots afterwards, and the
    fleet reopens with its task records readable."""
    db = tmp_path / "cloud.db"
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await setup(fleet)
        with pytest.raises(
            InvalidArgument, match=r"idempotency_key: expected a non-empty str or None, got 12345"
        ):
            await fleet.instances.boot(
                "web-1",
                flavor="m1.small",
                image="cirros",
                idempotency_key=12345,  # type: ignore[arg-type]
            )
        assert await fleet.instances.summaries() == ()
        assert await fleet.tasks.list("web-1") == ()
        assert await boot(fleet, "web-1", idempotency_key="boot-1") is TaskStatus.SUCCEEDED
        bad_keys: tuple[Any, ...] = (12345, b"key", ["k"], LONE_SURROGATE, "")
        for bad in bad_keys:
            with pytest.raises(InvalidArgument, match="idempotency_key"):
                await fleet.instances.stop("web-1", idempotency_key=bad)
        assert (await fleet.instances.get("web-1")).state == "active"
        assert [t.kind for t in await fleet.tasks.list("web-1")] == ["boot"]
    async with Fleet.open(db, driver=driver) as fleet:
        [record] = await fleet.tasks.list("web-1")
        assert (record.kind, record.idempotency_key) == ("boot", "boot-1")
        assert await fleet.tasks.last_fault("web-1") is None


# -- item: Fleet.open's parameters -------------------------------------------------------------


def _driver() -> FakeDriver:
    return FakeDriver()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"env": True}, "env"),
        ({"env": "env"}, "env"),
        ({"path": 5}, "path"),
        ({"path": b"x"}, "path"),
        ({"path": 0.0}, "path"),
        ({"path": ""}, "path"),
        ({"path": "a\x00b"}, "path"),
        ({"path": LONE_SURROGATE}, "path"),
        ({"store": "memory"}, "store"),
        ({"driver": None}, "driver"),
        ({"durability": "full"}, "durability"),
        ({"weigher": "spread"}, "weigher"),
        ({"networks": "default"}, "networks"),
        ({"networks": (5,)}, r"networks\[0\]"),
        ({"networks": (LONE_SURROGATE,)}, r"networks\[0\]"),
        ({"heartbeat_interval": math.inf}, "heartbeat_interval"),
        ({"heartbeat_interval": True}, "heartbeat_interval"),
        ({"heartbeat_interval": 10**400}, "heartbeat_interval"),
        ({"reconcile": "yes"}, "reconcile"),
        ({"idle_after": -1}, "idle_after"),
        ({"idle_after": math.nan}, "idle_after"),
        ({"idle_after": "300"}, "idle_after"),
        ({"instance_actor": object}, "instance_actor"),
    ],
)
def test_fleet_open_refuses_every_bad_parameter(
    options: dict[str, Any], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each parameter of Fleet.open of the wrong type or out of range is InvalidArgument
    naming it, and no file is created."""
    monkeypatch.chdir(tmp_path)
    arguments: dict[str, Any] = {"driver": _driver(), **options}
    path = arguments.pop("path", None)
    with pytest.raises(InvalidArgument, match=rf"^{name}: expected"):
        Fleet.open(path, **arguments)
    assert os.listdir(tmp_path) == []


def test_fleet_open_takes_a_path_like_and_memory() -> None:
    """A str, a Path or None (memory) are paths Fleet.open takes."""
    for path in ("cloud.db", Path("cloud.db"), None):
        assert Fleet.open(path, driver=_driver()).path == path


# -- queries and commands ----------------------------------------------------------------------


async def test_huge_ints_and_bad_limits_in_queries_are_invalid_arguments() -> None:
    """A task listing's limit of 2**63, 0, a bool or a float is InvalidArgument (never an
    OverflowError), and the listing works with a good one."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        await boot(fleet, "web-1")
        bad_limits: tuple[Any, ...] = (2**63, 2**70, 0, -1, True, 1.5, "5")
        for bad in bad_limits:
            with pytest.raises(InvalidArgument, match="limit: expected an int from 1 to"):
                await fleet.tasks.list("web-1", limit=bad)
        assert len(await fleet.tasks.list("web-1", limit=2**63 - 1)) == 1


async def test_commands_and_queries_refuse_arguments_of_the_wrong_type() -> None:
    """Names, images, zones, groups, policies, networks, volumes, task ids, flags and host
    settings of the wrong type or with lone surrogates are InvalidArgument; nothing is
    committed and the fleet works on."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await setup(fleet)
        bad_boots: list[tuple[dict[str, Any], str]] = [
            ({"instance_id": 5}, "instance name"),
            ({"instance_id": ["web"]}, "instance name"),
            ({"instance_id": LONE_SURROGATE}, "instance name"),
            ({"flavor": 5}, "flavor"),
            ({"flavor": {"m1.small"}}, "flavor"),
            ({"image": LONE_SURROGATE}, "image"),
            ({"zone": 5}, "zone"),
            ({"group": "g", "group_policy": "anti-affinity"}, "group_policy"),
            ({"group": ["g"], "group_policy": GroupPolicy.AFFINITY}, "group name"),
            ({"networks": "default"}, "networks"),
            ({"networks": (None,)}, r"networks\[0\]"),
            ({"volumes": "vol-1"}, "volumes"),
            ({"volumes": ("vol-1", LONE_SURROGATE)}, r"volumes\[1\]"),
        ]
        for options, name in bad_boots:
            arguments: dict[str, Any] = {
                "instance_id": "web-1",
                "flavor": "m1.small",
                "image": "cirros",
            }
            arguments.update(options)
            instance_id = arguments.pop("instance_id")
            with pytest.raises(InvalidArgument, match=rf"^{name}: expected"):
                await fleet.instances.boot(instance_id, **arguments)
        assert await fleet.instances.summaries() == ()
        with pytest.raises(UnknownName, match="unknown flavor"):
            await fleet.instances.boot("web-1", flavor="m9", image="cirros")
        assert await boot(fleet, "web-1") is TaskStatus.SUCCEEDED

        with pytest.raises(InvalidArgument, match=r"^hard: expected True or False"):
            await fleet.instances.reboot("web-1", hard="yes")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^image: expected"):
            await fleet.instances.rebuild("web-1", image=5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^action: expected"):
            await fleet.instances.act("web-1", ["stop"])  # type: ignore[arg-type]
        for query in (fleet.instances.get, fleet.instances.stop, fleet.instances.delete):
            with pytest.raises(InvalidArgument, match=r"^instance name: expected"):
                await query({"web-1": 1})  # type: ignore[arg-type]
        for task_query in (fleet.tasks.get, fleet.tasks.wait):
            with pytest.raises(InvalidArgument, match=r"^task_id: expected"):
                await task_query(LONE_SURROGATE)
        for resource_query in (fleet.tasks.list, fleet.tasks.last_fault, fleet.tasks.actions):
            with pytest.raises(InvalidArgument, match=r"^resource_id: expected"):
                await resource_query(5)  # type: ignore[arg-type]
        for host_query in (fleet.hosts.get, fleet.hosts.heartbeat):
            with pytest.raises(InvalidArgument, match=r"^host name: expected"):
                await host_query(["h-0"])  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^alive: expected True or False"):
            fleet.hosts.set_agent("h-0", alive=1)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^event: expected"):
            await fleet.hosts.command("h-0", ["disable"])  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^buffer: expected"):
            fleet.subscribe("task.#", buffer=2**64)
        with pytest.raises(InvalidArgument, match=r"^pattern: expected"):
            fleet.subscribe(5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^overflow: expected"):
            fleet.subscribe("task.#", overflow="drop")  # type: ignore[arg-type]
        with fleet.subscribe("task.#", overflow=Overflow.DROP_NEWEST):
            pass
        status = await fleet.instances.get("web-1")
        assert (status.state, status.revision) == ("active", 5)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"capacity": "big"}, "capacity"),
        ({"capacity": Capacity(vcpus=2**70)}, "capacity.vcpus"),
        ({"zone": LONE_SURROGATE}, "zone"),
        ({"zone": 5}, "zone"),
        ({"cpu_ratio": math.inf}, "cpu_ratio"),
        ({"disk_ratio": 10**400}, "disk_ratio"),
        ({"ram_ratio": "1.5"}, "ram_ratio"),
    ],
)
async def test_a_host_with_bad_settings_is_refused_before_it_exists(
    options: dict[str, Any], name: str
) -> None:
    """Bad host settings are InvalidArgument before the host's actor exists: the name stays
    free and the same host is added with good settings afterwards."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        arguments: dict[str, Any] = {"capacity": HOST_SIZE, **options}
        with pytest.raises(InvalidArgument, match=rf"^{name}: expected"):
            await fleet.hosts.add("h-0", **arguments)
        assert fleet.hosts.ids() == ()
        assert "h-0" not in fleet.system
        status = await fleet.hosts.add("h-0", capacity=HOST_SIZE)
        assert status.capacity == HOST_SIZE


async def test_catalogs_take_only_what_they_hold() -> None:
    """The flavor catalog takes Flavors, the image catalog image names; names must be valid
    text; membership of an unhashable value is False, not a TypeError."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        with pytest.raises(InvalidArgument, match=r"^flavor: expected a Flavor"):
            await fleet.flavors.add("m1.small")
        with pytest.raises(InvalidArgument, match=r"^image name: expected"):
            await fleet.images.add(5)
        with pytest.raises(InvalidArgument, match=r"^image name: expected"):
            await fleet.images.add(LONE_SURROGATE)
        with pytest.raises(InvalidArgument, match=r"^flavor name: expected"):
            await fleet.flavors.add(SMALL, name=LONE_SURROGATE)
        assert ["m1.small"] not in fleet.flavors
        assert list(fleet.flavors) == list(fleet.images) == []
        with pytest.raises(
            InvalidArgument, match=r"^image: expected the name of an image \(a str\)"
        ):
            fleet.images.get(["cirros"])  # type: ignore[arg-type]
        with pytest.raises(UnknownName, match="unknown image 'fedora'"):
            fleet.images.get("fedora")


def test_flavor_sizes_fit_a_database_integer() -> None:
    """A flavor size of 2**63 or more is InvalidArgument (it could not be journaled)."""
    with pytest.raises(InvalidArgument, match=r"^vcpus: expected an int from 1 to"):
        Flavor("huge", vcpus=2**63, ram_mb=1, disk_gb=1)
    assert Flavor("big", vcpus=2**62, ram_mb=1, disk_gb=1).vcpus == 2**62


async def test_a_bad_call_leaves_a_store_given_by_the_caller_usable() -> None:
    """After refused calls the caller's store takes a new fleet: reopening works."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        await setup(fleet)
        with pytest.raises(StatewardError):
            await fleet.instances.boot(
                "web-1",
                flavor="m1.small",
                image="cirros",
                zone=5,  # type: ignore[arg-type]
            )
    async with Fleet.open(None, driver=FakeDriver(), store=store, durability=Durability.NORMAL):
        pass
    await store.aclose()

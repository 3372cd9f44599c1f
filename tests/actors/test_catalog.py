"""The fleet's catalog (flavors and images): durable, idempotent, checked."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from stateward.actors import Capacity, DuplicateName, FakeDriver, Flavor, Fleet, UnknownName
from stateward.flows import TaskStatus
from stateward.runtime import (
    Document,
    InvalidArgument,
    MemoryStore,
    StoreUnavailable,
    Write,
)

SMALL = Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20)
BIGGER_SMALL = Flavor("m1.small", vcpus=2, ram_mb=4096, disk_gb=40)
HOST_SIZE = Capacity(vcpus=8, ram_mb=16384, disk_gb=200)


async def test_a_reopened_fleet_knows_its_flavors_and_images(tmp_path: Path) -> None:
    """Flavors and images added to a fleet on a SQLite file are there after a reopen: a boot
    names them without adding them again."""
    path = tmp_path / "cloud.db"
    driver = FakeDriver()
    async with Fleet.open(path, driver=driver) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.flavors.add(SMALL, name="small")
        await fleet.images.add("cirros")
        await fleet.images.add("ubuntu")
        await fleet.hosts.add("h-1", capacity=HOST_SIZE)
    async with Fleet.open(path, driver=driver) as fleet:
        assert list(fleet.flavors) == ["m1.small", "small"]
        assert fleet.flavors.get("small") == SMALL
        assert list(fleet.images) == ["cirros", "ubuntu"]
        record = await fleet.instances.boot("web-1", flavor="small", image="ubuntu")
        assert (await fleet.tasks.wait(record.id)).status is TaskStatus.SUCCEEDED


async def test_adding_the_same_item_again_is_a_no_op() -> None:
    """An identical flavor or image added again changes nothing, not even the stored
    document's version."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        await fleet.flavors.add(SMALL)
        await fleet.flavors.add(Flavor("m1.small", 1, 2048, 20))
        await fleet.images.add("cirros")
        await fleet.images.add("cirros")
        flavor = await store.get_document("catalog.flavor", "m1.small")
        image = await store.get_document("catalog.image", "cirros")
    assert flavor is not None
    assert flavor.version == 1
    assert image is not None
    assert image.version == 1
    await store.aclose()


async def test_another_item_under_a_taken_name_is_a_duplicate() -> None:
    """A different flavor under a name the catalog holds is DuplicateName, saying what the
    name holds; the first flavor stays, in memory and in the store."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        await fleet.flavors.add(SMALL)
        with pytest.raises(DuplicateName, match=r"flavor named 'm1.small' exists already as") as e:
            await fleet.flavors.add(BIGGER_SMALL)
        assert "vcpus=1" in str(e.value)
        assert fleet.flavors.get("m1.small") == SMALL
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        assert fleet.flavors.get("m1.small") == SMALL
    await store.aclose()


async def test_racing_adds_of_one_name_cannot_both_win() -> None:
    """Two adds of different flavors under one name at once: one is added, the other is
    DuplicateName."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        outcomes = await asyncio.gather(
            fleet.flavors.add(SMALL), fleet.flavors.add(BIGGER_SMALL), return_exceptions=True
        )
        assert outcomes[0] is None
        assert isinstance(outcomes[1], DuplicateName)
        assert fleet.flavors.get("m1.small") == SMALL


async def test_bad_catalog_input_stores_nothing() -> None:
    """A flavor that is not one, an image name that is not text or is blank, are
    InvalidArgument, and nothing reaches the store."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        with pytest.raises(InvalidArgument, match=r"^flavor: expected a Flavor"):
            await fleet.flavors.add({"name": "m1.small"})
        with pytest.raises(InvalidArgument, match=r"^image name: expected"):
            await fleet.images.add(b"cirros")
        with pytest.raises(InvalidArgument, match=r"^image name: expected a name that is not"):
            await fleet.images.add("  ")
        with pytest.raises(UnknownName, match=r"unknown flavor 'm1\.small'"):
            fleet.flavors.get("m1.small")
    assert await store.find_documents("catalog.flavor") == ()
    assert await store.find_documents("catalog.image") == ()
    await store.aclose()


async def test_an_add_the_store_refuses_is_not_added() -> None:
    """An add whose commit fails raises StoreUnavailable and leaves the catalog without the
    item; added again once the store is back, it is there."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        store.fail_writes(1)
        with pytest.raises(StoreUnavailable):
            await fleet.images.add("cirros")
        assert "cirros" not in fleet.images
        await fleet.images.add("cirros")
        assert "cirros" in fleet.images
    await store.aclose()


async def test_an_add_reported_failed_that_landed_is_added() -> None:
    """A commit reported failed after it reached the store (an fsync error) counts as done:
    the store holds the flavor, and so does the catalog."""
    store = MemoryStore()
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        store.fail_writes(1, after_commit=True)
        await fleet.flavors.add(SMALL)
        assert fleet.flavors.get("m1.small") == SMALL


async def test_an_unreadable_catalog_item_is_left_out_and_can_be_added_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stored flavor that cannot be decoded is logged and left out when the fleet opens
    (the fleet still opens); adding the flavor again replaces it."""
    store = MemoryStore()
    garbage = Document("catalog.flavor", "m1.small", 1, b"\xc1not msgpack")
    await store.commit(Write(documents=(garbage,)))
    caplog.set_level(logging.ERROR, logger="stateward")
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        assert "m1.small" not in fleet.flavors
        assert "catalog item unreadable" in caplog.text
        await fleet.flavors.add(SMALL)
    async with Fleet.open(None, driver=FakeDriver(), store=store) as fleet:
        assert fleet.flavors.get("m1.small") == SMALL
    await store.aclose()

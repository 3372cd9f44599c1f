"""``stateward inspect DB --leases``: every lease, folded from its journal, and the holds on
each host."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from stateward.actors import (
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    HostReservation,
    InstanceReservation,
    LeaseDoesNotFit,
    LeasePolicy,
)
from stateward.bench import main


async def _leases(db: Path) -> float:
    """A pending host lease, a pending slot lease and a failed one; the leases' start."""
    async with Fleet.open(db, driver=FakeDriver()) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        for host in ("h-0", "h-1"):
            await fleet.hosts.add(host, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        start = fleet.env.clock.now() + 3600
        end = start + 3600
        create = fleet.leases.create
        await create("whole", start=start, end=end, reservations=(HostReservation(),))
        slots = (InstanceReservation("m1.small", count=3),)
        await create("slots", start=start, end=end, reservations=slots, on_end=LeasePolicy.DELETE)
        with pytest.raises(LeaseDoesNotFit):
            await create("toomuch", start=start, end=end, reservations=(HostReservation(count=2),))
    return start


def test_leases_lists_each_lease_and_the_holds_by_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each lease with its state, window, reservations, policy and hosts; the holds by host;
    the reason a lease failed."""
    db = tmp_path / "cloud.db"
    asyncio.run(_leases(db))
    assert main(["inspect", str(db), "--leases", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    rows = {row["id"]: row for row in found["leases"]}
    assert sorted(rows) == ["slots", "toomuch", "whole"]
    assert (rows["whole"]["state"], rows["slots"]["state"]) == ("pending", "pending")
    assert rows["slots"]["on_end"] == "delete"
    assert rows["toomuch"]["state"] == "failed"
    assert "does not fit" in rows["toomuch"]["reason"]
    calendars = found["calendars"]
    assert sorted(calendars) == ["h-0", "h-1"]
    held = {h["lease"]: (host, h) for host, holds in calendars.items() for h in holds}
    assert sorted(held) == ["slots", "whole"]
    assert held["whole"][1]["whole"] is True
    assert held["slots"][1]["amount"] == {"vcpus": 3, "ram_mb": 6144, "disk_gb": 60}
    assert held["slots"][0] != held["whole"][0]
    assert main(["inspect", str(db), "--leases"]) == 0
    table = capsys.readouterr().out
    assert "3 x m1.small" in table
    assert "whole host" in table

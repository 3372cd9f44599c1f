"""``stateward inspect DB --migrations``: every move, folded from its migration's journal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet, Operation
from stateward.bench import main


async def _moves(db: Path) -> tuple[str, str]:
    """A completed resize and a failed live migration; their migration ids."""
    driver = FakeDriver()
    async with Fleet.open(db, driver=driver) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.flavors.add(Flavor("m1.large", vcpus=4, ram_mb=8192, disk_gb=40))
        await fleet.images.add("cirros")
        for host in ("h-0", "h-1"):
            await fleet.hosts.add(host, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        for name in ("web-1", "web-2"):
            record = await fleet.instances.boot(name, flavor="m1.small", image="cirros")
            await fleet.tasks.wait(record.id)
        await fleet.tasks.wait((await fleet.instances.resize("web-1", "m1.large")).id)
        await fleet.tasks.wait((await fleet.instances.confirm_resize("web-1")).id)
        driver.failures = {Operation.TRANSFER: 1.0}
        await fleet.tasks.wait((await fleet.instances.live_migrate("web-2")).id)
        ids = [(await fleet.instances.get(n)).migration_id or "" for n in ("web-1", "web-2")]
    return ids[0], ids[1]


def test_migrations_lists_each_move_with_its_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cloud.db"
    resize, live = asyncio.run(_moves(db))
    assert main(["inspect", str(db), "--migrations", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    rows = {row["id"]: row for row in found["migrations"]}
    assert sorted(rows) == sorted([resize, live])
    assert (rows[resize]["kind"], rows[resize]["state"], rows[resize]["instance_id"]) == (
        "resize",
        "completed",
        "web-1",
    )
    assert (rows[resize]["old_flavor"], rows[resize]["new_flavor"]) == ("m1.small", "m1.large")
    assert rows[resize]["destination"] not in (None, rows[resize]["source"])
    assert (rows[live]["kind"], rows[live]["state"]) == ("live_migrate", "failed")
    assert "injected failure" in rows[live]["reason"]
    assert found["truncated"] is False
    assert main(["inspect", str(db), "--migrations", "--limit", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["truncated"] is True
    assert main(["inspect", str(db), "--migrations"]) == 0
    table = capsys.readouterr().out
    assert "m1.small→m1.large" in table
    assert "live_migrate" in table


def test_no_migrations_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def empty() -> None:
        async with Fleet.open(tmp_path / "cloud.db", driver=FakeDriver()):
            pass

    asyncio.run(empty())
    assert main(["inspect", str(tmp_path / "cloud.db"), "--migrations"]) == 0
    assert "no migrations" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "cloud.db"), "--migrations", "--kind", "x"]) == 2

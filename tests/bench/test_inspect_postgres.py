"""``stateward inspect postgresql://...``: a fleet on a real server, read through ``main``."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet
from stateward.bench import main
from stateward.runtime import POSTGRES_SCHEMA_VERSION, open_postgres_store
from stateward.testing import PostgresServer


async def _boot(dsn: str) -> str:
    """A fleet of two hosts and one booted instance on ``dsn``; the boot's task id."""
    async with Fleet.open(dsn, driver=FakeDriver()) as fleet:
        await fleet.flavors.add(Flavor("m1.small", vcpus=1, ram_mb=2048, disk_gb=20))
        await fleet.images.add("cirros")
        for name in ("h-1", "h-2"):
            await fleet.hosts.add(name, capacity=Capacity(vcpus=8, ram_mb=16384, disk_gb=200))
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        return (await fleet.tasks.wait(record.id)).id


@pytest.fixture
def fleet(postgres_database: str) -> tuple[str, str]:
    """The DSN of a database holding a booted fleet, and the boot's task id."""
    return postgres_database, asyncio.run(_boot(postgres_database))


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lists_what_the_store_holds(
    fleet: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The resource list is the store's, as JSON and as a table."""
    dsn, _ = fleet

    async def listing() -> list[Any]:
        async with open_postgres_store(dsn) as store:
            return list(await store.resources())

    document = _json(capsys, dsn)
    assert document["schema_version"] == POSTGRES_SCHEMA_VERSION
    assert document["database"] == dsn
    stored = asyncio.run(listing())
    assert [(r["id"], r["kind"], r["state"], r["revision"]) for r in document["resources"]] == [
        (s.resource_id, s.kind, s.state, s.revision) for s in stored
    ]
    assert {r["id"] for r in document["resources"]} == {"h-1", "h-2", "web-1"}
    assert main(["inspect", dsn]) == 0
    assert "│ web-1 │ instance │ active" in capsys.readouterr().out


def test_history_and_task_views(fleet: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """An instance's history ends in active; its boot task is succeeded, with its steps."""
    dsn, task_id = fleet
    history = _json(capsys, dsn, "--resource", "web-1")
    assert history["history"][-1]["target"] == "active"
    assert [t["sequence"] for t in history["history"]] == list(
        range(1, len(history["history"]) + 1)
    )
    task = _json(capsys, dsn, "--task", task_id)["task"]
    assert (task["status"], task["resource_id"]) == ("succeeded", "web-1")
    assert task["steps"]
    tasks = _json(capsys, dsn, "--resource", "web-1", "--tasks")
    assert [t["id"] for t in tasks["tasks"]] == [task_id]


def test_reads_while_the_fleet_runs(
    fleet: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The owning process keeps its connections; the reader sees what it committed."""
    dsn, _ = fleet

    async def read_beside() -> int:
        async with Fleet.open(dsn, driver=FakeDriver()) as running:
            await running.hosts.add("h-3", capacity=Capacity(vcpus=4, ram_mb=8192, disk_gb=100))
            return await asyncio.to_thread(main, ["inspect", dsn, "--kind", "host", "--json"])

    assert asyncio.run(read_beside()) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in document["resources"]] == ["h-1", "h-2", "h-3"]


def test_another_schema_is_refused_in_one_line(
    postgres: PostgresServer, postgres_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema without stateward's tables exits 1 with one line naming it, no traceback."""
    assert main(["inspect", postgres.dsn, "--schema", postgres_schema]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"schema {postgres_schema!r} holds no tables" in err
    assert "--schema" in err
    assert "Traceback" not in err


def test_an_unreachable_server_hides_the_password(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that refuses the connection exits 1; the password never reaches the output."""
    parts = urllib.parse.urlsplit(postgres.dsn)
    host = parts.netloc.rpartition("@")[2].rsplit(":", 1)[0]
    dsn = urllib.parse.urlunsplit(parts._replace(netloc=f"postgres:s3cret@{host}:1"))
    assert main(["inspect", dsn]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to the PostgreSQL server" in err
    assert "postgres:***@" in err
    assert "s3cret" not in err


def test_schema_without_a_dsn_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--schema`` names a PostgreSQL schema: with a file it is a usage error (exit 2)."""
    assert main(["inspect", str(tmp_path / "state.db"), "--schema", "x"]) == 2
    assert "--schema names a PostgreSQL schema" in capsys.readouterr().err

"""Reconciliation after crashes: a durable FakeDriver, and SIGKILLs of a boot-heavy fleet.

``fleet_child.py`` runs a fleet on SQLite with a FakeDriver whose state is on disk (the
hypervisor outlives the process). The parent kills it with SIGKILL after a seeded number of
acknowledgements, several times on the same files, and after every kill reopens the fleet
in-process and holds it to the invariants: nothing orphaned, nothing lost, every ledger
exact.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from stateward.actors import FakeDriver, Fleet, Operation, Power, ReconcileReport
from stateward.flows import TASKS, TaskStatus
from stateward.runtime import InvalidArgument

CHILD = Path(__file__).with_name("fleet_child.py")
#: A child that has not printed what it should after this long is stuck.
WATCHDOG = 20.0


# -- the durable FakeDriver ------------------------------------------------------------------


async def test_driver_state_survives_a_new_driver_on_the_same_file(tmp_path: Path) -> None:
    """Instances, ports, volumes and power written by one FakeDriver are what a second one on
    the same state file describes."""
    path = tmp_path / "driver.state"
    first = FakeDriver(state_path=path)
    port = await first.allocate_port("op-1", "i-1", network="net")
    await first.attach_volume("op-2", "i-1", volume_id="vol-1")
    await first.spawn("op-3", "i-1", host="h-1", image="cirros")
    await first.set_power("op-4", "i-1", Operation.POWER_ON)
    await first.allocate_port("op-5", "nobody", network="net")
    second = FakeDriver(state_path=str(path))
    assert await second.describe() == await first.describe()
    [instance] = (await second.describe()).instances
    assert (instance.host_id, instance.power, instance.ports, instance.volumes) == (
        "h-1",
        Power.RUNNING,
        (port,),
        ("vol-1",),
    )
    assert not path.with_name(path.name + ".tmp").exists()


async def test_done_operations_stay_done_across_drivers(tmp_path: Path) -> None:
    """A repeat of an op id the previous driver completed returns the first result and does
    nothing; new ports do not reuse old ids."""
    path = tmp_path / "driver.state"
    first = FakeDriver(state_path=path)
    port = await first.allocate_port("op-1", "i-1", network="net")
    await first.spawn("op-2", "i-1", host="h-1", image="cirros")
    second = FakeDriver(state_path=path)
    assert await second.allocate_port("op-1", "i-1", network="net") == port
    await second.spawn("op-2", "i-1", host="h-1", image="cirros")  # not "it already exists"
    assert second.calls[Operation.SPAWN] == second.calls[Operation.ALLOCATE_PORT] == 0
    assert await second.allocate_port("op-3", "i-1", network="net") != port


async def test_a_failed_operation_is_not_persisted(tmp_path: Path) -> None:
    """An injected failure changes nothing on disk either."""
    path = tmp_path / "driver.state"
    driver = FakeDriver(state_path=path, failures={Operation.SPAWN: 1.0})
    await driver.allocate_port("op-1", "i-1", network="net")
    before = path.read_bytes()
    with pytest.raises(Exception, match="injected failure"):
        await driver.spawn("op-2", "i-1", host="h-1", image="cirros")
    assert path.read_bytes() == before
    assert (await FakeDriver(state_path=path).describe()).instances == ()


def test_a_bad_state_file_or_path_is_refused(tmp_path: Path) -> None:
    """A file that is not a driver state, or a path that is not a path, is InvalidArgument."""
    path = tmp_path / "driver.state"
    path.write_bytes(b"\x00not msgpack state")
    with pytest.raises(InvalidArgument, match="state_path: expected a FakeDriver state file"):
        FakeDriver(state_path=path)
    with pytest.raises(InvalidArgument, match="state_path: expected a str or Path"):
        FakeDriver(state_path=42)  # type: ignore[arg-type]


# -- SIGKILL of a boot-heavy fleet -----------------------------------------------------------


class Acks:
    """What the children acknowledged, over all their runs."""

    def __init__(self) -> None:
        self.lines: dict[str, set[str]] = defaultdict(set)

    def add(self, output: str) -> None:
        for line in output.splitlines():
            kind, _, name = line.partition(" ")
            if name:
                self.lines[kind].add(name)

    @property
    def must_live(self) -> set[str]:
        """Booted, and never asked to be deleted: they must be active on the hypervisor."""
        return self.lines["booted"] - self.lines["deleting"]


def run_and_kill(db: Path, state: Path, tag: str, seed: int, after: int, log: Path) -> str:
    """Start a child, SIGKILL it once it printed ``after`` lines; return all it printed."""
    with log.open("ab") as errors:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(state), tag, str(seed)],
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    watchdog = threading.Timer(WATCHDOG, child.kill)
    watchdog.start()
    try:
        assert child.stdout is not None
        seen: list[str] = []
        while len(seen) < after:
            line = child.stdout.readline().decode()
            if not line:
                break
            seen.append(line)
        alive = child.poll() is None
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate()
    finally:
        watchdog.cancel()
    assert alive, f"child exited ({child.returncode}) before the kill: {log.read_text()[-2000:]}"
    assert child.returncode == -signal.SIGKILL, (child.returncode, log.read_text()[-3000:])
    assert seen[:1] == ["ready\n"], log.read_text()[-2000:]
    return "".join(seen) + rest.decode()


async def check(db: Path, state: Path, acks: Acks) -> ReconcileReport:
    """Reopen on the same files, reconcile, and hold the result to the invariants."""
    driver = FakeDriver(state_path=state)
    async with Fleet.open(db, driver=driver, reconcile=True) as fleet:
        opened = fleet.last_reconcile
        assert opened is not None
        acks.lines["ghost"].update(opened.ghosts)
        again = await fleet.reconcile()
        assert again == ReconcileReport((), (), (), (), ()), again

        for status in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.REVERTING):
            left = await fleet.store.find_documents(TASKS, status=status.value, limit=5)
            assert not left, f"tasks still {status.value}: {[d.key for d in left]}"

        instances = {i.id: i for i in await fleet.instances.list()}
        for instance in instances.values():
            assert "/" not in instance.state, instance
        live = {k: v for k, v in instances.items() if v.state != "deleted"}

        view = await driver.describe()
        on_driver = {i.id: i for i in view.instances}
        assert set(on_driver) <= set(live), set(on_driver) - set(live)
        assert set(view.ports.values()) <= set(live)
        assert set(view.volumes.values()) <= set(live)
        for name, seen in on_driver.items():
            if live[name].state != "error":  # see below: an error may not know its host
                assert seen.host_id == live[name].host_id, (name, seen, live[name])

        for host in await fleet.hosts.list():
            total = [0, 0, 0]
            for claim in host.claims:
                total[0] += claim.amount.vcpus
                total[1] += claim.amount.ram_mb
                total[2] += claim.amount.disk_gb
                owner = live.get(claim.instance_id)
                assert owner is not None, f"{host.id} holds {claim} of a deleted instance"
                if owner.state != "error":
                    assert owner.host_id == host.id, (claim, owner)
            assert [host.usage.vcpus, host.usage.ram_mb, host.usage.disk_gb] == total
        claimed = {c.instance_id for h in await fleet.hosts.list() for c in h.claims}
        for name, instance in live.items():
            if instance.host_id is not None and instance.state != "error":
                assert name in claimed, f"{name} on {instance.host_id} holds no claim"

        for name in sorted(acks.must_live):
            if name in acks.lines["ghost"]:
                continue
            assert name in on_driver, f"{name} was acknowledged booted and vanished"
            assert instances[name].state == "active", instances[name]
            assert on_driver[name].power is Power.RUNNING
        for name in acks.lines["deleted"]:
            assert instances[name].state == "deleted"
            assert name not in on_driver

        # No error forever: deleting every instance in error cleans up after it, whatever
        # the crash left on the hypervisor and the hosts.
        broken = sorted(k for k, v in live.items() if v.state == "error")
        for name in broken:
            record = await fleet.tasks.wait((await fleet.instances.delete(name)).id)
            assert record.status is TaskStatus.SUCCEEDED, record
        view = await driver.describe()
        remaining = {i.id for i in view.instances} | set(view.ports.values())
        assert not remaining & set(broken), remaining & set(broken)
        held = {c.instance_id for h in await fleet.hosts.list() for c in h.claims}
        assert not held & set(broken), held & set(broken)
        return opened


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 23])
def test_sigkilled_boot_heavy_fleet_reconciles_to_no_orphans_and_no_ghosts(
    tmp_path: Path, seed: int
) -> None:
    """A fleet SIGKILLed again and again mid-workload reopens to zero orphans and zero
    ghosts, every task ended, every instance stable, every ledger equal to its live claims,
    and every acknowledged boot still running on the hypervisor."""
    db, state, log = tmp_path / "cloud.db", tmp_path / "driver.state", tmp_path / "child.err"
    rng = random.Random(seed)
    acks = Acks()
    in_flight_at_kill = 0
    for kill in range(4):
        # Early kills land among the first boots; the last one lets deletes finish too.
        after = rng.randint(4, 70) if kill < 3 else rng.randint(100, 150)
        output = run_and_kill(db, state, f"s{seed}k{kill}", seed * 100 + kill, after, log)
        acks.add(output)
        report = asyncio.run(check(db, state, acks))
        in_flight_at_kill += len(report.orphans) + len(report.orphan_ports)
    assert len(acks.lines["booted"]) >= 10, dict(acks.lines)
    assert acks.lines["deleted"], "the workload deleted nothing"

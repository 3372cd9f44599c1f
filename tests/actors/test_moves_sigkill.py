"""Every kind of move, its process SIGKILLed after each phase of its migration in turn.

A child (``move_child.py``) builds a fleet on SQLite with a durable FakeDriver, starts one
move and kills itself for real right after its k-th migration transition is durable. This
process then opens the same database and driver state, as the next incarnation would, lets
the fleet recover and checks: exactly one owner, which the hypervisor agrees with (host and
epoch); the claims where the owner is and nowhere else; no copy of the guest left but the
current one; the migration ended (or parked with a reason) and no task in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from move_child import open_fleet

from stateward.actors import FakeDriver, Fleet, GuestRole

CHILD = Path(__file__).with_name("move_child.py")
KINDS = ("migrate", "resize", "live_migrate", "evacuate")


def _child(tmp: Path, kind: str, kill_after: int) -> tuple[int, list[str]]:
    """Run a child; its exit code and the lines it printed."""
    env = {**os.environ, "PYTHONPATH": str(CHILD.parent)}
    done = subprocess.run(
        [
            sys.executable,
            str(CHILD),
            str(tmp / "cloud.db"),
            str(tmp / "driver.json"),
            kind,
            str(kill_after),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr[-3000:]
    return done.returncode, done.stdout.splitlines()


async def _settled(fleet: Fleet) -> None:
    await fleet.recover()
    for _ in range(400):
        web = await fleet.instances.get("web-1")
        migration = await fleet.migrations.get(web.migration_id) if web.migration_id else None
        if web.task_state is None and (migration is None or migration.done):
            return
        if migration is not None and migration.state == "parked":
            return
        await asyncio.sleep(0.05)


async def _check(tmp: Path, kind: str, where: str) -> str:
    """Reopen, settle, check; the migration's final state."""
    async with open_fleet(str(tmp / "cloud.db"), str(tmp / "driver.json"), kind) as fleet:
        await _settled(fleet)
        driver = fleet.driver
        assert isinstance(driver, FakeDriver)
        web = await fleet.instances.get("web-1")
        assert web.task_state is None, (where, web.state)
        current = driver.where("web-1")
        assert current is not None, where
        assert (current.host_id, current.epoch) == (web.host_id, web.epoch), (where, web)
        claims = {h.id: [c.instance_id for c in h.claims] for h in await fleet.hosts.list()}
        migrations = await fleet.migrations.list("web-1")
        assert len(migrations) <= 1, where
        state = migrations[-1].state if migrations else "none"
        holders = sorted(h for h, names in claims.items() if "web-1" in names)
        if state == "parked":
            assert migrations[-1].reason, where
            assert web.host_id in holders, (where, claims)
        else:
            assert holders == [web.host_id], (where, claims)
            if state != "verifying":
                guests = [g for g in (await driver.describe()).guests if g.instance_id == "web-1"]
                unreachable = {g.host_id for g in guests} & driver.down
                stale = [g for g in guests if g.role is not GuestRole.CURRENT]
                # An old copy stays only on a host that still does not answer (fenced).
                assert all(g.host_id in unreachable for g in stale), (where, guests)
        assert state in ("none", "completed", "failed", "cancelled", "verifying"), (where, state)
        return state


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", KINDS)
def test_a_move_killed_after_each_of_its_phases_recovers(tmp_path: Path, kind: str) -> None:
    (tmp_path / "whole").mkdir()
    code, lines = _child(tmp_path / "whole", kind, 0)
    assert code == 0, lines
    phases = [line for line in lines if line.startswith("phase ")]
    assert lines[-1] == "done succeeded", lines
    assert len(phases) >= 5, phases
    outcomes = []
    for k in range(1, len(phases) + 1):
        run = tmp_path / f"kill-{k}"
        run.mkdir()
        code, seen = _child(run, kind, k)
        assert code == -signal.SIGKILL, (k, seen)
        assert seen[-1] == phases[k - 1], (k, seen)
        outcomes.append(asyncio.run(_check(run, kind, f"{kind} killed after {phases[k - 1]}")))
    # Killed late enough, every move still completes after the restart.
    assert outcomes[-1] == "completed", outcomes

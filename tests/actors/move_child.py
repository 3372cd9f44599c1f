"""A process for ``test_moves_sigkill``: one move of one kind on SQLite, killed for real.

Run as ``python move_child.py DB DRIVER_STATE KIND KILL_AFTER``. The first run builds the
fleet (three hosts, ``web-1`` booted on ``h-0``) with a durable
:class:`~stateward.actors.FakeDriver` whose state lives in ``DRIVER_STATE`` (the hypervisor
outlives the process), then starts a move of ``KIND`` (``migrate``, ``resize``,
``live_migrate`` or ``evacuate``, whose source is taken down first) and prints each phase
of its migration as it is committed::

    phase <n> <state>      the n-th transition of the migration is durable
    done <status>          the move's task ended (only when it was not killed)

After the ``KILL_AFTER``-th phase it sends itself SIGKILL: no cleanup, nobody told. A
``KILL_AFTER`` of 0 never kills.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import ClassVar

import structlog

from stateward.actors import Capacity, FakeDriver, Flavor, Fleet, HostActor, Operation

HOSTS = ("h-0", "h-1", "h-2")
HOST_SIZE = Capacity(vcpus=16, ram_mb=65536, disk_gb=2000)
FLAVORS = (Flavor("m1.small", 1, 2048, 20), Flavor("m1.large", 4, 8192, 40))
#: Real seconds each move call takes, so that the phases are apart.
LATENCY = {
    Operation.PREPARE_MOVE: 0.01,
    Operation.TRANSFER: 0.03,
    Operation.FINISH_MOVE: 0.01,
    Operation.CLEANUP: 0.01,
    Operation.EVACUATE: 0.03,
}
#: A resize confirms itself this soon (real seconds) when nobody decides.
CONFIRM_AFTER = 0.3
#: Real seconds between heartbeats when an evacuation needs its host seen down soon.
HEARTBEAT = 0.1


class QuickHost(HostActor):
    """A host that counts as down a second after its agent stopped (only an evacuation's
    fleet uses it: on a loaded machine a short timeout could mark a live host down)."""

    heartbeat_timeout: ClassVar[float] = 1.0


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def open_fleet(db: str, state: str, kind: str) -> Fleet:
    """The fleet as every process of the test opens it for a move of ``kind``."""
    quick = kind == "evacuate"
    return Fleet.open(
        db,
        driver=FakeDriver(state_path=state, latency=LATENCY),
        host_actor=QuickHost if quick else HostActor,
        heartbeat_interval=HEARTBEAT if quick else 20.0,
        resize_confirm_after=CONFIRM_AFTER,
    )


async def build(fleet: Fleet) -> None:
    """Three hosts, and web-1 on h-0."""
    for flavor in FLAVORS:
        await fleet.flavors.add(flavor)
    await fleet.images.add("cirros")
    for host in HOSTS:
        await fleet.hosts.add(host, capacity=HOST_SIZE)
    for host in HOSTS[1:]:
        await fleet.hosts.command(host, "disable")
    record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
    booted = await fleet.tasks.wait(record.id)
    if booted.status.value != "succeeded":
        raise RuntimeError(f"the boot of web-1 ended {booted.status.value}: {booted}")
    for host in HOSTS[1:]:
        await fleet.hosts.command(host, "enable")


async def main(db: str, state: str, kind: str, kill_after: int) -> None:
    async with open_fleet(db, state, kind) as fleet:
        await build(fleet)
        phases = fleet.subscribe("migration.*.*")
        if kind == "evacuate":
            assert isinstance(fleet.driver, FakeDriver)
            fleet.driver.host_down("h-0")
            fleet.hosts.set_agent("h-0", alive=False)
            for _ in range(200):  # until the fleet sees it down
                if not (await fleet.hosts.get("h-0")).up:
                    break
                await asyncio.sleep(HEARTBEAT)
        moves = {
            "migrate": lambda: fleet.instances.migrate("web-1"),
            "resize": lambda: fleet.instances.resize("web-1", "m1.large"),
            "live_migrate": lambda: fleet.instances.live_migrate("web-1"),
            "evacuate": lambda: fleet.instances.evacuate("web-1"),
        }
        record = await moves[kind]()
        waiting = asyncio.ensure_future(fleet.tasks.wait(record.id))
        seen = 0
        terminal = ("completed", "failed", "cancelled", "reverted", "parked")
        async for event in phases:
            seen += 1
            say(f"phase {seen} {event.payload.target}")
            if seen == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            if event.payload.target in terminal:
                break
        say(f"done {(await waiting).status.value}")


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    sys.path.insert(0, str(Path(__file__).parent))
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

"""A process for ``test_reconcile``: a boot-heavy fleet on SQLite, SIGKILLed at random.

Run as ``python fleet_child.py DB DRIVER_STATE TAG SEED``. It opens the fleet on ``DB`` with a
durable :class:`~stateward.actors.FakeDriver` whose state lives in ``DRIVER_STATE`` (so the
"hypervisor" survives the kill), reconciling on open, adds the hosts it does not find, and
then boots instances named ``<TAG>-<n>`` many at a time, deleting some of them once booted.
It prints one line per acknowledgement, flushed at once, for the parent to hold it to::

    ready                      the fleet is open
    ghost <instance>           the reconciliation on open found a ghost
    booted <instance>          its boot task succeeded
    deleting <instance>        a delete was asked for, perhaps during the build (it may or
                               may not have happened)
    deleted <instance>         its delete task succeeded

The driver is slow enough (real seconds, this is a real process) that many boots are in
flight whenever the parent kills it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys

import structlog

from stateward.actors import Capacity, DuplicateName, FakeDriver, Flavor, Fleet, Operation
from stateward.flows import TaskStatus

#: The hosts every run makes sure exist.
HOSTS = tuple(f"h-{n}" for n in range(4))
HOST_SIZE = Capacity(vcpus=16, ram_mb=65536, disk_gb=2000)
FLAVORS = (
    Flavor("m1.tiny", 1, 512, 5),
    Flavor("m1.small", 1, 2048, 20),
    Flavor("m1.medium", 2, 4096, 40),
)
IMAGES = ("cirros", "ubuntu")
#: Real seconds each driver operation takes.
LATENCY = {
    Operation.ALLOCATE_PORT: 0.004,
    Operation.ATTACH_VOLUME: 0.004,
    Operation.SPAWN: 0.02,
    Operation.POWER_ON: 0.008,
    Operation.DESTROY: 0.01,
}
#: Boots in flight at once, boots in all, the share of booted instances deleted, and the
#: share deleted while they build.
IN_FLIGHT = 24
BOOTS = 400
DELETE_SHARE = 0.3
EARLY_DELETE_SHARE = 0.15


def say(line: str) -> None:
    """Print an acknowledgement and make sure it left the process."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def one(fleet: Fleet, name: str, rng: random.Random, slots: asyncio.Semaphore) -> None:
    """Boot ``name``; maybe delete it afterwards."""
    async with slots:
        flavor = rng.choice(FLAVORS).name
        volumes = (f"vol-{name}",) if rng.random() < 0.3 else ()
        record = await fleet.instances.boot(
            name, flavor=flavor, image=rng.choice(IMAGES), volumes=volumes
        )
        delete = rng.random() < DELETE_SHARE
        if rng.random() < EARLY_DELETE_SHARE:
            await asyncio.sleep(rng.uniform(0.0, 0.03))  # somewhere in the build
            say(f"deleting {name}")
            deleting = await fleet.instances.delete(name)
            if (await fleet.tasks.wait(deleting.id)).status is TaskStatus.SUCCEEDED:
                say(f"deleted {name}")
            return
        record = await fleet.tasks.wait(record.id)
        if record.status is not TaskStatus.SUCCEEDED:
            return
        say(f"booted {name}")
        if delete:
            say(f"deleting {name}")
            record = await fleet.tasks.wait((await fleet.instances.delete(name)).id)
            if record.status is TaskStatus.SUCCEEDED:
                say(f"deleted {name}")


async def main(db: str, state: str, tag: str, seed: int) -> None:
    """Open, report, and boot until killed (or done)."""
    rng = random.Random(seed)
    driver = FakeDriver(state_path=state, latency=LATENCY)
    async with Fleet.open(db, driver=driver) as fleet:
        for flavor in FLAVORS:
            await fleet.flavors.add(flavor)
        for image in IMAGES:
            await fleet.images.add(image)
        for host in HOSTS:
            try:
                await fleet.hosts.add(host, capacity=HOST_SIZE)
            except DuplicateName:
                await fleet.hosts.heartbeat(host)  # restored: alive again
        say("ready")
        assert fleet.last_reconcile is not None
        for ghost in fleet.last_reconcile.ghosts:
            say(f"ghost {ghost}")
        slots = asyncio.Semaphore(IN_FLIGHT)
        await asyncio.gather(*(one(fleet, f"{tag}-{n}", rng, slots) for n in range(BOOTS)))


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

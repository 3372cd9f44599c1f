"""The flows behind instance commands.

Boot, as the seeds describe it — reserve, configure, power on: schedule and claim, allocate
ports, attach volumes, spawn, power on. Each step's revert undoes it (the claim released, the
ports freed, the volumes detached, the instance destroyed), so a boot that fails at any stage
leaves no orphan anywhere. Every driver call carries an operation id made of the task id and
the step, so a step run again after a crash does its work at most once; the placement is
idempotent on its claim id. So every step of the boot is ``idempotent`` (the spawn
reconciles): none takes a checkpoint of its own, and the boot's record is committed with the
transition that starts it and when it ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stateward.flows import Failure, Flow, Reconciled, Task, linear, task

from ._driver import Operation
from ._host import GetHost, HostStatus
from ._moves import keep_resize_of
from ._scheduler import Flavor, GroupPolicy, PlacementRequest, ServerGroup
from ._services import FleetServices

__all__ = (
    "build_flows",
    "boot_flow",
    "power_flow",
    "rebuild_flow",
    "delete_flow",
    "POWER_OPERATIONS",
    "DRIVER_TIMEOUT",
)

#: Seconds a driver step may take before it counts as failed (and its flow reverts).
DRIVER_TIMEOUT = 300.0

#: The driver power operation of each power command.
POWER_OPERATIONS = {
    "stop": Operation.POWER_OFF,
    "start": Operation.POWER_ON,
    "reboot": Operation.REBOOT,
    "reboot_hard": Operation.REBOOT,
    "pause": Operation.PAUSE,
    "unpause": Operation.UNPAUSE,
    "suspend": Operation.SUSPEND,
    "resume": Operation.RESUME,
}


def build_flows(services: FleetServices) -> dict[str, Flow]:
    """The flow of every instance command, by name, bound to ``services``."""
    flows = {"boot": boot_flow(services)}
    for action, operation in POWER_OPERATIONS.items():
        flows[action] = power_flow(services, action, operation)
    flows["rebuild"] = rebuild_flow(services)
    flows["delete"] = delete_flow(services)
    return flows


#: The inputs of every flow but the boot's: what the instance holds when the command comes.
_INPUTS = ("instance_id", "task_id", "host", "claim_id", "ports", "volumes", "image", "epoch")
#: The inputs of the boot: its :class:`~stateward.actors.BootSpec`, field by field.
_BOOT_INPUTS = (
    "instance_id",
    "task_id",
    "flavor",
    "vcpus",
    "ram_mb",
    "disk_gb",
    "image",
    "zone",
    "group",
    "group_policy",
    "networks",
    "volumes",
    "epoch",
    "reservation",
)


def boot_flow(services: FleetServices) -> Flow:
    """Boot: schedule and claim, allocate ports, attach volumes, spawn, power on; each step's
    revert gives back what it took."""
    return Flow(
        "boot",
        linear(
            task(
                _schedule(services),
                provides="placement",
                revert=_unschedule(services),
                idempotent=True,
            ),
            *_networking(services),
            task(
                _spawn(services),
                revert=_destroy(services),
                reconcile=_spawned_already(services),
                timeout=DRIVER_TIMEOUT,
            ),
            task(_power_on(services), provides="power", timeout=DRIVER_TIMEOUT, idempotent=True),
        ),
        inputs=_BOOT_INPUTS,
    )


def power_flow(services: FleetServices, action: str, operation: Operation) -> Flow:
    """A power command (``stop``, ``reboot``, ``pause``, ...): one driver call."""

    async def run(instance_id: str, task_id: str, epoch: int) -> str:
        power = await services.driver.set_power(
            f"{task_id}:{action}", instance_id, operation, epoch=epoch
        )
        return power.value

    run.__name__ = action
    return Flow(
        action,
        task(run, name=action, provides="power", timeout=DRIVER_TIMEOUT),
        inputs=_INPUTS,
    )


def rebuild_flow(services: FleetServices) -> Flow:
    """Rebuild: the disk re-created from the image (or the instance spawned again where its
    claim holds room, when the hypervisor lost it), then powered on."""
    driver = services.driver

    async def rebuild(
        instance_id: str,
        task_id: str,
        image: str,
        host: str | None,
        claim_id: str | None,
        epoch: int,
    ) -> str:
        view = await driver.describe()
        if all(i.id != instance_id for i in view.instances) and await _holds(
            services, host, claim_id
        ):
            # The hypervisor lost it (a ghost): build it again where its claim holds room.
            assert host is not None
            await driver.spawn(
                f"{task_id}:respawn", instance_id, host=host, image=image, epoch=epoch
            )
        else:
            await driver.rebuild(f"{task_id}:rebuild", instance_id, image=image, epoch=epoch)
        return "shutdown"

    return Flow(
        "rebuild",
        linear(
            task(rebuild, timeout=DRIVER_TIMEOUT),
            task(_power_on(services), name="power_on", provides="power", timeout=DRIVER_TIMEOUT),
        ),
        inputs=_INPUTS,
    )


def delete_flow(services: FleetServices) -> Flow:
    """Delete: keep a resize waiting for its verdict (so its source is given up first),
    destroy the instance, free its ports, release its claim."""
    driver = services.driver

    async def destroy_instance(instance_id: str, task_id: str, epoch: int | None) -> None:
        if epoch is None:  # a delete queued behind a move: whatever the move left
            guest = driver.where(instance_id)
            epoch = guest.epoch if guest is not None else 0
        await driver.destroy(f"{task_id}:destroy", instance_id, epoch=epoch)

    async def release_ports(task_id: str, ports: list[str]) -> None:
        for n, port in enumerate(ports):
            await driver.free_port(f"{task_id}:free:{n}", port)

    return Flow(
        "delete",
        linear(
            keep_resize_of(services),
            task(destroy_instance, timeout=DRIVER_TIMEOUT),
            task(release_ports, timeout=DRIVER_TIMEOUT),
            task(_release_claim(services)),
        ),
        inputs=_INPUTS,
    )


# -- the boot's steps -------------------------------------------------------------------------


def _schedule(services: FleetServices) -> Callable[..., Awaitable[dict[str, str]]]:
    async def schedule(
        instance_id: str,
        task_id: str,
        flavor: str,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
        zone: str | None,
        group: str | None,
        group_policy: str | None,
        reservation: str | None,
    ) -> dict[str, str]:
        request = PlacementRequest(
            instance_id,
            task_id,
            Flavor(flavor, vcpus, ram_mb, disk_gb),
            zone=zone,
            group=ServerGroup(group, GroupPolicy(group_policy))
            if group is not None and group_policy is not None
            else None,
            reservation=reservation,
        )
        placement = await services.scheduler.place(request)
        result = {"host": placement.host_id, "claim_id": placement.claim.id}
        await services.progress(instance_id, task_id, "scheduled", result)
        return result

    return schedule


def _unschedule(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def unschedule(result: dict[str, str], failure: Failure, **inputs: Any) -> None:
        await services.scheduler.release(result["host"], result["claim_id"])
        services.scheduler.forget(inputs["instance_id"])

    return unschedule


def _networking(services: FleetServices) -> tuple[Task, Task]:
    """The boot's ports and volumes, each with its revert."""
    driver = services.driver

    async def allocate_ports(instance_id: str, task_id: str, networks: list[str]) -> list[str]:
        ports = [
            await driver.allocate_port(f"{task_id}:port:{n}", instance_id, network=network)
            for n, network in enumerate(networks)
        ]
        await services.progress(instance_id, task_id, "networked", {"ports": ports})
        return ports

    async def free_ports(result: list[str], failure: Failure, **inputs: Any) -> None:
        for n, port in enumerate(result):
            await driver.free_port(f"{inputs['task_id']}:unport:{n}", port)

    async def attach_volumes(instance_id: str, task_id: str, volumes: list[str]) -> list[str]:
        for volume in volumes:
            await driver.attach_volume(f"{task_id}:attach:{volume}", instance_id, volume_id=volume)
        await services.progress(instance_id, task_id, "volumes_attached")
        return volumes

    async def detach_volumes(result: list[str], failure: Failure, **inputs: Any) -> None:
        for volume in result:
            await driver.detach_volume(
                f"{inputs['task_id']}:detach:{volume}", inputs["instance_id"], volume_id=volume
            )

    return (
        task(
            allocate_ports,
            provides="ports",
            revert=free_ports,
            timeout=DRIVER_TIMEOUT,
            idempotent=True,
        ),
        task(
            attach_volumes,
            provides="attached",
            revert=detach_volumes,
            timeout=DRIVER_TIMEOUT,
            idempotent=True,
        ),
    )


def _spawn(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def spawn(
        instance_id: str, task_id: str, image: str, placement: dict[str, str], epoch: int
    ) -> None:
        await services.driver.spawn(
            f"{task_id}:spawn", instance_id, host=placement["host"], image=image, epoch=epoch
        )

    return spawn


def _spawned_already(services: FleetServices) -> Callable[..., Awaitable[Reconciled]]:
    async def spawned_already(instance_id: str, **_: Any) -> Reconciled:
        view = await services.driver.describe()
        return Reconciled(any(i.id == instance_id for i in view.instances))

    return spawned_already


def _destroy(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def destroy(result: Any, failure: Failure, **inputs: Any) -> None:
        await services.driver.destroy(
            f"{inputs['task_id']}:undo-spawn", inputs["instance_id"], epoch=inputs["epoch"]
        )

    return destroy


def _power_on(services: FleetServices) -> Callable[..., Awaitable[str]]:
    async def power_on(instance_id: str, task_id: str, epoch: int) -> str:
        operation = Operation.POWER_ON
        power = await services.driver.set_power(
            f"{task_id}:power", instance_id, operation, epoch=epoch
        )
        return power.value

    return power_on


# -- the delete's and the rebuild's helpers ------------------------------------------------


def _release_claim(services: FleetServices) -> Callable[..., Awaitable[str]]:
    async def release_claim(instance_id: str, host: str | None, claim_id: str | None) -> str:
        scheduler = services.scheduler
        if host is not None and claim_id is not None:
            await scheduler.release(host, claim_id)
        else:
            # Asked for while the build was scheduling: the build, cancelled mid-claim (so
            # never reverted) or resumed after a crash, may hold a claim the inputs miss.
            for host_id in services.host_ids():
                ref = services.host(host_id)
                if ref is None:
                    continue
                held: HostStatus = await ref.ask(GetHost())
                for claim in held.claims:
                    if claim.instance_id == instance_id:
                        await scheduler.release(host_id, claim.id)
        scheduler.forget(instance_id)
        return "nostate"

    return release_claim


async def _holds(services: FleetServices, host: str | None, claim_id: str | None) -> bool:
    """Whether ``host`` still holds the claim (a build that never finished gave it up)."""
    ref = services.host(host) if host is not None else None
    if ref is None or claim_id is None:
        return False
    status = await ref.ask(GetHost())
    return any(c.id == claim_id for c in status.claims)

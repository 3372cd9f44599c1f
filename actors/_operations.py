"""The flows behind instance commands.

Boot, as the seeds describe it — reserve, configure, power on: schedule and claim, allocate
ports, attach volumes, spawn, power on. Each step's revert undoes it (the claim released, the
ports freed, the volumes detached, the instance destroyed), so a boot that fails at any stage
leaves no orphan anywhere. Every driver call carries an operation id made of the task id and
the step, so a step run again after a crash does its work at most once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stateward.flows import Failure, Flow, Reconciled, Task, linear, task

from ._driver import Operation
from ._host import GetHost, HostStatus
from ._instance import Progress
from ._scheduler import Flavor, GroupPolicy, PlacementRequest, ServerGroup

if TYPE_CHECKING:
    from ._fleet import Fleet

__all__ = ("build_flows", "POWER_OPERATIONS", "DRIVER_TIMEOUT")

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


def build_flows(fleet: Fleet) -> dict[str, Flow]:
    """The flow of every instance command, bound to ``fleet``'s driver and scheduler."""
    driver = fleet.driver

    async def progress(instance_id: str, task_id: str, event: str, payload: Any = None) -> None:
        await fleet._instance_ref(instance_id).ask(Progress(task_id, event, payload))

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
    ) -> dict[str, str]:
        request = PlacementRequest(
            instance_id,
            task_id,
            Flavor(flavor, vcpus, ram_mb, disk_gb),
            zone=zone,
            group=ServerGroup(group, GroupPolicy(group_policy))
            if group is not None and group_policy is not None
            else None,
        )
        placement = await fleet.scheduler.place(request)
        result = {"host": placement.host_id, "claim_id": placement.claim.claim_id}
        await progress(instance_id, task_id, "scheduled", result)
        return result

    async def unschedule(result: dict[str, str], failure: Failure, **inputs: Any) -> None:
        await fleet.scheduler.release(result["host"], result["claim_id"])
        fleet.scheduler.forget(inputs["instance_id"])

    async def allocate_ports(instance_id: str, task_id: str, networks: list[str]) -> list[str]:
        ports = [
            await driver.allocate_port(f"{task_id}:port:{n}", instance_id, network=network)
            for n, network in enumerate(networks)
        ]
        await progress(instance_id, task_id, "networked", {"ports": ports})
        return ports

    async def free_ports(result: list[str], failure: Failure, **inputs: Any) -> None:
        for n, port in enumerate(result):
            await driver.free_port(f"{inputs['task_id']}:unport:{n}", port)

    async def attach_volumes(instance_id: str, task_id: str, volumes: list[str]) -> list[str]:
        for volume in volumes:
            await driver.attach_volume(f"{task_id}:attach:{volume}", instance_id, volume_id=volume)
        await progress(instance_id, task_id, "volumes_attached")
        return volumes

    async def detach_volumes(result: list[str], failure: Failure, **inputs: Any) -> None:
        for volume in result:
            await driver.detach_volume(
                f"{inputs['task_id']}:detach:{volume}", inputs["instance_id"], volume_id=volume
            )

    async def spawn(instance_id: str, task_id: str, image: str, placement: dict[str, str]) -> None:
        await driver.spawn(f"{task_id}:spawn", instance_id, host=placement["host"], image=image)

    async def spawned_already(instance_id: str, **_: Any) -> Reconciled:
        view = await driver.describe()
        return Reconciled(any(i.instance_id == instance_id for i in view.instances))

    async def destroy(result: Any, failure: Failure, **inputs: Any) -> None:
        await driver.destroy(f"{inputs['task_id']}:undo-spawn", inputs["instance_id"])

    async def power_on(instance_id: str, task_id: str) -> str:
        return (await driver.set_power(f"{task_id}:power", instance_id, Operation.POWER_ON)).value

    flows = {
        "boot": Flow(
            "boot",
            linear(
                task(schedule, provides="placement", revert=unschedule),
                task(allocate_ports, provides="ports", revert=free_ports, timeout=DRIVER_TIMEOUT),
                task(
                    attach_volumes,
                    provides="attached",
                    revert=detach_volumes,
                    timeout=DRIVER_TIMEOUT,
                ),
                task(spawn, revert=destroy, reconcile=spawned_already, timeout=DRIVER_TIMEOUT),
                task(power_on, provides="power", timeout=DRIVER_TIMEOUT),
            ),
            inputs=(
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
            ),
        )
    }
    for action, operation in POWER_OPERATIONS.items():
        flows[action] = Flow(action, _power_task(fleet, action, operation), inputs=_INPUTS)

    async def rebuild(
        instance_id: str, task_id: str, image: str, host: str | None, claim_id: str | None
    ) -> str:
        view = await driver.describe()
        if all(i.instance_id != instance_id for i in view.instances) and await holds(
            host, claim_id
        ):
            # The hypervisor lost it (a ghost): build it again where its claim holds room.
            assert host is not None
            await driver.spawn(f"{task_id}:respawn", instance_id, host=host, image=image)
        else:
            await driver.rebuild(f"{task_id}:rebuild", instance_id, image=image)
        return "shutdown"

    async def holds(host: str | None, claim_id: str | None) -> bool:
        """Whether ``host`` still holds the claim (a build that never finished gave it up)."""
        ref = fleet._host_refs.get(host) if host is not None else None
        if ref is None or claim_id is None:
            return False
        status: HostStatus = await ref.ask(GetHost())
        return any(c.claim_id == claim_id for c in status.claims)

    async def power_after_rebuild(instance_id: str, task_id: str) -> str:
        return (await driver.set_power(f"{task_id}:power", instance_id, Operation.POWER_ON)).value

    flows["rebuild"] = Flow(
        "rebuild",
        linear(
            task(rebuild, timeout=DRIVER_TIMEOUT),
            task(power_after_rebuild, name="power_on", provides="power", timeout=DRIVER_TIMEOUT),
        ),
        inputs=_INPUTS,
    )

    async def destroy_instance(instance_id: str, task_id: str) -> None:
        await driver.destroy(f"{task_id}:destroy", instance_id)

    async def release_ports(task_id: str, ports: list[str]) -> None:
        for n, port in enumerate(ports):
            await driver.free_port(f"{task_id}:free:{n}", port)

    async def release_claim(instance_id: str, host: str | None, claim_id: str | None) -> str:
        if "leak-claim" in fleet.env.planted_bugs:
            return "nostate"  # a deliberate bug, for the simulator to find
        if host is not None and claim_id is not None:
            await fleet.scheduler.release(host, claim_id)
        else:
            # Asked for while the build was scheduling: the build, cancelled mid-claim (so
            # never reverted) or resumed after a crash, may hold a claim the inputs miss.
            for host_id, ref in sorted(fleet._host_refs.items()):
                held: HostStatus = await ref.ask(GetHost())
                for claim in held.claims:
                    if claim.instance_id == instance_id:
                        await fleet.scheduler.release(host_id, claim.claim_id)
        fleet.scheduler.forget(instance_id)
        return "nostate"

    flows["delete"] = Flow(
        "delete",
        linear(
            task(destroy_instance, timeout=DRIVER_TIMEOUT),
            task(release_ports, timeout=DRIVER_TIMEOUT),
            task(release_claim),
        ),
        inputs=_INPUTS,
    )
    return flows


_INPUTS = ("instance_id", "task_id", "host", "claim_id", "ports", "volumes", "image")


def _power_task(fleet: Fleet, action: str, operation: Operation) -> Task:
    async def run(instance_id: str, task_id: str) -> str:
        power = await fleet.driver.set_power(f"{task_id}:{action}", instance_id, operation)
        return power.value

    run.__name__ = action
    return task(run, name=action, provides="power", timeout=DRIVER_TIMEOUT)

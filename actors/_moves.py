"""The flows behind moves: two claims, one owner, and a switch that happens exactly once.

Every move is one flow under its instance (so no other command runs meanwhile):

1. ``begin`` creates the move's migration resource;
2. ``claim_destination`` claims room on the destination through its host actor, while the
   source claim stays where it is: both are held until the move is decided;
3. the kind's work: a cold move or a resize stops the guest and copies it, a live move
   prepares the destination and copies the running guest;
4. ``switch`` asks the instance to record its new owner — destination host and claim and a
   new *epoch* — in one journaled transition. The instance refuses it once a delete is
   pending, so a delete before the switch rolls the move back;
5. after the switch the move only rolls forward: the destination copy is finished (and
   started if the guest ran), the stale source copy is cleaned up under the new epoch (the
   driver never destroys a current guest) and the source claim is released, each step
   retried. A resize stops before the cleanup: it waits in ``resized`` for a confirmation,
   which its deadline gives if nobody does, or for a revert, which moves it back.

Each revert of the steps before the switch first asks the instance whether it switched: if
it did, the revert does nothing (a failure after the switch must never undo it). Every driver
call carries the epoch it acts under, so a stale owner — a coordinator incarnation from before
a crash, a step run again after a resume — cannot act on the instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stateward.flows import Failure, Flow, Reconciled, Retry, Task, linear, task

from ._driver import Operation, Power
from ._host import GetHost
from ._instance import GetInstance, Switch
from ._migration import MIGRATION_ACTORS, Advance, GetMigration
from ._migration_machine import MoveKind
from ._scheduler import Flavor, GroupPolicy, PlacementRequest, ServerGroup
from ._services import FleetServices

__all__ = (
    "keep_resize_of",
    "move_flow",
    "confirm_flow",
    "revert_resize_flow",
    "build_move_flows",
    "MOVE_INPUTS",
)

#: Seconds a driver step of a move may take.
MOVE_TIMEOUT = 900.0
#: Steps after the switch are retried this way: they must end, and each is idempotent.
_FORWARD = Retry(attempts=12, backoff=1.0, factor=2.0, max_backoff=60.0)
#: The reverts before the switch too (a driver or a host that is briefly away must not
#: leave a destination claimed): each is idempotent.
_BACK = _FORWARD

#: Every move flow's inputs.
MOVE_INPUTS = (
    "instance_id",
    "task_id",
    "migration_id",
    "kind",
    "source",
    "source_claim",
    "requested_host",
    "epoch",
    "power",
    "old_flavor",
    "flavor",
    "vcpus",
    "ram_mb",
    "disk_gb",
    "image",
    "zone",
    "group",
    "group_policy",
    "reservation",
)


async def _advance(
    services: FleetServices,
    migration_id: str,
    event: str,
    payload: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> None:
    await services.migration(migration_id).ask(Advance(event, payload, task_id))


async def _switched(services: FleetServices, instance_id: str, epoch: int) -> bool:
    """Whether the instance already lives under ``epoch + 1`` or later (it switched)."""
    status = await services.instance(instance_id).ask(GetInstance())
    return status.epoch > epoch


def _begin(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def begin(
        instance_id: str,
        task_id: str,
        migration_id: str,
        kind: str,
        source: str | None,
        source_claim: str | None,
        requested_host: str | None,
        epoch: int,
        power: str,
        old_flavor: str,
        flavor: str,
    ) -> None:
        services.spawn_migration(migration_id, MIGRATION_ACTORS[MoveKind(kind)])
        payload = {
            "kind": kind,
            "instance_id": instance_id,
            "source": source,
            "source_claim": source_claim,
            "requested_host": requested_host,
            "epoch": epoch,
            "power": power,
            "old_flavor": old_flavor,
            "new_flavor": flavor,
        }
        await _advance(services, migration_id, "start", payload, task_id)

    return begin


def _claim_destination(services: FleetServices) -> Callable[..., Awaitable[dict[str, str]]]:
    async def claim_destination(
        instance_id: str,
        task_id: str,
        migration_id: str,
        source: str | None,
        requested_host: str | None,
        flavor: str,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
        zone: str | None,
        group: str | None,
        group_policy: str | None,
        reservation: str | None,
        epoch: int,
    ) -> dict[str, str]:
        del epoch  # its revert's: whether the instance switched
        if reservation is not None and not await services.lease_open(reservation):
            reservation = None  # its lease ended: unreserved capacity, as for any instance
        request = PlacementRequest(
            instance_id,
            task_id,
            Flavor(flavor, vcpus, ram_mb, disk_gb),
            zone=zone,
            group=ServerGroup(group, GroupPolicy(group_policy))
            if group is not None and group_policy is not None
            else None,
            exclude=(source,) if source is not None else (),
            host=requested_host,
            reservation=reservation,
        )
        placement = await services.scheduler.place(request)
        result = {"host": placement.host_id, "claim_id": placement.claim.id}
        await _advance(
            services,
            migration_id,
            "claimed",
            {"destination": result["host"], "destination_claim": result["claim_id"]},
        )
        return result

    return claim_destination


def _release_destination(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def release_destination(result: dict[str, str], failure: Failure, **inputs: Any) -> None:
        if await _switched(services, inputs["instance_id"], inputs["epoch"]):
            return  # the destination is the instance's now
        await services.scheduler.release(result["host"], result["claim_id"])

    return release_destination


def _stop_guest(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def stop_guest(
        instance_id: str, task_id: str, migration_id: str, power: str, epoch: int
    ) -> None:
        if power == Power.RUNNING:
            await services.driver.set_power(
                f"{task_id}:stop", instance_id, Operation.POWER_OFF, epoch=epoch
            )
        await _advance(services, migration_id, "stopped")

    return stop_guest


def _restart_guest(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def restart_guest(result: None, failure: Failure, **inputs: Any) -> None:
        instance_id, epoch = inputs["instance_id"], inputs["epoch"]
        if inputs["power"] != Power.RUNNING or await _switched(services, instance_id, epoch):
            return
        await services.driver.set_power(
            f"{inputs['task_id']}:restart", instance_id, Operation.POWER_ON, epoch=epoch
        )

    return restart_guest


def _prepare(services: FleetServices, *, live: bool) -> Callable[..., Awaitable[None]]:
    """The destination made ready for the guest: a phase of its own in a live migration,
    part of the transfer phase in a cold one (a step of its own all the same, so that a
    failed transfer reverts it)."""

    async def prepare(
        instance_id: str, task_id: str, migration_id: str, placement: dict[str, str], epoch: int
    ) -> None:
        await services.driver.prepare_move(
            f"{task_id}:prepare", instance_id, destination=placement["host"], epoch=epoch + 1
        )
        if live:
            await _advance(services, migration_id, "prepared")

    return prepare


def _transfer(services: FleetServices, *, live: bool) -> Callable[..., Awaitable[None]]:
    async def transfer(
        instance_id: str, task_id: str, migration_id: str, placement: dict[str, str], epoch: int
    ) -> None:
        await services.driver.transfer(
            f"{task_id}:transfer",
            instance_id,
            destination=placement["host"],
            epoch=epoch + 1,
            live=live,
        )
        await _advance(services, migration_id, "transferred")

    return transfer


def _transferred_already(services: FleetServices) -> Callable[..., Awaitable[Reconciled]]:
    """A live transfer interrupted by a crash may have completed physically: ask the
    hypervisor where the guest runs."""

    async def transferred_already(**inputs: Any) -> Reconciled:
        guest = services.driver.where(inputs["instance_id"])
        placement = inputs.get("placement") or {}
        if (
            guest is not None
            and guest.host_id == placement.get("host")
            and guest.epoch == inputs["epoch"] + 1
        ):
            await _advance(services, inputs["migration_id"], "transferred")
            return Reconciled(True)
        return Reconciled(False)

    return transferred_already


def _abort(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def abort(result: None, failure: Failure, **inputs: Any) -> None:
        instance_id, epoch = inputs["instance_id"], inputs["epoch"]
        if await _switched(services, instance_id, epoch):
            return
        await services.driver.abort_move(
            f"{inputs['task_id']}:abort",
            instance_id,
            destination=inputs["placement"]["host"],
            epoch=epoch + 1,
        )

    return abort


def _switch(services: FleetServices) -> Callable[..., Awaitable[int]]:
    async def switch(
        instance_id: str,
        task_id: str,
        migration_id: str,
        kind: str,
        placement: dict[str, str],
        epoch: int,
        flavor: str,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
    ) -> int:
        await services.instance(instance_id).ask(
            Switch(
                task_id,
                host=placement["host"],
                claim_id=placement["claim_id"],
                epoch=epoch + 1,
                flavor=flavor,
                vcpus=vcpus,
                ram_mb=ram_mb,
                disk_gb=disk_gb,
            )
        )
        verify: dict[str, Any] | None = None
        if kind == MoveKind.RESIZE:
            # The migration sets its deadline timer with this transition.
            confirm_by = services.env.clock.now() + services.resize_confirm_after
            verify = {"confirm_by": confirm_by}
        await _advance(services, migration_id, "switched", verify)
        return epoch + 1

    return switch


def _finish(services: FleetServices) -> Callable[..., Awaitable[str]]:
    async def finish(
        instance_id: str, task_id: str, kind: str, placement: dict[str, str], epoch: int, power: str
    ) -> str:
        driver = services.driver
        destination = placement["host"]
        await driver.finish_move(
            f"{task_id}:finish", instance_id, destination=destination, epoch=epoch + 1
        )
        if power != Power.RUNNING:
            return Power.SHUTDOWN.value
        if kind != MoveKind.LIVE_MIGRATE:  # a live guest never stopped
            await driver.set_power(
                f"{task_id}:start", instance_id, Operation.POWER_ON, epoch=epoch + 1
            )
        return Power.RUNNING.value

    return finish


def _cleanup_source(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def cleanup_source(
        instance_id: str,
        task_id: str,
        source: str | None,
        source_claim: str | None,
        epoch: int,
    ) -> None:
        if source is not None:
            await services.driver.cleanup(
                f"{task_id}:cleanup", instance_id, host=source, epoch=epoch + 1
            )
            if source_claim is not None:
                await services.scheduler.release(source, source_claim)

    return cleanup_source


class SourceUp(Exception):
    """An evacuation whose source host answers again: move the instance instead."""


def _fence(services: FleetServices) -> Callable[..., Awaitable[None]]:
    """An evacuation goes on only while its source host is down: a host that answers again
    keeps its instance (nothing was touched yet)."""

    async def fence(migration_id: str, source: str | None) -> None:
        ref = services.host(source) if source is not None else None
        if ref is not None and (await ref.ask(GetHost())).up:
            raise SourceUp(f"host {source} is up again: migrate the instance instead")
        await _advance(services, migration_id, "fenced")

    return fence


def _rebuild_elsewhere(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def rebuild_elsewhere(
        instance_id: str,
        task_id: str,
        migration_id: str,
        placement: dict[str, str],
        image: str,
        epoch: int,
    ) -> None:
        await services.driver.evacuate(
            f"{task_id}:evacuate",
            instance_id,
            destination=placement["host"],
            image=image,
            epoch=epoch + 1,
        )
        await _advance(services, migration_id, "rebuilt")

    return rebuild_elsewhere


def _release_source(services: FleetServices) -> Callable[..., Awaitable[None]]:
    """The source claim of an evacuated instance goes; its stale copy on the down host is
    fenced by the epoch and cleaned when the host is back."""

    async def release_source(source: str | None, source_claim: str | None) -> None:
        if source is not None and source_claim is not None:
            await services.scheduler.release(source, source_claim)

    return release_source


def evacuate_flow(services: FleetServices) -> Flow:
    """Evacuate: the source host is down, so the instance is rebuilt from its image on
    another host under a new epoch; the old guest, fenced, can never act again."""
    steps = [
        task(_begin(services)),
        task(_fence(services)),
        task(
            _claim_destination(services),
            provides="placement",
            revert=_release_destination(services),
            revert_retry=_BACK,
        ),
        task(
            _rebuild_elsewhere(services),
            revert=_abort(services),
            revert_retry=_BACK,
            timeout=MOVE_TIMEOUT,
        ),
        task(_switch(services), provides="epoch_now", retry=_FORWARD),
        task(_finish(services), provides="power_now", retry=_FORWARD, timeout=MOVE_TIMEOUT),
        task(_release_source(services), retry=_FORWARD),
        task(_end(services, "finished"), retry=_FORWARD),
    ]
    return Flow("move.evacuate", linear(*steps), inputs=MOVE_INPUTS)


def _end(services: FleetServices, event: str) -> Callable[..., Awaitable[None]]:
    async def end(migration_id: str) -> None:
        await _advance(services, migration_id, event)

    end.__name__ = f"end_{event}"
    return end


def _pre_switch(services: FleetServices, kind: MoveKind) -> list[Task]:
    steps = [
        task(_begin(services)),
        task(
            _claim_destination(services),
            provides="placement",
            revert=_release_destination(services),
            revert_retry=_BACK,
        ),
    ]
    live = kind is MoveKind.LIVE_MIGRATE
    if not live:
        steps.append(
            task(
                _stop_guest(services),
                revert=_restart_guest(services),
                revert_retry=_BACK,
                timeout=MOVE_TIMEOUT,
            )
        )
    steps += [
        task(
            _prepare(services, live=live),
            revert=_abort(services),
            revert_retry=_BACK,
            timeout=MOVE_TIMEOUT,
        ),
        task(
            _transfer(services, live=live),
            revert=_abort(services),
            revert_retry=_BACK,
            reconcile=_transferred_already(services) if live else None,
            timeout=MOVE_TIMEOUT,
        ),
    ]
    steps.append(task(_switch(services), provides="epoch_now", retry=_FORWARD))
    return steps


def move_flow(services: FleetServices, kind: MoveKind) -> Flow:
    """The flow of one kind of move (evacuation aside)."""
    steps = _pre_switch(services, kind)
    steps.append(
        task(_finish(services), provides="power_now", retry=_FORWARD, timeout=MOVE_TIMEOUT)
    )
    if kind is not MoveKind.RESIZE:  # a resize keeps its source until it is confirmed
        steps.append(task(_cleanup_source(services), retry=_FORWARD, timeout=MOVE_TIMEOUT))
        steps.append(task(_end(services, "finished"), retry=_FORWARD))
    return Flow(f"move.{kind.value}", linear(*steps), inputs=MOVE_INPUTS)


def confirm_flow(services: FleetServices) -> Flow:
    """Confirm a resize: the source copy and claim given up, the migration completed."""
    return Flow(
        "move.confirm",
        linear(
            task(_end(services, "confirm"), retry=_FORWARD),
            task(_cleanup_source(services), retry=_FORWARD, timeout=MOVE_TIMEOUT),
            task(_end(services, "confirmed"), retry=_FORWARD),
        ),
        inputs=("instance_id", "task_id", "migration_id", "source", "source_claim", "epoch"),
    )


def revert_resize_flow(services: FleetServices) -> Flow:
    """Revert a resize: the instance moved back to its source (still claimed, its copy still
    there) under a new epoch, with its old flavor; the destination given up.

    The same shape as a move: the guest stopped and copied back, each step undone if a later
    one fails (the instance then stays resized, its deadline still set); then the switch
    back, after which the revert only rolls forward."""
    driver = services.driver

    async def stop_here(instance_id: str, task_id: str, epoch: int, power: str) -> None:
        if power == Power.RUNNING:  # a cold move back: the guest stops first
            await driver.set_power(f"{task_id}:stop", instance_id, Operation.POWER_OFF, epoch=epoch)

    async def prepare_back(instance_id: str, task_id: str, source: str, epoch: int) -> None:
        await driver.prepare_move(
            f"{task_id}:prepare", instance_id, destination=source, epoch=epoch + 1
        )

    async def transfer_back(instance_id: str, task_id: str, source: str, epoch: int) -> None:
        await driver.transfer(
            f"{task_id}:transfer", instance_id, destination=source, epoch=epoch + 1, live=False
        )

    async def abort_back(result: None, failure: Failure, **inputs: Any) -> None:
        instance_id, epoch = inputs["instance_id"], inputs["epoch"]
        if await _switched(services, instance_id, epoch):
            return
        await driver.abort_move(
            f"{inputs['task_id']}:abort", instance_id, destination=inputs["source"], epoch=epoch + 1
        )

    async def switch_back(
        instance_id: str,
        task_id: str,
        migration_id: str,
        source: str,
        source_claim: str,
        epoch: int,
        old_flavor: str,
        vcpus: int,
        ram_mb: int,
        disk_gb: int,
    ) -> None:
        await services.instance(instance_id).ask(
            Switch(
                task_id,
                host=source,
                claim_id=source_claim,
                epoch=epoch + 1,
                flavor=old_flavor,
                vcpus=vcpus,
                ram_mb=ram_mb,
                disk_gb=disk_gb,
            )
        )
        await _advance(services, migration_id, "revert")  # decided: the deadline goes

    async def finish_back(
        instance_id: str, task_id: str, source: str, epoch: int, power: str
    ) -> None:
        back = epoch + 1
        await driver.finish_move(f"{task_id}:finish", instance_id, destination=source, epoch=back)
        if power == Power.RUNNING:
            await driver.set_power(f"{task_id}:start", instance_id, Operation.POWER_ON, epoch=back)

    async def give_up_destination(
        instance_id: str, task_id: str, destination: str, destination_claim: str, epoch: int
    ) -> None:
        await driver.cleanup(f"{task_id}:cleanup", instance_id, host=destination, epoch=epoch + 1)
        await services.scheduler.release(destination, destination_claim)

    return Flow(
        "move.revert",
        linear(
            task(
                stop_here, revert=_restart_guest(services), revert_retry=_BACK, timeout=MOVE_TIMEOUT
            ),
            task(prepare_back, revert=abort_back, revert_retry=_BACK, timeout=MOVE_TIMEOUT),
            task(transfer_back, revert=abort_back, revert_retry=_BACK, timeout=MOVE_TIMEOUT),
            task(switch_back, retry=_FORWARD),
            task(finish_back, retry=_FORWARD, timeout=MOVE_TIMEOUT),
            task(give_up_destination, retry=_FORWARD, timeout=MOVE_TIMEOUT),
            task(_end(services, "reverted"), retry=_FORWARD),
        ),
        inputs=(
            "instance_id",
            "task_id",
            "migration_id",
            "source",
            "source_claim",
            "destination",
            "destination_claim",
            "epoch",
            "power",
            "old_flavor",
            "vcpus",
            "ram_mb",
            "disk_gb",
        ),
    )


def keep_resize_of(services: FleetServices) -> Task:
    """A delete's first step: a resize of the instance still waiting for its verdict is
    confirmed (its source copy cleaned up, its source claim released, its migration
    completed), so that deleting the destination leaves nothing behind on the source, even
    when the delete then fails."""

    cleanup = _cleanup_source(services)

    async def keep_resize(instance_id: str, task_id: str) -> None:
        migration_id = (await services.instance(instance_id).ask(GetInstance())).migration_id
        ref = services.find_migration(migration_id) if migration_id is not None else None
        if ref is None:
            return
        migration = await ref.ask(GetMigration())
        if migration.state not in ("verifying", "confirming"):
            return
        await _advance(services, migration.id, "confirm")
        await cleanup(
            instance_id,
            f"{task_id}:keep",
            migration.source,
            migration.source_claim,
            migration.epoch,
        )
        await _advance(services, migration.id, "confirmed")

    return task(keep_resize, retry=_FORWARD, timeout=MOVE_TIMEOUT)


def build_move_flows(services: FleetServices) -> dict[str, Flow]:
    """Every move's flow, by name."""
    flows = {
        f"move.{kind.value}": move_flow(services, kind)
        for kind in (MoveKind.MIGRATE, MoveKind.RESIZE, MoveKind.LIVE_MIGRATE)
    }
    flows["move.evacuate"] = evacuate_flow(services)
    flows["move.confirm"] = confirm_flow(services)
    flows["move.revert"] = revert_resize_flow(services)
    return flows

"""Drain a host: every instance on it moved elsewhere, a task per instance, and a summary
task for the drain (Nova's ``host-evacuate-live``, made durable).

The drain is a flow on the host resource:

1. ``cordon`` disables the host, so the scheduler puts nothing new there (it stays
   disabled after the drain: enable it when the host is back in service);
2. ``survey`` records which instances the host's claims belong to and that run there;
3. ``move_all`` moves them, ``concurrency`` at a time: live when the drain is live and the
   guest runs, cold otherwise. Each move is the instance's own task, submitted with an
   idempotency key made of the drain's task id and the instance's, so a drain resumed after
   a crash finds the moves it started instead of starting new ones;
4. ``verdict`` fails the drain, naming them, when some instances could not be moved.

An instance busy with another task when the drain reaches it is waited for, then moved if
it is still on the host. One that no move can start from (``paused``, ``resized``,
``error``) is left where it is and named in the summary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from stateward.flows import Flow, TaskRecord, TaskStatus, linear, task
from stateward.runtime import CommandRejected, StatewardError

from ._driver import Power
from ._host import GetHost
from ._instance import GetInstance, InstanceStatus, Move
from ._instance_machine import InstanceAction
from ._services import FleetServices

__all__ = ("DRAIN", "DrainIncomplete", "drain_flow")

#: The drain flow's name.
DRAIN = "host.drain"


class DrainIncomplete(StatewardError):
    """Some instances of a drained host could not be moved (the drain's task fails with it:
    its ``move_all`` step's result names each and why)."""


async def _wait(services: FleetServices, task_id: str) -> TaskRecord:
    handle = services.engine.handle(task_id)
    return await handle.wait() if handle is not None else await services.engine.get(task_id)


async def _until_ended(services: FleetServices, instance_id: str, task_id: str) -> None:
    """Until the instance is done with ``task_id`` (after a crash its record may not be
    written yet: the instance submits it again)."""
    while True:
        handle = services.engine.handle(task_id)
        if handle is not None:
            await handle.wait()
        if (await services.instance(instance_id).ask(GetInstance())).task_id != task_id:
            return
        await services.env.clock.sleep(1.0)


def _cordon(services: FleetServices) -> Callable[..., Awaitable[None]]:
    async def cordon(host_id: str) -> None:
        ref = services.host(host_id)
        if ref is None:
            raise DrainIncomplete(f"host {host_id} is gone")
        if (await ref.ask(GetHost())).state == "enabled":
            await ref.ask("disable")
        services.scheduler.invalidate(host_id)

    return cordon


def _survey(services: FleetServices) -> Callable[..., Awaitable[list[str]]]:
    async def survey(host_id: str) -> list[str]:
        ref = services.host(host_id)
        if ref is None:
            raise DrainIncomplete(f"host {host_id} is gone")
        claimed = sorted({c.instance_id for c in (await ref.ask(GetHost())).claims})
        on_host = []
        for instance_id in claimed:
            status = await services.instance(instance_id).ask(GetInstance())
            if status.host_id == host_id and status.vm_state != "deleted":
                on_host.append(instance_id)
        return on_host

    return survey


def _kind(status: InstanceStatus, live: bool) -> InstanceAction:
    if live and status.power is Power.RUNNING and status.vm_state == "active":
        return InstanceAction.LIVE_MIGRATE
    return InstanceAction.MIGRATE


def _move_all(services: FleetServices) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def move_one(
        host_id: str, instance_id: str, drain_id: str, live: bool, outcome: dict[str, Any]
    ) -> None:
        ref = services.instance(instance_id)
        key = f"{drain_id}:{instance_id}"
        for _ in range(2):  # a task in the way is waited for once
            status = await ref.ask(GetInstance())
            found = await services.engine.find(instance_id, key)
            if found is None and status.host_id != host_id:
                outcome["gone"].append(instance_id)  # deleted or moved by someone else
                return
            try:
                if found is None:
                    found = await ref.ask(Move(_kind(status, live), None, None, key))
            except CommandRejected as refused:
                if status.task_id is None:
                    outcome["failed"][instance_id] = str(refused)
                    return
                await _until_ended(services, instance_id, status.task_id)
                continue
            outcome["tasks"][instance_id] = found.id
            ended = await _wait(services, found.id)
            if ended.status is TaskStatus.SUCCEEDED:
                outcome["moved"].append(instance_id)
            else:
                outcome["failed"][instance_id] = f"{ended.error_type}: {ended.error_message}"
            return
        outcome["failed"][instance_id] = "busy with another task twice in a row"

    async def move_all(
        host_id: str, task_id: str, instances: list[str], live: bool, concurrency: int
    ) -> dict[str, Any]:
        outcome: dict[str, Any] = {"tasks": {}, "moved": [], "gone": [], "failed": {}}
        limit = anyio.Semaphore(concurrency)

        async def limited(instance_id: str) -> None:
            async with limit:
                await move_one(host_id, instance_id, task_id, live, outcome)

        async with anyio.create_task_group() as group:
            for instance_id in instances:
                group.start_soon(limited, instance_id)
        for listed in ("moved", "gone"):
            outcome[listed].sort()
        return outcome

    return move_all


async def verdict(host_id: str, outcome: dict[str, Any]) -> None:
    failed = outcome["failed"]
    if failed:
        reasons = "; ".join(f"{i}: {why}" for i, why in sorted(failed.items()))
        raise DrainIncomplete(
            f"{len(failed)} instance(s) stay on {host_id}: {reasons}. Fix or move them, "
            "then drain again (the moved ones stay moved)"
        )


def drain_flow(services: FleetServices) -> Flow:
    """The drain of one host."""
    return Flow(
        DRAIN,
        linear(
            task(_cordon(services)),
            task(_survey(services), provides="instances"),
            task(_move_all(services), provides="outcome"),
            task(verdict),
        ),
        inputs=("host_id", "task_id", "live", "concurrency"),
    )

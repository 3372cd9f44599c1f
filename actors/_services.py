"""What an instance actor and the flow steps need of the fleet that runs them.

The dependency is narrow and points one way: the :class:`~stateward.actors.Fleet` builds
the actors and the flows and hands them a :class:`FleetServices`; neither knows the Fleet.
The path of a command is Fleet → instance actor → flow engine → steps → instance actor
(progress, as a message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from stateward.flows import FlowEngine, FlowHandle
from stateward.runtime import ActorRef, Document, Environment

from ._driver import Driver
from ._scheduler import Scheduler

if TYPE_CHECKING:
    from ._migration import MigrationActor

__all__ = ("FleetServices",)


class FleetServices(Protocol):
    """The fleet as its instance actors and flow steps see it."""

    @property
    def driver(self) -> Driver:
        """The hypervisor boundary."""
        ...

    @property
    def scheduler(self) -> Scheduler:
        """Places instances on hosts and releases their claims."""
        ...

    @property
    def engine(self) -> FlowEngine:
        """The flow engine: task records, by id or idempotency key."""
        ...

    @property
    def env(self) -> Environment:
        """Clock, randomness and ids."""
        ...

    async def submit(
        self,
        flow: str,
        resource_id: str,
        task_id: str,
        inputs: dict[str, Any],
        key: str | None,
        *,
        commit: Callable[[Document], Awaitable[object]] | None = None,
    ) -> FlowHandle:
        """Submit the flow named ``flow``; its end is reported to ``resource_id``.
        ``commit`` writes the task's first record with the caller's own write
        (:meth:`FlowEngine.submit`)."""
        ...

    def cancel_later(self, task_id: str) -> None:
        """Cancel (and so revert) the task ``task_id``, off the caller: a flow submitted
        behind it on the same resource runs once it has."""
        ...

    async def progress(
        self, instance_id: str, task_id: str, event: str, payload: Any = None
    ) -> None:
        """Tell the instance its task did a step: fire ``event`` with ``payload``. The step
        does not wait for the commit (one the store refuses is fired again from the task's
        record when the task ends)."""
        ...

    @property
    def resize_confirm_after(self) -> float:
        """Seconds a resize waits for a confirmation before it confirms itself."""
        ...

    def host(self, host_id: str) -> ActorRef | None:
        """The host actor called ``host_id``, if there is one."""
        ...

    def host_ids(self) -> tuple[str, ...]:
        """Every host's id, sorted."""
        ...

    def watch_task(self, instance_id: str, task_id: str) -> None:
        """Make sure the instance hears how ``task_id`` ends (again, if it did already)."""
        ...

    def settle_later(self, instance_id: str) -> None:
        """Ask the instance to catch up with the store, until the store lets it."""
        ...

    def instance(self, instance_id: str) -> ActorRef:
        """The instance actor called ``instance_id``."""
        ...

    def migration(self, migration_id: str) -> ActorRef:
        """The migration actor called ``migration_id``."""
        ...

    def find_migration(self, migration_id: str) -> ActorRef | None:
        """The migration actor called ``migration_id``, if it exists."""
        ...

    async def lease_open(self, lease_id: str) -> bool:
        """Whether the lease called ``lease_id`` is started and not ended."""
        ...

    def spawn_migration(self, migration_id: str, actor: type[MigrationActor]) -> ActorRef:
        """The migration actor called ``migration_id``, created as ``actor`` if missing."""
        ...

"""The leases of a fleet: ``fleet.leases``.

::

    lease = await fleet.leases.create(
        "night-batch",
        start=now + 600,
        end=now + 4200,
        reservations=(HostReservation(count=2),),
    )
    async with fleet.subscribe("lease.*.starting_soon") as events: ...
    await fleet.instances.boot("job-1", flavor="m1.small", image="cirros",
                               reservation="night-batch")

Every call checks its arguments before anything is committed (a bad one is
:class:`~stateward.runtime.InvalidArgument`: what was expected, what was got). ``create`` and
``update`` wait for their task, which is quick (a few asks per host), and raise
:class:`~stateward.actors.LeaseDoesNotFit` when the capacity is not there; ``end`` and
``delete`` return their task, which may take as long as the end's policy takes.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from stateward.flows import TaskRecord, TaskStatus
from stateward.runtime import (
    ActorRef,
    InvalidArgument,
    InvalidCommand,
    ResourceSummary,
    Store,
    TransitionRecord,
)

from ._checks import check_flag, check_name, check_optional_text, check_seconds, check_text
from ._errors import DuplicateName, LeaseDoesNotFit, LeaseNotActive, UnknownName
from ._host import GetCalendar, HostCalendar
from ._lease import LEASE_END, GetLease, LeaseStatus
from ._lease_flows import LEASE_CREATE, LEASE_DELETE, LEASE_UPDATE, LeaseServices
from ._lease_machine import (
    LEASE,
    HostReservation,
    InstanceReservation,
    LeasePolicy,
    LeaseSpec,
    LeaseStart,
    Reservation,
)
from ._scheduler import Flavor

__all__ = ("Leases", "START_TOLERANCE")

#: Seconds a lease's start may lie in the past when it is asked for (clocks differ; a
#: request takes time): such a lease starts at once.
START_TOLERANCE = 60.0
#: Leases read per page when they are listed.
_PAGE = 1000


class LeaseFleet(LeaseServices, Protocol):
    """What :class:`Leases` needs of the fleet beyond what the lease flows do."""

    @property
    def store(self) -> Store:
        """The fleet's store (the leases' histories)."""
        ...

    @property
    def lease_notify_before(self) -> float:
        """The fleet's heads-up offset."""
        ...

    def check_open(self, action: str) -> None:
        """Raise :class:`FleetNotOpen` unless the fleet is open."""
        ...

    def taken(self, name: str) -> bool:
        """Whether a host, instance or lease has that name."""
        ...

    def is_lease(self, name: str) -> bool:
        """Whether ``name`` is a lease's (a resource the fleet knows, not a host)."""
        ...

    def image(self, name: str) -> None:
        """Raise :class:`UnknownName` unless the image is known."""
        ...

    def spawn_lease(self, lease_id: str) -> ActorRef:
        """A new lease actor."""
        ...

    async def summaries(self, kind: str) -> list[ResourceSummary]:
        """Every resource of a kind, by id."""
        ...


class Leases:
    """The fleet's leases: ``fleet.leases``."""

    def __init__(self, fleet: LeaseFleet) -> None:
        self._fleet = fleet

    # -- asking ---------------------------------------------------------------------------

    async def create(
        self,
        lease_id: str,
        *,
        start: float,
        end: float,
        reservations: tuple[Reservation, ...],
        project: str = "default",
        on_end: LeasePolicy = LeasePolicy.NOTIFY,
        on_start: LeaseStart = LeaseStart.NOTHING,
        image: str | None = None,
        notify_before: float | None = None,
        suggest: bool = False,
        idempotency_key: str | None = None,
    ) -> LeaseStatus:
        """Reserve capacity for ``[start, end)`` (seconds on the fleet's clock).

        Args:
            lease_id: the lease's name (unique among hosts, instances and leases).
            reservations: whole hosts and slots of flavors.
            project: who owns it.
            on_end: what its end does to the instances built in it.
            on_start: :attr:`LeaseStart.BOOT` boots every slot of its instance
                reservations from ``image`` when it starts.
            notify_before: seconds before its start and end that ``starting_soon`` and
                ``ending_soon`` fire; the fleet's ``lease_notify_before`` when None.
            suggest: on a request that does not fit, look for the earliest window of the
                same length that does (``LeaseDoesNotFit.earliest``).
            idempotency_key: a repeat with the same key returns the same lease.

        Returns:
            The lease, ``pending`` (or ``active`` soon after, when its start is now).

        Raises:
            LeaseDoesNotFit: not enough capacity over the window; the lease is ``failed``,
                with the reason in its history, and nothing is held.
            DuplicateName: the name is taken.
            UnknownName: an unknown flavor, image or named host.
            InvalidArgument: a bad window (end <= start, a start more than
                :data:`START_TOLERANCE` seconds ago), a count <= 0, and so on.
        """
        fleet = self._fleet
        fleet.check_open("leases.create")
        check_name("lease", lease_id)
        check_flag("suggest", suggest)
        check_optional_text("idempotency_key", idempotency_key)
        if notify_before is None:
            notify_before = fleet.lease_notify_before
        spec = self._spec(
            start=start,
            end=end,
            reservations=reservations,
            project=project,
            on_end=on_end,
            on_start=on_start,
            image=image,
            notify_before=notify_before,
        )
        self._check_start(spec.start)
        if fleet.taken(lease_id):
            known = await self._known(lease_id, idempotency_key)
            if known is not None:
                return known
            raise DuplicateName("lease", lease_id)
        fleet.spawn_lease(lease_id)
        inputs = {"spec": msgspec.to_builtins(spec), "suggest": suggest}
        record = await self._run(LEASE_CREATE, lease_id, inputs, idempotency_key)
        return await self._outcome(lease_id, record, spec, suggest)

    async def update(
        self,
        lease_id: str,
        *,
        start: float | None = None,
        end: float | None = None,
        reservations: tuple[Reservation, ...] | None = None,
        suggest: bool = False,
        idempotency_key: str | None = None,
    ) -> LeaseStatus:
        """Move, extend or shrink a lease's window, or change what it reserves: checked for
        fit like a new lease, all or nothing.

        An active lease keeps its start, and its end stays ahead; an update may not take
        the capacity from under an instance built in the lease.

        Raises:
            LeaseDoesNotFit: the new lease does not fit; the lease is as it was.
            InvalidCommand: the lease is not pending nor active.
            InvalidArgument: a bad window or reservation (as for :meth:`create`).
        """
        fleet = self._fleet
        fleet.check_open("leases.update")
        check_flag("suggest", suggest)
        check_optional_text("idempotency_key", idempotency_key)
        if idempotency_key is not None:
            found = await fleet.engine.find(check_name("lease", lease_id), idempotency_key)
            if found is not None:
                return await self._outcome(lease_id, await self._finished(found), None, suggest)
        lease = await self.get(lease_id)
        if lease.state not in ("pending", "active"):
            raise InvalidCommand(
                lease_id, expected="a lease that is pending or active", got=f"state {lease.state}"
            )
        now = fleet.env.clock.now()
        spec = self._spec(
            start=lease.start if start is None else start,
            end=lease.end if end is None else end,
            reservations=lease.reservations if reservations is None else reservations,
            project=lease.project,
            on_end=lease.on_end,
            on_start=lease.on_start,
            image=lease.image,
            notify_before=lease.notify_before,
        )
        if lease.state == "active":
            if spec.start != lease.start:
                raise InvalidArgument(
                    "start", expected=f"{lease.start:g}: an active lease keeps its start", got=start
                )
            if spec.end <= now:
                raise InvalidArgument(
                    "end", expected=f"a time after now ({now:g}) for an active lease", got=end
                )
        elif spec.start != lease.start:
            self._check_start(spec.start)
        inputs = {"spec": msgspec.to_builtins(spec), "suggest": suggest}
        record = await self._run(LEASE_UPDATE, lease_id, inputs, idempotency_key)
        return await self._outcome(lease_id, record, spec, suggest)

    async def end(self, lease_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """End a lease now: its end's policy runs and its holds go (before its start, it
        simply ends). Returns the task (``fleet.tasks.wait(record.id)``).

        Raises:
            InvalidCommand: the lease ended, failed or was deleted already.
        """
        self._fleet.check_open("leases.end")
        return await self._finish(LEASE_END, lease_id, idempotency_key, ending=True)

    async def delete(self, lease_id: str, *, idempotency_key: str | None = None) -> TaskRecord:
        """Delete a lease: ended first if it has not (its policy runs), then ``deleted``.
        Its history stays readable. Returns the task.

        Raises:
            InvalidCommand: the lease is deleted already.
        """
        self._fleet.check_open("leases.delete")
        return await self._finish(LEASE_DELETE, lease_id, idempotency_key, ending=False)

    # -- reading --------------------------------------------------------------------------

    async def get(self, lease_id: str) -> LeaseStatus:
        """A lease's status."""
        fleet = self._fleet
        fleet.check_open("leases.get")
        check_name("lease", lease_id)
        if not fleet.is_lease(lease_id):
            raise UnknownName("lease", str(lease_id))
        try:
            status = await fleet.lease(lease_id).ask(GetLease())
        except InvalidCommand:
            raise UnknownName("lease", lease_id) from None  # an instance's name
        if not isinstance(status, LeaseStatus) or status.state == "new":
            raise UnknownName("lease", lease_id)
        return status

    async def list(
        self, *, project: str | None = None, state: str | None = None
    ) -> tuple[LeaseStatus, ...]:
        """Every lease (of one project, in one state, when given), by id."""
        fleet = self._fleet
        fleet.check_open("leases.list")
        check_optional_text("project", project)
        if state is not None and (not isinstance(state, str) or state not in LEASE.states):
            raise InvalidArgument(
                "state", expected=f"a lease state: {', '.join(sorted(LEASE.states))}", got=state
            )
        found = []
        for summary in await fleet.summaries(LEASE.name):
            if summary.state == "new" or (state is not None and summary.state != state):
                continue
            status = await self.get(summary.resource_id)
            if project is None or status.project == project:
                found.append(status)
        return tuple(found)

    async def history(self, lease_id: str) -> tuple[TransitionRecord, ...]:
        """Every transition of a lease, oldest first: its notifications, each with the
        lease as its payload, among them."""
        fleet = self._fleet
        fleet.check_open("leases.history")
        await self.get(lease_id)
        records: list[TransitionRecord] = []
        while True:
            page = await fleet.store.history(lease_id, after=len(records), limit=_PAGE)
            records.extend(page)
            if len(page) < _PAGE:
                return tuple(records)

    async def calendar(self, host_id: str) -> HostCalendar:
        """A host's holds, and the capacity they are measured against."""
        self._fleet.check_open("leases.calendar")
        check_name("host", host_id)
        ref = self._fleet.host(host_id)
        if ref is None:
            raise UnknownName("host", str(host_id), known=self._fleet.host_ids())
        calendar: HostCalendar = await ref.ask(GetCalendar())
        return calendar

    async def check_boot(self, lease_id: str, flavor: Flavor) -> None:
        """Raise unless a boot of ``flavor`` may name the lease now.

        Raises:
            UnknownName: no such lease.
            LeaseNotActive: the lease is not started, or ended.
            InvalidArgument: the lease reserves only slots, none of this flavor.
        """
        lease = await self.get(lease_id)
        if lease.state not in ("starting", "active", "active/updating"):
            raise LeaseNotActive(lease_id, state=lease.state, start=lease.start, end=lease.end)
        if any(isinstance(r, HostReservation) for r in lease.reservations):
            return
        flavors = sorted(
            {r.flavor for r in lease.reservations if isinstance(r, InstanceReservation)}
        )
        if flavor.name not in flavors:
            raise InvalidArgument(
                "flavor",
                expected=f"a flavor lease {lease_id} reserves slots of: {', '.join(flavors)}",
                got=flavor.name,
            )

    # -- internals ------------------------------------------------------------------------

    def _spec(self, **fields: Any) -> LeaseSpec:
        fleet = self._fleet
        for name in ("start", "end"):
            value = fields[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(name, expected="seconds on the fleet's clock", got=value)
        check_seconds("notify_before", fields["notify_before"])
        check_text("project", fields["project"])
        reservations = fields["reservations"]
        if isinstance(reservations, list):
            reservations = tuple(reservations)
        fields["reservations"] = reservations
        spec = LeaseSpec(**fields)
        for reservation in spec.reservations:
            if isinstance(reservation, InstanceReservation):
                fleet.flavor(reservation.flavor)
            else:
                for host in reservation.hosts:
                    if fleet.host(host) is None:
                        raise UnknownName("host", host, known=fleet.host_ids())
        if spec.image is not None:
            fleet.image(spec.image)
        return spec

    def _check_start(self, start: float) -> None:
        now = self._fleet.env.clock.now()
        if start < now - START_TOLERANCE:
            raise InvalidArgument(
                "start",
                expected=f"a time from {now - START_TOLERANCE:g} on (now less "
                f"{START_TOLERANCE:g} s)",
                got=start,
            )

    async def _known(self, lease_id: str, key: str | None) -> LeaseStatus | None:
        """The lease a repeated create stands for, if it is one."""
        if key is None:
            return None
        found = await self._fleet.engine.find(lease_id, key)
        if found is None or found.kind != LEASE_CREATE:
            return None
        record = await self._finished(found)
        return await self._outcome(lease_id, record, None, bool(record.request.get("suggest")))

    async def _run(
        self, flow: str, lease_id: str, inputs: dict[str, Any], key: str | None
    ) -> TaskRecord:
        fleet = self._fleet
        task_id = fleet.env.ids.next("task")
        inputs = {"lease_id": lease_id, "task_id": task_id, **inputs}
        handle = await fleet.submit(flow, lease_id, task_id, inputs, key)
        return await handle.wait()

    async def _finished(self, record: TaskRecord) -> TaskRecord:
        handle = self._fleet.engine.handle(record.id)
        return await handle.wait() if handle is not None else record

    async def _outcome(
        self, lease_id: str, record: TaskRecord, spec: LeaseSpec | None, suggest: bool
    ) -> LeaseStatus:
        lease = await self.get(lease_id)
        if record.status is TaskStatus.SUCCEEDED:
            return lease
        start = spec.start if spec is not None else lease.start
        end = spec.end if spec is not None else lease.end
        details = lease.failure or {"reason": f"{record.error_type}: {record.error_message}"}
        raise LeaseDoesNotFit.from_details(lease_id, start, end, details, suggested=suggest)

    async def _finish(
        self, flow: str, lease_id: str, key: str | None, *, ending: bool
    ) -> TaskRecord:
        fleet = self._fleet
        check_optional_text("idempotency_key", key)
        if key is not None:
            found = await fleet.engine.find(check_name("lease", lease_id), key)
            if found is not None:
                return found
        lease = await self.get(lease_id)
        over = ("ending", "ended", "failed", "deleting", "deleted") if ending else ("deleted",)
        if lease.state in over or (not ending and lease.state == "deleting"):
            allowed = "delete" if lease.state in ("ended", "failed") else "nothing"
            raise InvalidCommand(
                lease_id,
                expected=f"a lease that is not {lease.state} (allowed now: {allowed})",
                got=f"{'end' if ending else 'delete'} in state {lease.state}",
            )
        task_id = fleet.env.ids.next("task")
        inputs = {"lease_id": lease_id, "task_id": task_id, "early": True}
        handle = await fleet.submit(flow, lease_id, task_id, inputs, key)
        return handle.record

"""The flows of a lease, and the planner that finds it room.

Every lease operation is a task on the lease's resource (so the engine runs them one at a
time, in the order they came):

* ``lease.create``: ``record`` the request, ``hold`` (plan, then a tentative hold on every
  host chosen), ``commit`` (confirm every hold, drop strays, and the lease is ``created``,
  its timers set in that same write). A request that does not fit is ``failed``, with the
  host, moment and resource that fell short, and nothing is held.
* ``lease.update``: the same on a new generation of holds, each replacing the old one on
  its host; all or nothing: a failed update leaves every old hold as it was.
* ``lease.start`` (its start timer): ``begin``, ``handover`` (wait until the leases that
  ended on its hosts have carried out their end and let their holds go), ``open`` the
  holds, ``boot`` (``on_start=boot``), and it is ``started``.
* ``lease.end`` (its end timer, or an early end): ``begin``, ``policy`` (its holds are
  closed to boots, then its instances are left, stopped, deleted or moved off),
  ``release`` every hold, and it is ``ended``.
* ``lease.delete``: the end's steps, then ``deleted``.

Back to back on a host: the ending lease's policy runs and its holds go before the next
lease on that host opens its own, so the next lease finds its room empty.

The planner gives each reservation its own hosts (a host serves one reservation of a
lease): whole hosts as asked; slots on one host (affinity), one per host (anti-affinity) or
as few hosts as hold them. It asks each host how much fits over the window; the host's
answer is a hint, its hold is the authority, and a refused hold (a racing request won) is
planned again.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
import msgspec

from stateward.flows import Failure, Flow, Retry, TaskRecord, TaskStatus, linear, task
from stateward.runtime import ActorRef, CommandRejected, StatewardError

from ._calendar import Calendar, Shortfall
from ._capacity import Capacity
from ._drain import _wait
from ._errors import LeaseDoesNotFit
from ._host import (
    ConfirmHold,
    Fit,
    FitQuery,
    GetCalendar,
    GetHost,
    HoldRefused,
    HostCalendar,
    HostStatus,
    LeaseHold,
    OpenHold,
    PlaceHold,
    ReleaseLease,
    fit_in,
    room_beside,
)
from ._instance import Act, GetInstance, Move
from ._instance_machine import InstanceAction
from ._lease import LEASE_END, LEASE_START, GetLease, LeaseStatus, LeaseStep, PlacedHold
from ._lease_machine import (
    HostReservation,
    InstanceReservation,
    LeasePolicy,
    LeaseSpec,
    LeaseStart,
)
from ._scheduler import Flavor
from ._services import FleetServices

__all__ = (
    "LEASE_CREATE",
    "LEASE_UPDATE",
    "LEASE_DELETE",
    "LeaseServices",
    "build_lease_flows",
    "hold_id",
)

LEASE_CREATE = "lease.create"
LEASE_UPDATE = "lease.update"
LEASE_DELETE = "lease.delete"

#: Seconds a starting lease waits for the leases ending on its hosts to let go.
HANDOVER_TIMEOUT = 600.0
#: Seconds between two looks at those hosts meanwhile.
HANDOVER_POLL = 0.5
#: Seconds an end's policy may take (its moves, stops or deletes) before the holds go anyway.
POLICY_TIMEOUT = 900.0
#: Plans tried when racing requests take the room a plan counted on.
PLAN_ATTEMPTS = 3
#: Instances an end's policy works on at once.
POLICY_CONCURRENCY = 10
#: Later windows tried when looking for the earliest one that fits.
EARLIEST_CANDIDATES = 2000
#: Steps that must end: each is idempotent, so it is tried again.
_FORWARD = Retry(attempts=12, backoff=1.0, factor=2.0, max_backoff=60.0)


class LeaseServices(FleetServices, Protocol):
    """The fleet as the lease flows see it."""

    def lease(self, lease_id: str) -> ActorRef:
        """The lease actor called ``lease_id``."""
        ...

    def flavor(self, name: str) -> Flavor:
        """The flavor called ``name``."""
        ...

    async def boot(
        self, instance_id: str, *, flavor: str, image: str, reservation: str, key: str
    ) -> TaskRecord:
        """Boot an instance into a lease (as ``fleet.instances.boot`` does)."""
        ...


class _NoRoom(Exception):
    """A plan found too little: which reservation, and the closest host's shortfall."""

    def __init__(self, reason: str, host: str | None, shortfall: Shortfall | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host = host
        self.shortfall = shortfall


def hold_id(lease_id: str, generation: int, index: int) -> str:
    """The id of a lease's hold for its reservation ``index``, in ``generation``."""
    return f"{lease_id}/{generation}/{index}"


#: How much fits on a host: ``fit(host, amount or None for the whole host, ignore)``.
_FitFn = Callable[[str, Capacity | None, tuple[str, ...]], Awaitable[Fit]]


def _matches(reservation: HostReservation | InstanceReservation, host: HostStatus) -> bool:
    if host.state != "enabled":
        return False
    if reservation.zone is not None and host.zone != reservation.zone:
        return False
    if isinstance(reservation, HostReservation):
        if reservation.hosts and host.id not in reservation.hosts:
            return False
        return set(reservation.traits) <= set(host.traits)
    return True


async def _plan(
    services: LeaseServices,
    lease_id: str,
    spec: LeaseSpec,
    generation: int,
    hosts: Sequence[HostStatus],
    current: Sequence[PlacedHold],
    fit: _FitFn,
) -> list[PlacedHold]:
    """Hosts and amounts for every reservation of ``spec``, or :class:`_NoRoom`."""
    taken: set[str] = set()
    plan: list[PlacedHold] = []
    for index, reservation in enumerate(spec.reservations):
        mine = {h.host: h.hold_id for h in current if h.reservation == index}
        candidates = sorted(
            (h for h in hosts if h.id not in taken and _matches(reservation, h)),
            key=lambda h: (h.id not in mine, h.id),
        )
        new_id = hold_id(lease_id, generation, index)
        found: list[tuple[str, int]] = []
        closest: tuple[str, Shortfall] | None = None
        amount = (
            services.flavor(reservation.flavor).amount
            if isinstance(reservation, InstanceReservation)
            else None
        )
        for host in candidates:
            ignore = tuple(i for i in (mine.get(host.id), new_id) if i is not None)
            answer = await fit(host.id, amount, ignore)
            if answer.slots > 0:
                found.append((host.id, answer.slots))
            if closest is None and answer.shortfall is not None and answer.slots == 0:
                closest = (host.id, answer.shortfall)
        chosen = _choose(reservation, found, mine)
        if chosen is None:
            have = sum(n for _, n in found) if amount is not None else len(found)
            wanted = (
                reservation.wanted
                if isinstance(reservation, HostReservation)
                else reservation.count
            )
            unit = "slots" if amount is not None else "hosts"
            reason = (
                f"reservation {index} ({reservation.describe()}) found room for {have} of "
                f"{wanted} {unit} among {len(candidates)} matching hosts"
            )
            raise _NoRoom(reason, *(closest if closest is not None else (None, None)))
        for host_id, slots in chosen:
            held = (
                Capacity(amount.vcpus * slots, amount.ram_mb * slots, amount.disk_gb * slots)
                if amount is not None
                else Capacity()
            )
            plan.append(PlacedHold(host_id, new_id, index, held, whole=amount is None))
            taken.add(host_id)
    return plan


def _choose(
    reservation: HostReservation | InstanceReservation,
    found: list[tuple[str, int]],
    mine: dict[str, str],
) -> list[tuple[str, int]] | None:
    """The hosts (and slots on each) a reservation takes from those with room."""
    if isinstance(reservation, HostReservation):
        return found[: reservation.wanted] if len(found) >= reservation.wanted else None
    count = reservation.count
    if reservation.affinity is True:
        enough = [(h, n) for h, n in found if n >= count]
        if not enough:
            return None
        # Its own host first, then the tightest fit.
        best = min(enough, key=lambda p: (p[0] not in mine, p[1], p[0]))
        return [(best[0], count)]
    if reservation.affinity is False:
        return [(h, 1) for h, _ in found[:count]] if len(found) >= count else None
    # Its own hosts first, then those with the most room: as few hosts as will hold them.
    ordered = sorted(found, key=lambda p: (p[0] not in mine, -p[1], p[0]))
    chosen, left = [], count
    for host_id, slots in ordered:
        if left == 0:
            break
        take = min(slots, left)
        chosen.append((host_id, take))
        left -= take
    return chosen if left == 0 else None


async def _statuses(services: LeaseServices) -> list[HostStatus]:
    found = []
    for host_id in services.host_ids():
        ref = services.host(host_id)
        if ref is not None:
            try:
                found.append(await ref.ask(GetHost()))
            except StatewardError:
                continue  # a host that does not answer takes no hold now
    return found


def _host_ref(services: LeaseServices, host_id: str) -> ActorRef:
    ref = services.host(host_id)
    if ref is None:
        raise LookupError(f"host {host_id} is gone")
    return ref


async def _earliest(
    services: LeaseServices,
    lease_id: str,
    spec: LeaseSpec,
    generation: int,
    hosts: Sequence[HostStatus],
    current: Sequence[PlacedHold],
) -> tuple[float, float] | None:
    """The earliest window of the spec's length, from its start on, that fits now.

    A window that fits can always be moved earlier until a hold ends at its start (or it
    reaches the asked start), so those moments are the only candidates; each is planned
    against the hosts' calendars as they are.
    """
    ours = {h.hold_id for h in current} | {
        hold_id(lease_id, generation, i) for i in range(len(spec.reservations))
    }
    calendars: dict[str, tuple[Calendar, Capacity, Capacity]] = {}
    ends: set[float] = set()
    for host in hosts:
        snapshot = await _host_ref(services, host.id).ask(GetCalendar())
        holds = [h.hold() for h in snapshot.holds if h.id not in ours]
        calendars[host.id] = (
            Calendar(holds),
            room_beside(snapshot.bound, snapshot.unreserved),
            snapshot.bound,
        )
        ends.update(h.end for h in holds if h.end > spec.start)
    length = spec.end - spec.start
    for at in sorted(ends | {spec.start})[:EARLIEST_CANDIDATES]:

        async def fit(
            host_id: str, amount: Capacity | None, ignore: tuple[str, ...], at: float = at
        ) -> Fit:
            calendar, room, bound = calendars[host_id]
            return fit_in(calendar, room, at, at + length, amount, bound=bound)

        moved = msgspec.structs.replace(spec, start=at, end=at + length)
        try:
            await _plan(services, lease_id, moved, generation, hosts, current, fit)
        except _NoRoom:
            continue
        return (at, at + length)
    return None


async def _hold(
    services: LeaseServices,
    lease_id: str,
    spec: LeaseSpec,
    generation: int,
    current: Sequence[PlacedHold],
    suggest: bool,
) -> list[PlacedHold]:
    """Plan, then hold tentatively on every host chosen; :class:`LeaseDoesNotFit` (with
    nothing of this generation left held) when the room is not there."""
    replaced = {(h.host, h.reservation): h.hold_id for h in current}
    last: _NoRoom | None = None
    for _ in range(PLAN_ATTEMPTS):
        hosts = await _statuses(services)

        async def fit(host_id: str, amount: Capacity | None, ignore: tuple[str, ...]) -> Fit:
            answer: Fit = await _host_ref(services, host_id).ask(
                FitQuery(spec.start, spec.end, amount, ignore)
            )
            return answer

        try:
            plan = await _plan(services, lease_id, spec, generation, hosts, current, fit)
        except _NoRoom as short:
            last = short
            break
        try:
            for placed in plan:
                hold = LeaseHold(
                    placed.hold_id,
                    lease_id,
                    spec.start,
                    spec.end,
                    placed.amount,
                    replaces=replaced.get((placed.host, placed.reservation)),
                )
                await _host_ref(services, placed.host).ask(PlaceHold(hold, whole=placed.whole))
        except HoldRefused as refused:
            # A racing request took room the plan counted on: plan again.
            last = _NoRoom(refused.reason, refused.host, refused.shortfall)
            continue
        return plan
    assert last is not None
    await _let_go(services, lease_id, keep={h.hold_id for h in current})
    earliest = None
    if suggest:
        earliest = await _earliest(
            services, lease_id, spec, generation, await _statuses(services), current
        )
    raise LeaseDoesNotFit(
        lease_id,
        start=spec.start,
        end=spec.end,
        reason=last.reason,
        host=last.host,
        shortfall=last.shortfall,
        earliest=earliest,
        suggested=suggest,
    )


async def _let_go(services: LeaseServices, lease_id: str, *, keep: set[str]) -> None:
    """Every host gives up the lease's holds but ``keep`` (strays of a crashed plan too)."""
    kept = tuple(sorted(keep))
    for host_id in services.host_ids():
        ref = services.host(host_id)
        if ref is not None:
            await ref.ask(ReleaseLease(lease_id, kept))


async def _status(services: LeaseServices, lease_id: str) -> LeaseStatus:
    status: LeaseStatus = await services.lease(lease_id).ask(GetLease())
    return status


async def _step(
    services: LeaseServices,
    lease_id: str,
    event: str,
    payload: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> bool:
    moved: bool = await services.lease(lease_id).ask(LeaseStep(event, payload, task_id))
    return moved


def _spec(data: dict[str, Any]) -> LeaseSpec:
    return msgspec.convert(data, LeaseSpec)


# -- create and update -------------------------------------------------------------------


def _create_flow(services: LeaseServices) -> Flow:
    async def record(lease_id: str, task_id: str, spec: dict[str, Any]) -> None:
        await _step(services, lease_id, "create", {"spec": spec}, task_id)

    async def fail(result: None, failure: Failure, lease_id: str, task_id: str, **_: Any) -> None:
        await _step(services, lease_id, "failed", {"reason": failure.message}, task_id)

    async def hold(
        lease_id: str, task_id: str, spec: dict[str, Any], suggest: bool
    ) -> list[dict[str, Any]]:
        try:
            plan = await _hold(services, lease_id, _spec(spec), 0, (), suggest)
        except LeaseDoesNotFit as short:
            failure = short.details()
            await _step(
                services, lease_id, "failed", {"reason": str(short), "failure": failure}, task_id
            )
            raise
        return [msgspec.to_builtins(p) for p in plan]

    async def unhold(
        result: list[dict[str, Any]], failure: Failure, lease_id: str, **_: Any
    ) -> None:
        await _let_go(services, lease_id, keep=set())

    async def commit(lease_id: str, task_id: str, holds: list[dict[str, Any]]) -> None:
        await _confirm(services, lease_id, holds, open_them=False)
        payload = {"holds": holds, "generation": 0}
        await _step(services, lease_id, "created", payload, task_id)

    return Flow(
        LEASE_CREATE,
        linear(
            task(record, revert=fail, revert_retry=_FORWARD),
            task(hold, provides="holds", revert=unhold, revert_retry=_FORWARD),
            task(commit, retry=_FORWARD),
        ),
        inputs=("lease_id", "task_id", "spec", "suggest"),
    )


async def _confirm(
    services: LeaseServices, lease_id: str, holds: list[dict[str, Any]], *, open_them: bool
) -> None:
    placed = [msgspec.convert(h, PlacedHold) for h in holds]
    for hold in placed:
        await _host_ref(services, hold.host).ask(ConfirmHold(hold.hold_id, open=open_them))
    await _let_go(services, lease_id, keep={h.hold_id for h in placed})


def _update_flow(services: LeaseServices) -> Flow:
    async def begin(lease_id: str, task_id: str, spec: dict[str, Any]) -> None:
        await _step(services, lease_id, "update", {"spec": spec}, task_id)

    async def restore(
        result: None, failure: Failure, lease_id: str, task_id: str, **_: Any
    ) -> None:
        await _step(services, lease_id, "update_failed", {"reason": failure.message}, task_id)

    async def hold(
        lease_id: str, task_id: str, spec: dict[str, Any], suggest: bool
    ) -> dict[str, Any]:
        lease = await _status(services, lease_id)
        generation = lease.generation + 1
        try:
            plan = await _hold(services, lease_id, _spec(spec), generation, lease.holds, suggest)
            _keep_instances(lease, plan, await _statuses(services))
        except LeaseDoesNotFit as short:
            await _let_go(services, lease_id, keep={h.hold_id for h in lease.holds})
            payload = {"reason": str(short), "failure": short.details()}
            await _step(services, lease_id, "update_failed", payload, task_id)
            raise
        return {"holds": [msgspec.to_builtins(p) for p in plan], "generation": generation}

    async def unhold(result: dict[str, Any], failure: Failure, lease_id: str, **_: Any) -> None:
        lease = await _status(services, lease_id)
        await _let_go(services, lease_id, keep={h.hold_id for h in lease.holds})

    async def commit(
        lease_id: str, task_id: str, spec: dict[str, Any], plan: dict[str, Any]
    ) -> None:
        lease = await _status(services, lease_id)
        await _confirm(
            services, lease_id, plan["holds"], open_them=lease.state == "active/updating"
        )
        payload = {**plan, "spec": spec}
        await _step(services, lease_id, "updated", payload, task_id)

    return Flow(
        LEASE_UPDATE,
        linear(
            task(begin, revert=restore, revert_retry=_FORWARD),
            task(hold, provides="plan", revert=unhold, revert_retry=_FORWARD),
            task(commit, retry=_FORWARD),
        ),
        inputs=("lease_id", "task_id", "spec", "suggest"),
    )


def _keep_instances(lease: LeaseStatus, plan: list[PlacedHold], hosts: list[HostStatus]) -> None:
    """An update may not leave an instance of the lease on a host it no longer holds."""
    kept = {p.host for p in plan}
    stranded = sorted(
        f"{c.instance_id} on {h.id}"
        for h in hosts
        if h.id not in kept
        for c in h.claims
        if c.reservation == lease.id
    )
    if stranded:
        raise LeaseDoesNotFit(
            lease.id,
            start=lease.start,
            end=lease.end,
            reason=f"the update would leave instances of the lease without its capacity: "
            f"{', '.join(stranded)}; move or delete them first",
        )


# -- start ---------------------------------------------------------------------------------


def _start_flow(services: LeaseServices) -> Flow:
    async def begin(lease_id: str, task_id: str) -> bool:
        lease = await _status(services, lease_id)
        if lease.state == "starting":
            return True  # resumed after a crash
        if lease.state != "pending" or services.env.clock.now() < lease.start:
            return False  # ended early, or an update moved the start later
        return await _step(services, lease_id, "start", None, task_id)

    async def handover(lease_id: str, go: bool) -> float:
        """Wait for the leases that ended on this lease's hosts to let their holds go."""
        if not go:
            return 0.0
        clock = services.env.clock
        began = clock.now()
        lease = await _status(services, lease_id)
        for host_id in lease.hosts:
            ref = _host_ref(services, host_id)
            while clock.now() - began < HANDOVER_TIMEOUT:
                now = clock.now()
                snapshot = await ref.ask(GetCalendar())
                if not any(h.lease_id != lease_id and h.end <= now for h in snapshot.holds):
                    break
                await clock.sleep(HANDOVER_POLL)
        return clock.now() - began

    async def open_holds(lease_id: str, go: bool) -> None:
        if go:
            lease = await _status(services, lease_id)
            for hold in lease.holds:
                await _host_ref(services, hold.host).ask(OpenHold(hold.hold_id))
                services.scheduler.invalidate(hold.host)

    async def boot(lease_id: str, task_id: str, go: bool) -> dict[str, Any]:
        outcome: dict[str, Any] = {"booted": [], "boot_failed": {}}
        lease = await _status(services, lease_id)
        if not go or lease.on_start is not LeaseStart.BOOT:
            return outcome
        image = lease.image
        assert image is not None, "a lease that boots at its start has an image"
        wanted = []
        for reservation in lease.reservations:
            if isinstance(reservation, InstanceReservation):
                wanted += [reservation.flavor] * reservation.count
        limit = anyio.Semaphore(POLICY_CONCURRENCY)

        async def one(number: int, flavor: str) -> None:
            instance_id = f"{lease_id}-{number}"
            async with limit:
                try:
                    record = await services.boot(
                        instance_id,
                        flavor=flavor,
                        image=image,
                        reservation=lease_id,
                        key=f"{task_id}:{instance_id}",
                    )
                    ended = await _wait(services, record.id)
                except StatewardError as error:
                    outcome["boot_failed"][instance_id] = str(error)
                    return
            if ended.status is TaskStatus.SUCCEEDED:
                outcome["booted"].append(instance_id)
            else:
                outcome["boot_failed"][instance_id] = f"{ended.error_type}: {ended.error_message}"

        async with anyio.create_task_group() as group:
            for number, flavor in enumerate(wanted, start=1):
                group.start_soon(one, number, flavor)
        outcome["booted"].sort()
        return outcome

    async def finish(lease_id: str, task_id: str, go: bool, booted: dict[str, Any]) -> None:
        if go:
            await _step(services, lease_id, "started", booted, task_id)

    return Flow(
        LEASE_START,
        linear(
            task(begin, provides="go", retry=_FORWARD),
            task(handover, provides="waited"),
            task(open_holds, name="open", retry=_FORWARD),
            task(boot, provides="booted"),
            task(finish, retry=_FORWARD),
        ),
        inputs=("lease_id", "task_id", "early"),
    )


# -- end and delete --------------------------------------------------------------------------


def _end_steps(services: LeaseServices) -> tuple[Any, ...]:
    async def begin(lease_id: str, task_id: str, early: bool) -> str:
        """Where the lease was when it ended: ``active``, ``pending``, or "" (nothing to
        end: it ended already, failed, or its end moved later)."""
        lease = await _status(services, lease_id)
        if lease.state == "ending":
            return "active" if lease.started_at is not None else "pending"
        if lease.state not in ("pending", "active"):
            return ""
        if not early and services.env.clock.now() < lease.end:
            return ""  # an update moved the end later: its new timer ends it
        await _step(services, lease_id, "end", {"early": early}, task_id)
        return lease.state

    async def policy(lease_id: str, task_id: str, was: str) -> dict[str, Any]:
        if was != "active":
            return {}
        lease = await _status(services, lease_id)
        for hold in lease.holds:  # no boot claims in it from now on
            await _host_ref(services, hold.host).ask(OpenHold(hold.hold_id, open=False))
            services.scheduler.invalidate(hold.host)
        return await _carry_out(services, lease, task_id)

    async def release(lease_id: str, was: str) -> None:
        if was:
            await _let_go(services, lease_id, keep=set())
            for host_id in services.host_ids():
                services.scheduler.invalidate(host_id)

    async def finish(lease_id: str, task_id: str, was: str, outcome: dict[str, Any]) -> None:
        if was:
            await _step(services, lease_id, "ended", {"outcome": outcome}, task_id)

    return (
        task(begin, name="begin", provides="was", retry=_FORWARD),
        task(policy, provides="outcome"),
        task(release, retry=_FORWARD),
        task(finish, name="finish", retry=_FORWARD),
    )


def _end_flow(services: LeaseServices) -> Flow:
    return Flow(LEASE_END, linear(*_end_steps(services)), inputs=("lease_id", "task_id", "early"))


def _delete_flow(services: LeaseServices) -> Flow:
    async def forget(lease_id: str, task_id: str) -> None:
        await _step(services, lease_id, "delete", None, task_id)
        await _step(services, lease_id, "deleted", None, task_id)

    return Flow(
        LEASE_DELETE,
        linear(*_end_steps(services), task(forget, retry=_FORWARD)),
        inputs=("lease_id", "task_id", "early"),
    )


async def _carry_out(services: LeaseServices, lease: LeaseStatus, task_id: str) -> dict[str, Any]:
    """The lease's end policy, on each instance built in it that is still there.

    ``notify`` and ``stop`` keep the instances where they are, as unreserved instances,
    unless a later lease on their host needs their room: those are moved off instead, so
    the later lease finds what it was promised (``moved_off`` in the outcome).
    """
    members: set[str] = set()
    for host_id in lease.hosts:
        ref = services.host(host_id)
        if ref is not None:
            status: HostStatus = await ref.ask(GetHost())
            members |= {c.instance_id for c in status.claims if c.reservation == lease.id}
    policy = lease.on_end
    outcome: dict[str, Any] = {"policy": policy.value, "done": [], "left": [], "failed": {}}
    displaced: set[str] = set()
    if policy in (LeasePolicy.NOTIFY, LeasePolicy.STOP):
        displaced = await _displaced(services, lease)
        outcome["moved_off"] = []
    if policy is LeasePolicy.NOTIFY:
        outcome["left"] = sorted(members - displaced)
    limit = anyio.Semaphore(POLICY_CONCURRENCY)

    async def one(instance_id: str) -> None:
        moving = instance_id in displaced
        async with limit:
            try:
                record = await _apply_policy(
                    services,
                    lease,
                    LeasePolicy.MIGRATE_OFF if moving else policy,
                    instance_id,
                    task_id,
                )
            except StatewardError as error:
                outcome["failed"][instance_id] = str(error)
                return
            if record is None:
                outcome["left"].append(instance_id)
                return
            ended = await _wait(services, record.id)
        if ended.status is TaskStatus.SUCCEEDED:
            outcome["moved_off" if moving else "done"].append(instance_id)
        else:
            outcome["failed"][instance_id] = f"{ended.error_type}: {ended.error_message}"

    todo = sorted(members if policy is not LeasePolicy.NOTIFY else displaced)
    with anyio.move_on_after(POLICY_TIMEOUT) as scope:
        async with anyio.create_task_group() as group:
            for instance_id in todo:
                group.start_soon(one, instance_id)
    if scope.cancelled_caught:
        outcome["timed_out"] = True
    for listed in ("done", "left", "moved_off"):
        if listed in outcome:
            outcome[listed] = sorted(set(outcome[listed]))
    return outcome


async def _displaced(services: LeaseServices, lease: LeaseStatus) -> set[str]:
    """The lease's instances a later lease on their host needs the room of."""
    found: set[str] = set()
    now = services.env.clock.now()
    for host_id in lease.hosts:
        ref = services.host(host_id)
        if ref is None:
            continue
        calendar: HostCalendar = await ref.ask(GetCalendar())
        others = [h.hold() for h in calendar.holds if h.lease_id != lease.id]
        if not others:
            continue
        ahead = Calendar(others).peak(now, math.inf)
        bound, unreserved = calendar.bound, calendar.unreserved
        budget = [
            bound.vcpus - unreserved.vcpus - ahead.vcpus,
            bound.ram_mb - unreserved.ram_mb - ahead.ram_mb,
            bound.disk_gb - unreserved.disk_gb - ahead.disk_gb,
        ]
        status: HostStatus = await ref.ask(GetHost())
        for claim in status.claims:
            if claim.reservation != lease.id:
                continue
            need = (claim.amount.vcpus, claim.amount.ram_mb, claim.amount.disk_gb)
            if all(n <= b for n, b in zip(need, budget, strict=True)):
                budget = [b - n for b, n in zip(budget, need, strict=True)]
            else:
                found.add(claim.instance_id)
    return found


async def _apply_policy(
    services: LeaseServices,
    lease: LeaseStatus,
    policy: LeasePolicy,
    instance_id: str,
    task_id: str,
) -> TaskRecord | None:
    """Stop, delete or move one instance off the lease: its task, or None if there is
    nothing to do (stopped already, gone, moved off)."""
    ref = services.instance(instance_id)
    key = f"{task_id}:{instance_id}"
    found = await services.engine.find(instance_id, key)
    if found is not None:
        return found  # resumed after a crash: the task it started
    for _ in range(2):  # a task in the way is waited for once
        status = await ref.ask(GetInstance())
        if status.reservation != lease.id or status.vm_state in ("deleted", "new"):
            return None
        if policy is LeasePolicy.STOP and status.vm_state != "active":
            return None
        try:
            if policy is LeasePolicy.STOP:
                return await ref.ask(Act(InstanceAction.STOP, idempotency_key=key))
            if policy is LeasePolicy.DELETE:
                return await ref.ask(Act(InstanceAction.DELETE, idempotency_key=key))
            live = status.vm_state == "active" and status.power.value == "running"
            kind = InstanceAction.LIVE_MIGRATE if live else InstanceAction.MIGRATE
            return await ref.ask(Move(kind, None, None, key, off_lease=True))
        except CommandRejected:
            if status.task_id is None:
                raise
            await _wait(services, status.task_id)
    raise CommandRejected(f"{instance_id} was busy with another task twice in a row")


def build_lease_flows(services: LeaseServices) -> dict[str, Flow]:
    """Every lease flow, by name."""
    flows = (
        _create_flow(services),
        _update_flow(services),
        _start_flow(services),
        _end_flow(services),
        _delete_flow(services),
    )
    return {flow.name: flow for flow in flows}

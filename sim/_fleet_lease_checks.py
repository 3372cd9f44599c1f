"""The leases' invariants: what hosts hold over time never exceeds them (safety), boots
into a lease with room find it, each notification once and never early, and once the
fleet settled every lease whose window passed ended, with its policy carried out
(liveness)."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

from stateward.actors import Calendar, Capacity, Fleet, LeasePolicy, LeaseStatus
from stateward.runtime import StatewardError

from ._invariants import Invariant, Problem

if TYPE_CHECKING:
    from ._fleet import FleetScenario

__all__ = ("LEASE_INVARIANTS",)

#: Events a lease makes at most once.
_ONCE = ("create", "created", "failed", "start", "started", "end", "ended", "delete", "deleted")
#: Seconds a lease may take past its end to have ended, once the fleet settled (its end's
#: policy moves instances, a handover waits for the lease before it).
_END_SLACK = 3600.0


async def _leases(scenario: FleetScenario, fleet: Fleet) -> list[LeaseStatus]:
    found = []
    for lease_id in scenario.leases:
        try:
            found.append(await fleet.leases.get(lease_id))
        except StatewardError:
            continue  # never recorded (cut before its request), or unreachable now
    return found


def _within(used: Capacity, room: Capacity) -> bool:
    return used.vcpus <= room.vcpus and used.ram_mb <= room.ram_mb and used.disk_gb <= room.disk_gb


def _excused(leases: list[LeaseStatus]) -> set[str]:
    """Instances an ended lease could not move off (its outcome says so)."""
    stuck: set[str] = set()
    for lease in leases:
        if lease.outcome is not None:
            stuck |= set(lease.outcome.get("failed", {}))
    return stuck


async def _reserved_and_claimed_fit(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    """At every instant from now on, a host's holds plus the claims no hold covers fit
    in it; and a lease's claims on a host fit in what it holds there."""
    problems = []
    now = fleet.env.clock.now()
    stuck = _excused(await _leases(scenario, fleet))
    for host in await fleet.hosts.list():
        calendar = await fleet.leases.calendar(host.id)
        leased = {h.lease_id for h in calendar.holds}
        unreserved = Capacity()
        by_lease: dict[str, Capacity] = {}
        for claim in host.claims:
            if claim.reservation in leased:
                by_lease[claim.reservation] = by_lease.get(claim.reservation, Capacity()) + (
                    claim.amount
                )
            elif claim.instance_id not in stuck:
                unreserved = unreserved + claim.amount
        ahead = Calendar(h.hold() for h in calendar.holds).peak(now, math.inf)
        bound = calendar.bound
        total = unreserved + ahead
        if (
            total.vcpus > bound.vcpus
            or total.ram_mb > bound.ram_mb
            or total.disk_gb > bound.disk_gb
        ):
            problems.append(
                Problem(
                    f"{host.id} holds {ahead} for leases beside {unreserved} unreserved, "
                    f"more than {bound}",
                    (host.id,),
                )
            )
        for lease_id, used in sorted(by_lease.items()):
            held = Capacity()
            for hold in calendar.holds:
                if hold.lease_id == lease_id:
                    held = held + hold.amount
            if not _within(used, held):
                problems.append(
                    Problem(f"lease {lease_id} uses {used} on {host.id}, holds {held}", (host.id,))
                )
    return problems


async def _boots_into_a_lease_with_room(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    return [Problem(f"no host for {boot}", ()) for boot in scenario.lease_boots_refused]


async def _notifications_once_and_never_early(
    scenario: FleetScenario, fleet: Fleet
) -> list[Problem]:
    problems = []
    for lease in await _leases(scenario, fleet):
        history = await fleet.leases.history(lease.id)
        counts = Counter(r.event for r in history)
        twice = sorted(e for e in _ONCE if counts[e] > 1)
        if twice:
            problems.append(Problem(f"lease {lease.id} made {twice} more than once", (lease.id,)))
        windows = counts["updated"] + 1
        for heads_up in ("starting_soon", "ending_soon"):
            if counts[heads_up] > windows:
                problems.append(
                    Problem(
                        f"lease {lease.id} gave {counts[heads_up]} {heads_up} for "
                        f"{windows} windows",
                        (lease.id,),
                    )
                )
        early_end = False
        for record in history:
            payload = record.payload if isinstance(record.payload, dict) else {}
            summary = payload.get("lease") or {}
            if record.event == "end":
                early_end = bool(payload.get("early"))
            if record.event == "started" and record.at < summary.get("start", 0) - 1e-6:
                problems.append(Problem(f"lease {lease.id} started early", (lease.id,)))
            if (
                record.event == "ended"
                and not early_end
                and record.at < summary.get("end", 0) - 1e-6
            ):
                problems.append(Problem(f"lease {lease.id} ended early", (lease.id,)))
    return problems


async def _leases_ended_with_their_policy(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    problems = []
    now = fleet.env.clock.now()
    members: dict[str, list[str]] = {}
    for host in await fleet.hosts.list():
        for claim in host.claims:
            if claim.reservation is not None:
                members.setdefault(claim.reservation, []).append(claim.instance_id)
    for lease in await _leases(scenario, fleet):
        if lease.end < now - _END_SLACK and lease.state not in ("ended", "failed", "deleted"):
            tasks = [
                f"{t.kind} {t.status.value}"
                + (f" ({t.error_type}: {t.error_message})" if t.error_type else "")
                for t in await fleet.tasks.list(lease.id)
            ]
            timers = [f"{t.name}@{t.at:g}" for t in fleet.system.timers.pending(lease.id)]
            problems.append(
                Problem(
                    f"lease {lease.id} is {lease.state} past its end (tasks: "
                    f"{'; '.join(tasks) or 'none'}; timers: {', '.join(timers) or 'none'})",
                    (lease.id,),
                )
            )
        if lease.state != "ended" or lease.started_at is None or lease.outcome is None:
            continue
        if lease.on_end in (LeasePolicy.DELETE, LeasePolicy.MIGRATE_OFF):
            stayed = sorted(set(members.get(lease.id, ())) - set(lease.outcome.get("failed", {})))
            if stayed:
                problems.append(
                    Problem(
                        f"lease {lease.id} ({lease.on_end.value}) left {stayed} in its capacity",
                        (lease.id,),
                    )
                )
    return problems


#: The leases' invariants, in the order they are checked.
LEASE_INVARIANTS = (
    Invariant("reserved plus claimed fits every host", _reserved_and_claimed_fit),
    Invariant("a boot into a lease with room finds it", _boots_into_a_lease_with_room),
    Invariant("each lease notification once, never early", _notifications_once_and_never_early),
    Invariant(
        "every lease past its end ended, its policy carried out",
        _leases_ended_with_their_policy,
        liveness=True,
    ),
)

"""The fleet's invariants: ownership, claims and capacity (safety), and a settled fleet with
nothing lost (liveness). Moves bring their own: two claims only while a move is undecided,
one current guest per instance under its epoch, a failed move that kept its source, and
every migration ended once the fleet settled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateward.actors import Capacity, Fleet, GuestRole, task_running, task_state, vm_state
from stateward.flows import TASKS, TaskStatus
from stateward.runtime import StatewardError

from ._fleet_lease_checks import LEASE_INVARIANTS
from ._invariants import Invariant, Problem

if TYPE_CHECKING:
    from ._fleet import FleetScenario

__all__ = ("FLEET_INVARIANTS",)

#: States an instance holds no room in.
_UNPLACED = ("deleted", "new", "error")
#: The task states of moves (a resize's verdict included).
_MOVING = frozenset(
    {
        "migrating_cold",
        "resize_migrating",
        "migrating",
        "evacuating",
        "resize_confirming",
        "resize_reverting",
    }
)


def _undecided(state: str) -> bool:
    """Whether an instance in ``state`` may hold two claims: a move of it is running, or
    a resize of it waits for its verdict (the source is kept until then)."""
    return vm_state(state) == "resized" or task_state(state) in _MOVING


async def _claims(fleet: Fleet) -> tuple[dict[str, list[str]], list[Problem], list[Problem]]:
    """Who claims room where, and the problems of over-commit and of claim sums."""
    owners: dict[str, list[str]] = {}
    over: list[Problem] = []
    sums: list[Problem] = []
    for status in await fleet.hosts.list():
        limit = (
            status.capacity.vcpus * 16.0,
            status.capacity.ram_mb * 1.5,
            status.capacity.disk_gb * 1.0,
        )
        used = status.usage
        if used.vcpus > limit[0] or used.ram_mb > limit[1] or used.disk_gb > limit[2]:
            over.append(Problem(f"{status.id} uses {used}", (status.id,)))
        total = Capacity()
        for claim in status.claims:
            total = total + claim.amount
            owners.setdefault(claim.instance_id, []).append(status.id)
        if total != used:
            sums.append(Problem(f"{status.id}", (status.id,)))
    return owners, over, sums


async def _no_over_commit(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    return (await _claims(fleet))[1]


async def _usage_is_the_sum(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    return (await _claims(fleet))[2]


async def _one_owner(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    """One claim per instance; two (source and destination) only while a move of it is
    undecided: no claim a move held outlives it."""
    owners = (await _claims(fleet))[0]
    states = {s.resource_id: s.state for s in await fleet.instances.summaries()}
    # A parked move keeps its claims until reconciliation (or an operator) settles it.
    parked = {m.instance_id for m in await fleet.migrations.list() if m.state == "parked"}
    return [
        Problem(f"{instance} ({states.get(instance)}) is claimed on {hosts}", (instance, *hosts))
        for instance, hosts in sorted(owners.items())
        if len(hosts) > 2
        or (len(hosts) == 2 and not _undecided(states.get(instance, "")) and instance not in parked)
    ]


async def _one_current_guest(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    """At most one current guest per instance on the hypervisors, and for a settled
    instance it is where the instance's owner is, under its epoch."""
    view = await scenario.driver.describe()
    current: dict[str, list[tuple[str, int]]] = {}
    for guest in view.guests:
        if guest.role is GuestRole.CURRENT:
            current.setdefault(guest.instance_id, []).append((guest.host_id, guest.epoch))
    problems = [
        Problem(f"{instance} runs as {copies}", (instance,))
        for instance, copies in sorted(current.items())
        if len(copies) > 1
    ]
    for summary in sorted(await fleet.instances.summaries(), key=lambda s: s.resource_id):
        copies = current.get(summary.resource_id)
        if copies is None or len(copies) > 1 or summary.state in _UNPLACED:
            continue
        if task_running(summary.state):
            continue
        status = await fleet.instances.get(summary.resource_id)
        if copies[0] != (status.host_id, status.epoch):
            problems.append(
                Problem(
                    f"{status.id} is owned by {status.host_id} at epoch {status.epoch}, its "
                    f"guest runs on {copies[0][0]} at epoch {copies[0][1]}",
                    (status.id,),
                )
            )
    return problems


async def _failed_moves_kept_the_source(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    """A move that failed or was cancelled left the instance where it was: on its source,
    its guest there (unless that host was lost since)."""
    problems = []
    for migration in await fleet.migrations.list():
        if migration.state not in ("failed", "cancelled") or migration.source is None:
            continue
        if migration.source in scenario.lost_hosts:
            continue
        status = await fleet.instances.get(migration.instance_id)
        if status.migration_id != migration.id or task_running(status.state):
            continue  # a later move, or one running now, decides where it is
        if status.vm_state in _UNPLACED:
            continue
        guest = scenario.driver.where(status.id)
        if status.host_id != migration.source or guest is None or guest.host_id != migration.source:
            problems.append(
                Problem(
                    f"{migration.id} ({migration.kind.value}) {migration.state}, but "
                    f"{status.id} is on {status.host_id} and its guest on "
                    f"{guest.host_id if guest else None}, not on its source {migration.source}",
                    (status.id, migration.id),
                )
            )
    return problems


async def _every_migration_ended(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    return [
        Problem(f"{m.id} ({m.kind.value} of {m.instance_id}) is {m.state}", (m.instance_id, m.id))
        for m in await fleet.migrations.list()
        if not m.done and m.state not in ("parked", "verifying")
    ]


async def _claims_belong_to_live_instances(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    states = {s.resource_id: s.state for s in await fleet.instances.summaries()}
    problems = []
    for status in await fleet.hosts.list():
        for claim in status.claims:
            state = states.get(claim.instance_id)
            if state is None or state in ("deleted", "new"):
                problems.append(
                    Problem(
                        f"{status.id} holds {claim.id} for {claim.instance_id} "
                        f"({state or 'unknown'})",
                        (claim.instance_id, status.id),
                    )
                )
    return problems


async def _placed_instances_hold_a_claim(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    owners = (await _claims(fleet))[0]
    problems = []
    for summary in sorted(await fleet.instances.summaries(), key=lambda s: s.resource_id):
        if summary.state in _UNPLACED or task_running(summary.state):
            continue
        placed = await fleet.instances.get(summary.resource_id)
        if placed.host_id is not None and placed.host_id not in owners.get(summary.resource_id, []):
            problems.append(
                Problem(
                    f"{summary.resource_id} runs on {placed.host_id} without a claim there",
                    (summary.resource_id, placed.host_id),
                )
            )
    return problems


async def _no_orphan_or_ghost(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    again = await fleet.reconcile()
    return [
        *(Problem(f"{o} exists on the driver only", (o,)) for o in again.orphans),
        *(Problem(f"{g} is missing on the driver", (g,)) for g in again.ghosts),
        *(Problem(f"port {p} has no live owner", (p,)) for p in again.orphan_ports),
    ]


async def _every_task_terminal(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    problems = []
    for status in (TaskStatus.RUNNING, TaskStatus.PENDING):
        for document in await fleet.store.find_documents(TASKS, status=status.value, limit=10):
            problems.append(
                Problem(f"{document.key} still {status.value}", (document.resource_id or "",))
            )
    return problems


async def _every_instance_settled(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    return [
        Problem(f"{s.resource_id} is {s.state}", (s.resource_id,))
        for s in await fleet.instances.summaries()
        if task_running(s.state)
    ]


async def _nothing_acknowledged_is_lost(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    problems = []
    for task_id, seen in sorted(scenario.acknowledged.items()):
        try:
            stored = await fleet.engine.get(task_id)
        except StatewardError:
            problems.append(Problem(f"task {task_id} is gone", (seen.resource_id,)))
            continue
        if stored.status is not seen.status:
            problems.append(
                Problem(
                    f"task {task_id} was {seen.status.value}, is {stored.status.value}",
                    (seen.resource_id,),
                )
            )
    return problems


async def _tasks_agree_with_the_journal(scenario: FleetScenario, fleet: Fleet) -> list[Problem]:
    problems = []
    for task_id in sorted(scenario.acknowledged):
        try:
            stored = await fleet.engine.get(task_id)
        except StatewardError:
            continue  # reported as lost
        if stored.resource_id not in scenario.known:
            continue  # a host's drain: the instances' own tasks are checked
        if stored.status is TaskStatus.SUCCEEDED and stored.resource_id in fleet.system:
            history = await fleet.store.history(stored.resource_id, limit=100_000)
            if not any(r.task_id == task_id for r in history):
                problems.append(
                    Problem(
                        f"succeeded task {task_id} has no transition of {stored.resource_id}",
                        (stored.resource_id,),
                    )
                )
    return problems


#: The fleet scenario's invariants, in the order they are checked.
FLEET_INVARIANTS = (
    Invariant("no over-commit", _no_over_commit),
    Invariant("claims belong to live instances", _claims_belong_to_live_instances),
    Invariant("usage is the sum of claims", _usage_is_the_sum),
    Invariant("one owner", _one_owner),
    Invariant("placed instances hold a claim", _placed_instances_hold_a_claim),
    Invariant("one current guest per instance, under its epoch", _one_current_guest),
    Invariant("a failed move never left its source", _failed_moves_kept_the_source),
    *(i for i in LEASE_INVARIANTS if not i.liveness),
    Invariant("no orphan", _no_orphan_or_ghost, liveness=True),
    Invariant("every task terminal", _every_task_terminal, liveness=True),
    Invariant("every instance settled", _every_instance_settled, liveness=True),
    Invariant("every migration ended (or parked)", _every_migration_ended, liveness=True),
    Invariant("nothing acknowledged is lost", _nothing_acknowledged_is_lost, liveness=True),
    Invariant("task records agree with the journal", _tasks_agree_with_the_journal, liveness=True),
    *(i for i in LEASE_INVARIANTS if i.liveness),
)

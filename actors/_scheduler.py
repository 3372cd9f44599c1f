"""The scheduler: Nova's filter scheduler, without Nova's races.

A placement reads every host's :class:`~stateward.actors.HostStatus`, runs the filters in
order (counting how many hosts each one eliminated), weighs the survivors and then *claims*
capacity on the best one. The read is only a hint: the claim is a command to the host's
actor, which checks the room again and serialises it against every other claim, so two
schedulers racing for the last slot cannot both win. The loser gets
:class:`~stateward.actors.ClaimRefused` and moves on to the next candidate, at most
``alternates`` more times, as Nova reschedules to its alternates.

Server-group policies are checked against the membership this scheduler keeps. Placements
into the same group are serialised (one lock per group name), so two concurrent members of
an anti-affinity group cannot both pass the filter on the same host, which is the race Nova
closes only with a late check on the compute node.

Everything that decides an order is sorted: hosts by id, candidates by weight and then id.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeAlias

import msgspec

from stateward.runtime import ActorError, ActorRef, CommandRejected, InvalidArgument

from ._checks import check_int
from ._host import Capacity, Claim, ClaimCapacity, ClaimRefused, GetHost, HostStatus, ReleaseClaim

__all__ = (
    "Flavor",
    "GroupPolicy",
    "ServerGroup",
    "PlacementRequest",
    "Placement",
    "GroupMembership",
    "FilterContext",
    "Filter",
    "reservation_filter",
    "capacity_filter",
    "enabled_and_up_filter",
    "zone_filter",
    "server_group_filter",
    "DEFAULT_FILTERS",
    "Weigher",
    "NoValidHost",
    "Scheduler",
)


def _require_name(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(field, expected="a non-empty str", got=value)


class Flavor(msgspec.Struct, frozen=True):
    """The size of an instance.

    Attributes:
        name: the flavor's name, e.g. ``"m1.small"``.
        vcpus, ram_mb, disk_gb: positive amounts (ints up to 2**63 - 1).

    Raises:
        InvalidArgument: an empty name or a size that is not a positive int.
    """

    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int

    def __post_init__(self) -> None:
        _require_name("name", self.name)
        for field in ("vcpus", "ram_mb", "disk_gb"):
            # Not a bool (True vcpus is a bug, not a size); small enough to be journaled.
            check_int(field, getattr(self, field), low=1)

    @property
    def amount(self) -> Capacity:
        """What one instance of this flavor claims on a host."""
        return Capacity(self.vcpus, self.ram_mb, self.disk_gb)


class GroupPolicy(enum.Enum):
    """Where the members of a server group may go relative to one another."""

    #: All members on one host.
    AFFINITY = "affinity"
    #: No two members on the same host.
    ANTI_AFFINITY = "anti-affinity"


class ServerGroup(msgspec.Struct, frozen=True):
    """A named group of instances placed under one policy."""

    name: str
    policy: GroupPolicy

    def __post_init__(self) -> None:
        _require_name("name", self.name)
        if not isinstance(self.policy, GroupPolicy):
            raise InvalidArgument("policy", expected="a GroupPolicy", got=self.policy)


class PlacementRequest(msgspec.Struct, frozen=True):
    """Place one instance for one task.

    Attributes:
        instance_id: the instance to place.
        task_id: the task that owns the claim (a boot, a move).
        flavor: how much it needs.
        zone: the availability zone it must land in; any zone when None.
        group: the server group it belongs to, if any.
        exclude: hosts it must not land on (a move's source).
        host: the one host it must land on, when the caller chose (a move to a named host).
        reservation: the lease whose capacity it uses; None for unreserved capacity.
    """

    instance_id: str
    task_id: str
    flavor: Flavor
    zone: str | None = None
    group: ServerGroup | None = None
    exclude: tuple[str, ...] = ()
    host: str | None = None
    reservation: str | None = None

    def __post_init__(self) -> None:
        _require_name("instance_id", self.instance_id)
        _require_name("task_id", self.task_id)
        if not isinstance(self.flavor, Flavor):
            raise InvalidArgument("flavor", expected="a Flavor", got=self.flavor)
        if self.zone is not None:
            _require_name("zone", self.zone)
        if self.group is not None and not isinstance(self.group, ServerGroup):
            raise InvalidArgument("group", expected="a ServerGroup or None", got=self.group)

    @property
    def claim_id(self) -> str:
        """The id of the claim a placement makes; the same on every retry of the task."""
        return f"{self.task_id}:{self.instance_id}"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an instance was placed and the claim that holds its room there."""

    host_id: str
    claim: Claim


#: Server group name -> {instance id: host id} of the members placed so far.
GroupMembership: TypeAlias = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class FilterContext:
    """What filters may know beyond the request and the host.

    Attributes:
        membership: the server groups' members and their hosts, as the scheduler knows them.
    """

    membership: GroupMembership


@dataclass(frozen=True, slots=True)
class Filter:
    """A named host filter: ``check(request, host, context)`` is True to keep the host.

    The name is what :class:`NoValidHost` reports, so keep it stable. ``applies(request)``,
    when given, says whether the filter can remove any host for that request at all: when it
    is False the hosts are not checked one by one (a zone filter for a request without a
    zone keeps every host).
    """

    name: str
    check: Callable[[PlacementRequest, HostStatus, FilterContext], bool]
    applies: Callable[[PlacementRequest], bool] | None = None

    def __post_init__(self) -> None:
        _require_name("name", self.name)
        if not callable(self.check):
            raise InvalidArgument("check", expected="a callable", got=self.check)
        if self.applies is not None and not callable(self.applies):
            raise InvalidArgument("applies", expected="a callable or None", got=self.applies)

    def __call__(self, request: PlacementRequest, host: HostStatus, context: FilterContext) -> bool:
        return self.check(request, host, context)


def reservation_filter(request: PlacementRequest, host: HostStatus, context: FilterContext) -> bool:
    """Keep hosts where the request's lease is open (every host for an unreserved one)."""
    return request.reservation is None or request.reservation in host.leases


def capacity_filter(request: PlacementRequest, host: HostStatus, context: FilterContext) -> bool:
    """Keep hosts with room for the flavor: in the request's lease, or beside every lease's
    holds (``free`` already has the allocation ratios)."""
    free = host.free if request.reservation is None else host.leases.get(request.reservation)
    if free is None:
        return False
    vcpus, ram_mb, disk_gb = free
    flavor = request.flavor
    return flavor.vcpus <= vcpus and flavor.ram_mb <= ram_mb and flavor.disk_gb <= disk_gb


def enabled_and_up_filter(
    request: PlacementRequest, host: HostStatus, context: FilterContext
) -> bool:
    """Keep hosts that are enabled and heartbeating."""
    return host.state == "enabled" and host.up


def zone_filter(request: PlacementRequest, host: HostStatus, context: FilterContext) -> bool:
    """Keep hosts in the requested availability zone (all hosts when none is requested)."""
    return request.zone is None or host.zone == request.zone


def server_group_filter(
    request: PlacementRequest, host: HostStatus, context: FilterContext
) -> bool:
    """Keep hosts that respect the request's server-group policy.

    Affinity: once any member is placed, only the members' host qualifies. Anti-affinity:
    no host that already holds a member. The request's own instance does not count, so a
    reschedule of a member is judged against the others only.
    """
    group = request.group
    if group is None:
        return True
    members = context.membership.get(group.name, {})
    hosts = [h for instance, h in members.items() if instance != request.instance_id]
    if group.policy is GroupPolicy.AFFINITY:
        return all(h == host.id for h in hosts)
    # The host's own ledger too: a member being moved holds claims on both its hosts, so
    # neither takes another member until its move is decided.
    held = any(c.group == group.name and c.instance_id != request.instance_id for c in host.claims)
    return host.id not in hosts and not held


#: The filters a :class:`Scheduler` runs by default, in this order.
DEFAULT_FILTERS: tuple[Filter, ...] = (
    Filter("reservation", reservation_filter, lambda request: request.reservation is not None),
    Filter("capacity", capacity_filter),
    Filter("enabled_and_up", enabled_and_up_filter),
    Filter("zone", zone_filter, lambda request: request.zone is not None),
    Filter("server_group", server_group_filter, lambda request: request.group is not None),
)


class Weigher(enum.Enum):
    """How the surviving hosts are ordered; ties always go to the smaller host id."""

    #: Most free RAM first, then most free vcpus: spread the load.
    SPREAD = "spread"
    #: Least free RAM first, then least free vcpus: fill hosts up before using new ones.
    PACK = "pack"

    def key(self, host_id: str, host: HostStatus) -> tuple[float, float, str]:
        """The sort key of a host; smaller sorts first."""
        vcpus, ram_mb, _ = host.free
        if self is Weigher.SPREAD:
            return (-ram_mb, -vcpus, host_id)
        return (ram_mb, vcpus, host_id)


class NoValidHost(CommandRejected):
    """No host could take the instance.

    Attributes:
        instance_id: the instance that was not placed.
        hosts: how many hosts were considered.
        eliminated: ``(filter name, hosts it eliminated)`` for every filter, in the order
            they ran; an ``"unreachable"`` entry comes first when some hosts did not answer.
        tried: the hosts whose claim was refused (lost races), in the order tried.
    """

    def __init__(
        self,
        instance_id: str,
        *,
        hosts: int,
        eliminated: tuple[tuple[str, int], ...],
        tried: tuple[str, ...] = (),
    ) -> None:
        self.instance_id = instance_id
        self.hosts = hosts
        self.eliminated = eliminated
        self.tried = tried
        reasons = ", ".join(f"{name} eliminated {count}" for name, count in eliminated if count)
        if tried:
            refused = "claims refused on " + ", ".join(tried)
            reasons = f"{reasons}; {refused}" if reasons else refused
        if not reasons:
            reasons = "no hosts are known; give the scheduler some hosts"
        super().__init__(f"no valid host for {instance_id} among {hosts} hosts: {reasons}")


class Scheduler:
    """Places instances on hosts: filter, weigh, claim, and try alternates on a lost race.

    Args:
        hosts: refs to :class:`~stateward.actors.HostActor` by host id, or a callable
            returning such a mapping (called on every placement, so hosts may come and go).
        weigher: how to order the hosts that pass the filters.
        alternates: how many more hosts to try after the first claim is refused.
        refresh: seconds a view of the hosts is reused by later placements (0: ask every
            host for every placement). The hosts' ledgers are the authority either way.
        filters: the filters to run, in order; names must be unique.

    Raises:
        InvalidArgument: a bad option.
    """

    def __init__(
        self,
        hosts: Mapping[str, ActorRef] | Callable[[], Mapping[str, ActorRef]],
        *,
        weigher: Weigher = Weigher.SPREAD,
        alternates: int = 3,
        refresh: float = 0.0,
        filters: Sequence[Filter] = DEFAULT_FILTERS,
    ) -> None:
        if not isinstance(hosts, Mapping) and not callable(hosts):
            raise InvalidArgument(
                "hosts", expected="a mapping of host id to ActorRef, or a callable", got=hosts
            )
        if not isinstance(weigher, Weigher):
            raise InvalidArgument("weigher", expected="a Weigher", got=weigher)
        if isinstance(alternates, bool) or not isinstance(alternates, int) or alternates < 0:
            raise InvalidArgument("alternates", expected="an int >= 0", got=alternates)
        filters = tuple(filters)
        if not all(isinstance(f, Filter) for f in filters):
            raise InvalidArgument("filters", expected="a sequence of Filter", got=filters)
        names = [f.name for f in filters]
        if len(set(names)) != len(names):
            raise InvalidArgument("filters", expected="unique filter names", got=names)
        self._hosts = hosts
        self._weigher = weigher
        self._alternates = alternates
        if isinstance(refresh, bool) or not isinstance(refresh, int | float) or refresh < 0:
            raise InvalidArgument("refresh", expected="seconds >= 0", got=refresh)
        self._refresh = float(refresh)
        # The hosts as last asked, with the claims placed since counted in; see _statuses.
        self._view: dict[str, HostStatus] = {}
        # Claim id -> (host id, claim): every claim of the view, and those placed since, so
        # that a retried placement finds its claim without a look at every host.
        self._claims: dict[str, tuple[str, Claim]] = {}
        self._fetched = -math.inf
        self._refreshing: asyncio.Task[None] | None = None
        self._filters = filters
        # Group name -> {instance id: host id}; dicts keep insertion order, so iteration
        # over them is the same in every process.
        self._members: dict[str, dict[str, str]] = {}
        self._groups: dict[str, ServerGroup] = {}
        # Group name -> (lock, placements using it); dropped when unused so the table does
        # not grow with every group ever seen.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @property
    def membership(self) -> GroupMembership:
        """A snapshot of the server groups' members and their hosts."""
        return {name: dict(members) for name, members in self._members.items()}

    def forget(self, instance_id: str) -> bool:
        """Drop an instance from its server groups (it was deleted or its move reverted).

        Returns:
            True if the instance was a member of some group.
        """
        found = False
        for name, members in list(self._members.items()):
            if members.pop(instance_id, None) is not None:
                found = True
                if not members:
                    del self._members[name]
                    self._groups.pop(name, None)
        return found

    async def place(self, request: PlacementRequest) -> Placement:
        """Choose a host for ``request`` and claim the flavor's amount there.

        Idempotent on the request's claim id: if some host already holds that claim (a
        retry of the same task), that host is the answer and nothing more is claimed.

        Raises:
            NoValidHost: every host was filtered out, or every claim tried was refused.
            InvalidArgument: not a PlacementRequest, or a group name reused with another
                policy while it has members.
            CommandRejected: a host refused the claim for another reason (for example
                :class:`~stateward.runtime.InvalidCommand` for a claim id reused with
                another amount).
        """
        if not isinstance(request, PlacementRequest):
            raise InvalidArgument("request", expected="a PlacementRequest", got=request)
        group = request.group
        if group is None:
            return await self._place(request)
        async with self._group_lock(group.name):
            known = self._groups.get(group.name)
            if known is not None and known.policy is not group.policy:
                raise InvalidArgument(
                    "request.group",
                    expected=f"policy {known.policy.value} for server group {group.name}",
                    got=group.policy.value,
                )
            return await self._place(request)

    async def release(self, host_id: str, claim_id: str) -> bool:
        """Give a claim's capacity back to its host.

        Returns:
            True if the host held the claim; False if it did not (releasing is idempotent).

        Raises:
            InvalidArgument: ``host_id`` is not one of the scheduler's hosts.
        """
        refs = self._current_hosts()
        ref = refs.get(host_id)
        if ref is None:
            raise InvalidArgument("host_id", expected=f"one of {sorted(refs)}", got=host_id)
        released = await ref.ask(ReleaseClaim(claim_id))
        if released and host_id in self._view:
            await self._refresh_host(host_id)
        return released

    async def refresh(self) -> None:
        """Ask every host for its state now (and rebuild group membership from the ledgers)."""
        await self._refresh_view(sorted(self._current_hosts()))

    def invalidate(self, host_id: str | None = None) -> None:
        """Forget the view of one host (all when None): its state changed elsewhere."""
        if host_id is None:
            self._fetched = -math.inf
        else:
            self._index(host_id, None)

    # -- internals -----------------------------------------------------------------------

    def _current_hosts(self) -> Mapping[str, ActorRef]:
        hosts = self._hosts
        return hosts if isinstance(hosts, Mapping) else hosts()

    @asynccontextmanager
    async def _group_lock(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)

    async def _statuses(self, host_ids: list[str]) -> tuple[list[tuple[str, HostStatus]], int]:
        """The hosts' statuses from the view, refreshed when stale or when hosts changed.

        Asking every host for every placement costs one ask per host per boot; the view is
        read by all placements and refreshed at most every ``refresh`` seconds (the hosts'
        ledgers stay the authority: a claim the view wrongly allows is refused and the next
        candidate tried).
        """
        loop = asyncio.get_running_loop()
        stale = self._refresh == 0 or loop.time() - self._fetched > self._refresh
        if stale or self._view.keys() != set(host_ids):
            if self._refreshing is None:
                self._refreshing = loop.create_task(self._refresh_view(host_ids))
            refreshing = self._refreshing
            try:
                await asyncio.shield(refreshing)
            finally:
                if refreshing.done() and self._refreshing is refreshing:
                    self._refreshing = None
        statuses = [(h, self._view[h]) for h in host_ids if h in self._view]
        return statuses, len(host_ids) - len(statuses)

    async def _refresh_view(self, host_ids: list[str]) -> None:
        refs = self._current_hosts()
        answers = await asyncio.gather(
            *(refs[host_id].ask(GetHost()) for host_id in host_ids), return_exceptions=True
        )
        view: dict[str, HostStatus] = {}
        for host_id, answer in zip(host_ids, answers, strict=True):
            if isinstance(answer, HostStatus):
                view[host_id] = answer
            elif isinstance(answer, ActorError):
                continue  # stopped, crashed or too slow: it cannot take a claim now either
            elif isinstance(answer, BaseException):
                raise answer  # cancellation and bugs are not "host unavailable"
            else:
                raise InvalidArgument(
                    f"hosts[{host_id!r}]",
                    expected="a ref to a HostActor (answering GetHost with a HostStatus)",
                    got=answer,
                )
        self._view = view
        self._claims = {c.id: (h, c) for h, status in view.items() for c in status.claims}
        self._fetched = asyncio.get_running_loop().time()
        # Membership is what the ledgers say: a claim released is a member gone.
        members: dict[str, dict[str, str]] = {}
        for host_id in sorted(view):
            for held in view[host_id].claims:
                if held.group is not None and held.group_policy is not None:
                    members.setdefault(held.group, {})[held.instance_id] = host_id
                    self._groups.setdefault(
                        held.group, ServerGroup(held.group, GroupPolicy(held.group_policy))
                    )
        self._members = members

    def _reserve(
        self, host_id: str, amount: Capacity, sign: int, reservation: str | None = None
    ) -> None:
        """Count a claim in flight (or take it back) in the view, so concurrent placements
        see the room it takes and spread instead of all choosing the same host."""
        status = self._view.get(host_id)
        if status is None:
            return

        def less(free: tuple[float, float, float]) -> tuple[float, float, float]:
            vcpus, ram, disk = free
            return (
                vcpus - sign * amount.vcpus,
                ram - sign * amount.ram_mb,
                disk - sign * amount.disk_gb,
            )

        leases = status.leases
        if reservation is not None and reservation in leases:
            leases = {**leases, reservation: less(leases[reservation])}
        self._view[host_id] = replace(status, free=less(status.free), leases=leases)

    def _index(self, host_id: str, status: HostStatus | None) -> None:
        """Put ``status`` (None: nothing) in the view of ``host_id``, and its claims in the
        index by claim id in place of the host's earlier ones."""
        old = self._view.pop(host_id, None)
        if old is not None:
            for claim in old.claims:
                if self._claims.get(claim.id, ("",))[0] == host_id:
                    del self._claims[claim.id]
        if status is not None:
            self._view[host_id] = status
            for claim in status.claims:
                self._claims[claim.id] = (host_id, claim)

    async def _refresh_host(self, host_id: str) -> None:
        ref = self._current_hosts().get(host_id)
        if ref is None:
            self._index(host_id, None)
            return
        try:
            self._index(host_id, await ref.ask(GetHost()))
        except ActorError:
            self._index(host_id, None)

    async def _place(self, request: PlacementRequest) -> Placement:
        refs = self._current_hosts()
        # Sorted so the filters and the ties do not depend on the mapping's order.
        host_ids = sorted(refs)
        statuses, unreachable = await self._statuses(host_ids)

        claim_id = request.claim_id
        found = self._claims.get(claim_id)
        if found is not None and found[0] in self._view:
            self._record(request, found[0])
            return Placement(*found)

        context = FilterContext(self.membership)
        eliminated: list[tuple[str, int]] = [("unreachable", unreachable)] if unreachable else []
        survivors = statuses
        if request.exclude or request.host is not None:
            survivors = [
                (h, s)
                for h, s in statuses
                if h not in request.exclude and (request.host is None or h == request.host)
            ]
        if len(survivors) < len(statuses):
            eliminated.append(("requested", len(statuses) - len(survivors)))
        for host_filter in self._filters:
            if host_filter.applies is not None and not host_filter.applies(request):
                eliminated.append((host_filter.name, 0))
                continue
            check = host_filter.check
            kept = [(h, s) for h, s in survivors if check(request, s, context)]
            eliminated.append((host_filter.name, len(survivors) - len(kept)))
            survivors = kept
        # Only the best few are tried: pick them rather than sort every host.
        key = self._weigher.key
        ranked = heapq.nsmallest(1 + self._alternates, survivors, key=lambda pair: key(*pair))

        group = request.group
        amount = request.flavor.amount
        command = ClaimCapacity(
            claim_id=claim_id,
            task_id=request.task_id,
            instance_id=request.instance_id,
            amount=amount,
            group=group.name if group is not None else None,
            group_policy=group.policy.value if group is not None else None,
            reservation=request.reservation,
        )
        tried: list[str] = []
        for host_id, _ in ranked[: 1 + self._alternates]:
            tried.append(host_id)
            reservation = request.reservation
            self._reserve(host_id, amount, +1, reservation)
            try:
                claim = await refs[host_id].ask(command)
            except ClaimRefused:
                # Lost a race for the room, or the view was stale: learn the host's real
                # state and try the next best.
                self._reserve(host_id, amount, -1, reservation)
                await self._refresh_host(host_id)
                continue
            except BaseException:
                self._reserve(host_id, amount, -1, reservation)
                raise
            self._record(request, host_id)
            self._claims[claim_id] = (host_id, claim)
            return Placement(host_id, claim)
        raise NoValidHost(
            request.instance_id,
            hosts=len(host_ids),
            eliminated=tuple(eliminated),
            tried=tuple(tried),
        )

    def remember(self, group: ServerGroup, instance_id: str, host_id: str) -> None:
        """Record a member placed earlier (membership is rebuilt this way after a restart)."""
        if not isinstance(group, ServerGroup):
            raise InvalidArgument("group", expected="a ServerGroup", got=group)
        self._members.setdefault(group.name, {})[instance_id] = host_id
        self._groups[group.name] = group

    def _record(self, request: PlacementRequest, host_id: str) -> None:
        group = request.group
        if group is not None:
            self._members.setdefault(group.name, {})[request.instance_id] = host_id
            self._groups[group.name] = group

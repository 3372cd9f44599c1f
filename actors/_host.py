"""Hosts: capacity, an admin state machine, liveness from heartbeats, and a claims ledger.

A claim reserves capacity on a host for one task (a boot, a move). Claims and releases are
commands to the host's actor, so they are serialised: two schedulers racing for the last
slot cannot both win, and a host is never over-committed. Both are idempotent on the claim
id, and every one is a journaled transition (a self-loop of the admin machine carrying the
claim as payload), so the ledger survives crashes and the usage is, by construction, the sum
of the live claims.

Beside the claims, a host keeps the *holds* of leases: capacity reserved for a window of
time, in a :class:`~stateward.actors.Calendar`. A hold is placed tentatively, then confirmed
(two phases, as a move claims before it switches), opened when its lease starts and
released when it ends; each step is a journaled self-loop too, so two lease requests racing
for the same capacity are serialised by the host like two claims. The rules:

* a claim made *for a lease* (``reservation=``) fits in that lease's open hold here;
* any other claim fits beside everything reserved from now on, whenever it starts: an
  unreserved instance has no end, so it never takes capacity a lease holds later;
* a new hold fits beside the other holds over its window and beside every claim that no
  hold covers (those have no end either);
* and whatever holds say, the claims together never exceed the host's capacity.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import msgspec

from stateward.runtime import (
    CommandRejected,
    FSMActor,
    InvalidArgument,
    InvalidCommand,
    Machine,
    Request,
    StateKind,
    Transition,
    TransitionRecord,
)

from ._calendar import Calendar, Hold, Shortfall
from ._capacity import Capacity

__all__ = (
    "HOST",
    "Capacity",
    "Claim",
    "HostData",
    "HostActor",
    "ClaimRefused",
    "Configure",
    "ClaimCapacity",
    "ReleaseClaim",
    "Heartbeat",
    "HostStatus",
    "GetHost",
    "HoldState",
    "LeaseHold",
    "PlaceHold",
    "ConfirmHold",
    "OpenHold",
    "ReleaseHold",
    "ReleaseLease",
    "HoldRefused",
    "fit_in",
    "room_beside",
    "FitQuery",
    "Fit",
    "GetCalendar",
    "HostCalendar",
)

#: The host's admin machine. ``claim`` and ``release`` are self-loops: they change the
#: ledger, not the admin state, and so are ``hold``, ``confirm_hold``, ``open_hold`` and
#: ``release_hold`` for the calendar. A disabled or maintenance host takes no new claims nor
#: holds but may still release the ones it has (and confirm and open the holds it took).
HOST = Machine(
    "host",
    initial="enabled",
    states={
        "enabled": StateKind.STABLE,
        "disabled": StateKind.STABLE,
        "maintenance": StateKind.STABLE,
        "removed": StateKind.TERMINAL,
    },
    transitions=[
        Transition("enabled", "configure", "enabled"),
        Transition("disabled", "configure", "disabled"),
        Transition("maintenance", "configure", "maintenance"),
        Transition("enabled", "claim", "enabled"),
        Transition("enabled", "hold", "enabled"),
        *(
            Transition(state, event, state)
            for state in ("enabled", "disabled", "maintenance")
            for event in ("confirm_hold", "open_hold", "close_hold", "release_hold")
        ),
        Transition("enabled", "release", "enabled"),
        Transition("disabled", "release", "disabled"),
        Transition("maintenance", "release", "maintenance"),
        Transition("enabled", "disable", "disabled"),
        Transition("disabled", "enable", "enabled"),
        Transition("enabled", "start_maintenance", "maintenance"),
        Transition("disabled", "start_maintenance", "maintenance"),
        Transition("maintenance", "end_maintenance", "enabled"),
        Transition("disabled", "remove", "removed"),
        Transition("maintenance", "remove", "removed"),
    ],
)


class Claim(msgspec.Struct, frozen=True, rename={"id": "claim_id"}):
    """Capacity held on a host for one task.

    Its own id is ``id`` (stored as ``claim_id``, the name ledgers have always used).
    """

    id: str
    task_id: str
    instance_id: str
    amount: Capacity
    #: The server group the instance was placed under, so membership can be rebuilt from
    #: the ledgers alone.
    group: str | None = None
    group_policy: str | None = None
    #: The lease whose hold this claim uses, if any.
    reservation: str | None = None


class HoldState(enum.StrEnum):
    """Where a lease's hold on a host stands."""

    #: Placed while the lease request is checked on every host it needs; it counts
    #: against the capacity already, so a racing request cannot take the same room.
    TENTATIVE = "tentative"
    #: Confirmed: the lease has it.
    HELD = "held"
    #: The lease started: boots that name it may claim within it.
    OPEN = "open"


class LeaseHold(msgspec.Struct, frozen=True):
    """A lease's hold on one host: ``amount`` reserved for ``[start, end)``.

    Attributes:
        id: unique on the host (a lease's hold of one generation: ``<lease>/<n>``).
        lease_id: the lease.
        replaces: the hold this one replaces once confirmed (a lease updated: its old
            hold does not count against its new one while the new one is checked).
    """

    id: str
    lease_id: str
    start: float
    end: float
    amount: Capacity
    state: HoldState = HoldState.TENTATIVE
    replaces: str | None = None

    def hold(self) -> Hold:
        """The calendar's view of it."""
        return Hold(self.id, self.start, self.end, self.amount)


class HostData(msgspec.Struct):
    """A host's durable data.

    Attributes:
        capacity: physical capacity.
        cpu_ratio, ram_ratio, disk_ratio: allocation ratios (overcommit).
        zone: availability zone.
        claims: the ledger, by claim id.
    """

    capacity: Capacity = Capacity()
    cpu_ratio: float = 16.0
    ram_ratio: float = 1.5
    disk_ratio: float = 1.0
    zone: str = "nova"
    claims: dict[str, Claim] = msgspec.field(default_factory=dict)
    #: Free-form properties of the host that lease requests can ask for (``"gpu"``).
    traits: tuple[str, ...] = ()
    #: The leases' holds, by hold id.
    holds: dict[str, LeaseHold] = msgspec.field(default_factory=dict)

    def usage(self) -> Capacity:
        """The sum of the live claims."""
        total = Capacity()
        for claim in self.claims.values():
            total = total + claim.amount
        return total

    def limit(self) -> tuple[float, float, float]:
        """What may be claimed in all, allocation ratios applied."""
        return (
            self.capacity.vcpus * self.cpu_ratio,
            self.capacity.ram_mb * self.ram_ratio,
            self.capacity.disk_gb * self.disk_ratio,
        )

    def free(self) -> tuple[float, float, float]:
        """What may still be claimed, holds aside."""
        used = self.usage()
        vcpus, ram, disk = self.limit()
        return vcpus - used.vcpus, ram - used.ram_mb, disk - used.disk_gb

    def bound(self) -> Capacity:
        """The limit as whole amounts: what holds are measured against."""
        vcpus, ram, disk = self.limit()
        return Capacity(math.floor(vcpus), math.floor(ram), math.floor(disk))

    def leased(self) -> set[str]:
        """The leases holding something here."""
        return {h.lease_id for h in self.holds.values()}

    def unreserved(self) -> Capacity:
        """The claims no hold here covers: they have no end."""
        leased = self.leased()
        total = Capacity()
        for claim in self.claims.values():
            if claim.reservation is None or claim.reservation not in leased:
                total = total + claim.amount
        return total

    def used_by(self, lease_id: str) -> Capacity:
        """What the claims made for ``lease_id`` take here."""
        total = Capacity()
        for claim in self.claims.values():
            if claim.reservation == lease_id:
                total = total + claim.amount
        return total

    def open_hold(self, lease_id: str, now: float) -> Capacity | None:
        """What ``lease_id``'s open holds here amount to now; None if it has none open."""
        found: Capacity | None = None
        for hold in self.holds.values():
            live = hold.state is HoldState.OPEN and hold.start <= now < hold.end
            if live and hold.lease_id == lease_id:
                found = hold.amount if found is None else found + hold.amount
        return found


class ClaimRefused(CommandRejected):
    """The host cannot take the claim: not enough room, or not enabled."""

    def __init__(self, host: str, *, claim_id: str, reason: str) -> None:
        self.host = host
        self.claim_id = claim_id
        self.reason = reason
        super().__init__(f"host {host} refused claim {claim_id}: {reason}")


#: No capacity at all.
_NOTHING = Capacity()


class HoldRefused(CommandRejected):
    """The host cannot take the hold: its window does not fit, or the host is not enabled.

    Attributes:
        host, hold_id: where and what.
        shortfall: when the window does not fit: the first moment and resource short.
    """

    def __init__(
        self, host: str, *, hold_id: str, reason: str, shortfall: Shortfall | None = None
    ) -> None:
        self.host = host
        self.hold_id = hold_id
        self.reason = reason
        self.shortfall = shortfall
        super().__init__(f"host {host} refused hold {hold_id}: {reason}")


@dataclass(frozen=True, slots=True)
class Fit:
    """How much of an amount fits on a host over a window.

    Attributes:
        slots: how many times the amount fits (0 or 1 for a whole host).
        shortfall: why one more would not fit (the first moment and resource short).
        holding: the holds the query ignored that the host has.
    """

    slots: int
    shortfall: Shortfall | None
    holding: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostCalendar:
    """A host's holds and what they are measured against (for planning and inspection).

    Attributes:
        unreserved: the claims no hold covers (open-ended).
        bound: the capacity, allocation ratios applied, in whole amounts.
    """

    id: str
    state: str
    zone: str
    traits: tuple[str, ...]
    holds: tuple[LeaseHold, ...]
    unreserved: Capacity
    bound: Capacity


@dataclass(frozen=True, slots=True)
class HostStatus:
    """A host as the scheduler sees it."""

    id: str
    state: str
    up: bool
    zone: str
    capacity: Capacity
    usage: Capacity
    free: tuple[float, float, float]
    claims: tuple[Claim, ...]
    revision: int
    #: The allocation ratios: cpu, ram, disk.
    ratios: tuple[float, float, float] = (16.0, 1.5, 1.0)
    #: The most that leases hold at any moment from now on.
    reserved: Capacity = _NOTHING
    #: The leases open here, each with what its boots may still claim.
    leases: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    traits: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Configure(Request[HostStatus]):
    """Set a host's capacity, allocation ratios and zone (claims are kept)."""

    capacity: Capacity
    cpu_ratio: float = 16.0
    ram_ratio: float = 1.5
    disk_ratio: float = 1.0
    zone: str = "nova"
    traits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, Capacity):
            raise InvalidArgument("capacity", expected="a Capacity", got=self.capacity)
        for name in ("cpu_ratio", "ram_ratio", "disk_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(name, expected="a positive finite ratio", got=value)
            try:
                ratio = float(value)  # how it is journaled
            except OverflowError:
                ratio = math.inf
            if not 0 < ratio < math.inf:
                raise InvalidArgument(name, expected="a positive finite ratio", got=value)
        if not isinstance(self.zone, str) or not self.zone:
            raise InvalidArgument("zone", expected="a non-empty str", got=self.zone)
        traits = self.traits
        if not isinstance(traits, tuple) or not all(isinstance(t, str) and t for t in traits):
            raise InvalidArgument("traits", expected="a tuple of non-empty str", got=traits)


@dataclass(frozen=True, slots=True)
class ClaimCapacity(Request[Claim]):
    """Reserve ``amount`` for ``task_id``; idempotent on ``claim_id``."""

    claim_id: str
    task_id: str
    instance_id: str
    amount: Capacity
    group: str | None = None
    group_policy: str | None = None
    reservation: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseClaim(Request[bool]):
    """Give a claim's capacity back; releasing an unknown claim does nothing."""

    claim_id: str


@dataclass(frozen=True, slots=True)
class Heartbeat(Request[HostStatus]):
    """The host is alive."""


@dataclass(frozen=True, slots=True)
class GetHost(Request[HostStatus]):
    """Ask for a :class:`HostStatus`."""


@dataclass(frozen=True, slots=True)
class PlaceHold(Request[LeaseHold]):
    """Hold ``hold.amount`` for its window, tentatively; idempotent on the hold's id.

    A whole host is asked for with ``whole=True`` (the amount is then the host's bound).
    """

    hold: LeaseHold
    whole: bool = False


@dataclass(frozen=True, slots=True)
class ConfirmHold(Request[bool]):
    """Confirm a tentative hold (the one it replaces goes); opened at once with ``open``.
    False if the host has no such hold."""

    hold_id: str
    open: bool = False


@dataclass(frozen=True, slots=True)
class OpenHold(Request[bool]):
    """Open a confirmed hold: its lease started (or close it again, ``open=False``: its
    lease is ending and takes no more boots). False if the host has no such hold."""

    hold_id: str
    open: bool = True


@dataclass(frozen=True, slots=True)
class ReleaseHold(Request[bool]):
    """Give a hold up; releasing an unknown hold does nothing (False)."""

    hold_id: str


@dataclass(frozen=True, slots=True)
class FitQuery(Request[Fit]):
    """How many times ``amount`` fits over ``[start, end)`` (the whole host when None), as if
    the holds ``ignore`` names were not here."""

    start: float
    end: float
    amount: Capacity | None
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleaseLease(Request[int]):
    """Give up every hold of ``lease_id`` but those ``keep`` names: how many went."""

    lease_id: str
    keep: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GetCalendar(Request[HostCalendar]):
    """Ask for a :class:`HostCalendar`."""


class HostActor(FSMActor):
    """The actor that owns one host.

    Messages: :class:`Configure`, :class:`ClaimCapacity`, :class:`ReleaseClaim`,
    :class:`Heartbeat`, :class:`GetHost`, and the admin events ``"disable"``, ``"enable"``,
    ``"start_maintenance"``, ``"end_maintenance"``, ``"remove"``. A new host has no capacity
    until it is configured.

    Class attributes:
        heartbeat_timeout: seconds without a heartbeat after which the host counts as down.
    """

    machine: ClassVar[Machine] = HOST
    data_type = HostData
    topic: ClassVar[str] = "host.{resource}.{event}"
    heartbeat_timeout: ClassVar[float] = 60.0
    _last_heartbeat = 0.0
    _calendar: Calendar | None = None
    _calendar_of: dict[str, LeaseHold] | None = None

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """Fold one journaled transition into the ledger (a new HostData: apply is pure)."""
        host: HostData = data
        replace = msgspec.structs.replace
        if record.event == "configure":
            settings = record.payload
            return replace(
                host,
                capacity=msgspec.convert(settings["capacity"], Capacity),
                cpu_ratio=settings["cpu_ratio"],
                ram_ratio=settings["ram_ratio"],
                disk_ratio=settings["disk_ratio"],
                zone=settings["zone"],
                traits=tuple(settings.get("traits", ())),
            )
        if record.event == "claim":
            claim = msgspec.convert(record.payload, Claim)
            return replace(host, claims={**host.claims, claim.id: claim})
        if record.event == "release":
            claims = dict(host.claims)
            claims.pop(str(record.payload), None)
            return replace(host, claims=claims)
        if record.event in _HOLD_EVENTS:
            return replace(host, holds=_fold_hold(host.holds, record.event, record.payload))
        return host

    async def receive(self, message: Any) -> Any:
        """Claims, releases, heartbeats, status, and the admin events."""
        if isinstance(message, Configure):
            payload = {
                "capacity": message.capacity,
                "cpu_ratio": float(message.cpu_ratio),
                "ram_ratio": float(message.ram_ratio),
                "disk_ratio": float(message.disk_ratio),
                "zone": message.zone,
                "traits": list(message.traits),
            }
            await self.transition("configure", payload=payload)
            return self.status()
        if isinstance(message, ClaimCapacity):
            return await self._claim(message)
        if isinstance(message, ReleaseClaim):
            if message.claim_id not in self.ledger.claims:
                return False
            await self.transition("release", payload=message.claim_id)
            return True
        if isinstance(message, Heartbeat):
            # Liveness is volatile, like the agent it stands for: kept in memory, not
            # journaled (a restarted fleet heartbeats its hosts at once).
            self._last_heartbeat = self.context.clock.now()
            return self.status()
        if isinstance(message, GetHost):
            return self.status()
        if isinstance(message, PlaceHold):
            return await self._place_hold(message)
        if isinstance(message, ConfirmHold | OpenHold | ReleaseHold):
            return await self._hold_step(message)
        if isinstance(message, ReleaseLease):
            gone = sorted(
                h.id
                for h in self.ledger.holds.values()
                if h.lease_id == message.lease_id and h.id not in message.keep
            )
            for hold_id in gone:
                await self.transition("release_hold", payload=hold_id)
            return len(gone)
        if isinstance(message, FitQuery):
            return self._fit(message)
        if isinstance(message, GetCalendar):
            data = self.ledger
            return HostCalendar(
                id=self.context.resource_id,
                state=self.state,
                zone=data.zone,
                traits=data.traits,
                holds=tuple(sorted(data.holds.values(), key=lambda h: (h.start, h.id))),
                unreserved=data.unreserved(),
                bound=data.bound(),
            )
        return await super().receive(message)

    # -- the calendar ---------------------------------------------------------------------

    @property
    def calendar(self) -> Calendar:
        """The holds as a step function (kept in step with the journaled holds)."""
        holds = self.ledger.holds
        calendar = self._calendar
        if calendar is None:
            calendar = self._calendar = Calendar(h.hold() for h in holds.values())
        elif self._calendar_of is not holds:
            known = calendar.ids()
            gone, new = known - holds.keys(), holds.keys() - known
            for hold_id in gone:
                calendar.remove(hold_id)
            for hold_id in sorted(new):
                calendar.add(holds[hold_id].hold())
        self._calendar_of = holds
        return calendar

    def _room(self, ignore: tuple[str, ...]) -> tuple[Capacity, Calendar]:
        """What holds may take beside the unreserved claims (the bound less those claims),
        and the calendar without the holds ``ignore`` names (put back by the caller with
        :meth:`_put_back`)."""
        data = self.ledger
        calendar = self.calendar
        for hold_id in ignore:
            calendar.remove(hold_id)
        return room_beside(data.bound(), data.unreserved()), calendar

    def _put_back(self, ignore: tuple[str, ...]) -> None:
        holds = self.ledger.holds
        for hold_id in ignore:
            if hold_id in holds:
                self.calendar.add(holds[hold_id].hold())

    def _fit(self, query: FitQuery) -> Fit:
        holds = self.ledger.holds
        ignore = tuple(h for h in query.ignore if h in holds)
        room, calendar = self._room(ignore)
        try:
            start, end = self.checked_window(query.start, query.end)
            fit = fit_in(calendar, room, start, end, query.amount, bound=self.ledger.bound())
        finally:
            self._put_back(ignore)
        return Fit(fit.slots, fit.shortfall, ignore)

    def checked_window(self, start: float, end: float) -> tuple[float, float]:
        """The window a fit check looks at for a hold over ``[start, end)``: all of it (a
        subclass may observe or narrow it)."""
        return start, end

    async def _place_hold(self, request: PlaceHold) -> LeaseHold:
        data = self.ledger
        hold = request.hold
        host = self.context.resource_id
        if request.whole:
            hold = msgspec.structs.replace(hold, amount=data.bound())
        known = data.holds.get(hold.id)
        if known is not None:
            if (known.lease_id, known.start, known.end) != (hold.lease_id, hold.start, hold.end):
                raise InvalidCommand(
                    host,
                    expected=f"the same lease and window as hold {hold.id}",
                    got=f"{hold.lease_id} over [{hold.start}, {hold.end})",
                )
            return known  # a retry of a hold placed already
        if self.state != "enabled":
            raise HoldRefused(host, hold_id=hold.id, reason=f"host is {self.state}")
        replaces = hold.replaces if hold.replaces in data.holds else None
        used = data.used_by(hold.lease_id)
        if replaces is not None and not _within(used, hold.amount):
            raise HoldRefused(
                host,
                hold_id=hold.id,
                reason=f"lease {hold.lease_id}'s instances here use {used}, "
                f"more than {hold.amount}",
            )
        ignore = (replaces,) if replaces is not None else ()
        room, calendar = self._room(ignore)
        try:
            start, end = self.checked_window(hold.start, hold.end)
            shortfall = calendar.shortfall(start, end, hold.amount, room)
        finally:
            self._put_back(ignore)
        if shortfall is not None:
            raise HoldRefused(
                host, hold_id=hold.id, reason=shortfall.describe(), shortfall=shortfall
            )
        hold = msgspec.structs.replace(hold, state=HoldState.TENTATIVE, replaces=replaces)
        await self.transition("hold", payload=hold)
        return hold

    async def _hold_step(self, request: ConfirmHold | OpenHold | ReleaseHold) -> bool:
        hold = self.ledger.holds.get(request.hold_id)
        if hold is None:
            return False
        if isinstance(request, ReleaseHold):
            await self.transition("release_hold", payload=hold.id)
            return True
        if isinstance(request, ConfirmHold):
            if hold.state is HoldState.TENTATIVE:
                opened = request.open or (
                    hold.replaces is not None
                    and self.ledger.holds[hold.replaces].state is HoldState.OPEN
                )
                await self.transition("confirm_hold", payload={"id": hold.id, "open": opened})
            return True
        if request.open and hold.state is HoldState.HELD:
            await self.transition("open_hold", payload=hold.id)
        elif not request.open and hold.state is HoldState.OPEN:
            await self.transition("close_hold", payload=hold.id)
        return bool(hold.state is not HoldState.TENTATIVE)

    async def _claim(self, request: ClaimCapacity) -> Claim:
        held = self.ledger.claims.get(request.claim_id)
        if held is not None:
            if held.amount != request.amount or held.task_id != request.task_id:
                raise InvalidCommand(
                    self.context.resource_id,
                    expected=f"the same amount and task as claim {request.claim_id}",
                    got=f"{request.amount} for {request.task_id}",
                )
            return held  # a retry of a claim that already holds
        host = self.context.resource_id
        if self.state != "enabled":
            raise ClaimRefused(host, claim_id=request.claim_id, reason=f"host is {self.state}")
        if not self.is_up():
            raise ClaimRefused(host, claim_id=request.claim_id, reason="host is down")
        amount = request.amount
        short = _short(amount, self.ledger.free(), "free")
        if not short:
            short = self._lease_short(amount, request.reservation)
        if short:
            raise ClaimRefused(host, claim_id=request.claim_id, reason=", ".join(short))
        claim = Claim(
            request.claim_id,
            request.task_id,
            request.instance_id,
            amount,
            request.group,
            request.group_policy,
            request.reservation,
        )
        await self.transition("claim", payload=claim, task_id=request.task_id)
        return claim

    def _lease_short(self, amount: Capacity, reservation: str | None) -> list[str]:
        """What a claim lacks with the holds counted: room in its lease's open hold, or
        room beside every hold from now on when it names no lease."""
        data, now = self.ledger, self.context.clock.now()
        if reservation is None:
            if not data.holds:
                return []  # the plain room was checked already
            room = self._unreserved_free(self.calendar.peak(now, math.inf))
            return _short(amount, room, "free beside the leases' holds")
        held = data.open_hold(reservation, now)
        if held is None:
            return [f"lease {reservation} holds nothing open here now"]
        used = data.used_by(reservation)
        left = (held.vcpus - used.vcpus, held.ram_mb - used.ram_mb, held.disk_gb - used.disk_gb)
        return _short(amount, left, f"left in lease {reservation}")

    def _unreserved_free(self, ahead: Capacity) -> tuple[float, float, float]:
        """What an unreserved claim may take: the limit less the unreserved claims and
        ``ahead``, the most the holds take from now on."""
        data = self.ledger
        limit, unreserved = data.limit(), data.unreserved()
        return (
            limit[0] - unreserved.vcpus - ahead.vcpus,
            limit[1] - unreserved.ram_mb - ahead.ram_mb,
            limit[2] - unreserved.disk_gb - ahead.disk_gb,
        )

    @property
    def ledger(self) -> HostData:
        """The host's data: capacity, ratios, zone and claims."""
        return cast(HostData, self.data)

    def is_up(self) -> bool:
        """True while heartbeats arrive within :attr:`heartbeat_timeout`."""
        last = self._last_heartbeat
        return last > 0 and self.context.clock.now() - last <= self.heartbeat_timeout

    def status(self) -> HostStatus:
        """The host as the scheduler sees it."""
        data = self.ledger
        free = data.free()
        reserved = Capacity()
        leases: dict[str, tuple[float, float, float]] = {}
        if data.holds:
            now = self.context.clock.now()
            reserved = self.calendar.peak(now, math.inf)
            room = self._unreserved_free(reserved)
            for lease_id in sorted(data.leased()):
                held = data.open_hold(lease_id, now)
                if held is not None:
                    used = data.used_by(lease_id)
                    leases[lease_id] = (
                        min(free[0], held.vcpus - used.vcpus),
                        min(free[1], held.ram_mb - used.ram_mb),
                        min(free[2], held.disk_gb - used.disk_gb),
                    )
            free = (min(free[0], room[0]), min(free[1], room[1]), min(free[2], room[2]))
        return HostStatus(
            id=self.context.resource_id,
            state=self.state,
            up=self.is_up(),
            zone=data.zone,
            capacity=data.capacity,
            usage=data.usage(),
            free=free,
            claims=tuple(sorted(data.claims.values(), key=lambda c: c.id)),
            revision=self.revision,
            ratios=(data.cpu_ratio, data.ram_ratio, data.disk_ratio),
            reserved=reserved,
            leases=leases,
            traits=data.traits,
        )


#: The host events that change its holds.
_HOLD_EVENTS = frozenset({"hold", "confirm_hold", "open_hold", "close_hold", "release_hold"})


def _fold_hold(holds: dict[str, LeaseHold], event: str, payload: Any) -> dict[str, LeaseHold]:
    """The holds after one journaled hold event (a new dict: apply is pure)."""
    holds = dict(holds)
    if event == "hold":
        hold = msgspec.convert(payload, LeaseHold)
        holds[hold.id] = hold
    elif event == "release_hold":
        holds.pop(str(payload), None)
    elif event in ("open_hold", "close_hold"):
        hold_id = str(payload)
        state = HoldState.OPEN if event == "open_hold" else HoldState.HELD
        if hold_id in holds:
            holds[hold_id] = msgspec.structs.replace(holds[hold_id], state=state)
    else:  # confirm_hold
        confirmed = holds.get(payload["id"])
        if confirmed is not None:
            state = HoldState.OPEN if payload["open"] else HoldState.HELD
            if confirmed.replaces is not None:
                holds.pop(confirmed.replaces, None)
            holds[confirmed.id] = msgspec.structs.replace(confirmed, state=state, replaces=None)
    return holds


def _short(amount: Capacity, free: tuple[float, float, float], what: str) -> list[str]:
    return [
        f"{name} {want} > {have:g} {what}"
        for name, want, have in (
            ("vcpus", amount.vcpus, free[0]),
            ("ram_mb", amount.ram_mb, free[1]),
            ("disk_gb", amount.disk_gb, free[2]),
        )
        if want > have
    ]


def _within(used: Capacity, amount: Capacity) -> bool:
    return (
        used.vcpus <= amount.vcpus
        and used.ram_mb <= amount.ram_mb
        and used.disk_gb <= amount.disk_gb
    )


def _times(amount: Capacity, n: int) -> Capacity:
    return Capacity(amount.vcpus * n, amount.ram_mb * n, amount.disk_gb * n)


def room_beside(bound: Capacity, unreserved: Capacity) -> Capacity:
    """What holds may take on a host with ``bound`` once its unreserved claims are in."""
    return Capacity(
        max(0, bound.vcpus - unreserved.vcpus),
        max(0, bound.ram_mb - unreserved.ram_mb),
        max(0, bound.disk_gb - unreserved.disk_gb),
    )


def fit_in(
    calendar: Calendar,
    room: Capacity,
    start: float,
    end: float,
    amount: Capacity | None,
    *,
    bound: Capacity,
) -> Fit:
    """How many times ``amount`` (the whole ``bound`` when None) fits in ``room`` beside
    the calendar's holds over ``[start, end)``, and why one more would not."""
    whole = amount is None
    asked = bound if amount is None else amount
    shortfall = calendar.shortfall(start, end, asked, room)
    if whole or shortfall is not None:
        return Fit(0 if shortfall is not None else 1, shortfall)
    peak = calendar.peak(start, end)
    slots = min(
        max(0, have - held) // want
        for have, held, want in (
            (room.vcpus, peak.vcpus, asked.vcpus),
            (room.ram_mb, peak.ram_mb, asked.ram_mb),
            (room.disk_gb, peak.disk_gb, asked.disk_gb),
        )
        if want > 0
    )
    return Fit(slots, calendar.shortfall(start, end, _times(asked, slots + 1), room))

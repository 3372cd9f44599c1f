"""Hosts: capacity, an admin state machine, liveness from heartbeats, and a claims ledger.

A claim reserves capacity on a host for one task (a boot, a move). Claims and releases are
commands to the host's actor, so they are serialised: two schedulers racing for the last
slot cannot both win, and a host is never over-committed. Both are idempotent on the claim
id, and every one is a journaled transition (a self-loop of the admin machine carrying the
claim as payload), so the ledger survives crashes and the usage is, by construction, the sum
of the live claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
)

#: The host's admin machine. ``claim`` and ``release`` are self-loops: they change the
#: ledger, not the admin state. A disabled or maintenance host takes no new claims but may
#: still release the ones it has.
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


class Capacity(msgspec.Struct, frozen=True):
    """Amounts of vcpus, RAM and disk."""

    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0

    def __post_init__(self) -> None:
        for name in ("vcpus", "ram_mb", "disk_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(name, expected="an int >= 0", got=value)

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            self.vcpus + other.vcpus, self.ram_mb + other.ram_mb, self.disk_gb + other.disk_gb
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
        """What may still be claimed."""
        used = self.usage()
        vcpus, ram, disk = self.limit()
        return vcpus - used.vcpus, ram - used.ram_mb, disk - used.disk_gb


class ClaimRefused(CommandRejected):
    """The host cannot take the claim: not enough room, or not enabled."""

    def __init__(self, host: str, *, claim_id: str, reason: str) -> None:
        self.host = host
        self.claim_id = claim_id
        self.reason = reason
        super().__init__(f"host {host} refused claim {claim_id}: {reason}")


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


@dataclass(frozen=True, slots=True)
class Configure(Request[HostStatus]):
    """Set a host's capacity, allocation ratios and zone (claims are kept)."""

    capacity: Capacity
    cpu_ratio: float = 16.0
    ram_ratio: float = 1.5
    disk_ratio: float = 1.0
    zone: str = "nova"

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


@dataclass(frozen=True, slots=True)
class ClaimCapacity(Request[Claim]):
    """Reserve ``amount`` for ``task_id``; idempotent on ``claim_id``."""

    claim_id: str
    task_id: str
    instance_id: str
    amount: Capacity
    group: str | None = None
    group_policy: str | None = None


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
            )
        if record.event == "claim":
            claim = msgspec.convert(record.payload, Claim)
            return replace(host, claims={**host.claims, claim.id: claim})
        if record.event == "release":
            claims = dict(host.claims)
            claims.pop(str(record.payload), None)
            return replace(host, claims=claims)
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
        return await super().receive(message)

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
        vcpus, ram, disk = self.ledger.free()
        amount = request.amount
        short = [
            f"{name} {want} > {have:g} free"
            for name, want, have in (
                ("vcpus", amount.vcpus, vcpus),
                ("ram_mb", amount.ram_mb, ram),
                ("disk_gb", amount.disk_gb, disk),
            )
            if want > have
        ]
        if short:
            raise ClaimRefused(host, claim_id=request.claim_id, reason=", ".join(short))
        claim = Claim(
            request.claim_id,
            request.task_id,
            request.instance_id,
            amount,
            request.group,
            request.group_policy,
        )
        await self.transition("claim", payload=claim, task_id=request.task_id)
        return claim

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
        return HostStatus(
            id=self.context.resource_id,
            state=self.state,
            up=self.is_up(),
            zone=data.zone,
            capacity=data.capacity,
            usage=data.usage(),
            free=data.free(),
            claims=tuple(sorted(data.claims.values(), key=lambda c: c.id)),
            revision=self.revision,
            ratios=(data.cpu_ratio, data.ram_ratio, data.disk_ratio),
        )

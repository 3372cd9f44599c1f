"""The lease machine, and what a lease asks for.

A lease reserves capacity for a window ``[start, end)``: whole hosts
(:class:`HostReservation`) or slots of a flavor (:class:`InstanceReservation`). Its machine::

    new ─create→ created ─created→ pending ─start→ starting ─started→ active ─end→ ending
                    │                 │  ↕ update                      ↕ update     │
                  failed              │  pending/updating              active/updating
                                      └──────────────── end ─────────────────→ ending
    ending ─ended→ ended;  ended, failed ─delete→ deleting ─deleted→ deleted

``created`` places the holds (tentatively on every host, then confirmed); ``failed`` is
where a lease that does not fit ends up. An update is checked for fit while the lease is
``pending/updating`` or ``active/updating``; it ends ``updated`` or ``update_failed``, and
the latter leaves the lease exactly as it was (a failed update never reaches ``failed``).
``starting_soon`` and ``ending_soon`` are heads-up self-loops, fired by durable timers.

Every notification is an event of this machine, so it is journaled (the lease's history)
and published as ``lease.<id>.<event>``: ``created``, ``failed``, ``starting_soon``,
``started``, ``ending_soon``, ``ended``, ``updated``, ``update_failed``, ``deleted``.
"""

from __future__ import annotations

import enum
import math

import msgspec

from stateward.runtime import InvalidArgument, Machine, StateKind, Transition

__all__ = (
    "LEASE",
    "LeasePolicy",
    "LeaseStart",
    "HostReservation",
    "InstanceReservation",
    "Reservation",
    "LeaseSpec",
    "LEASE_NOTIFICATIONS",
)


class LeasePolicy(enum.StrEnum):
    """What happens to a lease's instances when it ends."""

    #: Nothing is touched: the ``ended`` notification lists them; they stay, as
    #: unreserved instances.
    NOTIFY = "notify"
    #: They are stopped (they stay on their hosts, as unreserved instances).
    STOP = "stop"
    #: They are deleted.
    DELETE = "delete"
    #: They are moved to unreserved capacity (live when they run), by the move
    #: coordinator.
    MIGRATE_OFF = "migrate_off"


class LeaseStart(enum.StrEnum):
    """What happens when a lease starts."""

    #: Nothing: boots name the lease (``reservation=``) when they want its capacity.
    NOTHING = "nothing"
    #: Every slot of its instance reservations is booted from the lease's image.
    BOOT = "boot"


def _count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise InvalidArgument(field, expected="an int from 1 to 10000", got=value)


def _names(field: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgument(field, expected="a tuple of non-empty str", got=value)


class HostReservation(msgspec.Struct, frozen=True, tag="host", tag_field="kind"):
    """Whole hosts: ``count`` of those matching ``zone`` and ``traits``, or the named ``hosts``.

    A reserved host takes no unreserved instance while the lease holds it, and can only
    be reserved while none runs there.
    """

    count: int = 1
    hosts: tuple[str, ...] = ()
    zone: str | None = None
    traits: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _count("count", self.count)
        _names("hosts", self.hosts)
        _names("traits", self.traits)
        if self.hosts and self.count not in (1, len(self.hosts)):
            raise InvalidArgument(
                "count", expected=f"{len(self.hosts)}, the number of named hosts", got=self.count
            )
        if len(set(self.hosts)) != len(self.hosts):
            raise InvalidArgument("hosts", expected="distinct host names", got=self.hosts)
        if self.zone is not None and (not isinstance(self.zone, str) or not self.zone):
            raise InvalidArgument("zone", expected="a non-empty str or None", got=self.zone)

    @property
    def wanted(self) -> int:
        """How many hosts it needs."""
        return len(self.hosts) if self.hosts else self.count

    def describe(self) -> str:
        """In words: "2 hosts in zone a with gpu"."""
        if self.hosts:
            return f"hosts {', '.join(self.hosts)}"
        where = f" in zone {self.zone}" if self.zone else ""
        traits = f" with {', '.join(self.traits)}" if self.traits else ""
        return f"{self.count} host{'s' if self.count != 1 else ''}{where}{traits}"


class InstanceReservation(msgspec.Struct, frozen=True, tag="instance", tag_field="kind"):
    """``count`` slots of ``flavor``: all on one host (``affinity=True``), each on its own
    (``affinity=False``), or wherever they fit (None)."""

    flavor: str
    count: int = 1
    affinity: bool | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.flavor, str) or not self.flavor:
            raise InvalidArgument("flavor", expected="a flavor name", got=self.flavor)
        _count("count", self.count)
        if self.affinity is not None and not isinstance(self.affinity, bool):
            raise InvalidArgument("affinity", expected="True, False or None", got=self.affinity)
        if self.zone is not None and (not isinstance(self.zone, str) or not self.zone):
            raise InvalidArgument("zone", expected="a non-empty str or None", got=self.zone)

    def describe(self) -> str:
        """In words: "3 slots of m1.small, each on its own host"."""
        spread = {True: ", all on one host", False: ", each on its own host", None: ""}
        where = f" in zone {self.zone}" if self.zone else ""
        plural = "s" if self.count != 1 else ""
        return f"{self.count} slot{plural} of {self.flavor}{where}{spread[self.affinity]}"


#: A reservation of a lease.
Reservation = HostReservation | InstanceReservation


class LeaseSpec(msgspec.Struct, frozen=True):
    """What a lease asks for (journaled whole with its ``create`` and ``update``).

    Attributes:
        start, end: the window, in seconds on the fleet's clock.
        reservations: what it reserves.
        project: who owns it.
        on_end: what happens to its instances when it ends.
        on_start: what happens when it starts.
        image: the image ``on_start=LeaseStart.BOOT`` boots from.
        notify_before: seconds before its start and its end that ``starting_soon`` and
            ``ending_soon`` fire.
    """

    start: float
    end: float
    reservations: tuple[Reservation, ...]
    project: str = "default"
    on_end: LeasePolicy = LeasePolicy.NOTIFY
    on_start: LeaseStart = LeaseStart.NOTHING
    image: str | None = None
    notify_before: float = 300.0

    def __post_init__(self) -> None:
        for name in ("start", "end", "notify_before"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(name, expected="seconds", got=value)
            if not math.isfinite(value):
                raise InvalidArgument(name, expected="finite seconds", got=value)
        if not self.end > self.start:
            raise InvalidArgument(
                "end", expected=f"a time after start ({self.start:g})", got=self.end
            )
        if self.notify_before < 0:
            raise InvalidArgument("notify_before", expected="seconds >= 0", got=self.notify_before)
        if not isinstance(self.reservations, tuple) or not self.reservations:
            raise InvalidArgument(
                "reservations",
                expected="a non-empty tuple of HostReservation or InstanceReservation",
                got=self.reservations,
            )
        for reservation in self.reservations:
            if not isinstance(reservation, HostReservation | InstanceReservation):
                raise InvalidArgument(
                    "reservations",
                    expected="HostReservation or InstanceReservation items",
                    got=reservation,
                )
        if not isinstance(self.project, str) or not self.project:
            raise InvalidArgument("project", expected="a non-empty str", got=self.project)
        if not isinstance(self.on_end, LeasePolicy):
            raise InvalidArgument("on_end", expected="a LeasePolicy", got=self.on_end)
        if not isinstance(self.on_start, LeaseStart):
            raise InvalidArgument("on_start", expected="a LeaseStart", got=self.on_start)
        if self.on_start is LeaseStart.BOOT:
            if not isinstance(self.image, str) or not self.image:
                raise InvalidArgument(
                    "image", expected="an image to boot from when on_start is boot", got=self.image
                )
            if not any(isinstance(r, InstanceReservation) for r in self.reservations):
                raise InvalidArgument(
                    "on_start",
                    expected="an instance reservation to boot into when on_start is boot",
                    got=self.on_start,
                )


#: The events a subscriber hears about a lease (``lease.<id>.<event>``).
LEASE_NOTIFICATIONS = (
    "created",
    "failed",
    "starting_soon",
    "started",
    "ending_soon",
    "ended",
    "updated",
    "update_failed",
    "deleted",
)

_HEADS_UP = ("starting_soon", "ending_soon")


def _transitions() -> list[Transition]:
    t = [
        Transition("new", "create", "created"),
        Transition("created", "created", "pending"),
        Transition("created", "failed", "failed"),
        Transition("pending", "start", "starting"),
        Transition("starting", "started", "active"),
        Transition("pending", "end", "ending"),
        Transition("active", "end", "ending"),
        Transition("ending", "ended", "ended"),
        Transition("ended", "delete", "deleting"),
        Transition("failed", "delete", "deleting"),
        Transition("deleting", "deleted", "deleted"),
    ]
    for stable in ("pending", "active"):
        updating = f"{stable}/updating"
        t += [
            Transition(stable, "update", updating),
            Transition(updating, "updated", stable),
            Transition(updating, "update_failed", stable),
        ]
    # A heads-up is recorded once wherever it finds the lease (late if its lease moved on).
    t += [
        Transition(state, "starting_soon", state)
        for state in ("pending", "pending/updating", "starting", "active", "active/updating")
    ]
    t += [
        Transition(state, "ending_soon", state) for state in ("active", "active/updating", "ending")
    ]
    return t


def _kinds() -> dict[str, StateKind]:
    stable = ("new", "pending", "active", "ended", "failed")
    names = {"new", "created", "pending", "starting", "active", "ending", "ended", "failed"}
    names |= {"pending/updating", "active/updating", "deleting", "deleted"}
    return {
        name: StateKind.TERMINAL
        if name == "deleted"
        else StateKind.STABLE
        if name in stable
        else StateKind.TRANSITIONAL
        for name in sorted(names)
    }


#: The lease machine: ``stateward diagram stateward.actors:LEASE``.
LEASE = Machine("lease", initial="new", states=_kinds(), transitions=_transitions())

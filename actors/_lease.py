"""Leases: each is a resource with an actor, the :data:`~stateward.actors.LEASE` machine
and a history.

The lease's flows (``lease.create``, ``lease.update``, ``lease.start``, ``lease.end``,
``lease.delete``: :mod:`._lease_flows`) do the work on the hosts and move the machine with
:class:`LeaseStep`; the actor keeps the lease's data and its durable timers, which are set
and cancelled in the very transitions that make them due or moot. At its time a timer
either records a heads-up (``starting_soon``, ``ending_soon``) or submits the flow that
starts or ends the lease, keyed by the timer's id: a timer delivered again after a crash
finds the task it submitted the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import msgspec

from stateward.runtime import FSMActor, Machine, Request, Timer, TimerFired, TransitionRecord

from ._capacity import Capacity
from ._lease_machine import (
    LEASE,
    HostReservation,
    LeasePolicy,
    LeaseSpec,
    LeaseStart,
    Reservation,
)

if TYPE_CHECKING:
    from ._services import FleetServices

__all__ = (
    "LeaseActor",
    "LeaseData",
    "LeaseStatus",
    "PlacedHold",
    "LeaseStep",
    "GetLease",
    "LEASE_START",
    "LEASE_END",
)

#: The flows a lease's timers submit.
LEASE_START = "lease.start"
LEASE_END = "lease.end"


class PlacedHold(msgspec.Struct, frozen=True):
    """One of a lease's holds: on ``host``, for its reservation number ``reservation``."""

    host: str
    hold_id: str
    reservation: int
    amount: Capacity
    whole: bool = False


class LeaseData(msgspec.Struct):
    """What a lease knows (folded from its journal)."""

    spec: LeaseSpec | None = None
    #: Raised by every update that lands: a generation's holds have ids of their own.
    generation: int = 0
    holds: list[PlacedHold] = msgspec.field(default_factory=list)
    #: The spec an update is checking, while it does.
    proposal: LeaseSpec | None = None
    #: Why the lease failed, or the last update did.
    reason: str | None = None
    #: For a lease that did not fit: where (host and shortfall) and the earliest window
    #: that would, when it was asked for.
    failure: dict[str, Any] | None = None
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    #: The instances its start booted, and those that failed to boot (with why).
    booted: list[str] = msgspec.field(default_factory=list)
    boot_failed: dict[str, str] = msgspec.field(default_factory=dict)
    #: What its end did to its instances.
    outcome: dict[str, Any] | None = None
    #: Each heads-up recorded, with the time it announced (so an update that keeps the
    #: time does not announce it twice).
    notified: dict[str, float] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """A lease as its owner sees it."""

    id: str
    state: str
    project: str
    start: float
    end: float
    reservations: tuple[Reservation, ...]
    on_end: LeasePolicy
    on_start: LeaseStart
    #: The hosts it holds capacity on, sorted.
    hosts: tuple[str, ...]
    holds: tuple[PlacedHold, ...]
    generation: int
    reason: str | None
    failure: dict[str, Any] | None
    created_at: float | None
    started_at: float | None
    ended_at: float | None
    booted: tuple[str, ...]
    outcome: dict[str, Any] | None
    notify_before: float
    revision: int
    #: The instances it failed to boot at its start, with why.
    boot_failed: dict[str, str] | None = None
    #: The image its start boots from.
    image: str | None = None

    @property
    def done(self) -> bool:
        """Whether it ended, failed or was deleted."""
        return self.state in ("ended", "failed", "deleted")


@dataclass(frozen=True, slots=True)
class LeaseStep(Request[bool]):
    """Fire ``event`` on the lease, unless its machine is past it (a step run again after a
    crash reports the same event twice): True if it moved."""

    event: str
    payload: dict[str, Any] | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetLease(Request[LeaseStatus]):
    """Ask for a :class:`LeaseStatus`."""


#: Events whose transition sets the lease's timers anew.
_SETS_TIMERS = frozenset({"created", "updated"})
#: Events after which no timer of the lease is due.
_STOPS_TIMERS = frozenset({"end", "failed", "delete"})
#: The heads-up events, fired by timers.
_HEADS_UP = ("starting_soon", "ending_soon")
#: States in which a start or end timer has nothing left to do.
_PAST_TIMERS = frozenset({"ending", "ended", "failed", "deleting", "deleted"})


#: The spec a lease has before its request is recorded (never journaled).
_UNASKED = LeaseSpec(0.0, 1.0, (HostReservation(),))


class LeaseActor(FSMActor):
    """The actor of one lease.

    Args:
        services: the fleet, as the lease sees it (it submits its start and end flows).
    """

    machine: ClassVar[Machine] = LEASE
    data_type = LeaseData
    topic: ClassVar[str] = "lease.{resource}.{event}"

    def __init__(self, services: FleetServices) -> None:
        super().__init__()
        self._services = services

    @property
    def info(self) -> LeaseData:
        """The lease's data."""
        return cast(LeaseData, self.data)

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """Fold one journaled transition into the data (pure)."""
        old: LeaseData = data
        payload = record.payload if isinstance(record.payload, dict) else {}
        replace = msgspec.structs.replace
        event = record.event
        if event == "create":
            spec = msgspec.convert(payload["spec"], LeaseSpec)
            return replace(old, spec=spec, created_at=record.at)
        if event in ("created", "updated"):
            holds = msgspec.convert(payload["holds"], list[PlacedHold])
            changes: dict[str, Any] = {
                "holds": holds,
                "generation": payload["generation"],
                "proposal": None,
            }
            if event == "updated":
                changes["spec"] = msgspec.convert(payload["spec"], LeaseSpec)
                changes["reason"] = None
            return replace(old, **changes)
        if event == "update":
            return replace(old, proposal=msgspec.convert(payload["spec"], LeaseSpec))
        if event in ("failed", "update_failed"):
            return replace(
                old, proposal=None, reason=payload.get("reason"), failure=payload.get("failure")
            )
        if event in _HEADS_UP:
            return replace(old, notified={**old.notified, event: payload["at"]})
        if event == "started":
            return replace(
                old,
                started_at=record.at,
                booted=list(payload.get("booted", [])),
                boot_failed=dict(payload.get("boot_failed", {})),
            )
        if event == "ended":
            return replace(old, ended_at=record.at, outcome=payload.get("outcome"), holds=[])
        return old

    def status(self) -> LeaseStatus:
        """The lease as its owner sees it."""
        info = self.info
        spec = info.spec if info.spec is not None else _UNASKED
        return LeaseStatus(
            id=self.context.resource_id,
            state=self.state,
            project=spec.project,
            start=spec.start,
            end=spec.end,
            reservations=spec.reservations,
            on_end=spec.on_end,
            on_start=spec.on_start,
            hosts=tuple(sorted({h.host for h in info.holds})),
            holds=tuple(info.holds),
            generation=info.generation,
            reason=info.reason,
            failure=info.failure,
            created_at=info.created_at,
            started_at=info.started_at,
            ended_at=info.ended_at,
            booted=tuple(info.booted),
            outcome=info.outcome,
            notify_before=spec.notify_before,
            revision=self.revision,
            boot_failed=dict(info.boot_failed) or None,
            image=spec.image,
        )

    def summary(
        self, spec: LeaseSpec | None = None, holds: list[Any] | None = None
    ) -> dict[str, Any]:
        """The lease as a notification carries it: plain data."""
        spec = spec if spec is not None else self.info.spec
        assert spec is not None
        placed = holds if holds is not None else [msgspec.to_builtins(h) for h in self.info.holds]
        return {
            "id": self.context.resource_id,
            "project": spec.project,
            "start": spec.start,
            "end": spec.end,
            "reservations": msgspec.to_builtins(spec.reservations),
            "hosts": sorted({h["host"] for h in placed}),
            "on_end": spec.on_end.value,
            "on_start": spec.on_start.value,
        }

    async def receive(self, message: Any) -> Any:
        """LeaseStep and GetLease."""
        if isinstance(message, LeaseStep):
            return await self._step(message)
        if isinstance(message, GetLease):
            return self.status()
        return await super().receive(message)

    async def _step(self, step: LeaseStep) -> bool:
        if not self.instance.can(step.event):
            return False
        event = step.event
        payload = dict(step.payload or {})
        cancel: tuple[str, ...] = ()
        timers: tuple[Timer, ...] = ()
        if event in _SETS_TIMERS or event in _STOPS_TIMERS:
            # Only those still ahead: a due one is being delivered (its delivery marks it
            # fired, and finds the lease past it).
            now = self.context.clock.now()
            pending = self.context.system.timers.pending(self.context.resource_id)
            cancel = tuple(t.id for t in pending if t.at > now)
        if event in _SETS_TIMERS:
            spec = (
                msgspec.convert(payload["spec"], LeaseSpec) if "spec" in payload else self.info.spec
            )
            assert spec is not None
            timers = self._timers(spec, started=self.state.startswith("active"))
            payload["lease"] = self.summary(spec, payload.get("holds"))
        elif event in ("failed", "update_failed", "started", "ended", "deleted"):
            payload["lease"] = self.summary()
        await self.transition(
            event, payload=payload or None, task_id=step.task_id, timers=timers, cancel=cancel
        )
        return True

    def _timers(self, spec: LeaseSpec, *, started: bool) -> tuple[Timer, ...]:
        """The timers a lease with ``spec`` needs from now: a heads-up not yet given for
        this very time, the start when it has not started, and the end."""
        notified = self.info.notified
        ahead = spec.notify_before
        timers = []
        if not started:
            if notified.get("starting_soon") != spec.start:
                timers.append(self.timer("starting_soon", at=spec.start - ahead))
            timers.append(self.timer("start", at=spec.start))
        if notified.get("ending_soon") != spec.end:
            timers.append(self.timer("ending_soon", at=max(spec.start, spec.end - ahead)))
        timers.append(self.timer("end", at=spec.end))
        return tuple(timers)

    async def on_timer(self, fired: TimerFired) -> Any:
        """A heads-up is recorded (with the lease); a start or an end submits its flow."""
        timer = fired.timer
        spec = self.info.spec
        if spec is None:
            return None
        if timer.name in _HEADS_UP:
            if not self.instance.can(timer.name):
                return None
            at = spec.start if timer.name == "starting_soon" else spec.end
            payload = {"at": at, "lease": self.summary()}
            return await self.transition(timer.name, payload=payload, cause=f"timer {timer.id}")
        flow = {"start": LEASE_START, "end": LEASE_END}.get(timer.name)
        if flow is None or self.state in _PAST_TIMERS:
            return None
        # Submitted even while an update runs: the flow queues behind it and its first
        # step checks the window the update left.
        lease_id = self.context.resource_id
        task_id = self._services.env.ids.next("task")
        inputs = {"lease_id": lease_id, "task_id": task_id, "early": False}
        key = f"timer:{timer.id}"
        existing = await self._services.engine.find(lease_id, key)
        if existing is None:
            await self._services.submit(flow, lease_id, task_id, inputs, key)
        return None

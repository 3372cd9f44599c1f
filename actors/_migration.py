"""Migrations: each move is a resource of its own, with an actor, a machine and a history.

The instance actor starts a move as it starts any command: its transition records the
move's task, and the move's flow runs under the instance (one flow per instance at a time).
The flow's first step creates the migration; every phase it completes advances the
migration's machine (:data:`~stateward.actors.MIGRATE` and its siblings), so the migration's
journal is the move's history: who asked, from where to where, which flavors, when each phase
ended, how it ended and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import msgspec

from stateward.runtime import FSMActor, Machine, Request, Timer, TransitionRecord

from ._driver import Power
from ._migration_machine import (
    EVACUATE,
    LIVE_MIGRATE,
    MIGRATE,
    MIGRATION_TERMINALS,
    RESIZE,
    MoveKind,
)

__all__ = (
    "MigrationActor",
    "MigrationData",
    "MigrationStatus",
    "MIGRATION_ACTORS",
    "Advance",
    "GetMigration",
    "AUTO_CONFIRM",
)

#: The timer a resize's verification sets: at its deadline the instance confirms itself.
AUTO_CONFIRM = "auto_confirm_resize"


class MigrationData(msgspec.Struct):
    """What a migration knows about its move (folded from its journal)."""

    kind: MoveKind | None = None
    instance_id: str = ""
    task_id: str | None = None
    source: str | None = None
    source_claim: str | None = None
    destination: str | None = None
    destination_claim: str | None = None
    #: The host the caller asked for, if any (the scheduler chooses otherwise).
    requested_host: str | None = None
    old_flavor: str = ""
    new_flavor: str = ""
    #: The epoch the instance had before the move, and the one the switch gives it.
    epoch: int = 0
    power: Power = Power.NOSTATE
    #: Wall-clock time a resize's verification confirms itself, when it is verifying.
    confirm_by: float | None = None
    #: Why it failed, was cancelled or is parked.
    reason: str | None = None
    started: float = 0.0
    ended: float | None = None


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A migration as its owner sees it."""

    id: str
    kind: MoveKind
    state: str
    instance_id: str
    task_id: str | None
    source: str | None
    destination: str | None
    old_flavor: str
    new_flavor: str
    epoch: int
    confirm_by: float | None
    reason: str | None
    started: float
    ended: float | None
    revision: int
    #: The claims the move holds: the source's until the move is decided, the
    #: destination's from ``claimed`` on.
    source_claim: str | None = None
    destination_claim: str | None = None

    @property
    def done(self) -> bool:
        """Whether the move reached one of its terminal states."""
        return self.state in MIGRATION_TERMINALS


@dataclass(frozen=True, slots=True)
class Advance(Request[bool]):
    """Fire ``event`` on the migration, unless its machine is past it (a step run again
    after a crash reports the same phase twice): True if it moved."""

    event: str
    payload: dict[str, Any] | None = None
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetMigration(Request[MigrationStatus]):
    """Ask for a :class:`MigrationStatus`."""


#: Fields an event's payload may set on the data.
_FIELDS = frozenset(MigrationData.__struct_fields__)
#: Events that decide a resize's verification (its deadline timer is cancelled).
_DECIDED = frozenset({"confirm", "revert"})
#: Events that end the move and stamp its end time.
_ENDING = frozenset(
    {"finished", "confirmed", "reverted", "failed", "cancelled", "settle_completed"}
    | {"settle_failed"}
)


class MigrationActor(FSMActor):
    """The actor of one migration. Each kind of move is a subclass with its machine."""

    machine: ClassVar[Machine] = MIGRATE
    data_type = MigrationData
    topic: ClassVar[str] = "migration.{resource}.{event}"

    @property
    def info(self) -> MigrationData:
        """The migration's data."""
        return cast(MigrationData, self.data)

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """Fold one journaled transition into the data (pure)."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        changes = {k: v for k, v in payload.items() if k in _FIELDS}
        if record.event == "start":
            changes["started"] = record.at
            changes["task_id"] = record.task_id
        if record.event in _ENDING:
            changes["ended"] = record.at
        if not changes:
            return data
        return msgspec.convert(
            {**msgspec.to_builtins(data), **msgspec.to_builtins(changes)}, MigrationData
        )

    def status(self) -> MigrationStatus:
        """The migration as its owner sees it."""
        info = self.info
        assert info.kind is not None or self.state == "requested"
        return MigrationStatus(
            id=self.context.resource_id,
            kind=info.kind if info.kind is not None else _KINDS[type(self).machine.name],
            state=self.state,
            instance_id=info.instance_id,
            task_id=info.task_id,
            source=info.source,
            destination=info.destination,
            old_flavor=info.old_flavor,
            new_flavor=info.new_flavor,
            epoch=info.epoch,
            confirm_by=info.confirm_by,
            reason=info.reason,
            started=info.started,
            ended=info.ended,
            revision=self.revision,
            source_claim=info.source_claim,
            destination_claim=info.destination_claim,
        )

    async def receive(self, message: Any) -> Any:
        """Advance and GetMigration."""
        if isinstance(message, Advance):
            if not self.instance.can(message.event):
                return False
            payload = message.payload or {}
            timers: tuple[Timer, ...] = ()
            if message.event == "switched" and payload.get("confirm_by") is not None:
                # The deadline of the verification: the instance confirms itself then.
                timers = (
                    self.timer(
                        AUTO_CONFIRM,
                        at=payload["confirm_by"],
                        payload={"migration_id": self.context.resource_id},
                        to=self.info.instance_id,
                    ),
                )
            cancel: tuple[str, ...] = ()
            if message.event in _DECIDED:  # the deadline is moot once the owner decides
                pending = self.context.system.timers.pending(self.context.resource_id)
                cancel = tuple(t.id for t in pending)
            await self.transition(
                message.event,
                payload=message.payload,
                task_id=message.task_id,
                timers=timers,
                cancel=cancel,
            )
            return True
        if isinstance(message, GetMigration):
            return self.status()
        return await super().receive(message)


class ColdMigration(MigrationActor):
    """A cold migration."""

    machine = MIGRATE


class Resize(MigrationActor):
    """A resize."""

    machine = RESIZE


class LiveMigration(MigrationActor):
    """A live migration."""

    machine = LIVE_MIGRATE


class Evacuation(MigrationActor):
    """An evacuation."""

    machine = EVACUATE


#: The actor class of each kind of move.
MIGRATION_ACTORS: dict[MoveKind, type[MigrationActor]] = {
    MoveKind.MIGRATE: ColdMigration,
    MoveKind.RESIZE: Resize,
    MoveKind.LIVE_MIGRATE: LiveMigration,
    MoveKind.EVACUATE: Evacuation,
}
_KINDS = {cls.machine.name: kind for kind, cls in MIGRATION_ACTORS.items()}

"""Instance actors: commands become task records and flows; flows drive the state machine.

A command (boot, stop, reboot, delete, ...) is checked against the machine (a command the
state does not allow fails with :class:`~stateward.runtime.InvalidTransition` listing the
allowed actions), moves the instance into its transitional state and submits the command's
flow, whose task id the transition records. The actor then stays free for the next command:
the flow runs on its own and reports back, with :class:`Progress` while it runs and
:class:`TaskEnded` when its task ends, and the actor moves the machine on.

A failed task that changed nothing (it reverted) takes the instance back where it started,
with the task as its fault; only real damage ends in ``error``. A failed boot reports what its
revert gave back: no host and no ports once the claim is released and the ports freed.

A commit the store reports as failed may still have reached the disk (an fsync error after
the write). The instance then reads its journal back: a command that landed is carried out
(its task submitted) and answered as if the commit had been reported, one that did not land
is refused with :class:`~stateward.runtime.CommitFailed`. When the store cannot be read back
either, the instance marks itself *behind*: it reloads before its next message, the fleet asks
it to :class:`Settle` until it has, and :meth:`~stateward.actors.Fleet.recover` settles every
instance caught mid-task. No intent the store holds is left without its task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import msgspec

from stateward.flows import StepStatus, TaskNotFound, TaskRecord, TaskStatus
from stateward.runtime import (
    CommitFailed,
    Document,
    FSMActor,
    InvalidArgument,
    InvalidCommand,
    InvalidTransition,
    Machine,
    Request,
    ResourceQuarantined,
    StartReason,
    StatewardError,
    StoreUnavailable,
    Timer,
    TimerFired,
    TransitionRecord,
)

from ._driver import Power
from ._errors import DuplicateName
from ._instance_machine import (
    COMMANDS,
    INSTANCE,
    MOVES,
    VERIFICATIONS,
    InstanceAction,
    task_state,
    vm_state,
)
from ._migration import AUTO_CONFIRM, Advance
from ._scheduler import GroupPolicy
from ._services import FleetServices

__all__ = (
    "InstanceActor",
    "InstanceData",
    "InstanceStatus",
    "BootSpec",
    "Boot",
    "Act",
    "Progress",
    "TaskEnded",
    "Lost",
    "Settle",
    "GetInstance",
    "Move",
    "Switch",
    "ACTIONS",
)

#: Every command an instance takes besides ``boot`` and the moves (``Act`` carries them).
ACTIONS: tuple[InstanceAction, ...] = tuple(
    a for a in InstanceAction if a not in MOVES and a not in VERIFICATIONS
)
#: Every command, in the order ``allowed`` lists them.
_ALL_COMMANDS = ("boot", *InstanceAction)


class BootSpec(msgspec.Struct, frozen=True):
    """What an instance is built from: its flavor's size, image, placement and devices.

    Journaled whole with the ``boot`` transition (its fields, as plain data), kept in the
    instance's data, and given to the boot's flow as its inputs.
    """

    flavor: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    image: str
    zone: str | None = None
    group: str | None = None
    group_policy: GroupPolicy | None = None
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    #: The lease whose reserved capacity it is built in, if any.
    reservation: str | None = None

    def inputs(self) -> dict[str, Any]:
        """The spec as plain data: a journal payload, or the boot flow's inputs."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return {**data, "networks": list(self.networks), "volumes": list(self.volumes)}


#: The fields of a BootSpec, also fields of InstanceData.
_SPEC_FIELDS = BootSpec.__struct_fields__


def _data_of(spec: BootSpec) -> dict[str, Any]:
    """The spec's fields as InstanceData holds them (lists where the spec has tuples)."""
    data = {f: getattr(spec, f) for f in _SPEC_FIELDS}
    return {**data, "networks": list(spec.networks), "volumes": list(spec.volumes)}


class InstanceData(msgspec.Struct):
    """An instance's durable data (what the journal's payloads fold into)."""

    flavor: str = ""
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    image: str = ""
    zone: str | None = None
    group: str | None = None
    group_policy: GroupPolicy | None = None
    networks: list[str] = msgspec.field(default_factory=list)
    volumes: list[str] = msgspec.field(default_factory=list)
    #: The lease whose capacity its claim uses, if any (a move off the lease clears it).
    reservation: str | None = None
    host: str | None = None
    claim_id: str | None = None
    ports: list[str] = msgspec.field(default_factory=list)
    power: Power = Power.NOSTATE
    task_id: str | None = None
    fault: str | None = None
    #: The idempotency key of the command behind ``task_id``, so that a task submitted
    #: again after a crash keeps the key its client retries with.
    task_key: str | None = None
    #: The owner's generation: every switch of host raises it, and every driver call
    #: carries it, so a stale owner cannot act on the instance.
    epoch: int = 0
    #: The running (or, for a resize being verified, the last) move's flow inputs.
    move: dict[str, Any] | None = None
    #: Where the last switch moved the instance from (host, claim and flavor), while a
    #: resize is verified.
    moved_from: dict[str, Any] | None = None
    #: A delete asked for during a move: its task, which runs once the move ends.
    delete_pending: str | None = None

    def boot_spec(self) -> BootSpec:
        """What the instance was built from."""
        return msgspec.convert({f: getattr(self, f) for f in _SPEC_FIELDS}, BootSpec)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """An instance as its owner sees it: Nova's vm_state, task_state and power state."""

    id: str
    state: str
    vm_state: str
    task_state: str | None
    power: Power
    host_id: str | None
    flavor: str
    image: str
    group: str | None
    group_policy: GroupPolicy | None
    ports: tuple[str, ...]
    volumes: tuple[str, ...]
    task_id: str | None
    fault: str | None
    revision: int
    allowed: tuple[str, ...]
    #: The owner's generation (raised by every switch of host).
    epoch: int = 0
    #: The running or last move's migration.
    migration_id: str | None = None
    #: The lease whose capacity it uses, if any.
    reservation: str | None = None


@dataclass(frozen=True, slots=True)
class Boot(Request[TaskRecord]):
    """Build the instance (its first command) from ``spec``."""

    spec: BootSpec
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Act(Request[TaskRecord]):
    """Any other command: ``stop``, ``start``, ``reboot``, ``reboot_hard``, ``pause``,
    ``unpause``, ``suspend``, ``resume``, ``rebuild`` (with ``image``), ``delete``."""

    action: InstanceAction
    image: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Move(Request[TaskRecord]):
    """Move the instance: ``migrate``, ``resize`` (to ``flavor``), ``live_migrate``; to
    ``host``, or where the scheduler finds room."""

    kind: InstanceAction
    flavor: Any = None  # a Flavor, for a resize
    host: str | None = None
    idempotency_key: str | None = None
    #: Move it to unreserved capacity, out of the lease it was built in.
    off_lease: bool = False


@dataclass(frozen=True, slots=True)
class Switch(Request[bool]):
    """The move's switch: the instance is owned by ``host`` (under ``claim_id``) from now
    on, at ``epoch``, with the given flavor. Refused when a delete is pending or the move is
    not the running task; True again for a repeat of the switch that happened."""

    task_id: str
    host: str
    claim_id: str
    epoch: int
    flavor: str
    vcpus: int
    ram_mb: int
    disk_gb: int


@dataclass(frozen=True, slots=True)
class Progress(Request[bool]):
    """A running task reports a step done: fire ``event`` with ``payload``."""

    task_id: str
    event: str
    payload: Any = None


@dataclass(frozen=True, slots=True)
class TaskEnded(Request[bool]):
    """The instance's task ended with ``status``; ``record`` is its final record when the
    sender has it (otherwise the instance reads it from the store)."""

    task_id: str
    status: TaskStatus
    record: TaskRecord | None = None
    #: The task was never recorded: the process stopped between the command's transition
    #: and its task record. The instance submits it again.
    missing: bool = False
    #: Why the task failed, when not its status (its record cannot be read).
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Lost(Request[bool]):
    """Reconciliation found the instance missing on the hypervisor."""

    task_id: str


@dataclass(frozen=True, slots=True)
class Settle(Request[bool]):
    """Catch up with the store if this incarnation is behind it, then make sure the end of
    the running task (if any) is heard: what a heal asks of every instance caught mid-task."""


@dataclass(frozen=True, slots=True)
class GetInstance(Request[InstanceStatus]):
    """Ask for an :class:`InstanceStatus`."""


_POWER_STATES = frozenset(Power)
#: The task_states of moves and of a resize's verification.
_VERIFYING_TASKS: dict[str, tuple[str, str]] = {
    task: (to_active, to_stopped) for task, to_active, to_stopped in VERIFICATIONS.values()
}
_MOVE_TASKS = frozenset({task for _, task in MOVES.values()} | set(_VERIFYING_TASKS))
#: The events that end a verification.
_VERIFIED = frozenset(e for _, a, b in VERIFICATIONS.values() for e in (a, b))
#: The command behind each task_state (``deleting`` is the delete).
_COMMAND_OF_TASK: dict[str, str] = {c.task_state: a for a, c in COMMANDS.items()}
_COMMAND_OF_TASK["deleting"] = "delete"

#: Events a task reports as progress (with its payload), by the state they leave.
_PROGRESS = {
    "building/scheduling": "scheduled",
    "building/networking": "networked",
    "building/block_device_mapping": "volumes_attached",
}


class InstanceActor(FSMActor):
    """The actor that owns one instance. Built by the :class:`~stateward.actors.Fleet`.

    Args:
        services: what it needs of the fleet: the flow engine, submitting and watching
            tasks (see :class:`FleetServices`).
    """

    machine: ClassVar[Machine] = INSTANCE
    data_type = InstanceData
    topic: ClassVar[str] = "instance.{resource}.{event}"

    def __init__(self, services: FleetServices) -> None:
        super().__init__()
        self.services = services
        #: A commit was reported failed and the store could not be read back: the store
        #: may hold transitions this incarnation does not.
        self._behind = False

    # -- the data ------------------------------------------------------------------------

    @property
    def info(self) -> InstanceData:
        """The instance's data."""
        return cast(InstanceData, self.data)

    def apply(self, data: Any, record: TransitionRecord) -> Any:
        """Fold one journaled transition into the instance's data (pure)."""
        old = cast(InstanceData, data)
        replace = msgspec.structs.replace
        payload = record.payload if isinstance(record.payload, dict) else {}
        event = record.event
        if event == "boot":
            # A new generation (after ``deleted``) keeps nothing of the one before.
            spec = msgspec.convert({f: payload[f] for f in _SPEC_FIELDS if f in payload}, BootSpec)
            return InstanceData(
                **_data_of(spec),
                task_id=record.task_id,
                task_key=payload.get("idempotency_key"),
                epoch=old.epoch,  # epochs only grow, across generations too
            )
        if event == "scheduled":
            return replace(old, host=payload.get("host"), claim_id=payload.get("claim_id"))
        if event == "networked":
            return replace(old, ports=list(payload.get("ports", ())))
        if event in ("failed", "damaged", "lost"):
            ended: dict[str, Any] = {
                "task_id": None,
                "fault": record.task_id,
                "power": Power(payload.get("power", old.power)),
            }
            # What the failed task gave back (a reverted boot's claim and ports).
            if "host" in payload:
                ended["host"], ended["claim_id"] = payload["host"], payload.get("claim_id")
            if "ports" in payload:
                ended["ports"] = list(payload["ports"])
            return replace(old, **ended)
        if event == "deleted":
            return replace(
                old,
                host=None,
                claim_id=None,
                ports=[],
                power=Power.NOSTATE,
                task_id=None,
                move=None,
                moved_from=None,
                delete_pending=None,
            )
        if event in MOVES or event in VERIFICATIONS:
            return replace(
                old,
                task_id=record.task_id,
                task_key=payload.get("idempotency_key"),
                move=payload.get("move", old.move),
            )
        if event == "switched":
            return replace(
                old,
                host=payload["host"],
                claim_id=payload["claim_id"],
                epoch=payload["epoch"],
                flavor=payload["flavor"],
                vcpus=payload["vcpus"],
                ram_mb=payload["ram_mb"],
                disk_gb=payload["disk_gb"],
                moved_from=payload.get("moved_from"),
                reservation=payload.get("reservation", old.reservation),
            )
        if event == "delete_requested":
            return replace(old, delete_pending=payload.get("task_id"))
        if event in ("moved", *_VERIFIED):
            ended = {"task_id": None, "power": Power(payload.get("power", old.power))}
            if "fault" in payload:
                ended["fault"] = payload["fault"]
            if event != "moved":
                ended["moved_from"] = None  # verified: nothing to go back to
            return replace(old, **ended)
        if event in COMMANDS or event == "delete":
            changes: dict[str, Any] = {
                "task_id": record.task_id,
                "task_key": payload.get("idempotency_key"),
            }
            if event == "rebuild" and "image" in payload:
                changes["image"] = payload["image"]
            return replace(old, **changes)
        if record.target in ("active", "stopped", "paused", "suspended"):
            return replace(old, task_id=None, power=Power(payload.get("power", old.power)))
        return old

    def status(self) -> InstanceStatus:
        """The instance as its owner sees it."""
        info, state = self.info, self.state
        return InstanceStatus(
            id=self.context.resource_id,
            epoch=info.epoch,
            migration_id=(info.move or {}).get("migration_id"),
            reservation=info.reservation,
            state=state,
            vm_state=vm_state(state),
            task_state=task_state(state),
            power=info.power,
            host_id=info.host,
            flavor=info.flavor,
            image=info.image,
            group=info.group,
            group_policy=info.group_policy,
            ports=tuple(info.ports),
            volumes=tuple(info.volumes),
            task_id=info.task_id,
            fault=info.fault,
            revision=self.revision,
            allowed=self.actions(),
        )

    def actions(self) -> tuple[str, ...]:
        """The commands the current state allows."""
        allowed = self.instance.allowed()
        found = [a for a in _ALL_COMMANDS if a in allowed]
        if self.info.task_id is not None and task_state(self.state) in _MOVE_TASKS:
            found.append("delete")  # waits for the move, then deletes
        return tuple(found)

    # -- messages ------------------------------------------------------------------------

    async def rehydrate(self, reason: StartReason) -> None:
        """Load the instance, then pick up its running task's outcome if it ended meanwhile."""
        await super().rehydrate(reason)
        self._behind = False
        if self.info.task_id is not None:
            self.services.watch_task(self.context.resource_id, self.info.task_id)

    async def transition(
        self,
        event: str,
        *,
        payload: Any = None,
        task_id: str | None = None,
        cause: str | None = None,
        timers: Sequence[Timer] = (),
        cancel: Sequence[str] = (),
        documents: Sequence[Document] = (),
    ) -> TransitionRecord:
        """Fire ``event`` and commit it; a commit reported failed is read back.

        Raises:
            CommitFailed: the transition is not in the store (or the store could not be
                read back to tell); the instance is where it was.
        """
        try:
            return await super().transition(
                event,
                payload=payload,
                task_id=task_id,
                cause=cause,
                timers=timers,
                cancel=cancel,
                documents=documents,
            )
        except CommitFailed:
            landed = await self._read_back(event, task_id)
            if landed is None:
                raise
            return landed

    async def _read_back(self, event: str, task_id: str | None) -> TransitionRecord | None:
        """After a failed commit: the transition if the store holds it after all (the
        instance then holds it too), None if it does not."""
        resource_id = self.context.resource_id
        before = self.revision
        try:
            newer = await self.store.history(resource_id, after=before, limit=1)
            if newer:
                await FSMActor.rehydrate(self, StartReason.RESTART)
        except StatewardError:
            # Whether it landed is unknown: catch up before the next message, and have the
            # fleet ask again until the store answers.
            self._behind = True
            self.services.settle_later(resource_id)
            return None
        if not newer:
            return None
        record = newer[0]
        if record.sequence != before + 1 or (record.event, record.task_id) != (event, task_id):
            # Not ours (this incarnation was stale): carry on from what the store holds.
            if self.info.task_id is not None:
                self.services.watch_task(resource_id, self.info.task_id)
            return None
        self.context.system.bus.publish(
            self.topic.format(machine=self.machine.name, resource=resource_id, event=event),
            record,
        )
        return record

    async def _catch_up(self) -> bool:
        """Reload from the store if it holds transitions this incarnation does not, then make
        sure the end of the running task is heard; False if the store cannot be read (still
        behind, as far as anyone knows)."""
        resource_id = self.context.resource_id
        try:
            newer = await self.store.history(resource_id, after=self.revision, limit=1)
            if newer:
                await self.rehydrate(StartReason.RESTART)  # watches the task it finds
                return True
        except StoreUnavailable:
            return False
        self._behind = False
        if self.info.task_id is not None:
            self.services.watch_task(resource_id, self.info.task_id)
        return True

    async def receive(self, message: Any) -> Any:
        """Commands, progress and task ends."""
        if isinstance(message, Settle):
            return await self._catch_up()
        if self._behind:
            await self._catch_up()  # if it cannot, the commit's revision check stops a stale write
        if isinstance(message, Boot):
            return await self._boot(message)
        if isinstance(message, Act):
            if message.action in VERIFICATIONS:
                return await self._verify(message)
            if message.action == "delete" and task_state(self.state) in _MOVE_TASKS:
                return await self._delete_after_move(message)
            return await self._act(message)
        if isinstance(message, Move):
            return await self._move(message)
        if isinstance(message, Switch):
            return await self._switch(message)
        if isinstance(message, Progress):
            return await self._progress(message)
        if isinstance(message, TaskEnded):
            return await self._task_ended(message)
        if isinstance(message, GetInstance):
            return self.status()
        if isinstance(message, Lost):
            if not self.instance.can("lost"):
                return False
            await self.transition("lost", payload={"power": Power.NOSTATE}, task_id=message.task_id)
            return True
        return await super().receive(message)

    def _refuse(self, action: str) -> InvalidTransition:
        running = self.info.task_id
        return InvalidTransition(
            self.context.resource_id,
            state=self.state,
            event=action,
            allowed=self.actions(),
            note=f"task {running} is running" if running is not None else None,
        )

    async def _existing(self, key: str | None) -> TaskRecord | None:
        if key is None:
            return None
        try:
            return await self.services.engine.find(self.context.resource_id, key)
        except ResourceQuarantined as error:
            # Refused, not a crash: the instance is fine, that one task record is not.
            raise InvalidCommand(
                self.context.resource_id,
                expected="an idempotency key whose task record can be read (or a new key)",
                got=f"{key!r}, whose task is quarantined ({error})",
            ) from error

    async def _boot(self, command: Boot) -> TaskRecord:
        existing = await self._existing(command.idempotency_key)
        if existing is not None:
            return existing
        if not self.instance.can("boot"):
            # The name is taken until the instance is deleted; a boot with a key of its own
            # is a command this state refuses.
            if command.idempotency_key is None:
                raise DuplicateName("instance", self.context.resource_id)
            raise self._refuse("boot")
        task_id = self.context.env.ids.next("task")
        payload = command.spec.inputs()
        key = command.idempotency_key
        journaled = payload if key is None else {**payload, "idempotency_key": key}
        inputs = {
            **payload,
            "instance_id": self.context.resource_id,
            "task_id": task_id,
            "epoch": self.info.epoch,  # the boot keeps it: epochs only grow
        }
        return await self._start_task("boot", task_id, inputs, key, journaled)

    async def _act(self, command: Act) -> TaskRecord:
        action = command.action
        if action not in ACTIONS:
            raise InvalidArgument("action", expected=f"one of {', '.join(ACTIONS)}", got=action)
        existing = await self._existing(command.idempotency_key)
        if existing is not None:
            return existing
        if not self.instance.can(action):
            raise self._refuse(action)
        if action == "rebuild" and not command.image:
            raise InvalidArgument("image", expected="an image to rebuild from", got=command.image)
        running = self.info.task_id
        task_id = self.context.env.ids.next("task")
        payload: dict[str, Any] = {"image": command.image} if action == "rebuild" else {}
        if command.idempotency_key is not None:
            payload["idempotency_key"] = command.idempotency_key
        inputs = {
            "instance_id": self.context.resource_id,
            "task_id": task_id,
            "host": self.info.host,
            "claim_id": self.info.claim_id,
            "ports": list(self.info.ports),
            "volumes": list(self.info.volumes),
            "image": command.image or self.info.image,
            "epoch": self.info.epoch,
        }
        record = await self._start_task(
            action, task_id, inputs, command.idempotency_key, payload or None
        )
        if action == "delete" and running is not None:
            # Delete during a build: the delete is queued behind the build (the engine runs
            # one flow per resource), which is cancelled, and so reverted, off this actor.
            self.services.cancel_later(running)
        return record

    async def _start_task(
        self, action: str, task_id: str, inputs: dict[str, Any], key: str | None, payload: Any
    ) -> TaskRecord:
        """Fire the command ``action`` and submit its flow (of the same name) in one write:
        the transition and the task's first record are committed together, or neither is
        (and nothing runs)."""

        async def commit(document: Document) -> None:
            await self.transition(action, payload=payload, task_id=task_id, documents=(document,))

        handle = await self.services.submit(
            action, self.context.resource_id, task_id, inputs, key, commit=commit
        )
        return handle.record

    async def _submit(
        self, flow: str, task_id: str, inputs: dict[str, Any], key: str | None
    ) -> TaskRecord:
        try:
            handle = await self.services.submit(
                flow, self.context.resource_id, task_id, inputs, key
            )
        except BaseException:
            # The operation never started: go back rather than wait for a task that is not.
            await self.transition(
                self._failure_event(), task_id=task_id, cause="the task could not start"
            )
            raise
        return handle.record

    # -- moves ---------------------------------------------------------------------------

    async def _move(self, command: Move) -> TaskRecord:
        kind = InstanceAction(command.kind)
        resource_id = self.context.resource_id
        if kind not in MOVES:
            raise InvalidCommand(resource_id, expected=f"a move: {', '.join(MOVES)}", got=kind)
        existing = await self._existing(command.idempotency_key)
        if existing is not None:
            return existing
        if not self.instance.can(kind):
            raise self._refuse(kind)
        info = self.info
        if command.host is not None and command.host == info.host:
            raise InvalidCommand(
                resource_id,
                expected=f"a destination other than {info.host}, where it runs",
                got=f"host {command.host!r}",
            )
        flavor = command.flavor
        if kind is InstanceAction.RESIZE:
            if flavor is None or flavor.name == info.flavor:
                raise InvalidCommand(
                    resource_id,
                    expected=f"a flavor other than {info.flavor} for a resize",
                    got=f"flavor {flavor.name if flavor else None!r}",
                )
            sizes = {"flavor": flavor.name, "vcpus": flavor.vcpus, "ram_mb": flavor.ram_mb}
            sizes["disk_gb"] = flavor.disk_gb
        else:
            sizes = {
                "flavor": info.flavor,
                "vcpus": info.vcpus,
                "ram_mb": info.ram_mb,
                "disk_gb": info.disk_gb,
            }
        task_id = self.context.env.ids.next("task")
        move = {
            "instance_id": self.context.resource_id,
            "task_id": task_id,
            "migration_id": self.context.env.ids.next("migration"),
            "kind": kind.value,
            "source": info.host,
            "source_claim": info.claim_id,
            "requested_host": command.host,
            "epoch": info.epoch,
            "power": info.power.value,
            "old_flavor": info.flavor,
            **sizes,
            "image": info.image,
            "zone": info.zone,
            "group": info.group,
            "group_policy": info.group_policy,
            "reservation": None if command.off_lease else info.reservation,
        }
        payload: dict[str, Any] = {"move": move}
        if command.idempotency_key is not None:
            payload["idempotency_key"] = command.idempotency_key
        await self.transition(kind, payload=payload, task_id=task_id)
        return await self._submit(f"move.{kind.value}", task_id, move, command.idempotency_key)

    async def _switch(self, switch: Switch) -> bool:
        info = self.info
        if (info.epoch, info.host) == (switch.epoch, switch.host):
            return True  # the switch happened: a step run again after a crash
        if (
            switch.task_id != info.task_id
            or info.delete_pending is not None
            or not self.instance.can("switched")
            or switch.epoch != info.epoch + 1
        ):
            raise InvalidCommand(
                self.context.resource_id,
                expected=f"the switch of its running move to epoch {info.epoch + 1}, with no "
                "delete pending",
                got=f"task {switch.task_id} to epoch {switch.epoch}"
                + (" (a delete is pending)" if info.delete_pending else ""),
            )
        moved_from = {
            "host": info.host,
            "claim_id": info.claim_id,
            "flavor": info.flavor,
            "vcpus": info.vcpus,
            "ram_mb": info.ram_mb,
            "disk_gb": info.disk_gb,
        }
        payload = {
            "host": switch.host,
            "claim_id": switch.claim_id,
            "epoch": switch.epoch,
            "flavor": switch.flavor,
            "vcpus": switch.vcpus,
            "ram_mb": switch.ram_mb,
            "disk_gb": switch.disk_gb,
            "moved_from": moved_from,
            "reservation": (info.move or {}).get("reservation", info.reservation),
        }
        await self.transition("switched", payload=payload, task_id=switch.task_id)
        return True

    async def _verify(self, command: Act) -> TaskRecord:
        """``confirm_resize`` or ``revert_resize`` of a resize being verified."""
        action = InstanceAction(command.action)
        existing = await self._existing(command.idempotency_key)
        if existing is not None:
            return existing
        if not self.instance.can(action):
            raise self._refuse(action)
        info = self.info
        back = info.moved_from or {}
        move = info.move or {}
        task_id = self.context.env.ids.next("task")
        payload: dict[str, Any] | None = (
            {"idempotency_key": command.idempotency_key}
            if command.idempotency_key is not None
            else None
        )
        await self.transition(action, payload=payload, task_id=task_id)
        common = {
            "instance_id": self.context.resource_id,
            "task_id": task_id,
            "migration_id": move.get("migration_id"),
            "source": back.get("host"),
            "source_claim": back.get("claim_id"),
        }
        if action is InstanceAction.CONFIRM_RESIZE:
            inputs = {**common, "epoch": info.epoch - 1}
            flow = "move.confirm"
        else:
            inputs = {
                **common,
                "destination": info.host,
                "destination_claim": info.claim_id,
                "epoch": info.epoch,
                "power": info.power.value,
                "old_flavor": back.get("flavor"),
                "vcpus": back.get("vcpus"),
                "ram_mb": back.get("ram_mb"),
                "disk_gb": back.get("disk_gb"),
            }
            flow = "move.revert"
        return await self._submit(flow, task_id, inputs, command.idempotency_key)

    async def on_timer(self, fired: TimerFired) -> Any:
        """A resize's verification deadline: confirm it, if it is still being verified."""
        timer = fired.timer
        move = self.info.move or {}
        payload = timer.payload if isinstance(timer.payload, dict) else {}
        if (
            timer.name != AUTO_CONFIRM
            or self.state != "resized"
            or payload.get("migration_id") != move.get("migration_id")
        ):
            return None  # confirmed, reverted or deleted meanwhile: nothing to do
        key = f"{timer.id}:confirm"
        return await self._verify(Act(InstanceAction.CONFIRM_RESIZE, idempotency_key=key))

    async def _delete_after_move(self, command: Act) -> TaskRecord:
        """A delete during a move: cancelled (rolled back) if it has not switched yet, left
        to finish if it has; the delete's task is queued behind it and runs then."""
        existing = await self._existing(command.idempotency_key)
        if existing is not None:
            return existing
        info = self.info
        if info.delete_pending is not None:
            return await self.services.engine.get(info.delete_pending)
        task_id = self.context.env.ids.next("task")
        payload: dict[str, Any] = {"task_id": task_id}
        if command.idempotency_key is not None:
            payload["idempotency_key"] = command.idempotency_key
        running = info.task_id
        await self.transition("delete_requested", payload=payload, task_id=task_id)
        inputs = {
            "instance_id": self.context.resource_id,
            "task_id": task_id,
            "host": None,  # wherever the move leaves it: the delete looks
            "claim_id": None,
            "ports": list(info.ports),
            "volumes": list(info.volumes),
            "image": info.image,
            "epoch": None,
        }
        handle = await self.services.submit(
            "delete", self.context.resource_id, task_id, inputs, command.idempotency_key
        )
        if running is not None and not self._switched():
            self.services.cancel_later(running)
        return handle.record

    def _switched(self) -> bool:
        """Whether the running move (or the resize being verified) has switched."""
        move = self.info.move
        return move is not None and self.info.epoch > move.get("epoch", self.info.epoch)

    async def _move_ended(self, ended: TaskEnded) -> bool:
        """The end of a move's task (or of a resize's confirmation or revert)."""
        info = self.info
        move = info.move or {}
        migration_id = move.get("migration_id")
        status = ended.status
        record = ended.record
        if record is None and status.is_terminal and not ended.missing:
            record = await self.services.engine.get(ended.task_id)
        state = self.state
        verifying = task_state(state) in _VERIFYING_TASKS
        why = f": {record.error_message}" if record is not None and record.error_message else ""
        reason = {"reason": ended.cause or f"{status.value}{why}"}
        # The migration hears the verdict before the instance records it: a crash between
        # the two leaves the instance in its task, whose end is reported again, and the
        # migration ignores a verdict it has.
        if status is TaskStatus.SUCCEEDED:
            power = (_final_power(record) if record is not None else None) or info.power
            if verifying:
                to_active, to_stopped = _VERIFYING_TASKS[task_state(state) or ""]
                event = to_active if power is Power.RUNNING else to_stopped
            else:
                event = "moved"
            await self.transition(event, payload={"power": power}, task_id=ended.task_id)
        elif not status.is_terminal:
            return False
        elif verifying and info.epoch > move.get("epoch", info.epoch) + 1:
            # A revert that moved back and then could not finish: it lives on its source.
            await self._migration(migration_id, "park", reason)
            to_active, to_stopped = _VERIFYING_TASKS[task_state(state) or ""]
            event = to_active if info.power is Power.RUNNING else to_stopped
            await self.transition(event, payload={"fault": ended.task_id}, task_id=ended.task_id)
        elif verifying and task_state(state) == "resize_reverting":
            # A revert that failed before moving back undid its steps: still being verified
            # (its deadline still set).
            await self.transition("failed", task_id=ended.task_id, cause=reason["reason"])
        elif self._switched() and not verifying:
            # After the switch a move only rolls forward: it lives on its destination.
            await self._migration(migration_id, "park", reason)
            await self.transition("moved", payload={"fault": ended.task_id}, task_id=ended.task_id)
        else:
            damaged = status in (TaskStatus.REVERT_FAILED, TaskStatus.PARKED) or verifying
            if damaged:
                event = "park"
            else:
                event = "cancelled" if status is TaskStatus.CANCELLED else "failed"
            await self._migration(migration_id, event, reason)
            await self.transition(
                "damaged" if damaged else "failed",
                task_id=ended.task_id,
                cause=reason["reason"],
            )
        pending = self.info.delete_pending
        if pending is not None and self.instance.can("delete"):
            await self.transition("delete", task_id=pending)
            # The delete ran behind the move and may have ended already, its report then
            # stale to the move's state: hear it again.
            self.services.watch_task(self.context.resource_id, pending)
        return True

    async def _migration(self, migration_id: str | None, event: str, payload: Any) -> None:
        if migration_id is None:
            return
        ref = self.services.find_migration(migration_id)
        if ref is not None:
            await ref.ask(Advance(event, payload))

    async def _progress(self, progress: Progress) -> bool:
        if progress.task_id != self.info.task_id or not self.instance.can(progress.event):
            return False  # a repeat after a resume, or a task that is no longer ours
        await self.transition(progress.event, payload=progress.payload, task_id=progress.task_id)
        return True

    async def _task_ended(self, ended: TaskEnded) -> bool:
        if ended.task_id != self.info.task_id or self.instance.is_stable:
            return False  # stale: a cancelled build, or already handled
        if task_state(self.state) in _MOVE_TASKS and not ended.missing:
            return await self._move_ended(ended)
        if ended.missing:
            try:
                recorded = await self._recorded(ended.task_id)
            except StoreUnavailable:
                self.services.settle_later(self.context.resource_id)  # look again later
                return False
            if recorded:
                return False  # submitted again already (another report of the same loss)
            await self._resubmit(ended.task_id)
            return True
        status = ended.status
        if status is TaskStatus.SUCCEEDED:
            record = ended.record
            if record is None:
                record = await self.services.engine.get(ended.task_id)
            await self._missed_progress(record)
            state = self.state
            done = {"building/spawning": "spawned"}.get(state) or _completion(state)
            final = _final_power(record) or self.info.power
            await self.transition(done, payload={"power": final}, task_id=ended.task_id)
        elif status is TaskStatus.REVERT_FAILED or status is TaskStatus.PARKED:
            given_back = _given_back(ended.record) if ended.record is not None else {}
            await self.transition(
                "damaged",
                payload=given_back or None,
                task_id=ended.task_id,
                cause=ended.cause or status.value,
            )
        elif status.is_terminal:
            # What the steps that did succeed left the power at (a rebuild that failed after
            # its disk was redone left the instance shut down), and what they gave back.
            failure: dict[str, Any] = {}
            if ended.record is not None:
                failure = _given_back(ended.record)
                power = _final_power(ended.record)
                if power is not None:
                    failure["power"] = power
            await self.transition(
                self._failure_event(),
                payload=failure or None,
                task_id=ended.task_id,
                cause=status.value,
            )
        else:
            return False
        return True

    async def _recorded(self, task_id: str) -> bool:
        """Whether the task has a record (in this engine or in the store)."""
        if self.services.engine.handle(task_id) is not None:
            return True
        try:
            await self.services.engine.get(task_id)
        except TaskNotFound:
            return False
        return True

    async def _resubmit(self, task_id: str) -> None:
        """Carry out the command the committed transition started, whose task was lost:
        its flow again, under the same task id, from the instance's own data."""
        state = self.state
        info = self.info
        common = {"instance_id": self.context.resource_id, "task_id": task_id}
        if task_state(state) in _VERIFYING_TASKS:
            # A confirmation or revert whose task was lost: back to verification, where
            # the owner (or the deadline) asks again.
            await self.transition("failed", task_id=task_id, cause="the task was lost")
            return
        if task_state(state) in _MOVE_TASKS and info.move is not None:
            flow = f"move.{info.move['kind']}"
            inputs = dict(info.move)
        elif vm_state(state) == "building" and task_state(state) != "deleting":
            flow = "boot"
            inputs = {**common, **info.boot_spec().inputs(), "epoch": info.epoch}
        else:
            flow = _COMMAND_OF_TASK.get(task_state(state) or "", "delete")
            inputs = {
                **common,
                "host": info.host,
                "claim_id": info.claim_id,
                "ports": list(info.ports),
                "volumes": list(info.volumes),
                "image": info.image,
                "epoch": info.epoch,
            }
        self.context.log.warning(
            "task lost before it was recorded; submitting it again", task_id=task_id, flow=flow
        )
        await self._submit(flow, task_id, inputs, info.task_key)

    def _failure_event(self) -> str:
        """``failed``, or ``damaged`` where the machine has no way back (a delete that
        failed may have half happened): never leave the instance stuck in a task state."""
        return "failed" if self.instance.can("failed") else "damaged"

    async def _missed_progress(self, record: TaskRecord) -> None:
        """Fire the progress events a crash made the task miss, from its step results."""
        results = {s.name: s.result for s in record.steps}
        while self.state in _PROGRESS:
            event = _PROGRESS[self.state]
            payload = {
                "scheduled": results.get("schedule"),
                "networked": {"ports": results.get("allocate_ports") or []},
                "volumes_attached": None,
            }[event]
            await self.transition(event, payload=payload, task_id=record.id)


def _completion(state: str) -> str:
    for event in INSTANCE.allowed(state):
        if event not in ("failed", "damaged"):
            return event
    raise StatewardError(f"no completion event from {state}")


#: Steps whose success makes the instance hold something, and their revert gives it back.
_HOLDING_STEPS = {"schedule": ("host", "claim_id"), "allocate_ports": ("ports",)}
#: Steps that give something back for good (a delete's), and what.
_RELEASING_STEPS = {"release_claim": ("host", "claim_id"), "release_ports": ("ports",)}
_NOTHING: dict[str, Any] = {"host": None, "claim_id": None, "ports": []}


def _given_back(record: TaskRecord) -> dict[str, Any]:
    """What a failed task gave back, as the data it clears: a boot's claim and ports once
    its revert released them, a half-done delete's once its steps did."""
    released: dict[str, Any] = {}
    for step in record.steps:
        fields = _HOLDING_STEPS.get(step.name)
        if fields is not None and step.status in (StepStatus.REVERTED, StepStatus.PENDING):
            released.update((f, _NOTHING[f]) for f in fields)
        fields = _RELEASING_STEPS.get(step.name)
        if fields is not None and step.status is StepStatus.SUCCEEDED:
            released.update((f, _NOTHING[f]) for f in fields)
    return released


def _final_power(record: TaskRecord) -> Power | None:
    """The power state the task's last done power-changing step reported, if any.

    Reverted steps count too: a power change has nothing that undoes it.
    """
    for step in reversed(record.steps):
        done = step.status in (StepStatus.SUCCEEDED, StepStatus.REVERTED)
        if done and isinstance(step.result, str) and step.result in _POWER_STATES:
            return Power(step.result)
    return None

"""The driver boundary: the only place that touches the outside world.

A :class:`Driver` spawns and destroys instances, powers them, and manages their ports and
volumes. Every operation carries an *operation id* and is idempotent on it: running the same
operation again (after a retry, or when a flow is resumed after a crash) does the work at
most once and returns the first result. :meth:`Driver.describe` lists what really exists, so
the store can be reconciled with the world.

Moves are a protocol of their own, fenced by *epochs*. An instance's current guest lives under
an epoch (0 at boot); a move prepares an *incoming* copy on the destination under the next
epoch, transfers the guest into it and, once the instance recorded its new owner, finishes
it: the incoming copy becomes current and the old one *stale*, to be cleaned up. Every call
names the epoch it acts under, and the driver refuses (:class:`StaleEpoch`) a call whose epoch
is older than the current guest's: an owner from before a move can no longer touch the guest,
and cleanup never removes a current guest.

A real driver wraps libvirt or openstacksdk behind the same protocol: it keeps the operation
ids it completed (in the hypervisor's metadata, or a small table of its own) so that a repeat
returns the first result, and it maps the backend's errors to :class:`DriverError`.

:class:`FakeDriver` is an in-memory hypervisor for tests, benchmarks and the simulator: it
enforces the same rules a real one does (no spawning an instance twice, no power on a missing
one, ports and volumes owned by one instance) and can be told to be slow or to fail.
"""

from __future__ import annotations

import enum
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from stateward.runtime import Environment, InvalidArgument, StatewardError

__all__ = (
    "Power",
    "Operation",
    "DriverError",
    "StaleEpoch",
    "GuestRole",
    "DriverGuest",
    "DriverInstance",
    "DriverView",
    "Driver",
    "FakeDriver",
)


class Power(enum.StrEnum):
    """An instance's power state, as the hypervisor reports it."""

    NOSTATE = "nostate"
    RUNNING = "running"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    SHUTDOWN = "shutdown"


class Operation(enum.StrEnum):
    """What a driver can be asked to do."""

    SPAWN = "spawn"
    DESTROY = "destroy"
    POWER_ON = "power_on"
    POWER_OFF = "power_off"
    REBOOT = "reboot"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    SUSPEND = "suspend"
    RESUME = "resume"
    REBUILD = "rebuild"
    ALLOCATE_PORT = "allocate_port"
    FREE_PORT = "free_port"
    ATTACH_VOLUME = "attach_volume"
    DETACH_VOLUME = "detach_volume"
    PREPARE_MOVE = "prepare_move"
    TRANSFER = "transfer"
    FINISH_MOVE = "finish_move"
    ABORT_MOVE = "abort_move"
    CLEANUP = "cleanup"
    EVACUATE = "evacuate"


class GuestRole(enum.StrEnum):
    """What a copy of an instance is to the hypervisors."""

    #: The instance itself: the copy every call (power, rebuild, destroy) acts on.
    CURRENT = "current"
    #: Being moved into, on a move's destination; not yet the instance.
    INCOMING = "incoming"
    #: Moved away from, on a move's source: waits for its cleanup.
    STALE = "stale"


class DriverError(StatewardError):
    """A driver operation failed; nothing was changed by it.

    Args:
        operation: which operation.
        op_id: its operation id.
        target: the instance, port or volume it was about.
        reason: what went wrong.
    """

    def __init__(self, operation: Operation, *, op_id: str, target: str, reason: str) -> None:
        self.operation = operation
        self.op_id = op_id
        self.target = target
        self.reason = reason
        super().__init__(f"driver {operation.value} of {target} ({op_id}) failed: {reason}")


class StaleEpoch(DriverError):
    """A call named an epoch older than the current guest's: its caller is no longer the
    instance's owner. Nothing was changed.

    Args:
        seen: the current guest's epoch.
        given: the epoch the call named.
    """

    def __init__(
        self, operation: Operation, *, op_id: str, target: str, seen: int, given: int
    ) -> None:
        self.seen = seen
        self.given = given
        super().__init__(
            operation,
            op_id=op_id,
            target=target,
            reason=f"it is at epoch {seen}, the call named {given}: the caller is a stale owner",
        )


class DriverInstance(msgspec.Struct, frozen=True):
    """An instance as the hypervisor sees it: its current guest."""

    id: str
    host_id: str
    image: str
    power: Power
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    epoch: int = 0


class DriverGuest(msgspec.Struct, frozen=True):
    """One copy of an instance on one host: the current guest, or a move's incoming or
    stale copy."""

    instance_id: str
    host_id: str
    epoch: int
    role: GuestRole
    power: Power


class DriverView(msgspec.Struct, frozen=True):
    """Everything that exists on the driver's side: instances (their current guests), every
    copy of every instance, and ports and volumes with the instance each belongs to."""

    instances: tuple[DriverInstance, ...]
    ports: Mapping[str, str]
    volumes: Mapping[str, str]
    guests: tuple[DriverGuest, ...] = ()


@runtime_checkable
class Driver(Protocol):
    """The hypervisor, network and block-storage operations stateward needs.

    Every method takes an ``op_id`` first and is idempotent on it. Those that act on a guest
    take the ``epoch`` they act under and raise :class:`StaleEpoch` if it is older than the
    current guest's.
    """

    async def spawn(
        self, op_id: str, instance_id: str, *, host: str, image: str, epoch: int = 0
    ) -> None:
        """Create the instance on ``host`` from ``image``, powered off, under ``epoch``."""
        ...

    async def destroy(self, op_id: str, instance_id: str, *, epoch: int = 0) -> None:
        """Remove the instance, every copy of it, and what is attached to it; gone is fine."""
        ...

    async def set_power(
        self, op_id: str, instance_id: str, operation: Operation, *, epoch: int = 0
    ) -> Power:
        """Power on, off, reboot, pause, unpause, suspend or resume; the new power state."""
        ...

    async def rebuild(self, op_id: str, instance_id: str, *, image: str, epoch: int = 0) -> None:
        """Re-create the instance's disk from ``image``."""
        ...

    async def allocate_port(self, op_id: str, instance_id: str, *, network: str) -> str:
        """A new port on ``network`` for the instance; its id."""
        ...

    async def free_port(self, op_id: str, port_id: str) -> None:
        """Release a port; gone is fine."""
        ...

    async def attach_volume(self, op_id: str, instance_id: str, *, volume_id: str) -> None:
        """Attach a volume to the instance."""
        ...

    async def detach_volume(self, op_id: str, instance_id: str, *, volume_id: str) -> None:
        """Detach a volume; not attached is fine."""
        ...

    async def prepare_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """Make room for an incoming copy on ``destination`` under ``epoch`` (newer than the
        current guest's)."""
        ...

    async def transfer(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int, live: bool
    ) -> None:
        """Copy the guest into its incoming copy. A cold transfer copies a stopped guest's
        disk; a live one copies the running guest and ends with it running on
        ``destination``, the source copy stale."""
        ...

    async def finish_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """The incoming copy becomes the instance (powered off after a cold transfer), the
        old one stale. Done already (a live transfer) is fine."""
        ...

    async def abort_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """Give up a move not finished: the incoming copy goes, and a guest a live transfer
        already moved runs on its source again. Refused once the move is finished."""
        ...

    async def cleanup(self, op_id: str, instance_id: str, *, host: str, epoch: int) -> None:
        """Remove the copy left on ``host`` by a move under ``epoch``; never the current
        guest; gone is fine."""
        ...

    async def evacuate(
        self, op_id: str, instance_id: str, *, destination: str, image: str, epoch: int
    ) -> None:
        """Rebuild the instance on ``destination`` from ``image`` under ``epoch``, powered
        off, because its host is down; the copy on the down host becomes stale."""
        ...

    def where(self, instance_id: str) -> DriverGuest | None:
        """The instance's current guest, or None if it has none."""
        ...

    async def describe(self) -> DriverView:
        """What exists right now."""
        ...


_POWER_AFTER: Mapping[Operation, tuple[frozenset[Power], Power]] = {
    Operation.POWER_ON: (frozenset({Power.SHUTDOWN, Power.NOSTATE}), Power.RUNNING),
    Operation.POWER_OFF: (
        frozenset({Power.RUNNING, Power.PAUSED, Power.SUSPENDED}),
        Power.SHUTDOWN,
    ),
    Operation.REBOOT: (frozenset({Power.RUNNING, Power.SHUTDOWN}), Power.RUNNING),
    Operation.PAUSE: (frozenset({Power.RUNNING}), Power.PAUSED),
    Operation.UNPAUSE: (frozenset({Power.PAUSED}), Power.RUNNING),
    Operation.SUSPEND: (frozenset({Power.RUNNING}), Power.SUSPENDED),
    Operation.RESUME: (frozenset({Power.SUSPENDED}), Power.RUNNING),
}


class _Instance:
    """The current guest of an instance, and what belongs to the instance."""

    __slots__ = ("epoch", "finished", "host", "image", "ports", "power", "volumes")

    def __init__(self, host: str, image: str, epoch: int = 0) -> None:
        self.host = host
        self.image = image
        self.epoch = epoch
        self.power = Power.SHUTDOWN
        self.ports: list[str] = []
        self.volumes: list[str] = []
        #: False after a live transfer, until the move is finished.
        self.finished = True


class _Copy:
    """A move's incoming or stale copy of an instance."""

    __slots__ = ("epoch", "host", "image", "power", "role", "transferred")

    def __init__(
        self, host: str, image: str, epoch: int, role: GuestRole, power: Power = Power.SHUTDOWN
    ) -> None:
        self.host = host
        self.image = image
        self.epoch = epoch
        self.role = role
        self.power = power
        self.transferred = False


class _SavedInstance(msgspec.Struct, frozen=True):
    host: str
    image: str
    power: Power
    ports: list[str]
    volumes: list[str]
    epoch: int = 0
    finished: bool = True


class _SavedCopy(msgspec.Struct, frozen=True):
    instance_id: str
    host: str
    image: str
    epoch: int
    role: GuestRole
    power: Power
    transferred: bool


class _SavedState(msgspec.Struct, frozen=True):
    """What a durable FakeDriver keeps on disk: the hypervisor's world and its done ops."""

    instances: dict[str, _SavedInstance]
    ports: dict[str, str]
    volumes: dict[str, str]
    done: dict[str, Any]
    port_ids: int
    copies: list[_SavedCopy] = []
    down: list[str] = []


#: Mode of a state file the driver creates.
_STATE_FILE_MODE = 0o600
_state_encoder = msgspec.msgpack.Encoder()
_state_decoder = msgspec.msgpack.Decoder(_SavedState)


class _Owned(dict[str, str]):
    """Items (ports, volumes) and their owners, with each owner's items at hand: what an
    instance owns is looked up, not searched for among every item of the cloud."""

    def __init__(self, pairs: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._items: dict[str, dict[str, None]] = {}
        for item, owner in (pairs or {}).items():
            self[item] = owner

    def __setitem__(self, item: str, owner: str) -> None:
        self.pop(item, None)
        super().__setitem__(item, owner)
        self._items.setdefault(owner, {})[item] = None

    def __delitem__(self, item: str) -> None:
        owner = self[item]
        super().__delitem__(item)
        items = self._items[owner]
        del items[item]
        if not items:
            del self._items[owner]

    def pop(self, item: str, default: Any = None) -> Any:
        if item not in self:
            return default
        owner = self[item]
        del self[item]
        return owner

    def of(self, owner: str) -> list[str]:
        """The items ``owner`` holds, sorted."""
        return sorted(self._items.get(owner, ()))


class FakeDriver:
    """An in-memory hypervisor that behaves like a real one.

    Args:
        env: the clock for latency and the seeded random stream for failures; a fresh
            real environment by default.
        latency: seconds each operation takes (per operation, or one number for all).
        failures: probability in [0, 1] that an operation fails (per operation, or one
            number for all). A failed operation changes nothing and is not recorded as
            done, so retrying it with the same op id can succeed.
        hangs: probability that an operation stalls for ``hang_seconds`` before it goes on
            (a hypervisor that stopped answering); callers' timeouts should fire first.
        hang_seconds: how long a stalled operation stalls.
        state_path: a file that makes the hypervisor outlive the process: its state is
            loaded from there when the file exists, and written there (atomically: a temp
            file, fsync, rename) after every operation that completes, so a SIGKILL of the
            process using the driver loses nothing the driver did.
    """

    def __init__(
        self,
        *,
        env: Environment | None = None,
        latency: float | Mapping[Operation, float] = 0.0,
        failures: float | Mapping[Operation, float] = 0.0,
        hangs: float | Mapping[Operation, float] = 0.0,
        hang_seconds: float = 600.0,
        state_path: str | Path | None = None,
    ) -> None:
        if state_path is not None and not isinstance(state_path, str | Path):
            raise InvalidArgument("state_path", expected="a str or Path, or None", got=state_path)
        self._env = env if env is not None else Environment()
        self._rng = self._env.random("driver.failures")
        self.latency = latency
        self.failures = failures
        self.hangs = hangs
        if (
            isinstance(hang_seconds, bool)
            or not isinstance(hang_seconds, int | float)
            or not (0 < hang_seconds < math.inf)
        ):
            raise InvalidArgument("hang_seconds", expected="seconds > 0", got=hang_seconds)
        self.hang_seconds = float(hang_seconds)
        self._instances: dict[str, _Instance] = {}
        self._ports = _Owned()
        self._volumes = _Owned()
        self._done: dict[str, Any] = {}
        self._port_ids = 0
        self._copies: dict[str, list[_Copy]] = {}
        self._down: set[str] = set()
        #: How many times each operation actually changed something (repeats excluded).
        self.calls: dict[Operation, int] = dict.fromkeys(Operation, 0)
        #: How many failures and hangs were injected.
        self.injected_failures = 0
        self.injected_hangs = 0
        #: Where the state is kept across processes, if anywhere.
        self.state_path = Path(state_path) if state_path is not None else None
        if self.state_path is not None and self.state_path.exists():
            self._load(self.state_path)

    @property
    def latency(self) -> dict[Operation, float]:
        """Seconds each operation takes on the clock (set a number or a partial mapping)."""
        return self._latency

    @latency.setter
    def latency(self, value: float | Mapping[Operation, float]) -> None:
        self._latency = self._per_operation("latency", value, upper=math.inf)

    @property
    def failures(self) -> dict[Operation, float]:
        """Probability that each operation fails (set a number or a partial mapping)."""
        return self._failures

    @failures.setter
    def failures(self, value: float | Mapping[Operation, float]) -> None:
        self._failures = self._per_operation("failures", value, upper=1.0)

    @property
    def hangs(self) -> dict[Operation, float]:
        """Probability that each operation hangs (set a number or a partial mapping)."""
        return self._hangs

    @hangs.setter
    def hangs(self, value: float | Mapping[Operation, float]) -> None:
        self._hangs = self._per_operation("hangs", value, upper=1.0)

    def _load(self, path: Path) -> None:
        try:
            saved = _state_decoder.decode(path.read_bytes())
        except msgspec.DecodeError as exc:
            raise InvalidArgument(
                "state_path", expected="a FakeDriver state file", got=str(path)
            ) from exc
        for instance_id, item in saved.instances.items():
            instance = self._instances[instance_id] = _Instance(item.host, item.image, item.epoch)
            instance.power = item.power
            instance.ports = list(item.ports)
            instance.volumes = list(item.volumes)
            instance.finished = item.finished
        for saved_copy in saved.copies:
            copy = _Copy(
                saved_copy.host,
                saved_copy.image,
                saved_copy.epoch,
                saved_copy.role,
                saved_copy.power,
            )
            copy.transferred = saved_copy.transferred
            self._copies.setdefault(saved_copy.instance_id, []).append(copy)
        self._down = set(saved.down)
        self._ports = _Owned(saved.ports)
        self._volumes = _Owned(saved.volumes)
        self._done = dict(saved.done)
        self._port_ids = saved.port_ids

    def _save(self, path: Path) -> None:
        """Write the whole state next to ``path``, make it durable, then rename it over."""
        state = _SavedState(
            instances={
                instance_id: _SavedInstance(
                    i.host, i.image, i.power, i.ports, i.volumes, i.epoch, i.finished
                )
                for instance_id, i in self._instances.items()
            },
            ports=dict(self._ports),
            volumes=dict(self._volumes),
            done=self._done,
            port_ids=self._port_ids,
            copies=[
                _SavedCopy(instance_id, c.host, c.image, c.epoch, c.role, c.power, c.transferred)
                for instance_id, copies in self._copies.items()
                for c in copies
            ],
            down=sorted(self._down),
        )
        temporary = path.with_name(path.name + ".tmp")
        # The state names every instance, port and volume: readable by its owner only,
        # unless the owner gave the existing file another mode.
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = _STATE_FILE_MODE
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with open(descriptor, "wb") as file:
            os.fchmod(descriptor, mode)  # whatever the umask, or a leftover temp file's mode
            file.write(_state_encoder.encode(state))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    @staticmethod
    def _per_operation(
        name: str, value: float | Mapping[Operation, float], *, upper: float
    ) -> dict[Operation, float]:
        values = value if isinstance(value, Mapping) else dict.fromkeys(Operation, value)
        result = dict.fromkeys(Operation, 0.0)
        for operation, amount in values.items():
            if not isinstance(operation, Operation):
                raise InvalidArgument(name, expected="a mapping of Operation", got=operation)
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise InvalidArgument(name, expected="numbers", got=amount)
            if not 0 <= amount <= upper:
                raise InvalidArgument(name, expected=f"numbers in [0, {upper}]", got=amount)
            result[operation] = float(amount)
        return result

    async def _begin(self, operation: Operation, op_id: str, target: str) -> tuple[bool, Any]:
        """Wait the latency, roll the failure dice; (already done, its result)."""
        if not isinstance(op_id, str) or not op_id:
            raise InvalidArgument("op_id", expected="a non-empty str", got=op_id)
        if op_id in self._done:
            return True, self._done[op_id]
        delay = self.latency[operation]
        if self.hangs[operation] and self._rng.random() < self.hangs[operation]:
            delay += self.hang_seconds
            self.injected_hangs += 1
        if delay:
            await self._env.clock.sleep(delay)
        if op_id in self._done:  # a concurrent repeat finished while we waited
            return True, self._done[op_id]
        chance = self.failures[operation]
        if chance and self._rng.random() < chance:
            self.injected_failures += 1
            raise DriverError(operation, op_id=op_id, target=target, reason="injected failure")
        return False, None

    def _finish(self, operation: Operation, op_id: str, result: Any = None) -> Any:
        self._done[op_id] = result
        self.calls[operation] += 1
        if self.state_path is not None:
            self._save(self.state_path)
        return result

    def _instance(
        self, operation: Operation, op_id: str, instance_id: str, epoch: int | None = None
    ) -> _Instance:
        """The current guest, reachable, and owned by a caller at ``epoch`` (if given)."""
        instance = self._instances.get(instance_id)
        if instance is None:
            raise DriverError(operation, op_id=op_id, target=instance_id, reason="no such instance")
        if epoch is not None:
            self._fence(operation, op_id, instance_id, instance, epoch)
            if epoch > instance.epoch:
                raise DriverError(
                    operation,
                    op_id=op_id,
                    target=instance_id,
                    reason=f"it is at epoch {instance.epoch}: epoch {epoch} is not finished",
                )
        self._reachable(operation, op_id, instance_id, instance.host)
        return instance

    @staticmethod
    def _fence(
        operation: Operation, op_id: str, instance_id: str, instance: _Instance, epoch: int
    ) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InvalidArgument("epoch", expected="an int >= 0", got=epoch)
        if epoch < instance.epoch:
            raise StaleEpoch(
                operation, op_id=op_id, target=instance_id, seen=instance.epoch, given=epoch
            )

    def _reachable(self, operation: Operation, op_id: str, target: str, host: str) -> None:
        if host in self._down:
            raise DriverError(operation, op_id=op_id, target=target, reason=f"host {host} is down")

    def _copy(self, instance_id: str, host: str, role: GuestRole) -> _Copy | None:
        for copy in self._copies.get(instance_id, ()):
            if copy.host == host and copy.role is role:
                return copy
        return None

    def _drop(self, instance_id: str, copy: _Copy) -> None:
        copies = self._copies[instance_id]
        copies.remove(copy)
        if not copies:
            del self._copies[instance_id]

    def _promote(self, instance_id: str, incoming: _Copy, power: Power) -> _Instance:
        """``incoming`` becomes the current guest; the current one becomes stale."""
        old = self._instances[instance_id]
        self._drop(instance_id, incoming)
        # A guest on a down host was not touched: it keeps its power (and may still run:
        # the epoch fences it). One that moved away is off.
        power_left = old.power if old.host in self._down else Power.SHUTDOWN
        self._copies.setdefault(instance_id, []).append(
            _Copy(old.host, old.image, old.epoch, GuestRole.STALE, power_left)
        )
        new = _Instance(incoming.host, incoming.image, incoming.epoch)
        self._instances[instance_id] = new
        new.power = power
        new.ports, new.volumes = old.ports, old.volumes
        return new

    async def spawn(
        self, op_id: str, instance_id: str, *, host: str, image: str, epoch: int = 0
    ) -> None:
        """Create the instance, powered off."""
        done, _ = await self._begin(Operation.SPAWN, op_id, instance_id)
        if done:
            return
        if instance_id in self._instances:
            raise DriverError(
                Operation.SPAWN, op_id=op_id, target=instance_id, reason="it already exists"
            )
        self._reachable(Operation.SPAWN, op_id, instance_id, host)
        instance = self._instances[instance_id] = _Instance(host, image, epoch)
        instance.ports = self._ports.of(instance_id)
        instance.volumes = self._volumes.of(instance_id)
        self._finish(Operation.SPAWN, op_id)

    async def destroy(self, op_id: str, instance_id: str, *, epoch: int = 0) -> None:
        """Remove the instance and every copy of it, and detach its volumes; its ports are
        freed. A guest on a down host goes with the rest (as a host's records are purged)."""
        done, _ = await self._begin(Operation.DESTROY, op_id, instance_id)
        if done:
            return
        instance = self._instances.get(instance_id)
        if instance is not None:
            self._fence(Operation.DESTROY, op_id, instance_id, instance, epoch)
        self._instances.pop(instance_id, None)
        self._copies.pop(instance_id, None)
        # Ports and volumes may be bound before the instance exists (as in Neutron and
        # Cinder): everything owned by the id goes.
        for port in self._ports.of(instance_id):
            del self._ports[port]
        for volume in self._volumes.of(instance_id):
            del self._volumes[volume]
        self._finish(Operation.DESTROY, op_id)

    async def set_power(
        self, op_id: str, instance_id: str, operation: Operation, *, epoch: int = 0
    ) -> Power:
        """Change the power state, if the current one allows it."""
        if operation not in _POWER_AFTER:
            raise InvalidArgument(
                "operation",
                expected="a power operation",
                got=getattr(operation, "value", operation),
            )
        done, result = await self._begin(operation, op_id, instance_id)
        if done:
            return Power(result)
        instance = self._instance(operation, op_id, instance_id, epoch)
        allowed, after = _POWER_AFTER[operation]
        if instance.power not in allowed:
            raise DriverError(
                operation,
                op_id=op_id,
                target=instance_id,
                reason=f"power is {instance.power.value}",
            )
        instance.power = after
        return Power(self._finish(operation, op_id, after.value))

    async def rebuild(self, op_id: str, instance_id: str, *, image: str, epoch: int = 0) -> None:
        """Re-create the disk from ``image``; the instance ends powered off."""
        done, _ = await self._begin(Operation.REBUILD, op_id, instance_id)
        if done:
            return
        instance = self._instance(Operation.REBUILD, op_id, instance_id, epoch)
        instance.image = image
        instance.power = Power.SHUTDOWN
        self._finish(Operation.REBUILD, op_id)

    async def allocate_port(self, op_id: str, instance_id: str, *, network: str) -> str:
        """A new port; ports may be made before the instance exists (as Neutron allows)."""
        done, result = await self._begin(Operation.ALLOCATE_PORT, op_id, instance_id)
        if done:
            return str(result)
        self._port_ids += 1
        port = f"port-{network}-{self._port_ids:06d}"
        self._ports[port] = instance_id
        instance = self._instances.get(instance_id)
        if instance is not None:
            instance.ports.append(port)
        return str(self._finish(Operation.ALLOCATE_PORT, op_id, port))

    async def free_port(self, op_id: str, port_id: str) -> None:
        """Release the port; unknown ports are fine."""
        done, _ = await self._begin(Operation.FREE_PORT, op_id, port_id)
        if done:
            return
        owner = self._ports.pop(port_id, None)
        instance = self._instances.get(owner) if owner is not None else None
        if instance is not None and port_id in instance.ports:
            instance.ports.remove(port_id)
        self._finish(Operation.FREE_PORT, op_id)

    async def attach_volume(self, op_id: str, instance_id: str, *, volume_id: str) -> None:
        """Attach (or reserve, before the instance exists); one instance per volume."""
        done, _ = await self._begin(Operation.ATTACH_VOLUME, op_id, volume_id)
        if done:
            return
        instance = self._instances.get(instance_id)
        owner = self._volumes.get(volume_id)
        if owner is not None and owner != instance_id:
            raise DriverError(
                Operation.ATTACH_VOLUME,
                op_id=op_id,
                target=volume_id,
                reason=f"it is attached to {owner}",
            )
        if owner is None:
            self._volumes[volume_id] = instance_id
            if instance is not None:
                instance.volumes.append(volume_id)
        self._finish(Operation.ATTACH_VOLUME, op_id)

    async def detach_volume(self, op_id: str, instance_id: str, *, volume_id: str) -> None:
        """Detach; not attached is fine."""
        done, _ = await self._begin(Operation.DETACH_VOLUME, op_id, volume_id)
        if done:
            return
        if self._volumes.get(volume_id) == instance_id:
            del self._volumes[volume_id]
            instance = self._instances.get(instance_id)
            if instance is not None and volume_id in instance.volumes:
                instance.volumes.remove(volume_id)
        self._finish(Operation.DETACH_VOLUME, op_id)

    def _moving(
        self, operation: Operation, op_id: str, instance_id: str, destination: str, epoch: int
    ) -> tuple[_Instance, _Copy | None]:
        """The current guest a move under ``epoch`` to ``destination`` acts on, and the
        incoming copy made for it, if any."""
        instance = self._instances.get(instance_id)
        if instance is None:
            raise DriverError(operation, op_id=op_id, target=instance_id, reason="no such instance")
        self._fence(operation, op_id, instance_id, instance, epoch)
        self._reachable(operation, op_id, instance_id, destination)
        incoming = self._copy(instance_id, destination, GuestRole.INCOMING)
        if incoming is not None and incoming.epoch != epoch:
            incoming = None
        return instance, incoming

    async def prepare_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """An incoming copy on ``destination``, under an epoch newer than the current one."""
        operation = Operation.PREPARE_MOVE
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance, incoming = self._moving(operation, op_id, instance_id, destination, epoch)
        if epoch == instance.epoch:
            raise StaleEpoch(
                operation, op_id=op_id, target=instance_id, seen=instance.epoch, given=epoch
            )
        if destination == instance.host:
            raise DriverError(
                operation, op_id=op_id, target=instance_id, reason=f"it is on {destination}"
            )
        if incoming is None:
            # A copy left by an earlier attempt under an older epoch is replaced, and so is
            # the stale copy a move back finds on its old host (its disk is taken over).
            for copy in list(self._copies.get(instance_id, ())):
                if copy.role is GuestRole.INCOMING or (
                    copy.role is GuestRole.STALE and copy.host == destination
                ):
                    self._drop(instance_id, copy)
            self._copies.setdefault(instance_id, []).append(
                _Copy(destination, instance.image, epoch, GuestRole.INCOMING)
            )
        self._finish(operation, op_id)

    async def transfer(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int, live: bool
    ) -> None:
        """Copy a stopped guest's disk (cold), or the running guest itself (live: it ends
        running on ``destination``)."""
        operation = Operation.TRANSFER
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance, incoming = self._moving(operation, op_id, instance_id, destination, epoch)
        if instance.epoch == epoch and instance.host == destination:
            self._finish(operation, op_id)  # a live transfer that completed already
            return
        if incoming is None:
            raise DriverError(
                operation, op_id=op_id, target=instance_id, reason="the move is not prepared"
            )
        self._reachable(operation, op_id, instance_id, instance.host)
        if live:
            if instance.power is not Power.RUNNING:
                raise DriverError(
                    operation,
                    op_id=op_id,
                    target=instance_id,
                    reason=f"a live transfer needs a running guest; power is {instance.power}",
                )
            self._promote(instance_id, incoming, Power.RUNNING).finished = False
        else:
            if instance.power is Power.RUNNING:
                raise DriverError(
                    operation, op_id=op_id, target=instance_id, reason="the guest is running"
                )
            incoming.image = instance.image
            incoming.transferred = True
        self._finish(operation, op_id)

    async def finish_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """The transferred copy becomes the instance, powered off; the old one stale."""
        operation = Operation.FINISH_MOVE
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance, incoming = self._moving(operation, op_id, instance_id, destination, epoch)
        if instance.epoch == epoch and instance.host == destination:
            instance.finished = True
        elif incoming is None or not incoming.transferred:
            raise DriverError(
                operation, op_id=op_id, target=instance_id, reason="nothing was transferred"
            )
        else:
            self._promote(instance_id, incoming, Power.SHUTDOWN)
        self._finish(operation, op_id)

    async def abort_move(
        self, op_id: str, instance_id: str, *, destination: str, epoch: int
    ) -> None:
        """Drop the incoming copy; a live-transferred guest runs on its source again."""
        operation = Operation.ABORT_MOVE
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance = self._instances.get(instance_id)
        if instance is not None and instance.epoch == epoch and instance.host == destination:
            if instance.finished:
                raise DriverError(
                    operation, op_id=op_id, target=instance_id, reason="the move is finished"
                )
            source = next(
                (
                    c
                    for c in self._copies.get(instance_id, ())
                    if c.role is GuestRole.STALE and c.epoch < epoch
                ),
                None,
            )
            if source is None:
                raise DriverError(
                    operation, op_id=op_id, target=instance_id, reason="its source copy is gone"
                )
            if source.host not in self._down:
                # A live transfer rolled back runs on its source again. An evacuation's source
                # is down: its copy there was never touched and stays as it is.
                self._reachable(operation, op_id, instance_id, source.host)
            self._drop(instance_id, source)
            back = self._instances[instance_id] = _Instance(source.host, source.image, source.epoch)
            # A live guest comes back as it ran; an untouched copy on a down host as it was.
            back.power = source.power if source.host in self._down else instance.power
            back.ports, back.volumes = instance.ports, instance.volumes
        else:
            if instance is not None:
                self._fence(operation, op_id, instance_id, instance, epoch)
            incoming = self._copy(instance_id, destination, GuestRole.INCOMING)
            if incoming is not None and incoming.epoch == epoch:
                self._drop(instance_id, incoming)
        self._finish(operation, op_id)

    async def cleanup(self, op_id: str, instance_id: str, *, host: str, epoch: int) -> None:
        """Remove the stale copy on ``host``; refuse to touch the current guest."""
        operation = Operation.CLEANUP
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance = self._instances.get(instance_id)
        if instance is not None:
            self._fence(operation, op_id, instance_id, instance, epoch)
            if instance.host == host:
                raise DriverError(
                    operation,
                    op_id=op_id,
                    target=instance_id,
                    reason=f"the copy on {host} is the current guest",
                )
        stale = self._copy(instance_id, host, GuestRole.STALE)
        if stale is not None and stale.epoch < epoch:
            self._reachable(operation, op_id, instance_id, host)
            self._drop(instance_id, stale)
        self._finish(operation, op_id)

    async def evacuate(
        self, op_id: str, instance_id: str, *, destination: str, image: str, epoch: int
    ) -> None:
        """Rebuild on ``destination``, powered off; the copy on the down host is stale."""
        operation = Operation.EVACUATE
        done, _ = await self._begin(operation, op_id, instance_id)
        if done:
            return
        instance, _ = self._moving(operation, op_id, instance_id, destination, epoch)
        if epoch == instance.epoch and instance.host == destination:
            self._finish(operation, op_id)
            return
        if epoch == instance.epoch:
            raise StaleEpoch(
                operation, op_id=op_id, target=instance_id, seen=instance.epoch, given=epoch
            )
        if instance.host not in self._down:
            raise DriverError(
                operation,
                op_id=op_id,
                target=instance_id,
                reason=f"its host {instance.host} is up: move it instead",
            )
        rebuilt = _Copy(destination, image, epoch, GuestRole.INCOMING)
        self._copies.setdefault(instance_id, []).append(rebuilt)
        # Not finished until finish_move: an evacuation abandoned before its switch goes
        # back to the copy on the down host, untouched.
        self._promote(instance_id, rebuilt, Power.SHUTDOWN).finished = False
        self._finish(operation, op_id)

    def where(self, instance_id: str) -> DriverGuest | None:
        """The current guest of ``instance_id``, or None."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return None
        return DriverGuest(
            instance_id, instance.host, instance.epoch, GuestRole.CURRENT, instance.power
        )

    def host_down(self, host: str) -> None:
        """The host stops answering: calls that touch a guest on it fail, its guests stay
        (and keep their power) until it is back or they are evacuated."""
        self._down.add(host)
        if self.state_path is not None:
            self._save(self.state_path)

    def host_up(self, host: str) -> None:
        """The host answers again, with the guests it had."""
        self._down.discard(host)
        if self.state_path is not None:
            self._save(self.state_path)

    @property
    def down(self) -> frozenset[str]:
        """The hosts that do not answer."""
        return frozenset(self._down)

    def lose_host(self, host: str) -> tuple[str, ...]:
        """The host is gone for good, and its instances with it (their ports and volumes,
        which live elsewhere, stay behind for reconciliation to find)."""
        lost = tuple(sorted(i for i, inst in self._instances.items() if inst.host == host))
        for instance_id in lost:
            del self._instances[instance_id]
        for instance_id in list(self._copies):
            for copy in [c for c in self._copies[instance_id] if c.host == host]:
                self._drop(instance_id, copy)
        if self.state_path is not None:
            self._save(self.state_path)
        return lost

    async def describe(self) -> DriverView:
        """Everything that exists, in a stable order."""
        guests = [
            DriverGuest(instance_id, i.host, i.epoch, GuestRole.CURRENT, i.power)
            for instance_id, i in self._instances.items()
        ]
        guests += [
            DriverGuest(instance_id, c.host, c.epoch, c.role, c.power)
            for instance_id, copies in self._copies.items()
            for c in copies
        ]
        return DriverView(
            instances=tuple(
                DriverInstance(
                    instance_id,
                    i.host,
                    i.image,
                    i.power,
                    tuple(i.ports),
                    tuple(i.volumes),
                    i.epoch,
                )
                for instance_id, i in sorted(self._instances.items())
            ),
            ports=dict(sorted(self._ports.items())),
            volumes=dict(sorted(self._volumes.items())),
            guests=tuple(sorted(guests, key=lambda g: (g.instance_id, g.epoch, g.host_id))),
        )

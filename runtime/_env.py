"""The injected environment: clock, seeded random streams and id generation.

Runtime code takes time, randomness and ids from here and nowhere else, so that a run under
:class:`VirtualClock` with a fixed seed is exactly repeatable.

Both clocks read the running event loop's time. :class:`VirtualClock` owns a
:class:`VirtualEventLoop` whose time only moves when every task is waiting: the loop then
jumps straight to its next timer. Timers, ``asyncio.sleep``, ``asyncio.wait`` timeouts and anyio
cancel scopes therefore all run on virtual time with no change to the code that uses them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import selectors
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from ._errors import InvalidArgument, LifecycleError

__all__ = (
    "Clock",
    "RealClock",
    "VirtualClock",
    "VirtualEventLoop",
    "VIRTUAL_EPOCH",
    "IdGenerator",
    "Environment",
)

_T = TypeVar("_T")

#: Wall-clock time at virtual zero: 2026-01-01T00:00:00Z, so virtual timestamps read as dates.
VIRTUAL_EPOCH = 1_767_225_600.0


@runtime_checkable
class Clock(Protocol):
    """Where the runtime reads time and sleeps.

    ``monotonic()`` must read the running event loop's time (as both clocks here do): the
    runtime's timers (ask deadlines, shutdown timeouts) are loop timers, and they must agree
    with the clock.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for deadlines and intervals."""
        ...

    def now(self) -> float:
        """Wall-clock time in seconds since the Unix epoch; for records shown to people."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class RealClock:
    """The clock of the running event loop, and the system's wall clock."""

    __slots__ = ()

    def monotonic(self) -> float:
        """The running loop's time."""
        return asyncio.get_running_loop().time()

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` on the running loop."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "RealClock()"


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until a timer is due, moves virtual time there.

    Real file descriptors are still polled (without waiting) so that the loop's self-pipe and
    any real I/O keep working; only when nothing is ready does virtual time jump.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing is scheduled at all: only real I/O can wake the loop, so wait for it.
            return self._inner.select(None)
        self._clock._jump(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: idle periods take no wall time at all."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock if clock is not None else VirtualClock()
        super().__init__(_JumpingSelector(self.clock))

    def time(self) -> float:
        return self.clock._now


class VirtualClock:
    """Virtual time for a :class:`VirtualEventLoop`.

    Time starts at ``start`` (monotonic) and at :data:`VIRTUAL_EPOCH` + ``start`` (wall), and
    advances only when the loop has nothing ready to run.

    Example:
        >>> clock = VirtualClock()
        >>> clock.run(clock.sleep(3600))  # returns at once; an hour passed virtually
        >>> clock.monotonic()
        3600.0
    """

    __slots__ = ("_now", "jumps")

    def __init__(self, *, start: float = 0.0) -> None:
        if (
            isinstance(start, bool)
            or not isinstance(start, int | float)
            or not 0 <= start < float("inf")
        ):
            raise InvalidArgument("start", expected="a non-negative number of seconds", got=start)
        self._now = float(start)
        self.jumps = 0

    def _jump(self, seconds: float) -> None:
        self._now += seconds
        self.jumps += 1

    def monotonic(self) -> float:
        """Virtual seconds since the clock started (plus ``start``)."""
        return self._now

    def now(self) -> float:
        """Virtual wall time: :data:`VIRTUAL_EPOCH` plus the virtual seconds elapsed."""
        return VIRTUAL_EPOCH + self._now

    async def sleep(self, seconds: float) -> None:
        """Sleep on the running loop, which must be this clock's :class:`VirtualEventLoop`."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualEventLoop) or loop.clock is not self:
            raise LifecycleError(
                "VirtualClock.sleep() needs the clock's own VirtualEventLoop; "
                "run the program with clock.run(main()) or clock.new_event_loop()"
            )
        await asyncio.sleep(seconds)

    def new_event_loop(self) -> VirtualEventLoop:
        """A new event loop driven by this clock (a ``loop_factory`` for ``asyncio.Runner``)."""
        return VirtualEventLoop(self)

    def run(self, main: Coroutine[Any, Any, _T]) -> _T:
        """Run ``main`` to completion on a new virtual-time loop, like ``asyncio.run``."""
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(main)

    @staticmethod
    def current() -> VirtualClock:
        """The clock of the running :class:`VirtualEventLoop`."""
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualEventLoop):
            raise LifecycleError(
                f"the running loop is a {type(loop).__name__}, not a VirtualEventLoop"
            )
        return loop.clock

    def __repr__(self) -> str:
        return f"VirtualClock(monotonic={self._now:g})"


def _derive_seed(seed: int, name: str) -> int:
    # sha256 rather than hash(): str hashes are salted per process, and replay must not be.
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class IdGenerator:
    """Unique ids with a readable prefix, from a seeded stream: ``"task-9f2c41d07ab3e815"``."""

    __slots__ = ("_random",)

    def __init__(self, rng: random.Random) -> None:
        self._random = rng

    def next(self, prefix: str) -> str:
        """A new id: ``prefix``, a dash and 64 random bits in hex."""
        return f"{prefix}-{self._random.getrandbits(64):016x}"


class Environment:
    """Time, randomness and ids for one actor system.

    Args:
        clock: the clock; :class:`RealClock` unless given.
        seed: the root seed of every random stream and of the id generator. Drawn from the
            operating system when not given, and then recorded in :attr:`seed` so that a run
            can still be replayed.
    """

    __slots__ = ("_streams", "clock", "ids", "seed")

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        seed: int | None = None,
    ) -> None:
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise InvalidArgument("seed", expected="an int", got=seed)
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidArgument("clock", expected="a Clock (monotonic, now, sleep)", got=clock)
        self.clock: Clock = clock if clock is not None else RealClock()
        self.seed: int = seed if seed is not None else int.from_bytes(os.urandom(8), "big")
        self._streams: dict[str, random.Random] = {}
        self.ids = IdGenerator(self.random("ids"))

    @classmethod
    def virtual(
        cls,
        seed: int,
        *,
        clock: VirtualClock | None = None,
    ) -> Environment:
        """A fully deterministic environment: virtual clock and the given seed."""
        return cls(
            clock=clock if clock is not None else VirtualClock(),
            seed=seed,
        )

    def random(self, stream: str) -> random.Random:
        """The random stream named ``stream``: independent of every other stream, same each run.

        Separate streams per concern keep one concern's draws from shifting another's when
        code changes.
        """
        rng = self._streams.get(stream)
        if rng is None:
            rng = self._streams[stream] = random.Random(_derive_seed(self.seed, stream))
        return rng

    def __repr__(self) -> str:
        return f"Environment(clock={self.clock!r}, seed={self.seed})"

"""Durable timers: a message an actor schedules for a time on the clock, kept in the store.

A timer is a document (collection ``"timer"``) written in the same transaction as the
transition that sets it (``FSMActor.transition(..., timers=...)``), so a timer exists exactly
when the transition that wanted it does. The system's :class:`Timers` keeps the pending ones
in a heap and, at each one's time on the injected clock, asks its target a
:class:`TimerFired`. An FSM actor handles it by firing the timer's name as an event; that
transition marks the timer fired in its own write, so the event is in the history exactly
once. A handler that makes no transition gets the timer marked fired after it returns.

After a crash the next system loads the pending timers and fires those whose time passed
while no process ran: delivery is at least once (a handler that is not a transition may see a
timer again, with the same id), never lost. Cancelling is a write too: a cancelled timer
never fires again, even after a restart.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ._check import text_problem
from ._errors import (
    CommandRejected,
    CommitFailed,
    InvalidArgument,
    StatewardError,
    StoreUnavailable,
    short_repr,
)
from ._log import get_logger
from ._request import Request
from ._store import Document, Write, decode, encode

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ("Timer", "TimerFired", "Timers")

#: The store collection timers are kept in.
TIMER_COLLECTION = "timer"
#: Seconds before a delivery that failed is tried again, doubling up to the maximum.
RETRY_FIRST, RETRY_MAX = 1.0, 60.0
#: Documents read per page when the pending timers are loaded.
LOAD_PAGE = 1000


class Timer(msgspec.Struct, frozen=True):
    """A message scheduled for a time on the clock.

    Attributes:
        id: unique; a handler can use it to be idempotent.
        owner: the resource that set it.
        at: when it fires, in the clock's ``now()`` time (seconds since the epoch).
        name: what it is for; an FSM actor fires it as an event by default.
        payload: plain data given with it.
        target: the address it is delivered to; its owner when None.
    """

    id: str
    owner: str
    at: float
    name: str
    payload: Any = None
    target: str | None = None

    @property
    def address(self) -> str:
        """Where it is delivered."""
        return self.target if self.target is not None else self.owner


@dataclass(frozen=True, slots=True)
class TimerFired(Request[Any]):
    """Delivered to a timer's target at its time (or on recovery, when that time passed
    while no process ran).

    Attributes:
        timer: the timer.
        late: seconds after its time that it was delivered.
    """

    timer: Timer
    late: float


def make_timer(
    owner: str,
    name: str,
    *,
    timer_id: str,
    at: float,
    payload: Any = None,
    target: str | None = None,
) -> Timer:
    """A checked :class:`Timer` (typed errors for every bad field)."""
    if (problem := text_problem(name)) is not None or not name:
        raise InvalidArgument("name", expected=problem or "a non-empty str", got=name)
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise InvalidArgument("at", expected="a finite time in seconds", got=at)
    if target is not None and (problem := text_problem(target)) is not None:
        raise InvalidArgument("to", expected=f"an address: {problem}", got=target)
    if payload is not None:
        try:
            payload = decode(encode(payload))
        except (TypeError, ValueError, OverflowError, msgspec.MsgspecError) as exc:
            raise InvalidArgument(
                "payload", expected="plain data (dicts, lists, str, numbers)", got=payload
            ) from exc
    return Timer(timer_id, owner, float(at), name, payload, target)


def _document(timer: Timer, version: int, status: str, now: float) -> Document:
    return Document(
        TIMER_COLLECTION,
        timer.id,
        version,
        encode(timer),
        resource_id=timer.owner,
        status=status,
        created=timer.at,
        updated=now,
    )


class Timers:
    """The pending timers of one actor system, and their deliveries.

    Reached as ``system.timers``. FSM actors set and cancel timers with their transitions;
    :meth:`schedule` and :meth:`cancel` do it on their own write, for any actor.
    """

    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._pending: dict[str, Timer] = {}
        self._heap: list[tuple[float, str]] = []
        self._handle: asyncio.TimerHandle | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._loader: asyncio.Task[None] | None = None
        self._closed = False
        #: How many timers were delivered and handled.
        self.fired = 0
        self._log = get_logger("stateward.timers")

    # -- what actors call ---------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether the pending timers of earlier processes are loaded (shortly after open)."""
        return self._loader is not None and self._loader.done()

    def pending(self, owner: str | None = None) -> tuple[Timer, ...]:
        """The timers not fired nor cancelled (of one owner, when given), soonest first."""
        found = [t for t in self._pending.values() if owner is None or t.owner == owner]
        return tuple(sorted(found, key=lambda t: (t.at, t.id)))

    def new(
        self,
        owner: str,
        name: str,
        *,
        at: float | None = None,
        after: float | None = None,
        payload: Any = None,
        to: str | None = None,
    ) -> Timer:
        """A timer for ``owner``, at ``at`` or ``after`` seconds from now (not yet set)."""
        if (at is None) == (after is None):
            raise InvalidArgument("at", expected="exactly one of at= or after=", got=(at, after))
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, int | float) or not after >= 0:
                raise InvalidArgument("after", expected="seconds >= 0", got=after)
            at = self._system.env.clock.now() + after
        assert at is not None
        timer_id = self._system.env.ids.next("timer")
        return make_timer(owner, name, timer_id=timer_id, at=at, payload=payload, target=to)

    async def schedule(self, timer: Timer) -> Timer:
        """Set ``timer`` on a write of its own."""
        await self._system.store.commit(Write(documents=self.documents(added=(timer,))))
        self.committed(added=(timer,))
        return timer

    async def cancel(self, timer_id: str) -> bool:
        """Cancel a pending timer on a write of its own; False if none is pending."""
        if timer_id not in self._pending:
            return False
        await self._system.store.commit(Write(documents=self.documents(cancel=(timer_id,))))
        self.committed(cancel=(timer_id,))
        return True

    # -- the write, and what follows it ---------------------------------------------------

    def documents(
        self,
        *,
        added: tuple[Timer, ...] = (),
        cancel: tuple[str, ...] = (),
        fired: str | None = None,
    ) -> tuple[Document, ...]:
        """The timer documents of one write: new ones, cancelled and fired ones."""
        now = self._system.env.clock.now()
        docs = [_document(t, 1, "pending", now) for t in added]
        for timer_id in cancel:
            timer = self._pending.get(timer_id)
            if timer is None:
                raise InvalidArgument(
                    "cancel", expected="the id of a pending timer", got=short_repr(timer_id)
                )
            docs.append(_document(timer, 2, "cancelled", now))
        if fired is not None and fired in self._pending:
            docs.append(_document(self._pending[fired], 2, "fired", now))
        return tuple(docs)

    def committed(
        self,
        *,
        added: tuple[Timer, ...] = (),
        cancel: tuple[str, ...] = (),
        fired: str | None = None,
    ) -> None:
        """The write holding those documents committed: the heap follows it."""
        for timer_id in (*cancel, *((fired,) if fired is not None else ())):
            self._pending.pop(timer_id, None)
        for timer in added:
            self._add(timer)

    # -- delivery -----------------------------------------------------------------------

    def _start(self) -> None:
        self._loader = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        """Read every pending timer (retrying while the store is unavailable)."""
        delay = RETRY_FIRST
        while True:
            try:
                before: tuple[float, str] | None = None
                found: list[Timer] = []
                while True:
                    page = await self._system.store.find_documents(
                        TIMER_COLLECTION, status="pending", before=before, limit=LOAD_PAGE
                    )
                    found += [msgspec.msgpack.decode(d.body, type=Timer) for d in page]
                    if len(page) < LOAD_PAGE:
                        break
                    before = (page[-1].created, page[-1].key)
                break
            except StoreUnavailable as exc:
                self._log.warning("pending timers not loaded yet", reason=exc.reason)
                await self._system.env.clock.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        for timer in found:
            if timer.id not in self._pending:
                self._add(timer)

    def _add(self, timer: Timer) -> None:
        if self._closed:
            return
        self._pending[timer.id] = timer
        self._push(timer.at, timer.id)

    def _push(self, at: float, timer_id: str) -> None:
        heapq.heappush(self._heap, (at, timer_id))
        if self._heap[0] == (at, timer_id):
            self._arm()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._heap or self._closed:
            return
        delay = max(0.0, self._heap[0][0] - self._system.env.clock.now())
        self._handle = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._handle = None
        now = self._system.env.clock.now()
        while self._heap and self._heap[0][0] <= now:
            _, timer_id = heapq.heappop(self._heap)
            timer = self._pending.get(timer_id)
            if timer is None:
                continue  # cancelled, or fired already
            task = asyncio.get_running_loop().create_task(self._deliver(timer))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        self._arm()

    async def _deliver(self, timer: Timer) -> None:
        system = self._system
        clock = system.env.clock
        delay = RETRY_FIRST
        while timer.id in self._pending and system.is_running:
            try:
                if timer.address not in system:
                    raise LookupError(f"no actor at {timer.address!r} yet")
                await system.lookup(timer.address).ask(TimerFired(timer, clock.now() - timer.at))
            except CommitFailed as exc:
                error: BaseException = exc  # its handler's transition did not commit
            except CommandRejected as exc:
                # The target refused it (its state has moved on): it is handled.
                self._log.info("timer refused", timer=timer.id, target=timer.address, error=exc)
                await self._mark_fired(timer)
                return
            except (StatewardError, LookupError, TimeoutError) as exc:
                error = exc
            else:
                await self._mark_fired(timer)
                return
            self._log.warning(
                "timer not delivered; retrying",
                timer=timer.id,
                target=timer.address,
                error=str(error),
                retry_in=delay,
            )
            await clock.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _mark_fired(self, timer: Timer) -> None:
        self.fired += 1
        if timer.id not in self._pending:
            return  # its handler's transition marked it
        try:
            await self._system.store.commit(Write(documents=self.documents(fired=timer.id)))
        except StatewardError as exc:
            # Still pending in the store: it fires again after a restart (at least once).
            self._log.warning("fired timer not recorded", timer=timer.id, error=str(exc))
        self._pending.pop(timer.id, None)

    async def _close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        tasks = set(self._deliveries)
        if self._loader is not None:
            tasks.add(self._loader)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._heap.clear()
        self._pending.clear()

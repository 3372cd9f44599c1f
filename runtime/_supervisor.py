"""Supervisors with Erlang/OTP semantics.

A supervisor owns an ordered set of children (actors and other supervisors) and reacts to their
failures by its strategy:

* ``ONE_FOR_ONE``: restart only the failed child;
* ``ONE_FOR_ALL``: stop every other child (in reverse start order), then restart all of them
  (in start order);
* ``REST_FOR_ONE``: stop the children started after the failed one, then restart the failed
  child and those.

A child's :class:`~stateward.runtime.Restart` type says whether it is restarted at all. More
than ``max_restarts`` restarts within ``period`` seconds make the supervisor give up: it stops
all its children and fails itself with :class:`~stateward.runtime.RestartIntensityExceeded`,
which its own supervisor then handles like any child failure. At the root, that stops the
actor system.

A supervisor handles the signals of its children one at a time in its own task, so two
failures never interleave their restarts. Each signal names the incarnation it is about; a
signal about an incarnation that has since been replaced is stale and ignored.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from typing import TYPE_CHECKING, Any

from ._actor import Restart, _Cell, _Live
from ._errors import InvalidArgument, RestartIntensityExceeded

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ("Strategy", "Supervisor")


class Strategy(enum.Enum):
    """How a supervisor restarts its children when one fails."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Supervisor:
    """A node of the supervision tree. Made by :meth:`ActorSystem.spawn_supervisor`."""

    def __init__(
        self,
        system: ActorSystem,
        address: str,
        *,
        strategy: Strategy,
        max_restarts: int,
        period: float,
        parent: Supervisor | None,
        restart: Restart,
        shutdown_timeout: float,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise InvalidArgument("strategy", expected="a Strategy", got=strategy)
        if not isinstance(max_restarts, int) or max_restarts < 0:
            raise InvalidArgument("max_restarts", expected="an int >= 0", got=max_restarts)
        if not isinstance(period, int | float) or not period > 0:
            raise InvalidArgument("period", expected="a positive number of seconds", got=period)
        self._system = system
        self.address = address
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.period = float(period)
        self.parent = parent
        self.restart = restart
        self.shutdown_timeout = shutdown_timeout
        # Insertion order is start order; a dict keeps removal O(1) for millions of children.
        self._children: dict[str, _Cell | Supervisor] = {}
        self._restarts: deque[float] = deque()
        self._signals: asyncio.Queue[tuple[str, Any, Any, BaseException | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self.closed: str | None = None

    # -- public, read-only -------------------------------------------------------------

    @property
    def children(self) -> tuple[str, ...]:
        """Addresses of the children, in start order."""
        return tuple(self._children)

    def __repr__(self) -> str:
        return (
            f"Supervisor({self.address!r}, {self.strategy.value}, children={len(self._children)})"
        )

    # -- signals from children (called synchronously from their tasks) -----------------

    def _signal_failure(self, cell: _Cell, live: _Live, error: BaseException) -> None:
        self._post(("failed", cell, live, error))

    def _signal_exit(self, cell: _Cell, live: _Live) -> None:
        self._post(("exited", cell, live, None))

    def _signal_child_supervisor_failed(self, child: Supervisor, error: BaseException) -> None:
        self._post(("failed", child, child._generation, error))

    def _post(self, signal: tuple[str, Any, Any, BaseException | None]) -> None:
        if self.closed is None:
            self._signals.put_nowait(signal)

    def _adopt(self, child: _Cell | Supervisor) -> None:
        self._children[child.address] = child

    def _forget(self, address: str) -> None:
        self._children.pop(address, None)

    # -- the supervisor's own task ------------------------------------------------------

    def _start(self) -> None:
        if self._task is None:
            self._task = self._system._loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            kind, child, incarnation, error = await self._signals.get()
            if self._is_stale(child, incarnation) or not self._system.is_running:
                continue  # stale, or the system is shutting down: nothing to restart
            try:
                if kind == "failed":
                    await self._on_failure(child, error)
                else:
                    await self._on_exit(child)
            except _Escalated:
                return

    def _is_stale(self, child: _Cell | Supervisor, incarnation: Any) -> bool:
        if self._children.get(child.address) is not child:
            return True
        if isinstance(child, Supervisor):
            return bool(child._generation != incarnation)
        return child.live is not incarnation

    async def _on_exit(self, child: _Cell | Supervisor) -> None:
        if child.restart is Restart.PERMANENT:
            await self._restart_for(child, None)
        else:
            await self._remove(child, "it stopped itself")

    async def _on_failure(self, child: _Cell | Supervisor, error: BaseException | None) -> None:
        system = self._system
        if child.restart is Restart.TEMPORARY:
            await self._remove(child, "it crashed and is a temporary child")
            return
        await self._restart_for(child, error)
        system._log.info(
            "child restarted",
            supervisor=self.address,
            child=child.address,
            strategy=self.strategy.value,
        )

    async def _restart_for(self, child: _Cell | Supervisor, error: BaseException | None) -> None:
        now = self._system.env.clock.monotonic()
        self._restarts.append(now)
        while self._restarts and self._restarts[0] <= now - self.period:
            self._restarts.popleft()
        if len(self._restarts) > self.max_restarts:
            await self._escalate(child, error)
        order = list(self._children.values())
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected = [child]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = order
        else:
            affected = order[order.index(child) :]
        for other in reversed(affected):
            if other is not child:
                await _terminate(other)
        for each in affected:
            _restart(each)
        self._system._counters.restarts += len(affected)

    async def _escalate(self, child: _Cell | Supervisor, error: BaseException | None) -> None:
        failure = RestartIntensityExceeded(
            self.address, max_restarts=self.max_restarts, period=self.period, child=child.address
        )
        failure.__cause__ = error
        self._system._counters.escalations += 1
        self._system._log.error(
            "restart intensity exceeded; escalating",
            supervisor=self.address,
            child=child.address,
            max_restarts=self.max_restarts,
            period=self.period,
        )
        await self._terminate_children()
        if self.parent is None:
            self._system._fail(failure)
        else:
            self.parent._signal_child_supervisor_failed(self, failure)
        raise _Escalated

    # -- acting on children -------------------------------------------------------------

    async def _terminate_children(self) -> None:
        for child in reversed(list(self._children.values())):
            await _terminate(child)

    async def _remove(self, child: _Cell | Supervisor, reason: str) -> None:
        await _terminate(child)
        self._forget(child.address)
        if isinstance(child, Supervisor):
            await child._close(reason)
        else:
            child._remove(reason)

    def _restart_self(self) -> None:
        """Start a new generation: fresh restart history, every child restarted."""
        self._generation += 1
        self._restarts.clear()
        self._task = None
        self._start()
        for child in list(self._children.values()):
            _restart(child)

    async def _shutdown(self, reason: str, deadline: float) -> None:
        """Stop every child in reverse start order, each within its own timeout."""
        clock = self._system.env.clock
        for child in reversed(list(self._children.values())):
            remaining = max(0.0, deadline - clock.monotonic())
            timeout = min(child.shutdown_timeout, remaining)
            if isinstance(child, Supervisor):
                await child._shutdown(reason, deadline)
                child._forget_all()
                await child._close(reason)
            else:
                if timeout > 0:
                    await child._terminate(timeout)
                child._remove(reason)
            self._forget(child.address)
        await self._close(reason)

    def _forget_all(self) -> None:
        self._children.clear()

    async def _close(self, reason: str) -> None:
        if self.closed is not None:
            return
        for child in list(self._children.values()):
            if isinstance(child, Supervisor):
                await child._close(reason)
            else:
                child._remove(reason)
        self._children.clear()
        self.closed = reason
        self._system._unregister_supervisor(self)
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})

    async def _terminate_self(self) -> None:
        await self._terminate_children()
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})


class _Escalated(Exception):
    """Ends a supervisor's signal loop after it escalated."""


async def _terminate(child: _Cell | Supervisor) -> None:
    if isinstance(child, Supervisor):
        await child._terminate_self()
    else:
        await child._terminate(child.spec.shutdown_timeout)


def _restart(child: _Cell | Supervisor) -> None:
    if isinstance(child, Supervisor):
        child._restart_self()
    else:
        child._restart()

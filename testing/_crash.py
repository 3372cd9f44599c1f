"""Crash after every commit: run a scenario, kill it after its k-th commit, check what is left.

SQLite's and TigerBeetle's crash tests do this: rather than hoping a random kill lands on the
interesting instant, try them all. The scenario runs once to the end on a
:class:`~stateward.runtime.MemoryStore` on virtual time, which counts its commits, ``n``.
Then, for every ``k`` from 0 to ``n``, it runs again and the process "dies" right after the
k-th commit reached the store and before anyone learned of it: the loop is abandoned (no
cleanup runs, nothing pending survives), and ``check`` runs on a new loop with the store's
durable image, as a restarted process would find it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stateward.runtime import (
    Environment,
    InvalidArgument,
    LifecycleError,
    MemoryStore,
    VirtualClock,
)
from stateward.sim._world import _bury

__all__ = ("Crash", "Nondeterministic", "crash_at_every_commit")


@dataclass(frozen=True, slots=True)
class Crash:
    """Where a run was cut.

    Attributes:
        after: commits that reached the store before the crash (0: none did).
        of: commits of the whole, uninterrupted run (``after == of``: it ran to the end).
    """

    after: int
    of: int

    @property
    def finished(self) -> bool:
        """True for the uninterrupted run (no crash at all)."""
        return self.after == self.of


class Nondeterministic(AssertionError):
    """A scenario committed differently on two runs of the same seed, so a crash point could
    not be reached: time, randomness and ids must come from the environment it is given."""


Scenario = Callable[[MemoryStore, Environment], Awaitable[object]]
Check = Callable[[MemoryStore, Environment, Crash], Awaitable[object]]


def _run(
    clock: VirtualClock, main: Awaitable[object], store: MemoryStore, k: int | None = None
) -> MemoryStore | None:
    """Run ``main`` on a new loop of ``clock``; with ``k``, cut it right after commit ``k``
    and return the store's durable image at that instant (None if it never got there)."""
    loop = clock.new_event_loop()
    image: MemoryStore | None = None

    def on_commit(committed: MemoryStore) -> None:
        nonlocal image
        if committed.commits == k and image is None:
            image = committed.image()
            loop.stop()  # the loop ends after this step: nobody learns of the commit

    store.on_commit = on_commit if k is not None else None
    task = loop.create_task(_as_coroutine(main))
    try:
        loop.run_until_complete(task)
    except RuntimeError:
        if image is None:
            raise
    finally:
        store.on_commit = None
        # The crashed state is captured: only now may the abandoned tasks be cancelled.
        _bury([loop])
    return image


async def _as_coroutine(main: Awaitable[object]) -> object:
    return await main


def crash_at_every_commit(
    scenario: Scenario, check: Check, *, seed: int = 0, limit: int = 10_000
) -> int:
    """Crash ``scenario`` after each of its commits in turn, and ``check`` each aftermath.

    Args:
        scenario: ``async (store, env)``: the work, on ``store`` with ``env`` (virtual time,
            ``seed``); it must be deterministic given them.
        check: ``async (store, env, crash)``: what must hold after the crash, on the durable
            image (typically: reopen, resume, wait, assert). It is also called once for the
            uninterrupted run (``crash.finished``).
        seed: the environment's seed.
        limit: the most commits a scenario may make (a guard against endless ones).

    Returns:
        The commits of the whole run: ``check`` ran that many times plus one.

    Raises:
        Nondeterministic: a rerun did not reach a commit the first run made.
        LifecycleError: called from a running event loop (call it from a plain function).
        InvalidArgument: the scenario made more than ``limit`` commits.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise LifecycleError(
            "crash_at_every_commit runs its own event loops: call it from a plain "
            "function (a sync test), not from a coroutine"
        )

    def fresh() -> tuple[VirtualClock, MemoryStore, Environment]:
        clock = VirtualClock()
        return clock, MemoryStore(clock=clock), Environment.virtual(seed, clock=clock)

    clock, store, env = fresh()
    _run(clock, scenario(store, env), store)
    total = store.commits
    if total > limit:
        raise InvalidArgument("scenario", expected=f"at most {limit} commits", got=total)
    for k in range(total + 1):
        clock, store, env = fresh()
        if k == 0:
            image: MemoryStore | None = store.image()  # dead before its first commit
        elif k < total:
            image = _run(clock, scenario(store, env), store, k)
        else:
            _run(clock, scenario(store, env), store)
            image = store.image()
        if image is None:
            raise Nondeterministic(
                f"the scenario made {total} commits on its first run, and {store.commits} "
                f"when run again to crash after commit {k}"
            )
        after = Environment.virtual(seed + 1, clock=clock)
        _run(clock, check(image, after, Crash(k, total)), image)
    return total

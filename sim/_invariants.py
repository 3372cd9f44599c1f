"""Invariants: pure checks of a system's state that a run must never see broken.

A *safety* invariant must hold at every instant: the world checks it after every
incarnation's recovery, at the end of the chaos and after the heal. A *liveness* invariant
holds once the system has settled: it is checked after the heal only (every operation
finished, nothing left in flight).

A check is an async function of the scenario and the system (what the scenario's ``open``
returned) that returns the problems it found: each a :class:`Problem`, or just its text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from stateward.runtime import InvalidArgument

__all__ = (
    "Invariant",
    "Problem",
    "Violation",
    "EVERY_OPERATION_COMPLETED",
)


class Problem(NamedTuple):
    """What a check found wrong: a sentence, and the resources it concerns."""

    detail: str
    resources: tuple[str, ...] = ()


#: ``check(scenario, app)``: the problems found (none when the invariant holds).
Check = Callable[[Any, Any], Awaitable[Iterable[Problem | str]]]


@dataclass(frozen=True, slots=True)
class Invariant:
    """A named check.

    Attributes:
        name: how reports name it (``"no over-commit"``).
        check: the check; see the module's documentation.
        liveness: checked only once the system settled (after the heal).
    """

    name: str
    check: Check
    liveness: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgument("Invariant.name", expected="a non-blank str", got=self.name)
        if not callable(self.check):
            raise InvalidArgument("Invariant.check", expected="an async function", got=self.check)


@dataclass(frozen=True, slots=True)
class Violation:
    """An invariant that did not hold.

    Attributes:
        invariant: its name.
        detail: what was wrong, and when (``"after heal: ..."``).
        resources: the resources concerned.
    """

    invariant: str
    detail: str
    resources: tuple[str, ...] = ()


async def _every_operation_completed(scenario: Any, app: Any) -> list[Problem]:
    history = scenario.world.history
    return [
        Problem(f"{operation.op} {key}", (operation.resource,))
        for key, operation in sorted(history.open.items())
    ]


#: Every client operation invoked during the run ended (ok, failed, or found never
#: started): none is left indeterminate once the system settled. Every scenario has it.
EVERY_OPERATION_COMPLETED = Invariant(
    "every client operation completed", _every_operation_completed, liveness=True
)

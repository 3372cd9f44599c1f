"""The errors of the cloud domain.

::

    StatewardError
    ├── UnknownName (also LookupError)   no flavor, image, host or instance by that name
    ├── CommandRejected
    │   └── DuplicateName                a host or instance by that name exists already
    ├── LifecycleError
    │   └── FleetNotOpen                 a fleet used before it opened, after it closed,
    │                                    or opened twice
    └── WaitTimeout (also TimeoutError)  a task did not end within the time waited
"""

from __future__ import annotations

from collections.abc import Iterable

from stateward.runtime import CommandRejected, LifecycleError, StatewardError

__all__ = ("UnknownName", "DuplicateName", "FleetNotOpen", "WaitTimeout")


class UnknownName(StatewardError, LookupError):
    """No flavor, image, host or instance by that name."""

    def __init__(self, kind: str, name: str, *, known: Iterable[str] = ()) -> None:
        self.kind = kind
        self.name = name
        shown = sorted(known)[:10]
        hint = f"; known: {', '.join(shown)}" if shown else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")


class DuplicateName(CommandRejected):
    """A host or instance by that name exists already."""

    def __init__(self, kind: str, name: str, *, existing: str | None = None) -> None:
        self.kind = kind
        self.name = name
        self.existing = existing
        if existing is None:
            super().__init__(
                f"{a(kind)} named {name!r} exists already; names are unique in a fleet"
            )
        else:
            super().__init__(
                f"{a(kind)} named {name!r} exists already as {existing}; adding it again "
                "with the same settings is a no-op; pick another name for another one"
            )


class FleetNotOpen(LifecycleError):
    """A fleet was used outside its ``async with`` block, or entered a second time.

    Attributes:
        state: the fleet's lifecycle state: ``"not open yet"``, ``"opening"``, ``"open"``
            or ``"closed"``.
        action: what was attempted.
    """

    def __init__(self, state: str, *, action: str) -> None:
        self.state = state
        self.action = action
        if action == "open":
            what = (
                f"cannot open the fleet: it is {state} and a fleet is opened once; "
                "open a new one with `async with Fleet.open(...)`"
            )
        else:
            what = (
                f"cannot {action}: the fleet is {state}; "
                "use it inside `async with Fleet.open(...) as fleet`"
            )
        super().__init__(what)


class WaitTimeout(StatewardError, TimeoutError):
    """A task did not end within the time a caller waited for it (it runs on)."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(
            f"task {task_id} did not end within {timeout:g} s; it runs on: wait again, "
            "or look at its steps with fleet.tasks.get"
        )


def a(kind: str) -> str:
    """``kind`` with its indefinite article: "an instance", "a host"."""
    return f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind}"

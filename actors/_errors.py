"""The errors of the cloud domain.

::

    StatewardError
    ├── UnknownName (also LookupError)   no flavor, image, host or instance by that name
    ├── CommandRejected
    │   ├── DuplicateName                a host or instance by that name exists already
    │   ├── LeaseDoesNotFit              a lease (or its update) does not fit in its window
    │   └── LeaseNotActive               a boot names a lease that is not active
    ├── LifecycleError
    │   └── FleetNotOpen                 a fleet used before it opened, after it closed,
    │                                    or opened twice
    └── WaitTimeout (also TimeoutError)  a task did not end within the time waited
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stateward.runtime import CommandRejected, LifecycleError, StatewardError

from ._calendar import Shortfall, when

__all__ = (
    "UnknownName",
    "DuplicateName",
    "FleetNotOpen",
    "WaitTimeout",
    "LeaseDoesNotFit",
    "LeaseNotActive",
)


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


class LeaseDoesNotFit(CommandRejected):
    """A lease (or an update of one) does not fit in the capacity its window has left.

    Attributes:
        lease_id: the lease.
        start, end: the window asked for.
        reason: which reservation fell short, and by how much.
        host: the host that came closest, when one did.
        shortfall: where that host fell short (moment, resource, held, asked, capacity).
        earliest: the earliest window of the same length that fits, when asked for
            (``suggest=True``); None when none was asked or none fits.
    """

    def __init__(
        self,
        lease_id: str,
        *,
        start: float,
        end: float,
        reason: str,
        host: str | None = None,
        shortfall: Shortfall | None = None,
        earliest: tuple[float, float] | None = None,
        suggested: bool = False,
    ) -> None:
        self.lease_id = lease_id
        self.start = start
        self.end = end
        self.reason = reason
        self.host = host
        self.shortfall = shortfall
        self.earliest = earliest
        where = f"; closest: {host} {shortfall.describe()}" if host and shortfall else ""
        if earliest is not None:
            hint = f"; the earliest window that fits is [{when(earliest[0])}, {when(earliest[1])})"
        elif suggested:
            hint = "; no later window fits either: free capacity or ask for less"
        else:
            hint = "; ask for less, another window, or pass suggest=True for the earliest fit"
        super().__init__(
            f"lease {lease_id} does not fit over [{when(start)}, {when(end)}): "
            f"{reason}{where}{hint}"
        )

    def details(self) -> dict[str, Any]:
        """The error as plain data (a lease's ``failure``)."""
        return {
            "reason": self.reason,
            "host": self.host,
            "shortfall": list(self.shortfall) if self.shortfall is not None else None,
            "earliest": list(self.earliest) if self.earliest is not None else None,
        }

    @classmethod
    def from_details(
        cls, lease_id: str, start: float, end: float, details: dict[str, Any], *, suggested: bool
    ) -> LeaseDoesNotFit:
        """Rebuild the error from :meth:`details`."""
        short = details.get("shortfall")
        earliest = details.get("earliest")
        return cls(
            lease_id,
            start=start,
            end=end,
            reason=details.get("reason") or "it does not fit",
            host=details.get("host"),
            shortfall=Shortfall(*short) if short else None,
            earliest=(earliest[0], earliest[1]) if earliest else None,
            suggested=suggested,
        )


class LeaseNotActive(CommandRejected):
    """A boot names a lease whose capacity is not open: it has not started, or it ended."""

    def __init__(self, lease_id: str, *, state: str, start: float, end: float) -> None:
        self.lease_id = lease_id
        self.state = state
        super().__init__(
            f"lease {lease_id} is {state}, not active (its window is "
            f"[{when(start)}, {when(end)})): boot into it while it is active, or boot "
            "without reservation="
        )


def a(kind: str) -> str:
    """``kind`` with its indefinite article: "an instance", "a host"."""
    return f"{'an' if kind[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind}"

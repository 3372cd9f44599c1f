"""A host's calendar: capacity held over windows of time, as a step function.

Leases reserve capacity for ``[start, end)`` windows. A host keeps its holds beside its claims
ledger; the calendar answers "how much is held at most during this window" without looking
at every hold: the usage is a step function kept as sorted breakpoints, each with the usage
from it to the next, so a query over a window costs a binary search and a walk over the
``k`` breakpoints inside it, O(log n + k). Adding or removing a hold changes the usage on
the breakpoints of its own window only.

The holds are the durable truth (a host journals them); the step function is rebuilt from
them, and the breakpoints a removed hold leaves with no change of usage are dropped, so the
function stays as small as the holds that shape it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import msgspec

from stateward.runtime import InvalidArgument

from ._capacity import Capacity

__all__ = ("Hold", "Calendar", "Shortfall", "when")


def when(at: float) -> str:
    """A moment in seconds as messages show it: whole seconds without a fraction."""
    return str(int(at)) if float(at).is_integer() else f"{at:.3f}"


#: Usage as (vcpus, ram_mb, disk_gb): tuples keep the arithmetic cheap.
_Usage = tuple[int, int, int]
_ZERO: _Usage = (0, 0, 0)
_FIELDS = ("vcpus", "ram_mb", "disk_gb")


class Hold(msgspec.Struct, frozen=True):
    """Capacity held on a host for ``[start, end)`` (seconds on the fleet's clock)."""

    id: str
    start: float
    end: float
    amount: Capacity

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidArgument("hold.id", expected="non-empty text", got=self.id)
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidArgument(f"hold.{name}", expected="seconds", got=value)
            if not math.isfinite(value):
                raise InvalidArgument(f"hold.{name}", expected="finite seconds", got=value)
        if not self.end > self.start:
            raise InvalidArgument(
                "hold.end", expected=f"a time after its start ({self.start})", got=self.end
            )
        if not isinstance(self.amount, Capacity):
            raise InvalidArgument("hold.amount", expected="a Capacity", got=self.amount)


class Shortfall(NamedTuple):
    """Where a window does not fit: the first moment one resource falls short.

    Attributes:
        at: the moment (the start of the window, or a breakpoint inside it).
        resource: ``vcpus``, ``ram_mb`` or ``disk_gb``.
        held: held then, of that resource.
        asked: asked for, of that resource.
        capacity: the capacity of that resource.
    """

    at: float
    resource: str
    held: int
    asked: int
    capacity: int

    def describe(self) -> str:
        """In words: "at 3600: vcpus 12 held + 8 asked > 16"."""
        return (
            f"at {when(self.at)}: {self.resource} {self.held} held + {self.asked} asked "
            f"> {self.capacity}"
        )


def _usage(amount: Capacity) -> _Usage:
    return (amount.vcpus, amount.ram_mb, amount.disk_gb)


def _plus(a: _Usage, b: _Usage) -> _Usage:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


class Calendar:
    """The holds of one host, and the usage over time they add up to.

    Args:
        holds: holds to start with (a host's, as journaled).
    """

    __slots__ = ("_holds", "_levels", "_times")

    def __init__(self, holds: Iterable[Hold] = ()) -> None:
        self._holds: dict[str, Hold] = {}
        #: Breakpoints, ascending; ``_levels[i]`` is the usage on ``[_times[i], _times[i+1])``
        #: (zero before the first, and after the last once every hold has ended).
        self._times: list[float] = []
        self._levels: list[_Usage] = []
        for hold in holds:
            self.add(hold)

    @property
    def holds(self) -> tuple[Hold, ...]:
        """Every hold, by start then id."""
        return tuple(sorted(self._holds.values(), key=lambda h: (h.start, h.id)))

    @property
    def breakpoints(self) -> int:
        """How many breakpoints the step function has (at most two per hold)."""
        return len(self._times)

    def ids(self) -> set[str]:
        """The ids of the holds."""
        return set(self._holds)

    def __len__(self) -> int:
        return len(self._holds)

    def __contains__(self, hold_id: object) -> bool:
        return hold_id in self._holds

    def add(self, hold: Hold) -> bool:
        """Hold ``hold.amount`` over its window; False if that very hold is here already.

        Raises:
            InvalidArgument: another hold has that id.
        """
        known = self._holds.get(hold.id)
        if known is not None:
            if known == hold:
                return False
            raise InvalidArgument(
                "hold", expected=f"a new id (hold {hold.id!r} is {known})", got=hold
            )
        self._holds[hold.id] = hold
        self._shift(hold.start, hold.end, _usage(hold.amount))
        return True

    def remove(self, hold_id: str) -> Hold | None:
        """Give a hold up; the hold, or None if there was none by that id."""
        hold = self._holds.pop(hold_id, None)
        if hold is not None:
            amount = _usage(hold.amount)
            self._shift(hold.start, hold.end, (-amount[0], -amount[1], -amount[2]))
            self._prune(hold.end)
            self._prune(hold.start)
        return hold

    def peak(self, start: float, end: float) -> Capacity:
        """The most held of each resource at any moment of ``[start, end)``."""
        top = _ZERO
        for level in self._window(start, end):
            top = (max(top[0], level[0]), max(top[1], level[1]), max(top[2], level[2]))
        return Capacity(*top)

    def shortfall(
        self, start: float, end: float, amount: Capacity, capacity: Capacity
    ) -> Shortfall | None:
        """Why ``amount`` more over ``[start, end)`` would not fit in ``capacity``; None if
        it would."""
        asked, room = _usage(amount), _usage(capacity)
        # The most each resource may already hold where the amount is to fit.
        top_v, top_r, top_d = room[0] - asked[0], room[1] - asked[1], room[2] - asked[2]
        times, levels = self._times, self._levels
        first = bisect.bisect_right(times, start)
        last = bisect.bisect_left(times, end, lo=first)
        begin = first - 1
        if begin < 0:
            if top_v < 0 or top_r < 0 or top_d < 0:
                return self._short(start, _ZERO, asked, room)
            begin = 0
        for index in range(begin, last):
            v, r, d = levels[index]
            if v > top_v or r > top_r or d > top_d:
                return self._short(max(start, times[index]), levels[index], asked, room)
        return None

    @staticmethod
    def _short(at: float, level: _Usage, asked: _Usage, room: _Usage) -> Shortfall:
        for n, name in enumerate(_FIELDS):
            if level[n] + asked[n] > room[n]:
                return Shortfall(at, name, level[n], asked[n], room[n])
        raise AssertionError("no resource falls short")

    def earliest_fit(
        self, duration: float, amount: Capacity, capacity: Capacity, *, after: float
    ) -> float | None:
        """The earliest start at or after ``after`` of a window of ``duration`` seconds
        where ``amount`` fits; None if none does (``amount`` exceeds ``capacity``)."""
        if any(a > c for a, c in zip(_usage(amount), _usage(capacity), strict=True)):
            return None
        # A window can start to fit only where the usage drops: at ``after`` or at a
        # breakpoint after it. Past the last breakpoint nothing is held.
        first = bisect.bisect_right(self._times, after)
        for start in (after, *self._times[first:]):
            if self.shortfall(start, start + duration, amount, capacity) is None:
                return start
        raise AssertionError("after the last breakpoint nothing is held")  # pragma: no cover

    def _window(self, start: float, end: float) -> Iterator[_Usage]:
        """The usage levels that ``[start, end)`` meets, in time order."""
        times, levels = self._times, self._levels
        index = bisect.bisect_right(times, start) - 1
        yield levels[index] if index >= 0 else _ZERO
        index += 1
        while index < len(times) and times[index] < end:
            yield levels[index]
            index += 1

    def _split(self, at: float) -> int:
        """The index of the breakpoint at ``at``, inserted (with the usage it splits) if
        missing."""
        times = self._times
        index = bisect.bisect_left(times, at)
        if index < len(times) and times[index] == at:
            return index
        before = self._levels[index - 1] if index > 0 else _ZERO
        times.insert(index, at)
        self._levels.insert(index, before)
        return index

    def _shift(self, start: float, end: float, delta: _Usage) -> None:
        first = self._split(start)
        last = self._split(end)
        levels = self._levels
        for index in range(first, last):
            levels[index] = _plus(levels[index], delta)

    def _prune(self, at: float) -> None:
        """Drop the breakpoint at ``at`` if the usage does not change there."""
        times = self._times
        index = bisect.bisect_left(times, at)
        if index == len(times) or times[index] != at:
            return
        before = self._levels[index - 1] if index > 0 else _ZERO
        if self._levels[index] == before:
            del times[index]
            del self._levels[index]

    def __repr__(self) -> str:
        return f"Calendar({len(self._holds)} holds, {len(self._times)} breakpoints)"

"""The history of a run: every event, in order, and what became of each client operation.

Events are plain dicts (``at``, ``kind`` and details) so a run's log can be written as JSON
lines, compared event by event and digested. Client operations follow Jepsen: each is
*invoked*, then ends *ok* or *failed*, or stays *indeterminate* (it may or may not have
happened) until a later look settles it, or shows it never started.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from stateward.runtime import Clock

__all__ = (
    "History",
    "Operation",
    "Divergence",
    "first_divergence",
    "sweep_digest",
)

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Operation:
    """A client operation that was invoked and has no outcome yet.

    Attributes:
        op: what it asks for (``"boot"``, ``"withdraw"``...).
        resource: the resource it concerns.
        key: its idempotency key: every retry of the operation uses it.
    """

    op: str
    resource: str
    key: str


class History:
    """The events of one run, across its incarnations.

    Args:
        clock: where each event's time (``at``) is read.
    """

    __slots__ = ("_clock", "events", "open", "outcomes")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: Every event so far, oldest first.
        self.events: list[dict[str, Any]] = []
        #: Client operations invoked and not settled, by key (oldest first).
        self.open: dict[str, Operation] = {}
        #: How many operations of each kind ended with each outcome.
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def log(self, kind: str, **detail: Any) -> None:
        """Append an event of ``kind`` (detail values must encode as JSON)."""
        self.events.append({"at": round(self._clock.monotonic(), 6), "kind": kind, **detail})

    # -- client operations ----------------------------------------------------------------

    def invoke(self, op: str, resource: str, key: str) -> Operation:
        """A client asks for ``op`` on ``resource``; it is open until :meth:`complete`."""
        operation = self.open[key] = Operation(op, resource, key)
        self.log("invoke", op=op, resource=resource, key=key)
        return operation

    def complete(self, key: str, outcome: str, detail: str = "") -> None:
        """The operation of ``key`` ended: ``"ok"``, ``"failed"`` or ``"not-started"``.

        ``ok`` and ``failed`` are logged; ``not-started`` (a recovery found no trace of it)
        is only counted.
        """
        operation = self.open.pop(key)
        self.outcomes[operation.op, outcome] += 1
        if outcome != "not-started":
            self.log(outcome, op=operation.op, resource=operation.resource, key=key, detail=detail)

    def indeterminate(self, key: str) -> None:
        """The client gave up not knowing whether the operation happened; it stays open."""
        operation = self.open[key]
        self.log("info", op=operation.op, resource=operation.resource, key=key)

    # -- reading --------------------------------------------------------------------------

    def of(self, resources: Iterable[str], last: int = 20) -> list[dict[str, Any]]:
        """The last ``last`` events that name any of ``resources``."""
        wanted = set(resources)
        return [e for e in self.events if e.get("resource") in wanted][-last:]

    def digest(self) -> str:
        """sha256 (hex) of the events, each encoded as JSON, one per line."""
        return hashlib.sha256(b"\n".join(_encode(e) for e in self.events)).hexdigest()


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where two runs of one seed first disagreed.

    Attributes:
        index: the position of the first differing event.
        first: that event in the first run (None when the first log ended earlier).
        second: that event in the second run (None when the second log ended earlier).
    """

    index: int
    first: dict[str, Any] | None
    second: dict[str, Any] | None


def first_divergence(
    first: Sequence[dict[str, Any]], second: Sequence[dict[str, Any]]
) -> Divergence | None:
    """The first event where two event logs differ, compared as their encoded bytes."""
    for index, (one, two) in enumerate(zip(first, second, strict=False)):
        if _encode(one) != _encode(two):
            return Divergence(index, one, two)
    if len(first) != len(second):
        index = min(len(first), len(second))
        return Divergence(
            index,
            first[index] if index < len(first) else None,
            second[index] if index < len(second) else None,
        )
    return None


def sweep_digest(digests: Iterable[str]) -> str:
    """The digest of a sweep: sha256 over the seeds' hex digests, one per line, in order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()

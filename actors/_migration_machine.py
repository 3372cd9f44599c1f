"""The migration machines: one per kind of move, with the same terminal names for all.

A move is a resource of its own, a *migration*, whose machine tells where the move stands.
Each kind has the phases where its work differs (a live migration keeps the guest running
while it copies; a cold migration or a resize stops it first; an evacuation rebuilds the
instance from its image elsewhere because its host is down) and every kind ends in one of
the same terminal states:

* ``completed`` — the instance lives on its destination and nothing is left on its source;
* ``failed`` — the move failed before the switch and was rolled back: the instance runs on
  its source as before, and the destination holds nothing;
* ``cancelled`` — it was cancelled before the switch (a delete of the instance) and rolled
  back the same way;
* ``reverted`` — a resize its owner reverted during verification: back on the source, with
  the old flavor.

``switching`` is the last phase before the switch: the one journaled transition of the
instance that hands it to its destination (a new host and a new epoch). Every phase before it
may fail (``failed``) or be cancelled (``cancelled``); the phases after it only roll forward.
No state waits on a person: a resize's ``verifying`` has a deadline and confirms itself when
it passes (``confirm`` or ``revert`` earlier is allowed). A move that cannot tell what
happened goes to ``parked``, a stable state with its reason, listed and never retried
blindly: an operator settles it (``settle_completed`` or ``settle_failed``) after looking.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from stateward.runtime import Machine, StateKind, Transition

__all__ = (
    "MoveKind",
    "MIGRATION_TERMINALS",
    "MIGRATE",
    "RESIZE",
    "LIVE_MIGRATE",
    "EVACUATE",
    "MIGRATION_MACHINES",
    "PRE_SWITCH",
)


class MoveKind(enum.StrEnum):
    """What a move does to the instance."""

    #: Cold migration: stopped, copied to another host, started there if it ran.
    MIGRATE = "migrate"
    #: A cold migration to a new flavor, verified before the source is given up.
    RESIZE = "resize"
    #: Live migration: the guest keeps running while it is copied.
    LIVE_MIGRATE = "live_migrate"
    #: Rebuilt from its image on another host because its own is down (and fenced).
    EVACUATE = "evacuate"


#: The end of every move, whatever its kind.
MIGRATION_TERMINALS = ("completed", "failed", "cancelled", "reverted")

#: Each kind's phases before the switch, in order, with the event that ends each.
_PHASES: dict[MoveKind, tuple[tuple[str, str], ...]] = {
    MoveKind.MIGRATE: (
        ("claiming", "claimed"),
        ("stopping", "stopped"),
        ("transferring", "transferred"),
    ),
    MoveKind.RESIZE: (
        ("claiming", "claimed"),
        ("stopping", "stopped"),
        ("transferring", "transferred"),
    ),
    MoveKind.LIVE_MIGRATE: (
        ("claiming", "claimed"),
        ("preparing", "prepared"),
        ("transferring", "transferred"),
    ),
    MoveKind.EVACUATE: (
        ("fencing", "fenced"),
        ("claiming", "claimed"),
        ("rebuilding", "rebuilt"),
    ),
}

#: The states of every kind from which a failure rolls the move back.
PRE_SWITCH = frozenset(
    {"requested", "switching"} | {phase for phases in _PHASES.values() for phase, _ in phases}
)


def _transitions(kind: MoveKind) -> list[Transition]:
    phases = _PHASES[kind]
    first = phases[0][0]
    t = [Transition("requested", "start", first)]
    for (phase, done), (following, _) in zip(phases, (*phases[1:], ("switching", "")), strict=True):
        t.append(Transition(phase, done, following))
    before = ("requested", *(phase for phase, _ in phases), "switching")
    for state in before:
        t.append(Transition(state, "failed", "failed"))
        t.append(Transition(state, "cancelled", "cancelled"))
        t.append(Transition(state, "park", "parked"))
    if kind is MoveKind.RESIZE:
        t += [
            Transition("switching", "switched", "verifying"),
            Transition("verifying", "confirm", "confirming"),
            Transition("confirming", "confirmed", "completed"),
            Transition("confirming", "park", "parked"),
            Transition("verifying", "revert", "reverting"),
            Transition("reverting", "reverted", "reverted"),
            Transition("reverting", "park", "parked"),
        ]
    else:
        t += [
            Transition("switching", "switched", "finishing"),
            Transition("finishing", "finished", "completed"),
            Transition("finishing", "park", "parked"),
        ]
    t += [
        Transition("parked", "settle_completed", "completed"),
        Transition("parked", "settle_failed", "failed"),
    ]
    return t


def _machine(kind: MoveKind) -> Machine:
    transitions = _transitions(kind)
    names: Iterable[str] = {x.source for x in transitions} | {x.target for x in transitions}
    stable = {"requested", "parked", "verifying"}
    states = {
        name: StateKind.TERMINAL
        if name in MIGRATION_TERMINALS
        else StateKind.STABLE
        if name in stable
        else StateKind.TRANSITIONAL
        for name in sorted(names)
    }
    return Machine(
        f"migration_{kind.value}", initial="requested", states=states, transitions=transitions
    )


#: The cold migration: ``stateward diagram stateward.actors:MIGRATE``.
MIGRATE = _machine(MoveKind.MIGRATE)
#: The resize (a cold migration to a new flavor, then verification).
RESIZE = _machine(MoveKind.RESIZE)
#: The live migration.
LIVE_MIGRATE = _machine(MoveKind.LIVE_MIGRATE)
#: The evacuation.
EVACUATE = _machine(MoveKind.EVACUATE)
#: Each kind's machine.
MIGRATION_MACHINES = {
    MoveKind.MIGRATE: MIGRATE,
    MoveKind.RESIZE: RESIZE,
    MoveKind.LIVE_MIGRATE: LIVE_MIGRATE,
    MoveKind.EVACUATE: EVACUATE,
}

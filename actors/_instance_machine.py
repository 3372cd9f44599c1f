"""The instance state machine, with Nova's vm_state and task_state names.

A state is ``"<vm_state>"`` when no task runs (stable) or ``"<vm_state>/<task_state>"``
while one does (transitional): ``"active"``, ``"active/powering-off"``, ``"stopped"``,
``"building/spawning"``. :func:`vm_state` and :func:`task_state` split them.

Commands are events from stable states (``stop`` from ``active``). The work then reports
its progress with events between transitional states (``scheduled``, ``networked``, ...),
ends with a completion event (``stopped``, ``started``, ``spawned``) or, when it failed:

* ``failed`` — nothing changed (its flow reverted): back to the state it started from, with
  the failed task as the instance's fault. No "error forever".
* ``damaged`` — the instance really is broken (a rebuild that lost the old disk, a delete
  that half happened, a boot that could not be undone): ``error``, which ``rebuild`` and
  ``delete`` get out of.

``delete`` is allowed from every state but ``deleted``, including while a build runs: the
build is cancelled (and reverted) first.

Moves (``migrate``, ``resize``, ``live_migrate``, ``evacuate``) run as tasks like any
command, each with a migration resource of its own (:mod:`stateward.actors._migration_machine`).
While one runs the instance is ``<vm_state>/<move task>``; ``switched`` is the one transition
that hands it to its destination (a new host and a new epoch), a self-loop of that state;
``moved`` ends the move (a resize ends in ``resized``, verification pending, which
``confirm_resize`` or ``revert_resize`` leave, or its deadline confirms); ``failed`` is a move
rolled back before its switch, the instance where it was. A delete during a move waits for
the move to end (``delete_requested``), then deletes.

``deleted`` is not the end of the resource: its name is free again, and ``boot`` from it
starts a new generation of the instance in the same journal (the old one's transitions and
task records stay, under its task ids). No state is terminal.
"""

from __future__ import annotations

import enum
import itertools
from typing import NamedTuple

from stateward.runtime import Machine, StateKind, Transition

__all__ = (
    "INSTANCE",
    "COMMANDS",
    "Command",
    "InstanceAction",
    "MOVES",
    "VERIFICATIONS",
    "vm_state",
    "task_state",
    "task_running",
)

_STABLE = ("active", "stopped", "paused", "suspended", "error", "resized")


class InstanceAction(enum.StrEnum):
    """A command an instance takes after its boot (each a method of ``fleet.instances``)."""

    STOP = "stop"
    START = "start"
    REBOOT = "reboot"
    REBOOT_HARD = "reboot_hard"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    SUSPEND = "suspend"
    RESUME = "resume"
    REBUILD = "rebuild"
    DELETE = "delete"
    MIGRATE = "migrate"
    RESIZE = "resize"
    LIVE_MIGRATE = "live_migrate"
    EVACUATE = "evacuate"
    CONFIRM_RESIZE = "confirm_resize"
    REVERT_RESIZE = "revert_resize"


class Command(NamedTuple):
    """How a command moves the machine."""

    #: The stable states it starts from.
    sources: tuple[str, ...]
    #: Nova's task_state while it runs.
    task_state: str
    #: The event that completes it.
    done: str
    #: The state it ends in.
    end: str


#: Every command but ``delete`` (which every state but ``deleted`` takes), and its moves.
COMMANDS: dict[InstanceAction, Command] = {
    InstanceAction.STOP: Command(("active",), "powering-off", "stopped", "stopped"),
    InstanceAction.START: Command(("stopped",), "powering-on", "started", "active"),
    InstanceAction.REBOOT: Command(("active",), "rebooting", "rebooted", "active"),
    InstanceAction.REBOOT_HARD: Command(
        ("active", "stopped", "error"), "rebooting_hard", "rebooted", "active"
    ),
    InstanceAction.PAUSE: Command(("active",), "pausing", "paused", "paused"),
    InstanceAction.UNPAUSE: Command(("paused",), "unpausing", "unpaused", "active"),
    InstanceAction.SUSPEND: Command(("active",), "suspending", "suspended", "suspended"),
    InstanceAction.RESUME: Command(("suspended",), "resuming", "resumed", "active"),
    InstanceAction.REBUILD: Command(
        ("active", "stopped", "error"), "rebuilding", "rebuilt", "active"
    ),
}

#: The moves, each with the stable states it starts from, its task_state, and where
#: ``moved`` takes each source state.
MOVES: dict[InstanceAction, tuple[dict[str, str], str]] = {
    InstanceAction.MIGRATE: ({"active": "active", "stopped": "stopped"}, "migrating_cold"),
    InstanceAction.RESIZE: ({"active": "resized", "stopped": "resized"}, "resize_migrating"),
    InstanceAction.LIVE_MIGRATE: ({"active": "active"}, "migrating"),
    InstanceAction.EVACUATE: (
        {"active": "active", "stopped": "stopped", "error": "active"},
        "evacuating",
    ),
}
#: What leaves ``resized``: the command, its task_state, and the events that end it (to
#: ``active`` or to ``stopped``, by the power the resize found).
VERIFICATIONS: dict[InstanceAction, tuple[str, str, str]] = {
    InstanceAction.CONFIRM_RESIZE: ("resize_confirming", "confirmed", "confirmed_stopped"),
    InstanceAction.REVERT_RESIZE: ("resize_reverting", "reverted", "reverted_stopped"),
}

_BUILD = ("scheduling", "networking", "block_device_mapping", "spawning")
_BUILD_PROGRESS = ("scheduled", "networked", "volumes_attached")


def _transitions() -> list[Transition]:
    t = [
        Transition("new", "boot", "building/scheduling"),
        Transition("deleted", "boot", "building/scheduling"),
    ]
    for (here, there), event in zip(itertools.pairwise(_BUILD), _BUILD_PROGRESS, strict=True):
        t.append(Transition(f"building/{here}", event, f"building/{there}"))
    t.append(Transition("building/spawning", "spawned", "active"))
    for task in _BUILD:
        # A build that fails has nothing to go back to: error, with the boot as the fault.
        t.append(Transition(f"building/{task}", "failed", "error"))
        t.append(Transition(f"building/{task}", "damaged", "error"))
        t.append(Transition(f"building/{task}", "delete", "building/deleting"))
    for command, (sources, task, done, end) in COMMANDS.items():
        for source in sources:
            busy = f"{source}/{task}"
            t.append(Transition(source, command, busy))
            if not any(x.source == busy and x.event == done for x in t):
                t.append(Transition(busy, done, end))
                # A rebuild that failed may have lost the old disk: that is damage.
                back = "error" if task == "rebuilding" else source
                t.append(Transition(busy, "failed", back))
                t.append(Transition(busy, "damaged", "error"))
    for move, (ends, task) in MOVES.items():
        for source, end in ends.items():
            busy = f"{source}/{task}"
            t.append(Transition(source, move, busy))
            t.append(Transition(busy, "switched", busy))
            t.append(Transition(busy, "delete_requested", busy))
            t.append(Transition(busy, "moved", end))
            t.append(Transition(busy, "failed", source))
            t.append(Transition(busy, "damaged", "error"))
    for command, (task, to_active, to_stopped) in VERIFICATIONS.items():
        busy = f"resized/{task}"
        t.append(Transition("resized", command, busy))
        t.append(Transition(busy, "switched", busy))
        t.append(Transition(busy, "delete_requested", busy))
        t.append(Transition(busy, to_active, "active"))
        t.append(Transition(busy, to_stopped, "stopped"))
        t.append(Transition(busy, "failed", "resized"))
        t.append(Transition(busy, "damaged", "error"))
    for vm in ("active", "stopped", "paused", "suspended", "resized"):
        # Reconciliation found it missing on the hypervisor.
        t.append(Transition(vm, "lost", "error"))
    for vm in (*_STABLE, "building"):
        if vm != "building":
            t.append(Transition(vm, "delete", f"{vm}/deleting"))
        t.append(Transition(f"{vm}/deleting", "deleted", "deleted"))
        t.append(Transition(f"{vm}/deleting", "damaged", "error"))
    return t


def _states(transitions: list[Transition]) -> dict[str, StateKind]:
    states: dict[str, StateKind] = {}
    for x in transitions:
        for name in (x.source, x.target):
            if "/" in name:
                states[name] = StateKind.TRANSITIONAL
            else:
                states[name] = StateKind.STABLE
    return states


_TRANSITIONS = _transitions()

#: The instance machine. Render it: ``stateward diagram stateward.actors:INSTANCE``.
INSTANCE = Machine(
    "instance", initial="new", states=_states(_TRANSITIONS), transitions=_TRANSITIONS
)


def vm_state(state: str) -> str:
    """Nova's vm_state of a machine state: ``"active/rebooting"`` -> ``"active"``."""
    return state.partition("/")[0]


def task_state(state: str) -> str | None:
    """Nova's task_state of a machine state: ``"active/rebooting"`` -> ``"rebooting"``."""
    return state.partition("/")[2] or None


def task_running(state: str) -> bool:
    """Whether a task runs in ``state`` (a transitional state of :data:`INSTANCE`)."""
    return INSTANCE.kind(state) is StateKind.TRANSITIONAL

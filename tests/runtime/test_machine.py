"""Tests of declarative state machines: definition checks, firing, goal seeking, exports."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stateward.runtime as runtime
from stateward.runtime import (
    GoalUnreachable,
    InvalidArgument,
    InvalidTransition,
    Machine,
    MachineDefinitionError,
    MachineInstance,
    StateKind,
    Transition,
    TransitionRecord,
)

STABLE = StateKind.STABLE
TRANSITIONAL = StateKind.TRANSITIONAL
TERMINAL = StateKind.TERMINAL


def instance_machine() -> Machine:
    """A Nova-like instance lifecycle, small enough to reason about by hand."""
    return Machine(
        "instance",
        states={
            "building": TRANSITIONAL,
            "active": STABLE,
            "stopped": STABLE,
            "rebooting": TRANSITIONAL,
            "deleted": TERMINAL,
        },
        initial="building",
        transitions=[
            Transition("building", "done", "active"),
            Transition("active", "stop", "stopped"),
            Transition("active", "reboot", "rebooting"),
            Transition("active", "delete", "deleted"),
            Transition("stopped", "start", "active"),
            Transition("stopped", "delete", "deleted"),
            Transition("rebooting", "done", "active"),
        ],
    )


def definition_problems(
    states: dict[str, StateKind], initial: str, transitions: list[Transition], name: str = "m"
) -> tuple[str, ...]:
    """Build a machine that must be invalid and return the problems it reports."""
    with pytest.raises(MachineDefinitionError) as info:
        Machine(name, states=states, initial=initial, transitions=transitions)
    assert info.value.machine == name
    return info.value.problems


# --------------------------------------------------------------------------------------------
# Exports of the public package


def test_names_are_exported() -> None:
    """The state machine names are re-exported by stateward.runtime and listed in __all__."""
    for name in ("StateKind", "Transition", "Machine", "MachineInstance", "TransitionRecord"):
        assert name in runtime.__all__
        assert getattr(runtime, name).__module__ == "stateward.runtime"


def test_state_kind_values() -> None:
    """StateKind members have the documented lower-case values."""
    assert [kind.value for kind in StateKind] == ["stable", "transitional", "terminal"]


# --------------------------------------------------------------------------------------------
# Definition checks


def test_valid_machine_properties() -> None:
    """A sound definition exposes its name, initial state, kinds, events and transitions."""
    machine = instance_machine()
    assert machine.name == "instance"
    assert machine.initial == "building"
    assert dict(machine.states) == {
        "building": TRANSITIONAL,
        "active": STABLE,
        "stopped": STABLE,
        "rebooting": TRANSITIONAL,
        "deleted": TERMINAL,
    }
    assert machine.events == ("done", "stop", "reboot", "delete", "start")
    assert len(machine.transitions) == 7
    assert machine.kind("rebooting") is TRANSITIONAL
    assert machine.allowed("active") == ("stop", "reboot", "delete")
    assert machine.allowed("deleted") == ()
    assert machine.target("stopped", "start") == "active"


def test_unknown_source_and_target_states_are_named_with_their_transition() -> None:
    """A transition naming an undeclared state reports the state, its role and the transition."""
    problems = definition_problems(
        {"a": STABLE, "b": STABLE},
        "a",
        [
            Transition("a", "go", "b"),
            Transition("b", "back", "a"),
            Transition("zz", "go", "a"),
            Transition("a", "jump", "qq"),
        ],
    )
    assert problems == (
        "transitions[2] (`zz` -go-> `a`) names unknown source state `zz`",
        "transitions[3] (`a` -jump-> `qq`) names unknown target state `qq`",
    )


def test_unknown_initial_state() -> None:
    """An initial state that is not declared is reported by name."""
    problems = definition_problems({"a": STABLE}, "nowhere", [Transition("a", "loop", "a")])
    assert problems == ("initial state `nowhere` is not a declared state",)


def test_duplicate_state_event_pair() -> None:
    """Two transitions on the same event from the same state are reported, with both indices."""
    problems = definition_problems(
        {"a": STABLE, "b": STABLE, "c": STABLE},
        "a",
        [
            Transition("a", "go", "b"),
            Transition("b", "go", "c"),
            Transition("c", "back", "a"),
            Transition("a", "go", "c"),
        ],
    )
    assert problems == (
        "transitions[3] (`a` -go-> `c`) duplicates event `go` in state `a`, "
        "already defined by transitions[0]",
    )


def test_unreachable_state() -> None:
    """A state no path from the initial state reaches is reported."""
    problems = definition_problems(
        {"a": STABLE, "b": STABLE, "island": STABLE},
        "a",
        [
            Transition("a", "go", "b"),
            Transition("b", "back", "a"),
            Transition("island", "go", "a"),
        ],
    )
    assert problems == ("state `island` is unreachable from the initial state `a`",)


def test_non_terminal_state_without_way_out() -> None:
    """A stable or transitional state with no outgoing transition is reported as a dead end."""
    problems = definition_problems(
        {"a": STABLE, "stuck": TRANSITIONAL},
        "a",
        [Transition("a", "go", "stuck")],
    )
    assert problems == (
        "transitional state `stuck` has no way out: no transition leaves it; "
        "add one or declare it StateKind.TERMINAL",
    )


def test_terminal_state_with_outgoing_transitions() -> None:
    """A terminal state that events can leave is reported with those events."""
    problems = definition_problems(
        {"a": STABLE, "end": TERMINAL},
        "a",
        [
            Transition("a", "finish", "end"),
            Transition("end", "revive", "a"),
            Transition("end", "again", "end"),
        ],
    )
    assert problems == (
        "terminal state `end` has outgoing transitions (on revive, again); "
        "a terminal state must have none",
    )


def test_empty_names() -> None:
    """Empty machine, state, event and initial names are each reported."""
    problems = definition_problems(
        {"": STABLE, "a": STABLE},
        "",
        [Transition("a", "", "a"), Transition("a", "go", "")],
        name="",
    )
    assert problems == (
        "the machine name is empty",
        "a state has an empty name",
        "the initial state name is empty",
        "transitions[0] (`a` --> `a`) has an empty event name",
        "transitions[1] (`a` -go-> ``) has an empty target state name",
    )


def test_no_states() -> None:
    """A machine without states is reported as such."""
    problems = definition_problems({}, "a", [])
    assert problems == (
        "no states are declared",
        "initial state `a` is not a declared state",
    )


def test_initial_state_terminal_with_other_states() -> None:
    """A terminal initial state is refused when other states exist (they would be dead)."""
    problems = definition_problems(
        {"end": TERMINAL, "a": STABLE},
        "end",
        [Transition("a", "loop", "a")],
    )
    assert problems == (
        "initial state `end` is terminal, so no other state can ever be reached",
        "state `a` is unreachable from the initial state `end`",
    )


def test_single_terminal_state_is_valid() -> None:
    """A machine whose only state is terminal is sound: nothing can happen to it."""
    machine = Machine("done", states={"end": TERMINAL}, initial="end", transitions=[])
    assert machine.events == ()
    assert machine.instance("r").is_terminal


def test_kind_must_be_a_state_kind() -> None:
    """A state whose kind is not a StateKind member is reported."""
    states: dict[str, object] = {"a": "stable"}
    with pytest.raises(MachineDefinitionError) as info:
        Machine("m", states=states, initial="a", transitions=[])  # type: ignore[arg-type]
    assert info.value.problems == ("state `a` has kind 'stable'; expected a StateKind member",)


def test_all_problems_reported_at_once() -> None:
    """Every problem of a broken definition is listed in one error, in a stable order."""
    with pytest.raises(MachineDefinitionError) as info:
        Machine(
            "broken",
            states={"a": STABLE, "b": STABLE, "orphan": STABLE, "end": TERMINAL},
            initial="a",
            transitions=[
                Transition("a", "go", "b"),
                Transition("a", "go", "end"),
                Transition("b", "oops", "ghost"),
                Transition("end", "back", "a"),
            ],
        )
    problems = info.value.problems
    assert problems == (
        "transitions[1] (`a` -go-> `end`) duplicates event `go` in state `a`, "
        "already defined by transitions[0]",
        "transitions[2] (`b` -oops-> `ghost`) names unknown target state `ghost`",
        "stable state `orphan` has no way out: no transition leaves it; "
        "add one or declare it StateKind.TERMINAL",
        "terminal state `end` has outgoing transitions (on back); a terminal state must have none",
        "state `orphan` is unreachable from the initial state `a`",
    )
    assert str(info.value) == "state machine 'broken' is invalid: " + "; ".join(problems)


def test_wrong_argument_types() -> None:
    """Non-Transition entries and non-string names are refused with InvalidArgument."""
    with pytest.raises(InvalidArgument, match="transitions: expected Transition objects"):
        Machine("m", states={"a": TERMINAL}, initial="a", transitions=[("a", "b", "c")])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match=r"source: expected a str or an enum\.StrEnum"):
        Transition(1, "go", "a")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="guard: expected a callable or None"):
        Transition("a", "go", "b", guard=42)  # type: ignore[arg-type]


class Light(enum.StrEnum):
    """States of a test machine written as an enum."""

    OFF = "off"
    ON = "on"


class Switch(enum.StrEnum):
    """Events of a test machine written as an enum."""

    FLIP = "flip"


def test_str_enum_names_are_stored_as_plain_str() -> None:
    """StrEnum states and events are accepted and stored as their plain str values."""
    transition = Transition(Light.OFF, Switch.FLIP, Light.ON)
    assert transition == Transition("off", "flip", "on")
    assert type(transition.source) is str
    machine = Machine(
        "light",
        states={Light.OFF: STABLE, Light.ON: STABLE},
        initial=Light.OFF,
        transitions=[transition, Transition(Light.ON, Switch.FLIP, Light.OFF)],
    )
    assert type(machine.initial) is str
    assert all(type(state) is str for state in machine.states)
    lamp = machine.instance("lamp")
    record = lamp.fire(Switch.FLIP, at=1.0)
    assert (type(record.event), type(record.target)) == (str, str)
    assert lamp.state == Light.ON
    assert machine.path(Light.ON, Light.OFF) == ("flip",)


def test_machine_is_immutable() -> None:
    """Neither a machine's attributes nor its states mapping nor a transition can be changed."""
    machine = instance_machine()
    with pytest.raises(AttributeError, match="immutable"):
        machine.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        machine.states["new"] = STABLE  # type: ignore[index]
    with pytest.raises(AttributeError):
        machine.transitions[0].target = "deleted"  # type: ignore[misc]


def test_machine_copies_its_inputs() -> None:
    """Changing the mapping and list a machine was built from does not change the machine."""
    states = {"on": STABLE, "off": STABLE}
    transitions = [Transition("off", "flip", "on"), Transition("on", "flip", "off")]
    machine = Machine("lamp", states=states, initial="off", transitions=transitions)
    states["broken"] = TERMINAL
    transitions.clear()
    assert list(machine.states) == ["on", "off"]
    assert len(machine.transitions) == 2


def test_unknown_state_arguments_name_the_known_states() -> None:
    """Queries about an undeclared state raise InvalidArgument listing the known states."""
    machine = instance_machine()
    known = "building, active, stopped, rebooting, deleted"
    calls: list[Callable[[], object]] = [
        lambda: machine.kind("paused"),
        lambda: machine.allowed("paused"),
        lambda: machine.target("paused", "stop"),
        lambda: machine.path("paused", "active"),
        lambda: machine.path("active", "paused"),
        lambda: machine.instance("i-1", state="paused"),
        lambda: machine.instance("i-1").path_to("paused"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as info:
            call()
        assert str(info.value) == (
            f"state: expected a state of machine 'instance' ({known}), got 'paused'"
        )


def test_target_of_refused_event() -> None:
    """Machine.target raises InvalidTransition naming the machine when the state refuses."""
    with pytest.raises(InvalidTransition) as info:
        instance_machine().target("stopped", "reboot")
    assert str(info.value) == "instance cannot `reboot` in state `stopped`; allowed: start, delete"


# --------------------------------------------------------------------------------------------
# Firing


def test_fire_advances_state_and_sequence() -> None:
    """Accepted events move the instance and return records with contiguous sequence numbers."""
    vm = instance_machine().instance("i-42")
    assert (vm.state, vm.sequence, vm.resource_id) == ("building", 0, "i-42")
    first = vm.fire("done", at=10.0, task_id="t-1", cause="boot finished")
    second = vm.fire("reboot", at=11.5)
    assert first == TransitionRecord(
        resource_id="i-42",
        sequence=1,
        source="building",
        event="done",
        target="active",
        task_id="t-1",
        cause="boot finished",
        at=10.0,
    )
    assert second == TransitionRecord("i-42", 2, "active", "reboot", "rebooting", None, None, 11.5)
    assert (vm.state, vm.sequence) == ("rebooting", 2)
    assert not vm.is_stable
    assert not vm.is_terminal


def test_refused_event_message_and_fields() -> None:
    """A refused event raises InvalidTransition with fields and an exact, helpful message."""
    vm = instance_machine().instance("i-42", state="active", sequence=7)
    with pytest.raises(InvalidTransition) as info:
        vm.fire("start", at=1.0)
    error = info.value
    assert str(error) == "i-42 cannot `start` in state `active`; allowed: stop, reboot, delete"
    assert (error.resource_id, error.state, error.event) == ("i-42", "active", "start")
    assert error.allowed == ("stop", "reboot", "delete")
    assert (vm.state, vm.sequence) == ("active", 7)


def test_unknown_event_and_terminal_state_are_refused() -> None:
    """Events the machine never mentions, and anything in a terminal state, are refused."""
    vm = instance_machine().instance("i-1", state="active")
    with pytest.raises(InvalidTransition, match="cannot `explode` in state `active`"):
        vm.fire("explode", at=0.0)
    vm.fire("delete", at=0.0)
    assert vm.is_terminal
    assert vm.allowed() == ()
    with pytest.raises(InvalidTransition) as info:
        vm.fire("start", at=0.0)
    assert (
        str(info.value) == "i-1 cannot `start` in state `deleted`; allowed: none (terminal state)"
    )
    assert (vm.state, vm.sequence) == ("deleted", 1)


def test_non_string_event_is_refused_not_crashed() -> None:
    """An unhashable or non-string event raises InvalidTransition, not a TypeError."""
    vm = instance_machine().instance("i-1", state="active")
    with pytest.raises(InvalidTransition, match=r"cannot `\['stop'\]`"):
        vm.fire(["stop"], at=0.0)  # type: ignore[arg-type]
    assert not vm.can(["stop"])  # type: ignore[arg-type]
    assert vm.state == "active"


def guarded_machine() -> Machine:
    """A host that accepts a placement only when the payload asks for free capacity."""

    def fits(payload: object) -> bool:
        return isinstance(payload, int) and payload <= 4

    return Machine(
        "host",
        states={"free": STABLE, "used": STABLE},
        initial="free",
        transitions=[
            Transition("free", "place", "used", guard=fits),
            Transition("used", "release", "free"),
        ],
    )


def test_guards_refuse_without_changing_anything() -> None:
    """A guard returning False refuses the event and leaves state and sequence unchanged."""
    host = guarded_machine().instance("h-1")
    assert host.can("place", 2)
    assert not host.can("place", 9)
    assert not host.can("release")
    with pytest.raises(InvalidTransition) as info:
        host.fire("place", at=0.0, payload=9)
    assert info.value.allowed == ("place",)
    assert (host.state, host.sequence) == ("free", 0)
    record = host.fire("place", at=1.0, payload=4)
    assert (record.target, record.sequence, host.state) == ("used", 1, "used")


def test_instance_restore_and_validation() -> None:
    """Instances restore a known state and sequence; bad ids and sequences are refused."""
    machine = instance_machine()
    restored = machine.instance("i-9", state="stopped", sequence=12)
    assert isinstance(restored, MachineInstance)
    assert restored.machine is machine
    assert (restored.state, restored.sequence, restored.is_stable) == ("stopped", 12, True)
    assert restored.fire("start", at=0.0).sequence == 13
    with pytest.raises(InvalidArgument, match="resource_id: expected a non-empty str"):
        machine.instance("")
    with pytest.raises(InvalidArgument, match="sequence: expected an int >= 0, got -1"):
        machine.instance("i-9", sequence=-1)
    with pytest.raises(InvalidArgument, match="sequence: expected an int >= 0, got True"):
        machine.instance("i-9", sequence=True)


def test_record_round_trips_through_msgpack() -> None:
    """A transition record encodes to msgpack and decodes back equal, ready for the journal."""
    record = instance_machine().instance("i-1").fire("done", at=3.25, task_id="t-7")
    data = msgspec.msgpack.encode(record)
    assert msgspec.msgpack.decode(data, type=TransitionRecord) == record


# --------------------------------------------------------------------------------------------
# Goal seeking


def test_shortest_path() -> None:
    """path() returns the fewest events leading to the goal, and () when already there."""
    machine = instance_machine()
    assert machine.path("building", "stopped") == ("done", "stop")
    assert machine.path("stopped", "deleted") == ("delete",)
    assert machine.path("rebooting", "rebooting") == ()
    assert machine.instance("i-1", state="rebooting").path_to("stopped") == ("done", "stop")


def diamond(order: list[int]) -> Machine:
    """Two equally short routes from `a` to `d`, defined in the given order."""
    edges = [
        Transition("a", "left", "b"),
        Transition("a", "right", "c"),
        Transition("b", "on", "d"),
        Transition("c", "on", "d"),
        Transition("d", "reset", "a"),
    ]
    return Machine(
        "diamond",
        states={"a": STABLE, "b": STABLE, "c": STABLE, "d": STABLE},
        initial="a",
        transitions=[edges[i] for i in order],
    )


def test_path_tie_break_follows_definition_order() -> None:
    """Among equally short paths, the one whose events are defined first wins, every time."""
    assert diamond([0, 1, 2, 3, 4]).path("a", "d") == ("left", "on")
    assert diamond([1, 0, 2, 3, 4]).path("a", "d") == ("right", "on")
    assert {diamond([0, 1, 2, 3, 4]).path("a", "d") for _ in range(20)} == {("left", "on")}


def test_goal_unreachable() -> None:
    """An unreachable goal raises GoalUnreachable naming the machine or the resource."""
    machine = instance_machine()
    with pytest.raises(GoalUnreachable) as info:
        machine.path("active", "building")
    assert str(info.value) == (
        "instance cannot reach state `building` from `active`: no event path leads there"
    )
    assert (info.value.state, info.value.goal) == ("active", "building")
    vm = machine.instance("i-42", state="deleted")
    with pytest.raises(GoalUnreachable) as info:
        vm.path_to("active")
    assert info.value.resource_id == "i-42"
    assert str(info.value) == (
        "i-42 cannot reach state `active` from `deleted`: no event path leads there"
    )


# --------------------------------------------------------------------------------------------
# A realistic machine: OpenStack Ironic's bare-metal provision states


class Prov(enum.StrEnum):
    """Ironic's provision states (ironic/common/states.py), plus a terminal `deleted`."""

    ENROLL = "enroll"
    VERIFYING = "verifying"
    MANAGEABLE = "manageable"
    INSPECTING = "inspecting"
    INSPECTWAIT = "inspect wait"
    INSPECTFAIL = "inspect failed"
    CLEANING = "cleaning"
    CLEANWAIT = "clean wait"
    CLEANFAIL = "clean failed"
    AVAILABLE = "available"
    DEPLOYING = "deploying"
    DEPLOYWAIT = "wait call-back"
    DEPLOYFAIL = "deploy failed"
    ACTIVE = "active"
    DELETING = "deleting"
    ERROR = "error"
    RESCUING = "rescuing"
    RESCUEWAIT = "rescue wait"
    RESCUEFAIL = "rescue failed"
    RESCUE = "rescue"
    UNRESCUING = "unrescuing"
    UNRESCUEFAIL = "unrescue failed"
    ADOPTING = "adopting"
    ADOPTFAIL = "adopt failed"
    DELETED = "deleted"


class Verb(enum.StrEnum):
    """Ironic's provision events."""

    MANAGE = "manage"
    PROVIDE = "provide"
    INSPECT = "inspect"
    CLEAN = "clean"
    DEPLOY = "deploy"
    REBUILD = "rebuild"
    WAIT = "wait"
    RESUME = "resume"
    DONE = "done"
    FAIL = "fail"
    ABORT = "abort"
    DELETE = "delete"
    RESCUE = "rescue"
    UNRESCUE = "unrescue"
    ADOPT = "adopt"
    REMOVE = "remove"


# Ironic's STABLE_STATES and UNSTABLE_STATES. Its failure states are in neither list; they
# wait for an operator, so they are stable here. Ironic has no terminal state (a node row is
# simply deleted in DELETE_ALLOWED_STATES); `deleted`, reached by `remove`, models that.
IRONIC_KINDS: dict[str, StateKind] = {
    **dict.fromkeys(
        [Prov.ENROLL, Prov.MANAGEABLE, Prov.AVAILABLE, Prov.ACTIVE, Prov.ERROR, Prov.RESCUE],
        STABLE,
    ),
    **dict.fromkeys(
        [
            Prov.DEPLOYFAIL,
            Prov.CLEANFAIL,
            Prov.INSPECTFAIL,
            Prov.RESCUEFAIL,
            Prov.UNRESCUEFAIL,
            Prov.ADOPTFAIL,
        ],
        STABLE,
    ),
    **dict.fromkeys(
        [
            Prov.DEPLOYING,
            Prov.DEPLOYWAIT,
            Prov.CLEANING,
            Prov.CLEANWAIT,
            Prov.VERIFYING,
            Prov.DELETING,
            Prov.INSPECTING,
            Prov.INSPECTWAIT,
            Prov.ADOPTING,
            Prov.RESCUING,
            Prov.RESCUEWAIT,
            Prov.UNRESCUING,
        ],
        TRANSITIONAL,
    ),
    Prov.DELETED: TERMINAL,
}

P, V = Prov, Verb
IRONIC_TRANSITIONS = [
    Transition(P.AVAILABLE, V.DEPLOY, P.DEPLOYING),
    Transition(P.DEPLOYING, V.FAIL, P.DEPLOYFAIL),
    Transition(P.DEPLOYFAIL, V.REBUILD, P.DEPLOYING),
    Transition(P.DEPLOYFAIL, V.DEPLOY, P.DEPLOYING),
    Transition(P.DEPLOYING, V.WAIT, P.DEPLOYWAIT),
    Transition(P.DEPLOYWAIT, V.RESUME, P.DEPLOYING),
    Transition(P.DEPLOYWAIT, V.FAIL, P.DEPLOYFAIL),
    Transition(P.DEPLOYING, V.DONE, P.ACTIVE),
    Transition(P.ACTIVE, V.REBUILD, P.DEPLOYING),
    Transition(P.ACTIVE, V.DELETE, P.DELETING),
    Transition(P.DEPLOYWAIT, V.DELETE, P.DELETING),
    Transition(P.DEPLOYFAIL, V.DELETE, P.DELETING),
    Transition(P.DELETING, V.FAIL, P.ERROR),
    Transition(P.DELETING, V.CLEAN, P.CLEANING),
    Transition(P.CLEANING, V.DONE, P.AVAILABLE),
    Transition(P.CLEANING, V.FAIL, P.CLEANFAIL),
    Transition(P.CLEANWAIT, V.FAIL, P.CLEANFAIL),
    Transition(P.CLEANWAIT, V.ABORT, P.CLEANFAIL),
    Transition(P.CLEANING, V.WAIT, P.CLEANWAIT),
    Transition(P.CLEANWAIT, V.RESUME, P.CLEANING),
    Transition(P.CLEANFAIL, V.MANAGE, P.MANAGEABLE),
    Transition(P.MANAGEABLE, V.PROVIDE, P.CLEANING),
    Transition(P.MANAGEABLE, V.CLEAN, P.CLEANING),
    Transition(P.CLEANING, V.MANAGE, P.MANAGEABLE),
    Transition(P.AVAILABLE, V.MANAGE, P.MANAGEABLE),
    Transition(P.ERROR, V.REBUILD, P.DEPLOYING),
    Transition(P.ERROR, V.DELETE, P.DELETING),
    Transition(P.MANAGEABLE, V.INSPECT, P.INSPECTING),
    Transition(P.INSPECTING, V.DONE, P.MANAGEABLE),
    Transition(P.INSPECTING, V.FAIL, P.INSPECTFAIL),
    Transition(P.INSPECTING, V.WAIT, P.INSPECTWAIT),
    Transition(P.INSPECTWAIT, V.DONE, P.MANAGEABLE),
    Transition(P.INSPECTWAIT, V.FAIL, P.INSPECTFAIL),
    Transition(P.INSPECTWAIT, V.ABORT, P.INSPECTFAIL),
    Transition(P.INSPECTWAIT, V.RESUME, P.INSPECTING),
    Transition(P.INSPECTFAIL, V.MANAGE, P.MANAGEABLE),
    Transition(P.INSPECTFAIL, V.INSPECT, P.INSPECTING),
    Transition(P.ACTIVE, V.RESCUE, P.RESCUING),
    Transition(P.RESCUING, V.DONE, P.RESCUE),
    Transition(P.RESCUING, V.WAIT, P.RESCUEWAIT),
    Transition(P.RESCUEWAIT, V.RESUME, P.RESCUING),
    Transition(P.RESCUE, V.RESCUE, P.RESCUING),
    Transition(P.RESCUE, V.DELETE, P.DELETING),
    Transition(P.RESCUEWAIT, V.FAIL, P.RESCUEFAIL),
    Transition(P.RESCUING, V.FAIL, P.RESCUEFAIL),
    Transition(P.RESCUEWAIT, V.ABORT, P.RESCUEFAIL),
    Transition(P.RESCUEFAIL, V.RESCUE, P.RESCUING),
    Transition(P.RESCUEFAIL, V.UNRESCUE, P.UNRESCUING),
    Transition(P.RESCUEFAIL, V.DELETE, P.DELETING),
    Transition(P.RESCUEWAIT, V.DELETE, P.DELETING),
    Transition(P.RESCUE, V.UNRESCUE, P.UNRESCUING),
    Transition(P.UNRESCUING, V.DONE, P.ACTIVE),
    Transition(P.UNRESCUING, V.FAIL, P.UNRESCUEFAIL),
    Transition(P.UNRESCUEFAIL, V.RESCUE, P.RESCUING),
    Transition(P.UNRESCUEFAIL, V.UNRESCUE, P.UNRESCUING),
    Transition(P.UNRESCUEFAIL, V.DELETE, P.DELETING),
    Transition(P.ENROLL, V.MANAGE, P.VERIFYING),
    Transition(P.VERIFYING, V.DONE, P.MANAGEABLE),
    Transition(P.VERIFYING, V.FAIL, P.ENROLL),
    Transition(P.MANAGEABLE, V.ADOPT, P.ADOPTING),
    Transition(P.ADOPTING, V.DONE, P.ACTIVE),
    Transition(P.ADOPTING, V.FAIL, P.ADOPTFAIL),
    Transition(P.ADOPTFAIL, V.ADOPT, P.ADOPTING),
    Transition(P.ADOPTFAIL, V.MANAGE, P.MANAGEABLE),
    # Ironic's DELETE_ALLOWED_STATES: the node record may be removed from these.
    Transition(P.ENROLL, V.REMOVE, P.DELETED),
    Transition(P.MANAGEABLE, V.REMOVE, P.DELETED),
    Transition(P.ADOPTFAIL, V.REMOVE, P.DELETED),
]


def ironic() -> Machine:
    """The Ironic provision machine."""
    return Machine(
        "ironic-provision",
        states=IRONIC_KINDS,
        initial=Prov.ENROLL,
        transitions=IRONIC_TRANSITIONS,
    )


def test_ironic_machine_validates() -> None:
    """The Ironic provision machine is sound and keeps Ironic's stable/transitional split."""
    machine = ironic()
    assert len(machine.states) == 25
    assert len(machine.transitions) == 67
    assert set(machine.events) == {verb.value for verb in Verb}
    assert machine.kind("wait call-back") is TRANSITIONAL
    assert machine.kind("deploy failed") is STABLE
    assert machine.kind("deleted") is TERMINAL
    assert machine.allowed("manageable") == ("provide", "clean", "inspect", "adopt", "remove")


def test_ironic_node_lifecycle() -> None:
    """A node is driven by path_to + fire through a full cycle, and every record checks out."""
    node = ironic().instance("node-7")
    clock = iter(float(tick) for tick in range(1000))
    records: list[TransitionRecord] = []
    route = [
        ("manageable", ("manage", "done")),
        ("available", ("provide", "done")),
        ("active", ("deploy", "done")),
        ("rescue", ("rescue", "done")),
        ("active", ("unrescue", "done")),
        ("available", ("delete", "clean", "done")),
        ("deleted", ("manage", "remove")),
    ]
    for goal, expected_events in route:
        events = node.path_to(goal)
        assert events == expected_events, goal
        for event in events:
            records.append(node.fire(event, at=next(clock), task_id=f"to-{goal}", cause="test"))
        assert node.state == goal
        assert node.path_to(goal) == ()
    assert node.is_terminal
    assert node.sequence == len(records) == 15
    visited = ["enroll"] + [record.target for record in records]
    assert visited == [
        "enroll",
        "verifying",
        "manageable",
        "cleaning",
        "available",
        "deploying",
        "active",
        "rescuing",
        "rescue",
        "unrescuing",
        "active",
        "deleting",
        "cleaning",
        "available",
        "manageable",
        "deleted",
    ]
    for index, record in enumerate(records):
        assert record.resource_id == "node-7"
        assert record.sequence == index + 1
        assert record.source == visited[index]
        assert record.at == float(index)
        assert record.cause == "test"
        assert record.task_id is not None
        assert record.task_id.startswith("to-")


def test_ironic_stable_states_between_goals() -> None:
    """Every goal of the cycle is a stable state and every step in between is transitional."""
    node = ironic().instance("node-8")
    for goal in ("manageable", "available", "active", "rescue", "active"):
        *steps, last = node.path_to(goal)
        for event in steps:
            node.fire(event, at=0.0)
            assert node.machine.kind(node.state) is TRANSITIONAL
        node.fire(last, at=0.0)
        assert node.is_stable


def test_ironic_failure_paths() -> None:
    """Failed operations land in Ironic's failure states and can be recovered by path_to."""
    node = ironic().instance("node-9", state="available")
    node.fire("deploy", at=0.0)
    node.fire("wait", at=1.0)
    node.fire("fail", at=2.0)
    assert node.state == "deploy failed"
    assert node.path_to("active") == ("rebuild", "done")
    with pytest.raises(InvalidTransition) as info:
        node.fire("rescue", at=3.0)
    assert str(info.value) == (
        "node-9 cannot `rescue` in state `deploy failed`; allowed: rebuild, deploy, delete"
    )


# --------------------------------------------------------------------------------------------
# Property: the instance accepts exactly what the transition table allows


def check_random_run(machine: Machine, start: str, steps: list[tuple[str, int]]) -> None:
    """Fire ``steps`` and compare with a model built only from ``machine.transitions``."""
    model = {(edge.source, edge.event): edge for edge in machine.transitions}
    instance = machine.instance("r-1", state=start)
    state, accepted = start, 0
    records: list[TransitionRecord] = []
    for tick, (event, payload) in enumerate(steps):
        edge = model.get((state, event))
        allowed = edge is not None and (edge.guard is None or edge.guard(payload))
        assert instance.can(event, payload) is allowed
        if allowed:
            assert edge is not None
            records.append(instance.fire(event, at=float(tick), payload=payload))
            state, accepted = edge.target, accepted + 1
        else:
            with pytest.raises(InvalidTransition):
                instance.fire(event, at=float(tick), payload=payload)
        assert (instance.state, instance.sequence) == (state, accepted)
    assert [record.sequence for record in records] == list(range(1, len(records) + 1))
    for before, after in itertools.pairwise(records):
        assert after.source == before.target
    if records:
        assert records[0].source == start
        assert records[-1].target == instance.state


IRONIC = ironic()
GUARDED = guarded_machine()
EVENTS = st.sampled_from([*IRONIC.events, "bogus"])


@settings(max_examples=300, derandomize=True, database=None)
@given(
    start=st.sampled_from(list(IRONIC.states)),
    steps=st.lists(st.tuples(EVENTS, st.just(0)), max_size=60),
)
def test_ironic_accepts_exactly_the_table(start: str, steps: list[tuple[str, int]]) -> None:
    """Random event sequences are accepted exactly when the transition table allows them."""
    check_random_run(IRONIC, start, steps)


@settings(max_examples=200, derandomize=True, database=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([*GUARDED.events, "bogus"]), st.integers(0, 8)), max_size=40
    )
)
def test_guarded_machine_accepts_exactly_the_table(steps: list[tuple[str, int]]) -> None:
    """With guards, an event is accepted exactly when the table allows it and its guard passes."""
    check_random_run(GUARDED, GUARDED.initial, steps)


# --------------------------------------------------------------------------------------------
# Exports


def test_mermaid_export_exact() -> None:
    """The Mermaid export of a small machine is exactly the expected stateDiagram-v2 text."""
    assert instance_machine().to_mermaid() == (
        "stateDiagram-v2\n"
        "    classDef transitional stroke-dasharray: 5 5\n"
        "    [*] --> building\n"
        "    building --> active: done\n"
        "    active --> stopped: stop\n"
        "    active --> rebooting: reboot\n"
        "    active --> deleted: delete\n"
        "    stopped --> active: start\n"
        "    stopped --> deleted: delete\n"
        "    rebooting --> active: done\n"
        "    deleted --> [*]\n"
        "    class building,rebooting transitional\n"
    )


def test_dot_export_exact() -> None:
    """The DOT export of a small machine is exactly the expected digraph text."""
    assert instance_machine().to_dot() == (
        'digraph "instance" {\n'
        "    rankdir=LR;\n"
        "    node [shape=circle];\n"
        '    "__start__" [shape=point];\n'
        '    "building" [style=dashed];\n'
        '    "active";\n'
        '    "stopped";\n'
        '    "rebooting" [style=dashed];\n'
        '    "deleted" [shape=doublecircle];\n'
        '    "__start__" -> "building";\n'
        '    "building" -> "active" [label="done"];\n'
        '    "active" -> "stopped" [label="stop"];\n'
        '    "active" -> "rebooting" [label="reboot"];\n'
        '    "active" -> "deleted" [label="delete"];\n'
        '    "stopped" -> "active" [label="start"];\n'
        '    "stopped" -> "deleted" [label="delete"];\n'
        '    "rebooting" -> "active" [label="done"];\n'
        "}\n"
    )


def test_ironic_exports_contain_every_transition() -> None:
    """Both exports of the Ironic machine list every transition and the start and end marks."""
    machine = ironic()
    mermaid, dot = machine.to_mermaid(), machine.to_dot()
    assert '    state "wait call-back" as wait_call_back\n' in mermaid
    assert "    [*] --> enroll\n" in mermaid
    assert "    deleted --> [*]\n" in mermaid
    assert '"__start__" -> "enroll";' in dot
    assert '    "deleted" [shape=doublecircle];\n' in dot
    assert '    "wait call-back" [style=dashed];\n' in dot
    assert '    "deploy failed";\n' in dot
    for edge in machine.transitions:
        source = edge.source.replace(" ", "_").replace("-", "_")
        target = edge.target.replace(" ", "_").replace("-", "_")
        assert f"    {source} --> {target}: {edge.event}\n" in mermaid
        assert f'    "{edge.source}" -> "{edge.target}" [label="{edge.event}"];\n' in dot
    assert mermaid.count(" --> ") == len(machine.transitions) + 2
    assert dot.count(" -> ") == len(machine.transitions) + 1


def test_exports_are_deterministic() -> None:
    """Separately built identical machines export byte-identical text."""
    assert ironic().to_mermaid() == ironic().to_mermaid()
    assert ironic().to_dot() == ironic().to_dot()


def test_exports_escape_awkward_names() -> None:
    """Quotes in names are escaped in DOT, and colliding Mermaid aliases stay distinct."""
    machine = Machine(
        'say "hi"',
        states={"a b": STABLE, "a_b": STABLE, "__start__": STABLE},
        initial="a b",
        transitions=[
            Transition("a b", "go", "a_b"),
            Transition("a_b", "go", "__start__"),
            Transition("__start__", "go", "a b"),
        ],
    )
    dot = machine.to_dot()
    assert dot.startswith('digraph "say \\"hi\\"" {\n')
    assert '    "___start___" -> "a b";\n' in dot
    mermaid = machine.to_mermaid()
    assert '    state "a b" as a_b_2\n' in mermaid
    assert "    a_b_2 --> a_b: go\n" in mermaid


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"states": [("a", StateKind.STABLE)]}, r"^states: expected a mapping of state names"),
        ({"states": None}, r"^states: expected a mapping of state names"),
        ({"transitions": 5}, r"^transitions: expected an iterable of Transition objects"),
        ({"transitions": None}, r"^transitions: expected an iterable of Transition objects"),
        ({"transitions": "a->a"}, r"^transitions: expected an iterable of Transition objects"),
    ],
)
def test_definition_of_the_wrong_shape_is_an_invalid_argument(
    options: dict[str, Any], message: str
) -> None:
    """A states value that is no mapping, or transitions that are no iterable, are typed."""
    definition: dict[str, Any] = {
        "states": {"a": StateKind.STABLE},
        "initial": "a",
        "transitions": [],
        **options,
    }
    with pytest.raises(InvalidArgument, match=message):
        Machine("shape", **definition)

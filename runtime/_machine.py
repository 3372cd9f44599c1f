"""Declarative state machines: definitions, per-resource instances and transition records.

A :class:`Machine` is an immutable, validated graph of named states and events. Every
resource owns a :class:`MachineInstance` of its machine; firing an event on the instance
either advances it and returns a :class:`TransitionRecord` (which is what gets journaled),
or raises :class:`~stateward.runtime.InvalidTransition` and changes nothing.

The machine precomputes a nested table ``{state: {event: edge}}`` at construction, so that
:meth:`MachineInstance.fire`, the hot path, costs a single dict lookup plus the record.
"""

from __future__ import annotations

import enum
import re
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NoReturn, TypeAlias

import msgspec

from ._errors import GoalUnreachable, InvalidArgument, InvalidTransition, MachineDefinitionError

__all__ = ("StateKind", "Transition", "Machine", "MachineInstance", "TransitionRecord")

Guard: TypeAlias = Callable[[object], bool]

# One precomputed edge: (target, guard, canonical event name, target's row of the table).
# Carrying the target's row lets ``fire`` move to the next state without a second lookup.
_Edge: TypeAlias = "tuple[str, Guard | None, str, dict[str, _Edge]]"

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StateKind(enum.Enum):
    """How a state behaves over time.

    Attributes:
        STABLE: the resource stays here until someone sends a request.
        TRANSITIONAL: work is in progress; the runtime itself moves the resource on.
        TERMINAL: the end of the resource's life; no event leaves it.
    """

    STABLE = "stable"
    TRANSITIONAL = "transitional"
    TERMINAL = "terminal"


def _plain(value: object, what: str) -> str:
    """Return ``value`` as an exact ``str``, unwrapping ``StrEnum`` members.

    Exact strings matter because the names end up in journal rows, exports and messages,
    where an enum member's ``repr`` or class would leak.
    """
    if type(value) is str:
        return value
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        return value.value
    if isinstance(value, str):
        return str.__str__(value)
    raise InvalidArgument(what, expected="a str or an enum.StrEnum member", got=value)


class Transition(msgspec.Struct, frozen=True):
    """One edge of a state machine: in ``source``, ``event`` leads to ``target``.

    States and events may be given as ``enum.StrEnum`` members; they are stored as their
    plain ``str`` values.

    Attributes:
        source: the state the event is accepted in.
        event: the event's name.
        target: the state the resource moves to.
        guard: called with the event's payload; returning False refuses the event. Path
            finding assumes every guard passes.
    """

    source: str
    event: str
    target: str
    guard: Guard | None = None

    def __post_init__(self) -> None:
        # Normalise here rather than in Machine so that two equal definitions compare equal
        # whichever spelling (str or StrEnum) they were written with.
        for field in ("source", "event", "target"):
            value = getattr(self, field)
            if type(value) is not str:
                msgspec.structs.force_setattr(self, field, _plain(value, field))
        if self.guard is not None and not callable(self.guard):
            raise InvalidArgument("guard", expected="a callable or None", got=self.guard)


class TransitionRecord(msgspec.Struct, frozen=True, gc=False):
    """An accepted transition, as journaled.

    ``gc=False`` makes creating a record (once per transition, on the hot path) cheaper. It
    is safe because the fields are atomic except ``payload``, which is plain data (what
    msgpack encodes: dicts, lists, strings, numbers) and so cannot form a reference cycle.

    Attributes:
        resource_id: the resource whose machine moved.
        sequence: the instance's sequence number after this transition (1 for the first).
        source: the state before.
        event: the accepted event.
        target: the state after.
        task_id: the task that caused the transition, if any.
        cause: a free-form reason, if any.
        at: when it happened, on the injected clock.
        payload: the data the event carried, as plain data; durable actors replay it.
    """

    resource_id: str
    sequence: int
    source: str
    event: str
    target: str
    task_id: str | None
    cause: str | None
    at: float
    payload: Any = None


def _edge_text(index: int, transition: Transition) -> str:
    return (
        f"transitions[{index}] (`{transition.source}` -{transition.event}-> `{transition.target}`)"
    )


class Machine:
    """A validated, immutable state machine definition.

    Args:
        name: the machine's name, used in messages and exports.
        states: every state and its kind, in the order exports should list them.
        initial: the state new instances start in.
        transitions: the edges, in definition order; that order decides :meth:`allowed`,
            the tie-break of :meth:`path` and the order of exports.

    Raises:
        MachineDefinitionError: the definition is inconsistent; ``problems`` lists every
            problem found, not only the first.
        InvalidArgument: a name is not a string, or a transition is not a
            :class:`Transition`.
    """

    __slots__ = (
        "_events",
        "_initial",
        "_kinds",
        "_name",
        "_states_view",
        "_table",
        "_transitions",
    )

    _name: str
    _initial: str
    _kinds: dict[str, StateKind]
    _states_view: Mapping[str, StateKind]
    _transitions: tuple[Transition, ...]
    _events: tuple[str, ...]
    # Spelled out, not `_Edge`: a recursive string alias does not resolve from the package.
    _table: dict[str, dict[str, tuple[str, Guard | None, str, dict[str, Any]]]]

    def __init__(
        self,
        name: str,
        *,
        states: Mapping[str, StateKind],
        initial: str,
        transitions: Iterable[Transition],
    ) -> None:
        name = _plain(name, "name")
        if not isinstance(states, Mapping):
            raise InvalidArgument(
                "states", expected="a mapping of state names to StateKind", got=states
            )
        kinds = {_plain(state, "states"): kind for state, kind in states.items()}
        initial = _plain(initial, "initial")
        given: object = transitions  # checked as any object: callers pass anything
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise InvalidArgument(
                "transitions", expected="an iterable of Transition objects", got=transitions
            )
        edges = tuple(transitions)
        for edge in edges:
            if not isinstance(edge, Transition):
                raise InvalidArgument("transitions", expected="Transition objects", got=edge)

        problems = _validate(name, kinds, initial, edges)
        if problems:
            raise MachineDefinitionError(name, problems)

        # Build every row first so that each edge can point at its target's row.
        table: dict[str, dict[str, _Edge]] = {state: {} for state in kinds}
        for edge in edges:
            table[edge.source][edge.event] = (
                edge.target,
                edge.guard,
                edge.event,
                table[edge.target],
            )

        set_ = object.__setattr__
        set_(self, "_name", name)
        set_(self, "_initial", initial)
        set_(self, "_kinds", kinds)
        set_(self, "_states_view", types.MappingProxyType(kinds))
        set_(self, "_transitions", edges)
        set_(self, "_events", tuple(dict.fromkeys(edge.event for edge in edges)))
        set_(self, "_table", table)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Machine {self._name!r} is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Machine {self._name!r} is immutable; cannot delete {name!r}")

    def __repr__(self) -> str:
        return (
            f"Machine({self._name!r}, {len(self._kinds)} states, "
            f"{len(self._transitions)} transitions, initial={self._initial!r})"
        )

    @property
    def name(self) -> str:
        """The machine's name."""
        return self._name

    @property
    def initial(self) -> str:
        """The state new instances start in."""
        return self._initial

    @property
    def states(self) -> Mapping[str, StateKind]:
        """A read-only mapping of every state to its kind, in definition order."""
        return self._states_view

    @property
    def events(self) -> tuple[str, ...]:
        """Every event, in order of first appearance among the transitions."""
        return self._events

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """Every transition, in definition order."""
        return self._transitions

    def _known(self, state: object) -> str:
        """Return ``state`` as a plain known state name, or raise InvalidArgument."""
        try:
            if state in self._kinds:
                return _plain(state, "state")
        except TypeError:  # unhashable: certainly not a state
            pass
        raise InvalidArgument(
            "state",
            expected=f"a state of machine {self._name!r} ({', '.join(self._kinds)})",
            got=state,
        )

    def kind(self, state: str) -> StateKind:
        """Return the kind of ``state``.

        Raises:
            InvalidArgument: ``state`` is not a state of this machine.
        """
        return self._kinds[self._known(state)]

    def allowed(self, state: str) -> tuple[str, ...]:
        """Return the events ``state`` accepts, in definition order (guards not consulted).

        Raises:
            InvalidArgument: ``state`` is not a state of this machine.
        """
        return tuple(self._table[self._known(state)])

    def target(self, state: str, event: str) -> str:
        """Return the state ``event`` leads to from ``state`` (guards not consulted).

        Raises:
            InvalidArgument: ``state`` is not a state of this machine.
            InvalidTransition: ``state`` does not accept ``event``; the error's
                ``resource_id`` is the machine's name.
        """
        row = self._table[self._known(state)]
        try:
            return row[event][0]
        except (KeyError, TypeError):
            raise InvalidTransition(
                self._name, state=_plain(state, "state"), event=_display(event), allowed=row
            ) from None

    def _path(self, source: str, goal: str) -> tuple[str, ...] | None:
        """Breadth-first search; None when ``goal`` cannot be reached."""
        if source == goal:
            return ()
        # Exploring rows in definition order makes the first path found to each state the one
        # whose events come earliest in definition order, among the shortest.
        previous: dict[str, tuple[str, str]] = {source: (source, "")}
        queue = deque((source,))
        while queue:
            state = queue.popleft()
            for event, (target, *_) in self._table[state].items():
                if target in previous:
                    continue
                previous[target] = (state, event)
                if target == goal:
                    events: list[str] = []
                    while target != source:
                        target, event = previous[target]
                        events.append(event)
                    return tuple(reversed(events))
                queue.append(target)
        return None

    def path(self, source: str, goal: str) -> tuple[str, ...]:
        """Return the shortest sequence of events leading from ``source`` to ``goal``.

        Guards are assumed to pass. Among several shortest paths the one whose first
        differing event comes earlier in definition order wins, so the answer never depends
        on hashing. ``()`` when ``source == goal``.

        Raises:
            InvalidArgument: ``source`` or ``goal`` is not a state of this machine.
            GoalUnreachable: no path exists; its ``resource_id`` is the machine's name.
        """
        source, goal = self._known(source), self._known(goal)
        found = self._path(source, goal)
        if found is None:
            raise GoalUnreachable(self._name, state=source, goal=goal)
        return found

    def instance(
        self, resource_id: str, *, state: str | None = None, sequence: int = 0
    ) -> MachineInstance:
        """Create an instance for ``resource_id``, new or restored from the journal.

        Args:
            resource_id: the resource that owns the instance.
            state: the state to restore; the initial state when None.
            sequence: the number of transitions already accepted (restoring).

        Raises:
            InvalidArgument: an unknown ``state``, an empty ``resource_id`` or a negative
                ``sequence``.
        """
        if type(resource_id) is not str or not resource_id:
            raise InvalidArgument("resource_id", expected="a non-empty str", got=resource_id)
        if type(sequence) is not int or sequence < 0:
            raise InvalidArgument("sequence", expected="an int >= 0", got=sequence)
        current = self._initial if state is None else self._known(state)
        return MachineInstance(self, resource_id, current, sequence)

    def _mermaid_ids(self) -> dict[str, str]:
        """Mermaid identifiers for the states: the name itself when it is one, else a slug."""
        ids: dict[str, str] = {}
        taken = {state for state in self._kinds if _IDENTIFIER.fullmatch(state)}
        for state in self._kinds:
            if _IDENTIFIER.fullmatch(state):
                ids[state] = state
                continue
            base = re.sub(r"\W", "_", state)
            if not _IDENTIFIER.fullmatch(base):
                base = f"s_{base}"
            candidate, suffix = base, 2
            while candidate in taken:
                candidate, suffix = f"{base}_{suffix}", suffix + 1
            taken.add(candidate)
            ids[state] = candidate
        return ids

    def to_mermaid(self) -> str:
        """Render the machine as a Mermaid ``stateDiagram-v2``, in definition order.

        States whose names are not identifiers get an alias (``state "wait call-back" as
        wait_call_back``); transitional states get the ``transitional`` class (dashed).
        """
        ids = self._mermaid_ids()
        lines = ["stateDiagram-v2", "    classDef transitional stroke-dasharray: 5 5"]
        for state, ident in ids.items():
            if ident != state:
                lines.append(f'    state "{state.replace(chr(34), "#quot;")}" as {ident}')
        lines.append(f"    [*] --> {ids[self._initial]}")
        lines.extend(
            f"    {ids[edge.source]} --> {ids[edge.target]}: {edge.event}"
            for edge in self._transitions
        )
        lines.extend(
            f"    {ids[state]} --> [*]"
            for state, kind in self._kinds.items()
            if kind is StateKind.TERMINAL
        )
        transitional = [
            ids[state] for state, kind in self._kinds.items() if kind is StateKind.TRANSITIONAL
        ]
        if transitional:
            lines.append(f"    class {','.join(transitional)} transitional")
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """Render the machine as a Graphviz ``digraph``, in definition order.

        Terminal states are double circles, transitional ones dashed, and a point node marks
        the initial state.
        """
        start = "__start__"
        while start in self._kinds:
            start = f"_{start}_"
        lines = [
            f"digraph {_dot_quote(self._name)} {{",
            "    rankdir=LR;",
            "    node [shape=circle];",
            f"    {_dot_quote(start)} [shape=point];",
        ]
        for state, kind in self._kinds.items():
            if kind is StateKind.TERMINAL:
                lines.append(f"    {_dot_quote(state)} [shape=doublecircle];")
            elif kind is StateKind.TRANSITIONAL:
                lines.append(f"    {_dot_quote(state)} [style=dashed];")
            else:
                lines.append(f"    {_dot_quote(state)};")
        lines.append(f"    {_dot_quote(start)} -> {_dot_quote(self._initial)};")
        lines.extend(
            f"    {_dot_quote(edge.source)} -> {_dot_quote(edge.target)} "
            f"[label={_dot_quote(edge.event)}];"
            for edge in self._transitions
        )
        lines.append("}")
        return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _display(value: object) -> str:
    """A name for messages, even when the caller passed something that is not a str."""
    try:
        return _plain(value, "event")
    except InvalidArgument:
        return repr(value)


def _validate(
    name: str, kinds: Mapping[str, object], initial: str, edges: tuple[Transition, ...]
) -> list[str]:
    """Return every problem of a definition, in a stable order; empty when it is sound.

    ``kinds`` is typed loosely on purpose: callers may pass anything at runtime, and a
    wrong kind is one more problem to report rather than a crash.
    """
    problems: list[str] = []
    if not name:
        problems.append("the machine name is empty")
    if not kinds:
        problems.append("no states are declared")
    for state, kind in kinds.items():
        if not state:
            problems.append("a state has an empty name")
        if not isinstance(kind, StateKind):
            problems.append(f"state `{state}` has kind {kind!r}; expected a StateKind member")

    initial_known = bool(initial) and initial in kinds
    if not initial:
        problems.append("the initial state name is empty")
    elif not initial_known:
        problems.append(f"initial state `{initial}` is not a declared state")

    first_edge: dict[tuple[str, str], int] = {}
    outgoing: dict[str, list[str]] = {state: [] for state in kinds}
    successors: dict[str, list[str]] = {state: [] for state in kinds}
    for index, edge in enumerate(edges):
        where = _edge_text(index, edge)
        if not edge.event:
            problems.append(f"{where} has an empty event name")
        known = True
        for role, state in (("source", edge.source), ("target", edge.target)):
            if not state:
                problems.append(f"{where} has an empty {role} state name")
                known = False
            elif state not in kinds:
                problems.append(f"{where} names unknown {role} state `{state}`")
                known = False
        key = (edge.source, edge.event)
        if key in first_edge:
            problems.append(
                f"{where} duplicates event `{edge.event}` in state `{edge.source}`, "
                f"already defined by transitions[{first_edge[key]}]"
            )
        else:
            first_edge[key] = index
        if edge.source in outgoing:
            outgoing[edge.source].append(edge.event)
        if known:
            successors[edge.source].append(edge.target)

    for state, kind in kinds.items():
        if not state:
            continue  # already reported; a dead-end report about it would be noise
        if kind is StateKind.TERMINAL and outgoing[state]:
            events = ", ".join(dict.fromkeys(outgoing[state]))
            problems.append(
                f"terminal state `{state}` has outgoing transitions (on {events}); "
                "a terminal state must have none"
            )
        elif kind is not StateKind.TERMINAL and isinstance(kind, StateKind) and not outgoing[state]:
            problems.append(
                f"{kind.value} state `{state}` has no way out: no transition leaves it; "
                "add one or declare it StateKind.TERMINAL"
            )

    if initial_known:
        if kinds[initial] is StateKind.TERMINAL and len(kinds) > 1:
            problems.append(
                f"initial state `{initial}` is terminal, so no other state can ever be reached"
            )
        reached = {initial}
        queue = deque((initial,))
        while queue:
            for target in successors[queue.popleft()]:
                if target not in reached:
                    reached.add(target)
                    queue.append(target)
        problems.extend(
            f"state `{state}` is unreachable from the initial state `{initial}`"
            for state in kinds
            if state and state not in reached
        )
    return problems


class MachineInstance:
    """The state of one resource's machine: current state and accepted-transition count.

    Create instances with :meth:`Machine.instance`. Only :meth:`fire` changes them, and it
    changes nothing when it raises.
    """

    __slots__ = ("_machine", "_resource_id", "_row", "_sequence", "_state")

    def __init__(self, machine: Machine, resource_id: str, state: str, sequence: int) -> None:
        self._machine = machine
        self._resource_id = resource_id
        self._state = state
        self._sequence = sequence
        self._row: dict[str, _Edge] = machine._table[state]

    def __repr__(self) -> str:
        return (
            f"<MachineInstance {self._resource_id!r} of {self._machine.name!r}: "
            f"state={self._state!r} sequence={self._sequence}>"
        )

    @property
    def machine(self) -> Machine:
        """The machine definition this instance follows."""
        return self._machine

    @property
    def resource_id(self) -> str:
        """The resource that owns this instance."""
        return self._resource_id

    @property
    def state(self) -> str:
        """The current state."""
        return self._state

    @property
    def sequence(self) -> int:
        """The number of transitions accepted so far (including before a restore)."""
        return self._sequence

    @property
    def is_terminal(self) -> bool:
        """Whether the current state is terminal."""
        return self._machine._kinds[self._state] is StateKind.TERMINAL

    @property
    def is_stable(self) -> bool:
        """Whether the current state is stable (waiting for a request)."""
        return self._machine._kinds[self._state] is StateKind.STABLE

    def allowed(self) -> tuple[str, ...]:
        """Return the events the current state accepts, in definition order (no guards)."""
        return tuple(self._row)

    def can(self, event: str, payload: object = None) -> bool:
        """Return whether :meth:`fire` would accept ``event`` with ``payload`` right now."""
        try:
            guard = self._row[event][1]
        except (KeyError, TypeError):
            return False
        return guard is None or bool(guard(payload))

    def fire(
        self,
        event: str,
        *,
        at: float,
        payload: object = None,
        task_id: str | None = None,
        cause: str | None = None,
    ) -> TransitionRecord:
        """Accept ``event``: move to its target state and return the record to journal.

        Args:
            event: the event to fire.
            at: the time of the transition, read from the injected clock.
            payload: passed to the transition's guard, if it has one.
            task_id: the task that causes the transition, recorded.
            cause: why, recorded.

        Returns:
            The record of the transition, carrying the new sequence number.

        Raises:
            InvalidTransition: the event is unknown, not allowed in the current state, or
                its guard refused; the instance is unchanged.
        """
        try:
            target, guard, name, row = self._row[event]
        except (KeyError, TypeError):
            self._refuse(event)
        if guard is not None and not guard(payload):
            self._refuse(event)
        source = self._state
        self._state = target
        self._row = row
        self._sequence = sequence = self._sequence + 1
        return TransitionRecord(
            self._resource_id, sequence, source, name, target, task_id, cause, at, payload
        )

    def _refuse(self, event: object) -> NoReturn:
        terminal = self.machine.kind(self._state) is StateKind.TERMINAL
        raise InvalidTransition(
            self._resource_id,
            state=self._state,
            event=_display(event),
            allowed=self._row,
            note="terminal state" if terminal else None,
        ) from None

    def path_to(self, goal: str) -> tuple[str, ...]:
        """Return the shortest event path from the current state to ``goal``.

        See :meth:`Machine.path` for the tie-break. ``()`` when already there.

        Raises:
            InvalidArgument: ``goal`` is not a state of the machine.
            GoalUnreachable: no path exists; names this instance's resource.
        """
        goal = self._machine._known(goal)
        found = self._machine._path(self._state, goal)
        if found is None:
            raise GoalUnreachable(self._resource_id, state=self._state, goal=goal)
        return found

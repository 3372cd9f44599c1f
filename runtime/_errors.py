"""The one exception tree of stateward.

Everything the library raises on purpose derives from :class:`StatewardError`::

    StatewardError
    ├── InvalidArgument (also ValueError)      bad input to a public call
    ├── LifecycleError                         an object used in the wrong lifecycle state
    │   ├── SystemNotRunning                   the actor system is not open (or already closed)
    │   └── SubscriptionClosed                 receiving from a closed bus subscription
    ├── ActorError                             about one actor, carries its ``address``
    │   ├── ActorNotFound                      no actor registered at that address
    │   ├── ActorStopped                       the actor stopped before it could answer
    │   ├── DuplicateAddress                   spawning at an address already taken
    │   ├── MailboxFull                        a non-blocking tell found the mailbox full
    │   ├── AskTimeout (also TimeoutError)     no reply before the ask's deadline
    │   └── ActorCrashed                       the handler raised; the original is ``__cause__``
    ├── SupervisionError
    │   └── RestartIntensityExceeded           too many restarts in a period; escalated
    ├── CommandRejected                        a handler refused a command; the actor is healthy
    │   ├── InvalidCommand (also ValueError)   the command itself is malformed or unknown
    │   ├── InvalidTransition                  the event is not allowed in the current state
    │   └── GoalUnreachable                    no event path leads to the requested state
    ├── MachineDefinitionError                 a state machine definition is inconsistent
    └── StoreError                             the durable store could not do what was asked
        ├── StoreUnavailable                   disk full, I/O error, lock; or a file it cannot open
        ├── CommitFailed (also CommandRejected) a transition was not committed; nothing changed
        ├── RevisionConflict                   a write did not follow the stored revision
        ├── ResourceQuarantined                a resource's rows cannot be read; out of service
        └── SchemaError                        the database was written by a newer schema

"You stopped it" and "it crashed" are kept apart: :class:`ActorStopped` means the actor was
shut down (by you, its supervisor or the system), :class:`ActorCrashed` means its handler
raised, and the exception that did it is chained as ``__cause__``.

A handler that raises a :class:`CommandRejected` is *not* considered crashed: the error goes
back to the asker as it is and the actor keeps its state and its place.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable

__all__ = (
    "StatewardError",
    "InvalidArgument",
    "LifecycleError",
    "SystemNotRunning",
    "SubscriptionClosed",
    "ActorError",
    "ActorNotFound",
    "ActorStopped",
    "DuplicateAddress",
    "MailboxFull",
    "AskTimeout",
    "ActorCrashed",
    "SupervisionError",
    "RestartIntensityExceeded",
    "CommandRejected",
    "InvalidCommand",
    "InvalidTransition",
    "GoalUnreachable",
    "MachineDefinitionError",
    "StoreError",
    "StoreUnavailable",
    "CommitFailed",
    "RevisionConflict",
    "ResourceQuarantined",
    "SchemaError",
)


_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother = 3, 60, 60


def short_repr(value: object) -> str:
    """A bounded ``repr`` for messages: deep, long or hostile values cannot blow it up."""
    try:
        return _repr.repr(value)
    except Exception:  # a __repr__ that raises (or recurses) must not hide the real error
        if isinstance(value, int):
            return f"<an int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} object>"


class StatewardError(Exception):
    """Base of every exception stateward raises on purpose."""


class InvalidArgument(StatewardError, ValueError):
    """A public call got a value it cannot accept.

    Args:
        name: the parameter that was wrong.
        expected: what would have been accepted.
        got: what was passed.
    """

    def __init__(self, name: str, *, expected: str, got: object) -> None:
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(f"{name}: expected {expected}, got {short_repr(got)}")


class LifecycleError(StatewardError):
    """An object was used in a lifecycle state that does not allow the call."""


class SystemNotRunning(LifecycleError):
    """The actor system is not open, is shutting down, or has stopped.

    When the system stopped because of an escalated failure, that failure is ``__cause__``.
    """

    def __init__(self, state: str, *, action: str) -> None:
        self.state = state
        self.action = action
        super().__init__(
            f"cannot {action}: the actor system is {state}; "
            "use it inside `async with open_actor_system(...)`"
        )


class SubscriptionClosed(LifecycleError):
    """A bus subscription was closed and has no more events to give."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"subscription to {pattern!r} is closed")


class ActorError(StatewardError):
    """An error about one actor, named by ``address``."""

    def __init__(self, address: str, message: str) -> None:
        self.address = address
        super().__init__(message)


class ActorNotFound(ActorError):
    """No actor is registered at ``address``."""

    def __init__(self, address: str) -> None:
        super().__init__(
            address, f"no actor at address {address!r}; spawn it first or check the address"
        )


class ActorStopped(ActorError):
    """The actor at ``address`` stopped before it handled the message."""

    def __init__(self, address: str, *, reason: str = "it was stopped") -> None:
        self.reason = reason
        super().__init__(address, f"actor {address!r} cannot take the message: {reason}")


class DuplicateAddress(ActorError):
    """An actor is already registered at ``address``."""

    def __init__(self, address: str) -> None:
        super().__init__(
            address,
            f"an actor is already registered at {address!r}; addresses are unique, "
            "look the existing one up with system.lookup()",
        )


class MailboxFull(ActorError):
    """A non-blocking tell found the mailbox at its capacity."""

    def __init__(self, address: str, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(
            address,
            f"mailbox of {address!r} is full ({capacity} messages); "
            "use `await ref.tell(...)` to wait for room",
        )


class AskTimeout(ActorError, TimeoutError):
    """No reply arrived before the ask's deadline.

    The message may still be handled later; its reply is then dropped and counted as late.
    """

    def __init__(self, address: str, timeout: float, message_type: str) -> None:
        self.timeout = timeout
        self.message_type = message_type
        super().__init__(
            address,
            f"actor {address!r} did not answer {message_type} within {timeout:g}s; "
            "the message may still be handled and its late reply will be dropped",
        )


class ActorCrashed(ActorError):
    """The handler raised while handling the asker's message; the original is ``__cause__``."""

    def __init__(self, address: str, message_type: str, error: BaseException) -> None:
        self.message_type = message_type
        self.error = error
        super().__init__(
            address,
            f"actor {address!r} crashed handling {message_type}: "
            f"{type(error).__name__}: {error}; its supervisor decides whether it restarts",
        )


class SupervisionError(StatewardError):
    """Supervision gave up on a subtree."""


class RestartIntensityExceeded(SupervisionError):
    """A supervisor saw more than ``max_restarts`` restarts within ``period`` seconds.

    The supervisor stopped its children and escalated to its parent. At the root this stops
    the whole actor system. The last child failure is ``__cause__``.
    """

    def __init__(self, supervisor: str, *, max_restarts: int, period: float, child: str) -> None:
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.period = period
        self.child = child
        super().__init__(
            f"supervisor {supervisor!r} exceeded its restart intensity "
            f"({max_restarts} restarts in {period:g}s), last failing child {child!r}; "
            "it stopped its children and escalated"
        )


class CommandRejected(StatewardError):
    """A handler refused a command. The actor did not crash and nothing changed."""


class InvalidCommand(CommandRejected, ValueError):
    """A command an actor cannot understand: unknown type, or content out of range.

    Args:
        resource_id: the actor that refused it.
        expected: what it accepts.
        got: a short description of what it got.
    """

    def __init__(self, resource_id: str, *, expected: str, got: str) -> None:
        self.resource_id = resource_id
        self.expected = expected
        self.got = got
        super().__init__(f"{resource_id} refused a command: expected {expected}, got {got}")


class InvalidTransition(CommandRejected):
    """An event is not allowed in the machine's current state.

    Args:
        resource_id: the resource whose machine refused the event.
        state: its current state.
        event: the refused event.
        allowed: the events the current state does allow.
        note: why, when that helps (``"terminal state"``, ``"task t-1 is running"``).
    """

    def __init__(
        self,
        resource_id: str,
        *,
        state: str,
        event: str,
        allowed: Iterable[str],
        note: str | None = None,
    ) -> None:
        self.resource_id = resource_id
        self.state = state
        self.event = event
        self.allowed = tuple(allowed)
        self.note = note
        allowed_text = ", ".join(self.allowed) if self.allowed else "none"
        suffix = f" ({note})" if note else ""
        super().__init__(
            f"{resource_id} cannot `{event}` in state `{state}`; allowed: {allowed_text}{suffix}"
        )


class GoalUnreachable(CommandRejected):
    """No sequence of events leads from the current state to the goal."""

    def __init__(self, resource_id: str, *, state: str, goal: str) -> None:
        self.resource_id = resource_id
        self.state = state
        self.goal = goal
        super().__init__(
            f"{resource_id} cannot reach state `{goal}` from `{state}`: no event path leads there"
        )


class MachineDefinitionError(StatewardError):
    """A state machine definition is inconsistent; ``problems`` lists every issue found."""

    def __init__(self, machine: str, problems: Iterable[str]) -> None:
        self.machine = machine
        self.problems = tuple(problems)
        listing = "; ".join(self.problems)
        super().__init__(f"state machine {machine!r} is invalid: {listing}")


class StoreError(StatewardError):
    """The durable store could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store could not write or read: the disk is full, an I/O error, or a lock held too
    long; or it could not open its file: missing, read-only, or not a stateward database.
    Transient causes were retried ``attempts`` times first; ``advice`` says what to do.

    Args:
        operation: what the store was doing ("commit", "load", ...).
        reason: the kind of failure: "disk full", "I/O error", "database is locked", "closed".
        attempts: how many times the operation was tried.
    """

    def __init__(
        self,
        operation: str,
        *,
        reason: str,
        attempts: int = 1,
        detail: str = "",
        advice: str | None = None,
    ) -> None:
        self.operation = operation
        self.reason = reason
        self.attempts = attempts
        self.detail = detail
        if advice is None:
            advice = _STORE_ADVICE.get(operation, "nothing was written; fix the cause and retry")
        self.advice = advice
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        extra = f" ({detail})" if detail else ""
        super().__init__(f"store {operation} failed{tries}: {reason}{extra}; {advice}")


#: What to do after a failed store operation, by operation, unless the raiser says better.
_STORE_ADVICE = {
    "commit": "nothing was written (unless the failure came as the transaction committed), "
    "the store retries on the next command and recovers when the cause is gone",
    "open": "nothing was opened; fix the cause and open the store again",
}


class CommitFailed(StoreError, CommandRejected):
    """A transition could not be committed; the resource stays at its last durable revision.

    This is not a crash: the actor undid the change in memory and keeps working. The store's
    error is ``__cause__``. A failure reported as the transaction committed (an fsync error)
    may leave the write on disk all the same: the revision check of the next commit finds it,
    and the actor reloads from the store.
    """

    def __init__(self, resource_id: str, *, event: str, revision: int, reason: str) -> None:
        self.resource_id = resource_id
        self.event = event
        self.revision = revision
        self.reason = reason
        super().__init__(
            f"{resource_id}: `{event}` was not committed ({reason}); "
            f"it stays at revision {revision}, retry the command (a write that reached the "
            "disk all the same is found by the next command)"
        )


class RevisionConflict(StoreError):
    """A write expected a revision the store does not hold: the writer's state is stale."""

    def __init__(self, resource_id: str, *, expected: int, actual: int) -> None:
        self.resource_id = resource_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{resource_id}: write expected to replace revision {expected}, "
            f"but the store holds revision {actual}; the writer is stale and must reload"
        )


class ResourceQuarantined(StoreError):
    """A resource's stored rows cannot be decoded or do not add up; it is out of service.

    Every other resource keeps working. Inspect it with ``stateward inspect DB --resource ID``.
    """

    def __init__(self, resource_id: str, *, reason: str) -> None:
        self.resource_id = resource_id
        self.reason = reason
        super().__init__(f"resource {resource_id} is quarantined: {reason}")


class SchemaError(StoreError):
    """The database cannot be used by this version of stateward."""

    def __init__(self, path: str, *, found: int, supported: int) -> None:
        self.path = path
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path} has schema version {found}, but this stateward supports up to "
            f"{supported}; it was written by a newer stateward: upgrade to open it"
        )

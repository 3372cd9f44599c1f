"""Task records: every operation on a resource, with its steps and history.

This is Nova's "instance tasks" idea: an operation is a resource of its own, with a status,
steps and a history of status changes, queryable after the fact. A failed task is the
resource's fault record; nothing is left in an ad-hoc error state.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

__all__ = (
    "TaskStatus",
    "StepStatus",
    "StepRecord",
    "HistoryEvent",
    "TaskRecord",
    "Action",
    "QuarantinedTask",
)


class TaskStatus(enum.StrEnum):
    """Where a task is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Failed with nothing to undo (no step had completed).
    FAILED = "failed"
    REVERTING = "reverting"
    #: Failed, and every completed step was reverted.
    REVERTED = "reverted"
    #: Failed, and a revert failed too: the record says which and why.
    REVERT_FAILED = "revert_failed"
    CANCELLED = "cancelled"
    #: Its flow's definition changed while it was in flight; needs an operator.
    PARKED = "parked"

    @property
    def is_terminal(self) -> bool:
        """True when the task will not move again by itself."""
        return self not in _ACTIVE


_ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.REVERTING})
#: Statuses that make a task a resource's fault.
FAULTS = frozenset({TaskStatus.FAILED, TaskStatus.REVERTED, TaskStatus.REVERT_FAILED})


class StepStatus(enum.StrEnum):
    """Where one step of a task is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    REVERT_FAILED = "revert_failed"


class HistoryEvent(msgspec.Struct, omit_defaults=True):
    """One entry of a task's history.

    Attributes:
        at: when, on the injected clock.
        event: a task status, or one of ``retry``, ``reconciled``, ``resumed``.
        step: the step concerned, if any.
        detail: what happened, for people.
    """

    at: float
    event: str
    step: str | None = None
    detail: str | None = None


class StepRecord(msgspec.Struct, omit_defaults=True):
    """One step of a task.

    Attributes:
        name: the task's name in the flow; stable across processes and versions.
        status: where the step is.
        attempts: how many times execute started.
        started, finished: the last attempt's times.
        error_type, error_message: the last failure (of execute or of revert).
        result: what execute returned (plain data), once it succeeded.
        delays: backoff delays waited before each retry, in seconds.
    """

    name: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    result: Any = None
    delays: list[float] = msgspec.field(default_factory=list)


class TaskRecord(msgspec.Struct, omit_defaults=True):
    """One operation on one resource.

    Attributes:
        id: unique id.
        kind: the flow's name.
        flow_version: the flow's version when the task was submitted.
        resource_id: the resource operated on.
        request: the flow's inputs, as plain data.
        idempotency_key: a second submission with this key returns this task.
        status: where the task is.
        created, updated: times.
        steps: every step, in the flow's stable order.
        history: status changes and notable events, oldest first.
        error_type, error_message: why the task failed, when it did.
        version: the stored version (each checkpoint adds one).
    """

    id: str
    kind: str
    flow_version: int
    resource_id: str
    request: dict[str, Any]
    idempotency_key: str | None
    status: TaskStatus
    created: float
    updated: float
    steps: list[StepRecord]
    history: list[HistoryEvent] = msgspec.field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None
    version: int = 0

    def step(self, name: str) -> StepRecord:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class Action(msgspec.Struct, frozen=True):
    """One line per task, as Nova's ``instance-action-list`` shows them."""

    id: str
    kind: str
    status: TaskStatus
    created: float
    updated: float
    error: str | None


class QuarantinedTask(msgspec.Struct, frozen=True):
    """A task whose stored record could not be decoded, as the store indexed it.

    Attributes:
        id: the task's id (the record's key).
        resource_id: the resource it runs for, per the store's index (None if not indexed).
        status: its status per the store's index (what it was when last written).
        reason: why it could not be decoded.
    """

    id: str
    resource_id: str | None
    status: str | None
    reason: str

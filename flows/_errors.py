"""The flow errors, under the one stateward tree::

    StatewardError
    ├── FlowDefinitionError                    a flow's patterns do not add up
    ├── TaskNotFound (also LookupError)        no task record with that id
    ├── StepTimeout (also TimeoutError)        a step ran past its timeout
    ├── RecordTooLarge                         a task record would exceed the size limit
    ├── CommandRejected
    │   └── FlowBusy                           the resource already runs a flow
    └── StoreError
        └── ResourceQuarantined
            └── TaskQuarantined                a task record cannot be decoded; out of service

A step's own exception is recorded in its task record (type and message); the flow then
reverts. It reaches the caller only through the record, never by surprise.
"""

from __future__ import annotations

from collections.abc import Iterable

from stateward.runtime import CommandRejected, ResourceQuarantined, StatewardError

__all__ = (
    "FlowDefinitionError",
    "TaskNotFound",
    "StepTimeout",
    "RecordTooLarge",
    "FlowBusy",
    "TaskQuarantined",
)


class FlowDefinitionError(StatewardError):
    """A flow definition is inconsistent; ``problems`` lists every issue found."""

    def __init__(self, flow: str, problems: Iterable[str]) -> None:
        self.flow = flow
        self.problems = tuple(problems)
        super().__init__(f"flow {flow!r} is invalid: {'; '.join(self.problems)}")


class TaskNotFound(StatewardError, LookupError):
    """No task record has this id."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(f"no task {task_id!r}; list a resource's tasks to find its ids")


class StepTimeout(StatewardError, TimeoutError):
    """A step's execute ran longer than its task's timeout."""

    def __init__(self, step: str, timeout: float) -> None:
        self.step = step
        self.timeout = timeout
        super().__init__(f"step {step!r} did not finish within {timeout:g}s")


class RecordTooLarge(StatewardError):
    """A task record would be larger than the store accepts; nothing was truncated."""

    def __init__(self, task_id: str, *, size: int, limit: int) -> None:
        self.task_id = task_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"task {task_id} would take {size} bytes, over the {limit}-byte limit of a task "
            "record; keep step results small (store bulky data elsewhere and return its id)"
        )


class FlowBusy(CommandRejected):
    """The resource already runs a flow and the engine's policy is to reject another."""

    def __init__(self, resource_id: str, *, active: str) -> None:
        self.resource_id = resource_id
        self.active = active
        super().__init__(
            f"{resource_id} already runs task {active}; wait for it, cancel it, or submit "
            "with on_busy=Busy.QUEUE"
        )


class TaskQuarantined(ResourceQuarantined):
    """A stored task record cannot be decoded: the task is out of service.

    The engine leaves it out of resume and of listings, and every other task keeps working;
    the record stays as it is in the store for an operator to inspect. As a task is a
    resource of its own, ``resource_id`` is the task's id; ``owner`` is the resource it runs
    for, as the store indexed it.
    """

    def __init__(self, task_id: str, *, reason: str, owner: str | None = None) -> None:
        super().__init__(task_id, reason=reason)
        self.task_id = task_id
        self.owner = owner
        of = f" of {owner}" if owner is not None else ""
        self.args = (
            f"task {task_id}{of} is quarantined: {reason}; it is left out of resume and "
            f"listings, every other task works; inspect it with `stateward inspect DB --task "
            f"{task_id}`, then repair or delete its record",
        )

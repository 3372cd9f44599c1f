"""stateward.flows: durable flows of tasks with revert, retries and resume; task records.

It knows nothing of clouds: a flow runs on behalf of a resource id, and every operation is a
:class:`TaskRecord` checkpointed through a :class:`~stateward.runtime.Store`.
"""

from stateward.runtime import set_public_module as _set_public_module

from ._engine import MAX_RECORD_BYTES as MAX_RECORD_BYTES
from ._engine import TASKS as TASKS
from ._engine import Busy as Busy
from ._engine import FlowEngine as FlowEngine
from ._engine import FlowHandle as FlowHandle
from ._engine import FlowStatistics as FlowStatistics
from ._errors import FlowBusy as FlowBusy
from ._errors import FlowDefinitionError as FlowDefinitionError
from ._errors import RecordTooLarge as RecordTooLarge
from ._errors import StepTimeout as StepTimeout
from ._errors import TaskNotFound as TaskNotFound
from ._errors import TaskQuarantined as TaskQuarantined
from ._flow import Failure as Failure
from ._flow import Flow as Flow
from ._flow import Pattern as Pattern
from ._flow import Reconciled as Reconciled
from ._flow import Retry as Retry
from ._flow import Task as Task
from ._flow import graph as graph
from ._flow import linear as linear
from ._flow import task as task
from ._flow import unordered as unordered
from ._records import Action as Action
from ._records import HistoryEvent as HistoryEvent
from ._records import QuarantinedTask as QuarantinedTask
from ._records import StepRecord as StepRecord
from ._records import StepStatus as StepStatus
from ._records import TaskRecord as TaskRecord
from ._records import TaskStatus as TaskStatus

__all__ = (
    # defining flows
    "Task",
    "task",
    "Retry",
    "Reconciled",
    "Failure",
    "Flow",
    "Pattern",
    "linear",
    "unordered",
    "graph",
    # running them
    "FlowEngine",
    "FlowHandle",
    "FlowStatistics",
    "Busy",
    "TASKS",
    "MAX_RECORD_BYTES",
    # task records
    "TaskRecord",
    "TaskStatus",
    "StepRecord",
    "StepStatus",
    "HistoryEvent",
    "Action",
    "QuarantinedTask",
    # errors
    "FlowDefinitionError",
    "FlowBusy",
    "TaskNotFound",
    "StepTimeout",
    "RecordTooLarge",
    "TaskQuarantined",
)

# Reprs, tracebacks and pickle name the public path, not the private module.
_set_public_module(globals())

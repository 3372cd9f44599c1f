"""stateward.runtime: actors, mailboxes, supervision, state machines, clock, event bus."""

from ._errors import ActorCrashed as ActorCrashed
from ._errors import ActorError as ActorError
from ._errors import ActorNotFound as ActorNotFound
from ._errors import ActorStopped as ActorStopped
from ._errors import AskTimeout as AskTimeout
from ._errors import CommandRejected as CommandRejected
from ._errors import DuplicateAddress as DuplicateAddress
from ._errors import GoalUnreachable as GoalUnreachable
from ._errors import InvalidArgument as InvalidArgument
from ._errors import InvalidTransition as InvalidTransition
from ._errors import LifecycleError as LifecycleError
from ._errors import MachineDefinitionError as MachineDefinitionError
from ._errors import MailboxFull as MailboxFull
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import StatewardError as StatewardError
from ._errors import SubscriptionClosed as SubscriptionClosed
from ._errors import SupervisionError as SupervisionError
from ._errors import SystemNotRunning as SystemNotRunning

__all__ = (
    # errors
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
    "InvalidTransition",
    "GoalUnreachable",
    "MachineDefinitionError",
)

"""stateward.runtime: actors, mailboxes, supervision, state machines, clock, event bus."""

from ._actor import DEFAULT as DEFAULT
from ._actor import Actor as Actor
from ._actor import ActorContext as ActorContext
from ._actor import ActorRef as ActorRef
from ._actor import Reply as Reply
from ._actor import Restart as Restart
from ._actor import StartReason as StartReason
from ._bus import BusStatistics as BusStatistics
from ._bus import Event as Event
from ._bus import EventBus as EventBus
from ._bus import Overflow as Overflow
from ._bus import Subscription as Subscription
from ._env import VIRTUAL_EPOCH as VIRTUAL_EPOCH
from ._env import Clock as Clock
from ._env import Environment as Environment
from ._env import IdGenerator as IdGenerator
from ._env import RealClock as RealClock
from ._env import VirtualClock as VirtualClock
from ._env import VirtualEventLoop as VirtualEventLoop
from ._errors import ActorCrashed as ActorCrashed
from ._errors import ActorError as ActorError
from ._errors import ActorNotFound as ActorNotFound
from ._errors import ActorStopped as ActorStopped
from ._errors import AskTimeout as AskTimeout
from ._errors import CommandRejected as CommandRejected
from ._errors import CommitFailed as CommitFailed
from ._errors import DuplicateAddress as DuplicateAddress
from ._errors import GoalUnreachable as GoalUnreachable
from ._errors import InvalidArgument as InvalidArgument
from ._errors import InvalidCommand as InvalidCommand
from ._errors import InvalidTransition as InvalidTransition
from ._errors import LifecycleError as LifecycleError
from ._errors import MachineDefinitionError as MachineDefinitionError
from ._errors import MailboxFull as MailboxFull
from ._errors import ResourceQuarantined as ResourceQuarantined
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import RevisionConflict as RevisionConflict
from ._errors import SchemaError as SchemaError
from ._errors import StatewardError as StatewardError
from ._errors import StoreError as StoreError
from ._errors import StoreUnavailable as StoreUnavailable
from ._errors import SubscriptionClosed as SubscriptionClosed
from ._errors import SupervisionError as SupervisionError
from ._errors import SystemNotRunning as SystemNotRunning
from ._exports import set_public_module as set_public_module
from ._fsm import DriveTo as DriveTo
from ._fsm import Fire as Fire
from ._fsm import FSMActor as FSMActor
from ._fsm import NoData as NoData
from ._log import get_logger as get_logger
from ._machine import Machine as Machine
from ._machine import MachineInstance as MachineInstance
from ._machine import StateKind as StateKind
from ._machine import Transition as Transition
from ._machine import TransitionRecord as TransitionRecord
from ._postgres import POSTGRES_SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from ._postgres import PostgresStore as PostgresStore
from ._postgres import is_dsn as is_dsn
from ._postgres import open_postgres_store as open_postgres_store
from ._postgres import redact_dsn as redact_dsn
from ._reader import DocumentRow as DocumentRow
from ._reader import HeadRow as HeadRow
from ._reader import JournalRow as JournalRow
from ._reader import RawCell as RawCell
from ._reader import ReadFailure as ReadFailure
from ._reader import RowCounts as RowCounts
from ._reader import StoreReader as StoreReader
from ._reader import open_store_reader as open_store_reader
from ._request import Request as Request
from ._sqlite import SCHEMA_VERSION as SCHEMA_VERSION
from ._sqlite import Durability as Durability
from ._sqlite import SqliteStore as SqliteStore
from ._sqlite import open_sqlite_store as open_sqlite_store
from ._store import Document as Document
from ._store import Loaded as Loaded
from ._store import MemoryStore as MemoryStore
from ._store import ResourceSummary as ResourceSummary
from ._store import Retention as Retention
from ._store import Store as Store
from ._store import StoreStatistics as StoreStatistics
from ._store import Write as Write
from ._supervisor import Strategy as Strategy
from ._supervisor import Supervisor as Supervisor
from ._system import ActorSystem as ActorSystem
from ._system import DeadLetter as DeadLetter
from ._system import SystemStatistics as SystemStatistics
from ._system import open_actor_system as open_actor_system
from ._timers import Timer as Timer
from ._timers import TimerFired as TimerFired
from ._timers import Timers as Timers

__all__ = (
    # actors and systems
    "Actor",
    "ActorContext",
    "ActorRef",
    "ActorSystem",
    "open_actor_system",
    "SystemStatistics",
    "DeadLetter",
    "Request",
    "Reply",
    "StartReason",
    "DEFAULT",
    # supervision
    "Supervisor",
    "Timer",
    "TimerFired",
    "Timers",
    "Strategy",
    "Restart",
    # environment
    "Environment",
    "Clock",
    "RealClock",
    "VirtualClock",
    "VirtualEventLoop",
    "VIRTUAL_EPOCH",
    "IdGenerator",
    # logging
    "get_logger",
    # packaging
    "set_public_module",
    # event bus
    "EventBus",
    "Event",
    "Subscription",
    "Overflow",
    "BusStatistics",
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
    "InvalidCommand",
    "InvalidTransition",
    "GoalUnreachable",
    "MachineDefinitionError",
    # state machines
    "StateKind",
    "Transition",
    "Machine",
    "MachineInstance",
    "TransitionRecord",
    "FSMActor",
    "Fire",
    "DriveTo",
    "NoData",
    # durable store
    "Store",
    "Write",
    "Document",
    "Loaded",
    "ResourceSummary",
    "StoreStatistics",
    "Retention",
    "MemoryStore",
    "SqliteStore",
    "POSTGRES_SCHEMA_VERSION",
    "PostgresStore",
    "open_postgres_store",
    "redact_dsn",
    "is_dsn",
    "open_sqlite_store",
    "Durability",
    "SCHEMA_VERSION",
    # offline reading of a SQLite store
    "StoreReader",
    "open_store_reader",
    "ReadFailure",
    "RawCell",
    "HeadRow",
    "JournalRow",
    "DocumentRow",
    "RowCounts",
    # store errors
    "StoreError",
    "StoreUnavailable",
    "CommitFailed",
    "RevisionConflict",
    "ResourceQuarantined",
    "SchemaError",
)

# Reprs, tracebacks and pickle name the public path, not the private module.
set_public_module(globals())

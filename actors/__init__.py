"""stateward.actors: the cloud domain: hosts, instances, the scheduler, the driver boundary
and the :class:`Fleet` that embeds them all."""

from stateward.runtime import set_public_module as _set_public_module

from ._calendar import Calendar as Calendar
from ._calendar import Hold as Hold
from ._calendar import Shortfall as Shortfall
from ._drain import DrainIncomplete as DrainIncomplete
from ._driver import Driver as Driver
from ._driver import DriverError as DriverError
from ._driver import DriverGuest as DriverGuest
from ._driver import DriverInstance as DriverInstance
from ._driver import DriverView as DriverView
from ._driver import FakeDriver as FakeDriver
from ._driver import GuestRole as GuestRole
from ._driver import Operation as Operation
from ._driver import Power as Power
from ._driver import StaleEpoch as StaleEpoch
from ._errors import DuplicateName as DuplicateName
from ._errors import FleetNotOpen as FleetNotOpen
from ._errors import LeaseDoesNotFit as LeaseDoesNotFit
from ._errors import LeaseNotActive as LeaseNotActive
from ._errors import UnknownName as UnknownName
from ._errors import WaitTimeout as WaitTimeout
from ._fleet import Catalog as Catalog
from ._fleet import Fleet as Fleet
from ._fleet import Hosts as Hosts
from ._fleet import Instances as Instances
from ._fleet import Migrations as Migrations
from ._fleet import ReconcileReport as ReconcileReport
from ._fleet import Tasks as Tasks
from ._host import HOST as HOST
from ._host import Capacity as Capacity
from ._host import Claim as Claim
from ._host import ClaimCapacity as ClaimCapacity
from ._host import ClaimRefused as ClaimRefused
from ._host import Configure as Configure
from ._host import ConfirmHold as ConfirmHold
from ._host import Fit as Fit
from ._host import FitQuery as FitQuery
from ._host import GetCalendar as GetCalendar
from ._host import GetHost as GetHost
from ._host import Heartbeat as Heartbeat
from ._host import HoldRefused as HoldRefused
from ._host import HoldState as HoldState
from ._host import HostActor as HostActor
from ._host import HostCalendar as HostCalendar
from ._host import HostData as HostData
from ._host import HostStatus as HostStatus
from ._host import LeaseHold as LeaseHold
from ._host import OpenHold as OpenHold
from ._host import PlaceHold as PlaceHold
from ._host import ReleaseClaim as ReleaseClaim
from ._host import ReleaseHold as ReleaseHold
from ._host import ReleaseLease as ReleaseLease
from ._instance import ACTIONS as ACTIONS
from ._instance import BootSpec as BootSpec
from ._instance import InstanceActor as InstanceActor
from ._instance import InstanceData as InstanceData
from ._instance import InstanceStatus as InstanceStatus
from ._instance import Move as Move
from ._instance import Switch as Switch
from ._instance_machine import COMMANDS as COMMANDS
from ._instance_machine import INSTANCE as INSTANCE
from ._instance_machine import Command as Command
from ._instance_machine import InstanceAction as InstanceAction
from ._instance_machine import task_running as task_running
from ._instance_machine import task_state as task_state
from ._instance_machine import vm_state as vm_state
from ._lease import GetLease as GetLease
from ._lease import LeaseActor as LeaseActor
from ._lease import LeaseData as LeaseData
from ._lease import LeaseStatus as LeaseStatus
from ._lease import LeaseStep as LeaseStep
from ._lease import PlacedHold as PlacedHold
from ._lease_machine import LEASE as LEASE
from ._lease_machine import LEASE_NOTIFICATIONS as LEASE_NOTIFICATIONS
from ._lease_machine import HostReservation as HostReservation
from ._lease_machine import InstanceReservation as InstanceReservation
from ._lease_machine import LeasePolicy as LeasePolicy
from ._lease_machine import LeaseSpec as LeaseSpec
from ._lease_machine import LeaseStart as LeaseStart
from ._lease_machine import Reservation as Reservation
from ._leases import START_TOLERANCE as START_TOLERANCE
from ._leases import Leases as Leases
from ._migration import Advance as Advance
from ._migration import GetMigration as GetMigration
from ._migration import MigrationActor as MigrationActor
from ._migration import MigrationData as MigrationData
from ._migration import MigrationStatus as MigrationStatus
from ._migration_machine import EVACUATE as EVACUATE
from ._migration_machine import LIVE_MIGRATE as LIVE_MIGRATE
from ._migration_machine import MIGRATE as MIGRATE
from ._migration_machine import MIGRATION_TERMINALS as MIGRATION_TERMINALS
from ._migration_machine import RESIZE as RESIZE
from ._migration_machine import MoveKind as MoveKind
from ._scheduler import DEFAULT_FILTERS as DEFAULT_FILTERS
from ._scheduler import Filter as Filter
from ._scheduler import FilterContext as FilterContext
from ._scheduler import Flavor as Flavor
from ._scheduler import GroupMembership as GroupMembership
from ._scheduler import GroupPolicy as GroupPolicy
from ._scheduler import NoValidHost as NoValidHost
from ._scheduler import Placement as Placement
from ._scheduler import PlacementRequest as PlacementRequest
from ._scheduler import Scheduler as Scheduler
from ._scheduler import ServerGroup as ServerGroup
from ._scheduler import Weigher as Weigher
from ._scheduler import capacity_filter as capacity_filter
from ._scheduler import enabled_and_up_filter as enabled_and_up_filter
from ._scheduler import reservation_filter as reservation_filter
from ._scheduler import server_group_filter as server_group_filter
from ._scheduler import zone_filter as zone_filter
from ._services import FleetServices as FleetServices

__all__ = (
    # the embedding API
    "Fleet",
    "Hosts",
    "Instances",
    "Tasks",
    "Migrations",
    "Catalog",
    "ReconcileReport",
    "UnknownName",
    "DuplicateName",
    "FleetNotOpen",
    "WaitTimeout",
    # instances
    "INSTANCE",
    "ACTIONS",
    "InstanceAction",
    "COMMANDS",
    "Command",
    "task_running",
    "InstanceActor",
    "BootSpec",
    "FleetServices",
    "InstanceData",
    "InstanceStatus",
    "vm_state",
    "task_state",
    "Driver",
    "DriverError",
    "DriverGuest",
    "GuestRole",
    "StaleEpoch",
    "DriverInstance",
    "DriverView",
    "FakeDriver",
    "Operation",
    "Power",
    # moves
    "MoveKind",
    "MIGRATE",
    "RESIZE",
    "LIVE_MIGRATE",
    "EVACUATE",
    "MIGRATION_TERMINALS",
    "MigrationActor",
    "MigrationData",
    "MigrationStatus",
    "Move",
    "Switch",
    "Advance",
    "GetMigration",
    "DrainIncomplete",
    # hosts
    "HOST",
    "HostActor",
    "HostData",
    "HostStatus",
    "Capacity",
    "Claim",
    "Configure",
    "ClaimCapacity",
    "ReleaseClaim",
    "Heartbeat",
    "GetHost",
    "ClaimRefused",
    "Calendar",
    "Hold",
    "Shortfall",
    "HoldState",
    "LeaseHold",
    "PlaceHold",
    "ConfirmHold",
    "OpenHold",
    "ReleaseHold",
    "ReleaseLease",
    "HoldRefused",
    "FitQuery",
    "Fit",
    "GetCalendar",
    "HostCalendar",
    # leases
    "Leases",
    "LEASE",
    "LEASE_NOTIFICATIONS",
    "LeaseActor",
    "LeaseData",
    "LeaseStatus",
    "LeaseStep",
    "GetLease",
    "PlacedHold",
    "LeaseSpec",
    "LeasePolicy",
    "LeaseStart",
    "HostReservation",
    "InstanceReservation",
    "Reservation",
    "LeaseDoesNotFit",
    "LeaseNotActive",
    "START_TOLERANCE",
    # scheduling
    "Flavor",
    "GroupPolicy",
    "ServerGroup",
    "PlacementRequest",
    "Placement",
    "GroupMembership",
    "FilterContext",
    "Filter",
    "reservation_filter",
    "capacity_filter",
    "enabled_and_up_filter",
    "zone_filter",
    "server_group_filter",
    "DEFAULT_FILTERS",
    "Weigher",
    "NoValidHost",
    "Scheduler",
)

# Reprs, tracebacks and pickle name the public path, not the private module.
_set_public_module(globals())

"""stateward.actors: the cloud domain. So far: the driver boundary and host actors."""

from ._driver import Driver as Driver
from ._driver import DriverError as DriverError
from ._driver import DriverInstance as DriverInstance
from ._driver import DriverView as DriverView
from ._driver import FakeDriver as FakeDriver
from ._driver import Operation as Operation
from ._driver import Power as Power
from ._host import HOST as HOST
from ._host import Capacity as Capacity
from ._host import Claim as Claim
from ._host import ClaimCapacity as ClaimCapacity
from ._host import ClaimRefused as ClaimRefused
from ._host import Configure as Configure
from ._host import GetHost as GetHost
from ._host import Heartbeat as Heartbeat
from ._host import HostActor as HostActor
from ._host import HostData as HostData
from ._host import HostStatus as HostStatus
from ._host import ReleaseClaim as ReleaseClaim

__all__ = (
    "Driver",
    "DriverError",
    "DriverInstance",
    "DriverView",
    "FakeDriver",
    "Operation",
    "Power",
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
)

"""stateward.actors: the cloud domain. So far: the driver boundary and a fake hypervisor."""

from ._driver import Driver as Driver
from ._driver import DriverError as DriverError
from ._driver import DriverInstance as DriverInstance
from ._driver import DriverView as DriverView
from ._driver import FakeDriver as FakeDriver
from ._driver import Operation as Operation
from ._driver import Power as Power

__all__ = (
    "Driver",
    "DriverError",
    "DriverInstance",
    "DriverView",
    "FakeDriver",
    "Operation",
    "Power",
)

"""The fleet scenario: stateward's own cloud domain under chaos (``stateward simulate``).

Example:
    >>> from stateward.sim.fleet import FleetConfig, simulate_fleet
    >>> result = simulate_fleet(FleetConfig(seed=7, hosts=3, instances=10, duration=600))
    >>> result.ok
    True
"""

from __future__ import annotations

from stateward.runtime import set_public_module

from ._fleet import FLEET_FAULTS as FLEET_FAULTS
from ._fleet import PLANTED_BUGS as PLANTED_BUGS
from ._fleet import FleetConfig as FleetConfig
from ._fleet import FleetScenario as FleetScenario
from ._fleet import simulate_fleet as simulate_fleet
from ._fleet_checks import FLEET_INVARIANTS as FLEET_INVARIANTS

__all__ = (
    "FleetScenario",
    "FleetConfig",
    "simulate_fleet",
    "FLEET_FAULTS",
    "FLEET_INVARIANTS",
    "PLANTED_BUGS",
)

set_public_module(globals())

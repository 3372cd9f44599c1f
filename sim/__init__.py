"""The deterministic chaos simulator: your system on virtual time, under faults, replayable.

Write a :class:`Scenario` — how to open your system on the world's store, what one client
operation does, the invariants that must hold — and :func:`simulate` it under a seed. The
world runs it on a virtual clock through process crashes (no cleanup; the next incarnation
opens what was committed), store failures and a lossy client network, then heals and checks
that everything settled. Every event goes to the history; the same seed and code give the
same history, so a failing seed is a reproducible bug.

The fleet simulation of ``stateward simulate`` is one scenario among others:
:mod:`stateward.sim.fleet`.
"""

from __future__ import annotations

from stateward.runtime import set_public_module

from ._faults import CORE_FAULTS as CORE_FAULTS
from ._faults import DISK_FULL as DISK_FULL
from ._faults import MESSAGE_DELAY as MESSAGE_DELAY
from ._faults import MESSAGE_LOSS as MESSAGE_LOSS
from ._faults import PROCESS_CRASH as PROCESS_CRASH
from ._faults import STORE_FAILURE as STORE_FAILURE
from ._faults import STORE_FALSE_FAILURE as STORE_FALSE_FAILURE
from ._faults import Faults as Faults
from ._faults import FaultSite as FaultSite
from ._faults import MessageLost as MessageLost
from ._history import Divergence as Divergence
from ._history import History as History
from ._history import Operation as Operation
from ._history import first_divergence as first_divergence
from ._history import sweep_digest as sweep_digest
from ._invariants import EVERY_OPERATION_COMPLETED as EVERY_OPERATION_COMPLETED
from ._invariants import Invariant as Invariant
from ._invariants import Problem as Problem
from ._invariants import Violation as Violation
from ._world import UNEXPECTED_ERROR as UNEXPECTED_ERROR
from ._world import Scenario as Scenario
from ._world import SimConfig as SimConfig
from ._world import SimResult as SimResult
from ._world import World as World
from ._world import check_determinism as check_determinism
from ._world import derive_seed as derive_seed
from ._world import simulate as simulate
from ._world import sweep as sweep

__all__ = (
    # running
    "Scenario",
    "SimConfig",
    "SimResult",
    "World",
    "simulate",
    "check_determinism",
    "sweep",
    "derive_seed",
    "UNEXPECTED_ERROR",
    # faults
    "FaultSite",
    "Faults",
    "MessageLost",
    "CORE_FAULTS",
    "PROCESS_CRASH",
    "STORE_FAILURE",
    "STORE_FALSE_FAILURE",
    "DISK_FULL",
    "MESSAGE_DELAY",
    "MESSAGE_LOSS",
    # invariants
    "Invariant",
    "Problem",
    "Violation",
    "EVERY_OPERATION_COMPLETED",
    # history
    "History",
    "Operation",
    "Divergence",
    "first_divergence",
    "sweep_digest",
)

set_public_module(globals())

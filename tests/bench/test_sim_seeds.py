"""Seeds the simulator once failed on, pinned: each runs to the end with every invariant held."""

from __future__ import annotations

import pytest

from stateward.sim.fleet import FleetConfig, simulate_fleet


@pytest.mark.parametrize(
    "seed",
    [
        # A command whose transition reached the store while the store reported the commit
        # failed (a false failure, just before the chaos phase ended): the instance forgot
        # the intent its journal held, and the heal left it mid-task. A hard reboot left in
        # active/rebooting_hard, a boot in building/scheduling, a pause in active/pausing.
        1055,
        1858,
        2902,
    ],
)
def test_pinned_seed_holds_every_invariant(seed: int) -> None:
    """The small fleet under every fault site, for the seed's 10,000 s of chaos: every
    invariant holds and every instance has settled."""
    result = simulate_fleet(FleetConfig(seed=seed, hosts=5, instances=30, duration=10_000.0))
    assert [(v.invariant, v.detail) for v in result.violations] == []
    assert "store_false_failure" in result.enabled_faults
    assert result.incarnations > 1  # process crashes happened

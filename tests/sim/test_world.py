"""The simulator's generic core: a user's scenario, its crashes, faults, invariants and
history, with no cloud in sight."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import functools
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from stateward.runtime import ActorSystem, InvalidArgument, open_actor_system
from stateward.sim import (
    CORE_FAULTS,
    UNEXPECTED_ERROR,
    Faults,
    FaultSite,
    Invariant,
    Problem,
    Scenario,
    SimConfig,
    check_determinism,
    simulate,
    sweep,
    sweep_digest,
)
from stateward.testing import Crash  # noqa: F401  (the kit and the simulator ship together)

SIM = Path(__file__).resolve().parents[2] / "sim"


class Tally(Scenario[ActorSystem]):
    """Clients count operations; the counted total lives in the store as one document
    per operation, so it survives crashes exactly as far as it was committed."""

    raise_in_operate = False
    checked: list[tuple[str, int]]

    def __init__(self, world: Any, *, fail_liveness: bool = False) -> None:
        super().__init__(world)
        self.fail_liveness = fail_liveness
        self.opened = 0
        self.checked = []

    invariants = (
        Invariant("opened once per incarnation", lambda s, app: s.once()),
        Invariant("nothing left", lambda s, app: s.left(), liveness=True),
    )

    async def open(self) -> ActorSystem:
        self.opened += 1
        system = await open_actor_system(store=self.world.store, env=self.world.env()).__aenter__()
        history = self.world.history
        for key in list(history.open):
            history.complete(key, "not-started")
        return system

    async def operate(self, app: ActorSystem, rng: random.Random) -> None:
        key = f"op-{rng.getrandbits(32):08x}"
        self.world.history.invoke("count", "tally", key)
        if self.raise_in_operate:
            raise RuntimeError("a bug in the client")
        self.world.history.complete(key, "ok")

    async def close(self, app: ActorSystem) -> None:
        await app.__aexit__(None, None, None)

    async def once(self) -> list[str]:
        self.checked.append(("safety", self.world.incarnation))
        if self.opened != self.world.incarnation:
            return [f"opened {self.opened} times in {self.world.incarnation} incarnations"]
        return []

    async def left(self) -> list[Problem]:
        self.checked.append(("liveness", self.world.incarnation))
        return [Problem("planted", ("tally",))] if self.fail_liveness else []


CONFIG = SimConfig(seed=3, duration=3600.0, clients=2, think=60.0)


def test_a_run_crashes_reopens_and_holds() -> None:
    result = simulate(Tally, CONFIG)
    assert result.ok, result.violations
    assert result.incarnations == 1 + result.faults["process_crash"]
    assert result.operations["count", "ok"] > 0
    assert result.simulated >= CONFIG.duration
    kinds = [e["kind"] for e in result.trace]
    assert kinds.count("incarnation") == result.incarnations
    assert kinds[-1] == "heal"


def test_safety_runs_after_every_opening_and_liveness_after_the_heal() -> None:
    scenarios: list[Tally] = []

    def make(world: Any) -> Tally:
        scenarios.append(Tally(world))
        return scenarios[-1]

    # ``make`` is no Scenario class: a partial of one is what the runner accepts.
    with pytest.raises(InvalidArgument, match="Scenario subclass"):
        simulate(make, CONFIG)
    result = simulate(functools.partial(Tally, fail_liveness=True), CONFIG)
    assert [v.invariant for v in result.violations] == ["nothing left"]
    assert result.violations[0].detail == "after heal: planted"
    assert result.violations[0].resources == ("tally",)


def test_an_error_escaping_a_client_is_a_violation_and_the_run_goes_on() -> None:
    class Buggy(Tally):
        raise_in_operate = True

    result = simulate(Buggy, CONFIG)
    names = {v.invariant for v in result.violations}
    assert UNEXPECTED_ERROR in names
    detail = next(v.detail for v in result.violations if v.invariant == UNEXPECTED_ERROR)
    assert "RuntimeError: a bug in the client" in detail


def test_the_same_seed_gives_the_same_history_and_another_seed_another() -> None:
    first, divergence = check_determinism(Tally, CONFIG)
    assert divergence is None
    other = simulate(Tally, dataclasses.replace(CONFIG, seed=4))
    assert other.digest != first.digest
    digests = [r.digest for r in sweep(Tally, CONFIG, [3, 4])]
    assert digests == [first.digest, other.digest]
    assert sweep_digest(digests) != sweep_digest(reversed(digests))


def test_fault_sites_fire_only_when_allowed_and_a_user_site_counts() -> None:
    fired: list[float] = []

    def poke(scenario: Tally, app: ActorSystem) -> None:
        fired.append(scenario.world.clock.monotonic())
        scenario.world.fault("poke")

    class Poked(Tally):
        faults = (FaultSite("poke", "a user's own fault", poke),)

    seeds = list(sweep(Poked, dataclasses.replace(CONFIG, duration=36_000.0), range(4)))
    assert any(r.faults["poke"] for r in seeds)
    assert sum(r.faults["poke"] for r in seeds) == len(fired)
    assert all(f <= 36_000.0 for f in fired)
    quiet = simulate(Poked, dataclasses.replace(CONFIG, faults=frozenset()))
    assert not quiet.faults
    assert quiet.incarnations == 1
    with pytest.raises(InvalidArgument, match="poke"):
        simulate(Poked, dataclasses.replace(CONFIG, faults=frozenset({"meteor"})))


def test_a_scenario_can_kill_the_process_at_a_moment_it_picks() -> None:
    """A fault aimed at a moment (right after an operation, here): the incarnation dies
    then, only what was committed survives, and the crash counts under the site's name."""
    crashes_at: list[float] = []

    class Aimed(Tally):
        faults = (FaultSite("after_count", "the process dies right after a count"),)

        async def operate(self, app: ActorSystem, rng: random.Random) -> None:
            await super().operate(app, rng)
            world = self.world
            if rng.random() < 0.2 * world.rate("after_count"):
                crashes_at.append(world.clock.monotonic())
                world.crash("after_count", resource="tally")
                await asyncio.sleep(0)
                raise AssertionError("a killed process ran on")

    config = dataclasses.replace(CONFIG, faults=frozenset({"after_count"}))
    runs = [r for r in sweep(Aimed, config, range(6)) if r.faults["after_count"]]
    assert runs, "no seed switched the site on"
    for result in runs:
        assert result.ok, result.violations
        assert result.incarnations == 1 + result.faults["after_count"]
        assert "process_crash" not in result.faults
    assert all(at < config.duration for at in crashes_at)


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unique names"):
        Faults([*CORE_FAULTS, CORE_FAULTS[0]])
    with pytest.raises(InvalidArgument, match="identifier"):
        FaultSite("no spaces please", "x")
    with pytest.raises(InvalidArgument, match="seconds > 0"):
        SimConfig(seed=1, duration=0)
    with pytest.raises(InvalidArgument, match="seed"):
        SimConfig(seed=-1)
    with pytest.raises(InvalidArgument, match="SimConfig"):
        simulate(Tally, {"seed": 1})  # type: ignore[arg-type]


def test_the_core_knows_no_cloud() -> None:
    """Only the fleet scenario's modules import the cloud domain or the flows."""
    for path in sorted(SIM.glob("*.py")):
        if path.stem.startswith("_fleet") or path.stem == "fleet":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("stateward.actors", "stateward.flows")), path


def test_a_task_that_refuses_to_end_does_not_hang_the_end_of_a_run() -> None:
    """An abandoned incarnation's task that answers cancellation by waiting on something no
    one will ever resolve (as one may when Ctrl-C interrupts a loop mid-callback) is left
    behind at the end of the run, not waited for forever."""
    stubborn: list[asyncio.Task[None]] = []

    async def refuse() -> None:
        while True:
            try:
                await asyncio.get_running_loop().create_future()  # never resolved
            except asyncio.CancelledError:
                continue

    class Stubborn(Tally):
        async def operate(self, app: ActorSystem, rng: random.Random) -> None:
            if not stubborn:
                stubborn.append(asyncio.get_running_loop().create_task(refuse()))
            await super().operate(app, rng)

    results: list[Any] = []
    run = threading.Thread(
        target=lambda: results.append(
            simulate(Stubborn, dataclasses.replace(CONFIG, duration=600.0))
        ),
        daemon=True,
    )
    run.start()
    run.join(timeout=30.0)  # a hang detector, not a speed test: the run takes well under 1 s
    assert not run.is_alive(), "the run waited forever for a task that refuses to end"
    [result] = results
    assert result.ok, result.violations
    [task] = stubborn
    assert not task.done()

"""Tests of the injected environment: virtual time, seeded random streams and ids."""

from __future__ import annotations

import asyncio
import datetime
import re

import pytest

from stateward.runtime import (
    Clock,
    Environment,
    IdGenerator,
    InvalidArgument,
    LifecycleError,
    RealClock,
    VirtualClock,
    VirtualEventLoop,
    open_actor_system,
)
from stateward.runtime._env import VIRTUAL_EPOCH

HOUR = 3600.0


# --------------------------------------------------------------------------------------------
# VirtualClock


def test_virtual_epoch_is_2026_new_year_utc() -> None:
    """Virtual wall time starts at 2026-01-01T00:00:00Z, so virtual timestamps read as dates."""
    epoch = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC).timestamp()
    assert epoch == VIRTUAL_EPOCH


def test_run_sleeps_an_hour_at_once() -> None:
    """run() of a coroutine sleeping an hour returns with the clock an hour further."""
    clock = VirtualClock()

    async def main() -> str:
        await asyncio.sleep(HOUR)
        return "done"

    assert clock.run(main()) == "done"
    assert clock.monotonic() == HOUR
    assert clock.now() == VIRTUAL_EPOCH + HOUR
    assert clock.jumps == 1


def test_clock_sleep_on_its_own_loop() -> None:
    """clock.sleep() on the clock's own loop advances it by exactly the time slept."""
    clock = VirtualClock(start=10.0)
    clock.run(clock.sleep(HOUR))
    assert clock.monotonic() == 10.0 + HOUR
    assert clock.now() == VIRTUAL_EPOCH + 10.0 + HOUR


def test_new_clock_reads_its_start() -> None:
    """A new clock reads its start time on both its monotonic and its wall clock."""
    clock = VirtualClock(start=5.0)
    assert (clock.monotonic(), clock.now(), clock.jumps) == (5.0, VIRTUAL_EPOCH + 5.0, 0)
    assert VirtualClock().monotonic() == 0.0


def test_negative_start_is_refused() -> None:
    """A negative start raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match=r"^start: expected a non-negative number"):
        VirtualClock(start=-1.0)


def test_non_numeric_start_is_refused() -> None:
    """A start that is not a number raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match=r"^start: expected "):
        VirtualClock(start="soon")  # type: ignore[arg-type]


@pytest.mark.virtual_time
async def test_virtual_time_marker_runs_on_a_virtual_loop() -> None:
    """A `virtual_time` test's sleep of an hour advances VirtualClock.current() by an hour."""
    clock = VirtualClock.current()
    assert isinstance(asyncio.get_running_loop(), VirtualEventLoop)
    start = clock.monotonic()
    await asyncio.sleep(HOUR)
    assert clock.monotonic() - start == HOUR


@pytest.mark.virtual_time
async def test_timers_fire_in_deadline_order() -> None:
    """Sleepers wake in the order of their deadlines, each at its own virtual time."""
    clock = VirtualClock.current()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with asyncio.TaskGroup() as group:
        for name, seconds in [("c", 30.0), ("a", 10.0), ("d", 40.0), ("b", 20.0)]:
            group.create_task(sleeper(name, seconds))

    assert woke == [("a", 10.0), ("b", 20.0), ("c", 30.0), ("d", 40.0)]


@pytest.mark.virtual_time
async def test_call_later_runs_on_virtual_time() -> None:
    """loop.call_later callbacks run at their virtual deadline, in order."""
    loop = asyncio.get_running_loop()
    clock = VirtualClock.current()
    fired: list[float] = []
    for delay in (5.0, 1.0, 3.0):
        loop.call_later(delay, lambda: fired.append(clock.monotonic()))
    await asyncio.sleep(10)
    assert fired == [1.0, 3.0, 5.0]


@pytest.mark.virtual_time
async def test_wait_for_times_out_on_virtual_time() -> None:
    """asyncio.wait_for times out after its timeout in virtual seconds, not wall seconds."""
    clock = VirtualClock.current()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.sleep(HOUR), timeout=5)
    assert clock.monotonic() == 5.0


@pytest.mark.virtual_time
async def test_wait_for_returns_before_its_timeout() -> None:
    """asyncio.wait_for returns as soon as the awaited sleep ends, before the timeout."""
    clock = VirtualClock.current()

    async def work() -> str:
        await asyncio.sleep(2)
        return "ok"

    assert await asyncio.wait_for(work(), timeout=HOUR) == "ok"
    assert clock.monotonic() == 2.0


async def test_current_on_a_normal_loop_raises() -> None:
    """VirtualClock.current() on an ordinary event loop raises LifecycleError."""
    with pytest.raises(
        LifecycleError, match=r"^the running loop is a \w+, not a VirtualEventLoop$"
    ):
        VirtualClock.current()


async def test_sleep_on_a_normal_loop_raises() -> None:
    """clock.sleep() on an ordinary event loop raises LifecycleError and says what to do."""
    with pytest.raises(
        LifecycleError, match=r"needs the clock's own VirtualEventLoop; run the program with"
    ):
        await VirtualClock().sleep(1)


@pytest.mark.virtual_time
async def test_sleep_on_another_clocks_loop_raises() -> None:
    """clock.sleep() on another clock's VirtualEventLoop raises LifecycleError."""
    foreign = VirtualClock()
    assert foreign is not VirtualClock.current()
    with pytest.raises(LifecycleError, match=r"needs the clock's own VirtualEventLoop"):
        await foreign.sleep(1)
    assert foreign.monotonic() == 0.0


async def test_virtual_environment_on_a_normal_loop_refuses_to_open() -> None:
    """Opening a system whose clock is virtual on an ordinary loop raises LifecycleError."""
    system = open_actor_system(env=Environment.virtual(1))
    with pytest.raises(
        LifecycleError,
        match=r"^the environment has a VirtualClock but the system runs on a \w+; "
        r"run it with clock\.run\(main\(\)\) or on clock\.new_event_loop\(\)$",
    ):
        async with system:
            pass  # pragma: no cover - never entered
    assert not system.is_running


@pytest.mark.virtual_time
async def test_virtual_environment_on_another_clocks_loop_refuses_to_open() -> None:
    """A system whose VirtualClock is not the running loop's refuses to open."""
    system = open_actor_system(env=Environment.virtual(1))
    with pytest.raises(LifecycleError, match=r"^the environment has a VirtualClock"):
        async with system:
            pass  # pragma: no cover - never entered


def test_virtual_environment_opens_under_its_clock() -> None:
    """A system with a virtual environment runs under clock.run, on virtual time."""
    env = Environment.virtual(1)
    clock = env.clock
    assert isinstance(clock, VirtualClock)

    async def main() -> float:
        async with open_actor_system(env=env) as system:
            assert system.is_running
            await env.clock.sleep(HOUR)
            return env.clock.now()

    assert clock.run(main()) == VIRTUAL_EPOCH + HOUR


async def test_real_clock_reads_the_running_loop() -> None:
    """RealClock.monotonic() is the running loop's time and now() is close to time.time()."""
    clock = RealClock()
    loop = asyncio.get_running_loop()
    before = loop.time()
    assert before <= clock.monotonic() <= loop.time()
    assert clock.now() > VIRTUAL_EPOCH - 10 * 365 * 24 * HOUR  # a real date, not virtual zero


def test_clocks_satisfy_the_clock_protocol() -> None:
    """RealClock and VirtualClock are Clocks; an object without the methods is not."""
    assert isinstance(RealClock(), Clock)
    assert isinstance(VirtualClock(), Clock)
    assert not isinstance(object(), Clock)


# --------------------------------------------------------------------------------------------
# Environment: seeded streams and ids


def draws(env: Environment, stream: str, count: int = 8) -> list[int]:
    """``count`` 32-bit draws from ``env``'s stream ``stream``."""
    rng = env.random(stream)
    return [rng.getrandbits(32) for _ in range(count)]


def test_same_seed_gives_identical_streams_and_ids() -> None:
    """Two environments with one seed produce the same draws and the same ids."""
    first, second = Environment(seed=7), Environment(seed=7)
    assert draws(first, "placement") == draws(second, "placement")
    assert [first.ids.next("task") for _ in range(5)] == [second.ids.next("task") for _ in range(5)]


def test_ids_do_not_depend_on_the_process() -> None:
    """Seed 0 gives the same first id in every process (no salted hash in the derivation)."""
    assert Environment(seed=0).ids.next("task") == "task-53c6b5551bbf5a3a"


def test_different_streams_are_independent_sequences() -> None:
    """Two stream names of one environment draw different sequences."""
    env = Environment(seed=7)
    assert draws(env, "placement") != draws(env, "failures")


def test_drawing_from_one_stream_does_not_shift_another() -> None:
    """Draws from one stream leave every other stream's sequence unchanged."""
    quiet, busy = Environment(seed=7), Environment(seed=7)
    draws(busy, "failures", count=100)
    busy.ids.next("task")
    assert draws(busy, "placement") == draws(quiet, "placement")


def test_stream_is_the_same_object_each_time() -> None:
    """random(name) returns the same stream object, continuing where it left off."""
    env = Environment(seed=7)
    assert env.random("placement") is env.random("placement")


def test_different_seeds_differ() -> None:
    """Environments with different seeds draw different sequences and ids."""
    first, second = Environment(seed=1), Environment(seed=2)
    assert draws(first, "placement") != draws(second, "placement")
    assert first.ids.next("task") != second.ids.next("task")


def test_id_format_is_prefix_and_16_hex_digits() -> None:
    """ids.next("task") is `task-` and 16 lower-case hex digits; ids do not repeat."""
    env = Environment(seed=3)
    ids = [env.ids.next("task") for _ in range(1000)]
    assert all(re.fullmatch(r"task-[0-9a-f]{16}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert env.ids.next("lease").startswith("lease-")
    assert isinstance(env.ids, IdGenerator)


def test_unseeded_environment_records_its_seed_for_replay() -> None:
    """An environment without a seed records the one it drew; reusing it replays the ids."""
    env = Environment()
    assert isinstance(env.seed, int)
    replay = Environment(seed=env.seed)
    assert [env.ids.next("task") for _ in range(3)] == [replay.ids.next("task") for _ in range(3)]


def test_default_clock_is_real() -> None:
    """An environment without a clock uses RealClock."""
    assert isinstance(Environment(seed=1).clock, RealClock)


@pytest.mark.parametrize("seed", ["7", 1.5, True, b"7"])
def test_bad_seed_is_refused(seed: object) -> None:
    """A seed that is not an int (bools included) raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match=r"^seed: expected an int, got ") as info:
        Environment(seed=seed)  # type: ignore[arg-type]
    assert info.value.got is seed


@pytest.mark.parametrize("clock", [object(), "virtual", 3.0])
def test_bad_clock_is_refused(clock: object) -> None:
    """A clock without monotonic, now and sleep raises InvalidArgument."""
    with pytest.raises(
        InvalidArgument, match=r"^clock: expected a Clock \(monotonic, now, sleep\), got "
    ):
        Environment(clock=clock)  # type: ignore[arg-type]


def test_virtual_environment() -> None:
    """Environment.virtual(seed) has a fresh VirtualClock (or the given one) and that seed."""
    env = Environment.virtual(42)
    assert isinstance(env.clock, VirtualClock)
    assert env.clock.monotonic() == 0.0
    assert env.seed == 42
    assert env.ids.next("task") == Environment(seed=42).ids.next("task")

    clock = VirtualClock(start=100.0)
    assert Environment.virtual(42, clock=clock).clock is clock
    assert Environment.virtual(42).clock is not env.clock

"""The driver boundary: FakeDriver behaves like a hypervisor, idempotent per operation id."""

from __future__ import annotations

import asyncio

import pytest

from stateward.actors import Driver, DriverError, FakeDriver, Operation, Power
from stateward.runtime import Environment, InvalidArgument, VirtualClock


async def test_fake_driver_is_a_driver() -> None:
    """FakeDriver satisfies the Driver protocol."""
    assert isinstance(FakeDriver(), Driver)


async def test_spawn_power_and_describe() -> None:
    """An instance is spawned powered off, powered on, and listed by describe()."""
    driver = FakeDriver()
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    assert await driver.set_power("op-2", "i-1", Operation.POWER_ON) is Power.RUNNING
    port = await driver.allocate_port("op-3", "i-1", network="net")
    await driver.attach_volume("op-4", "i-1", volume_id="vol-1")
    view = await driver.describe()
    assert [(i.id, i.host_id, i.image, i.power) for i in view.instances] == [
        ("i-1", "h-1", "cirros", Power.RUNNING)
    ]
    assert view.instances[0].ports == (port,)
    assert dict(view.ports) == {port: "i-1"}
    assert dict(view.volumes) == {"vol-1": "i-1"}


async def test_operations_are_idempotent_per_op_id() -> None:
    """Repeating an operation id returns the first result and does the work once."""
    driver = FakeDriver()
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    first = await driver.allocate_port("op-2", "i-1", network="net")
    assert await driver.allocate_port("op-2", "i-1", network="net") == first
    assert driver.calls[Operation.SPAWN] == 1
    assert driver.calls[Operation.ALLOCATE_PORT] == 1
    assert len((await driver.describe()).ports) == 1


async def test_driver_refuses_what_a_hypervisor_refuses() -> None:
    """A second spawn, power on a missing instance, a double-attached volume all fail."""
    driver = FakeDriver()
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    await driver.spawn("op-2", "i-2", host="h-1", image="cirros")
    with pytest.raises(DriverError, match="driver spawn of i-1 \\(op-3\\) failed: it already"):
        await driver.spawn("op-3", "i-1", host="h-2", image="cirros")
    with pytest.raises(DriverError, match="no such instance"):
        await driver.set_power("op-4", "i-9", Operation.POWER_ON)
    with pytest.raises(DriverError, match="power is shutdown"):
        await driver.set_power("op-5", "i-1", Operation.PAUSE)
    await driver.attach_volume("op-6", "i-1", volume_id="vol-1")
    with pytest.raises(DriverError, match="it is attached to i-1"):
        await driver.attach_volume("op-7", "i-2", volume_id="vol-1")


async def test_destroy_releases_ports_and_volumes() -> None:
    """Destroying an instance frees its ports and volumes; destroying again is fine."""
    driver = FakeDriver()
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    await driver.allocate_port("op-2", "i-1", network="net")
    await driver.attach_volume("op-3", "i-1", volume_id="vol-1")
    await driver.destroy("op-4", "i-1")
    await driver.destroy("op-5", "i-1")
    view = await driver.describe()
    assert (view.instances, dict(view.ports), dict(view.volumes)) == ((), {}, {})


async def test_rebuild_and_power_cycle() -> None:
    """Rebuild swaps the image and powers off; pause, suspend and resume follow the rules."""
    driver = FakeDriver()
    await driver.spawn("op-1", "i-1", host="h-1", image="cirros")
    await driver.set_power("op-2", "i-1", Operation.POWER_ON)
    assert await driver.set_power("op-3", "i-1", Operation.PAUSE) is Power.PAUSED
    assert await driver.set_power("op-4", "i-1", Operation.UNPAUSE) is Power.RUNNING
    assert await driver.set_power("op-5", "i-1", Operation.SUSPEND) is Power.SUSPENDED
    assert await driver.set_power("op-6", "i-1", Operation.RESUME) is Power.RUNNING
    await driver.rebuild("op-7", "i-1", image="ubuntu")
    (instance,) = (await driver.describe()).instances
    assert (instance.image, instance.power) == ("ubuntu", Power.SHUTDOWN)


def test_failures_are_seeded_and_change_nothing() -> None:
    """Injected failures follow the seed; a failed op changes nothing and can be retried."""

    async def run(seed: int) -> list[bool]:
        driver = FakeDriver(env=Environment(seed=seed), failures={Operation.SPAWN: 0.5})
        outcome = []
        for n in range(20):
            try:
                await driver.spawn(f"op-{n}", f"i-{n}", host="h", image="img")
                outcome.append(True)
            except DriverError:
                outcome.append(False)
                assert f"i-{n}" not in {i.id for i in (await driver.describe()).instances}
        return outcome

    first = asyncio.run(run(7))
    assert first == asyncio.run(run(7))
    assert first != asyncio.run(run(8))
    assert 0 < sum(first) < 20


def test_latency_runs_on_the_injected_clock() -> None:
    """Operation latency is spent on the environment's clock (virtual here)."""
    clock = VirtualClock()

    async def run() -> float:
        driver = FakeDriver(env=Environment.virtual(1, clock=clock), latency=2.5)
        await driver.spawn("op-1", "i-1", host="h", image="img")
        await driver.set_power("op-2", "i-1", Operation.POWER_ON)
        return clock.monotonic()

    assert clock.run(run()) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"latency": -1}, "latency: expected numbers in"),
        ({"failures": 1.5}, "failures: expected numbers in \\[0, 1.0\\]"),
        ({"failures": {"spawn": 0.5}}, "failures: expected a mapping of Operation"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    """Latency and failure settings are validated with a clear message."""
    with pytest.raises(InvalidArgument, match=message):
        FakeDriver(**options)  # type: ignore[arg-type]


async def test_bad_calls_are_refused() -> None:
    """An empty op id or a non-power operation is refused."""
    driver = FakeDriver()
    with pytest.raises(InvalidArgument, match="op_id"):
        await driver.spawn("", "i-1", host="h", image="img")
    with pytest.raises(InvalidArgument, match="a power operation"):
        await driver.set_power("op-1", "i-1", Operation.SPAWN)

"""FakeDriver's moves: copies, epochs and fencing, as a hypervisor would keep them.

Each instance has one current guest, under an epoch; a move adds an incoming copy under the
next epoch and leaves a stale one behind. A call under an older epoch than the current
guest's is a stale owner's and changes nothing."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from stateward.actors import DriverError, FakeDriver, GuestRole, Operation, Power, StaleEpoch


async def _guests(driver: FakeDriver) -> list[tuple[str, int, GuestRole, Power]]:
    view = await driver.describe()
    return [(g.host_id, g.epoch, g.role, g.power) for g in view.guests if g.instance_id == "i-1"]


async def _running(driver: FakeDriver, host: str = "h-0") -> None:
    await driver.spawn("spawn", "i-1", host=host, image="cirros")
    await driver.set_power("on", "i-1", Operation.POWER_ON)


async def _cold_move(driver: FakeDriver) -> None:
    await driver.set_power("off", "i-1", Operation.POWER_OFF)
    await driver.prepare_move("prepare", "i-1", destination="h-1", epoch=1)
    await driver.transfer("transfer", "i-1", destination="h-1", epoch=1, live=False)
    await driver.finish_move("finish", "i-1", destination="h-1", epoch=1)


async def test_a_cold_move_leaves_a_stale_copy_that_cleanup_removes() -> None:
    driver = FakeDriver()
    await _running(driver)
    await _cold_move(driver)
    assert await _guests(driver) == [
        ("h-0", 0, GuestRole.STALE, Power.SHUTDOWN),
        ("h-1", 1, GuestRole.CURRENT, Power.SHUTDOWN),
    ]
    guest = driver.where("i-1")
    assert guest is not None
    assert (guest.host_id, guest.epoch) == ("h-1", 1)
    await driver.cleanup("cleanup", "i-1", host="h-0", epoch=1)
    assert await _guests(driver) == [("h-1", 1, GuestRole.CURRENT, Power.SHUTDOWN)]


async def test_a_stale_owner_is_fenced_and_changes_nothing() -> None:
    """After the switch to epoch 1, a call under epoch 0 fails with StaleEpoch."""
    driver = FakeDriver()
    await _running(driver)
    await _cold_move(driver)
    before = await driver.describe()
    with pytest.raises(StaleEpoch) as caught:
        await driver.set_power("late-on", "i-1", Operation.POWER_ON, epoch=0)
    assert (caught.value.seen, caught.value.given) == (1, 0)
    assert "stale owner" in str(caught.value)
    with pytest.raises(StaleEpoch):
        await driver.destroy("late-destroy", "i-1", epoch=0)
    with pytest.raises(StaleEpoch):
        await driver.prepare_move("late-prepare", "i-1", destination="h-2", epoch=1)
    assert await driver.describe() == before
    assert await driver.set_power("on-1", "i-1", Operation.POWER_ON, epoch=1) is Power.RUNNING


async def test_cleanup_never_destroys_the_current_guest() -> None:
    driver = FakeDriver()
    await _running(driver)
    await _cold_move(driver)
    with pytest.raises(DriverError, match="the copy on h-1 is the current guest"):
        await driver.cleanup("cleanup", "i-1", host="h-1", epoch=1)
    assert driver.where("i-1") is not None


async def test_an_aborted_live_transfer_runs_on_its_source_again() -> None:
    """A live transfer moves the running guest; aborting before the finish puts it back on
    its source, running, and drops the incoming copy. Once finished, abort is refused."""
    driver = FakeDriver()
    await _running(driver)
    await driver.prepare_move("prepare", "i-1", destination="h-1", epoch=1)
    await driver.transfer("transfer", "i-1", destination="h-1", epoch=1, live=True)
    moved = driver.where("i-1")
    assert moved is not None
    assert (moved.host_id, moved.power) == ("h-1", Power.RUNNING)
    await driver.abort_move("abort", "i-1", destination="h-1", epoch=1)
    assert await _guests(driver) == [("h-0", 0, GuestRole.CURRENT, Power.RUNNING)]

    await driver.prepare_move("prepare-2", "i-1", destination="h-1", epoch=1)
    await driver.transfer("transfer-2", "i-1", destination="h-1", epoch=1, live=True)
    await driver.finish_move("finish-2", "i-1", destination="h-1", epoch=1)
    with pytest.raises(DriverError, match="the move is finished"):
        await driver.abort_move("abort-2", "i-1", destination="h-1", epoch=1)
    assert await _guests(driver) == [
        ("h-0", 0, GuestRole.STALE, Power.SHUTDOWN),
        ("h-1", 1, GuestRole.CURRENT, Power.RUNNING),
    ]


async def test_a_cold_transfer_needs_a_stopped_guest() -> None:
    driver = FakeDriver()
    await _running(driver)
    await driver.prepare_move("prepare", "i-1", destination="h-1", epoch=1)
    with pytest.raises(DriverError, match="running"):
        await driver.transfer("transfer", "i-1", destination="h-1", epoch=1, live=False)


async def test_evacuation_needs_its_host_down_and_fences_the_old_guest() -> None:
    """Evacuate is refused while the source answers; once it is down, the instance is
    rebuilt elsewhere under a new epoch; the old guest, back up, was never touched (it may
    still run) and is stale: its epoch fences every call for it."""
    driver = FakeDriver()
    await _running(driver)
    with pytest.raises(DriverError, match="h-0"):
        await driver.evacuate("evacuate", "i-1", destination="h-1", image="cirros", epoch=1)
    driver.host_down("h-0")
    assert driver.down == {"h-0"}
    await driver.evacuate("evacuate-2", "i-1", destination="h-1", image="cirros", epoch=1)
    driver.host_up("h-0")
    assert await _guests(driver) == [
        ("h-0", 0, GuestRole.STALE, Power.RUNNING),
        ("h-1", 1, GuestRole.CURRENT, Power.SHUTDOWN),
    ]
    with pytest.raises(StaleEpoch):
        await driver.set_power("old-owner", "i-1", Operation.POWER_OFF, epoch=0)
    await driver.cleanup("cleanup", "i-1", host="h-0", epoch=1)
    assert await _guests(driver) == [("h-1", 1, GuestRole.CURRENT, Power.SHUTDOWN)]


async def test_copies_epochs_and_down_hosts_survive_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "driver.state"
    driver = FakeDriver(state_path=path)
    await _running(driver)
    await driver.set_power("off", "i-1", Operation.POWER_OFF)
    await driver.prepare_move("prepare", "i-1", destination="h-1", epoch=1)
    driver.host_down("h-2")
    again = FakeDriver(state_path=path)
    assert await again.describe() == await driver.describe()
    assert again.down == {"h-2"}
    # The move goes on in the new process where the old one left it.
    await again.transfer("transfer", "i-1", destination="h-1", epoch=1, live=False)
    await again.finish_move("finish", "i-1", destination="h-1", epoch=1)
    guest = again.where("i-1")
    assert guest is not None
    assert (guest.host_id, guest.epoch) == ("h-1", 1)


async def test_a_state_file_from_before_moves_loads_at_epoch_zero(tmp_path: Path) -> None:
    """A state file written without epochs, copies or down hosts still loads."""
    path = tmp_path / "driver.state"
    old = {
        "instances": {
            "i-1": {
                "host": "h-0",
                "image": "cirros",
                "power": "running",
                "ports": [],
                "volumes": [],
            }
        },
        "ports": {},
        "volumes": {},
        "done": {},
        "port_ids": 0,
    }
    path.write_bytes(msgspec.msgpack.encode(old))
    driver = FakeDriver(state_path=path)
    assert await _guests(driver) == [("h-0", 0, GuestRole.CURRENT, Power.RUNNING)]
    assert driver.down == frozenset()
    await driver.prepare_move("prepare", "i-1", destination="h-1", epoch=1)
    assert [g.role for g in (await driver.describe()).guests] == [
        GuestRole.CURRENT,
        GuestRole.INCOMING,
    ]


async def test_an_evacuation_abandoned_before_its_finish_goes_back_to_the_down_host() -> None:
    """Aborting an unfinished evacuation drops the rebuilt guest; the copy on the down host,
    never touched, is the instance again (no trip to the host is needed). Once finished, the
    evacuation cannot be aborted."""
    driver = FakeDriver()
    await _running(driver)
    driver.host_down("h-0")
    await driver.evacuate("evacuate", "i-1", destination="h-1", image="cirros", epoch=1)
    await driver.abort_move("abort", "i-1", destination="h-1", epoch=1)
    assert await _guests(driver) == [("h-0", 0, GuestRole.CURRENT, Power.RUNNING)]
    await driver.evacuate("evacuate-2", "i-1", destination="h-1", image="cirros", epoch=1)
    await driver.finish_move("finish", "i-1", destination="h-1", epoch=1)
    with pytest.raises(DriverError, match="the move is finished"):
        await driver.abort_move("abort-2", "i-1", destination="h-1", epoch=1)

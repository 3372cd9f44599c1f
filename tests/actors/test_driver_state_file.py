"""FakeDriver's state file is private to its owner, as the database files are."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stateward.actors import FakeDriver


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=oct)
def mask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask, set to each parameter for the test."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def names(directory: Path) -> list[str]:
    """Names of the files in ``directory``, sorted."""
    return sorted(p.name for p in directory.iterdir())


def mode_of(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


async def test_new_state_file_is_private(tmp_path: Path, mask: int) -> None:
    """A state file the driver creates is 0600 whatever the umask, and stays so on rewrites."""
    path = tmp_path / "driver.state"
    driver = FakeDriver(state_path=path)
    await driver.allocate_port("op-1", "i-1", network="net")
    assert mode_of(path) == 0o600
    await driver.spawn("op-2", "i-1", host="h-1", image="cirros")
    assert mode_of(path) == 0o600
    assert names(tmp_path) == ["driver.state"]


async def test_existing_state_file_keeps_its_mode(tmp_path: Path) -> None:
    """A state file whose owner chose its mode keeps that mode when the driver rewrites it."""
    path = tmp_path / "driver.state"
    await FakeDriver(state_path=path).allocate_port("op-1", "i-1", network="net")
    path.chmod(0o640)
    await FakeDriver(state_path=path).allocate_port("op-2", "i-2", network="net")
    assert mode_of(path) == 0o640

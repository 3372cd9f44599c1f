"""stateward's pytest plugin: virtual time for tests, and fixtures for the usual parts.

Enable it in a ``conftest.py``::

    pytest_plugins = ("stateward.testing.plugin",)

It needs pytest-asyncio. It adds:

- the ``virtual_time`` marker: the test runs on a :class:`~stateward.runtime.VirtualEventLoop`,
  whose clock jumps to the next timer whenever every task waits, so hours of timeouts cost no
  wall time and never depend on the machine's speed;
- ``virtual_clock``: that test's :class:`~stateward.runtime.VirtualClock`;
- ``env``: an :class:`~stateward.runtime.Environment` on the test's clock with seed 0;
- ``memory_store``: a :class:`~stateward.runtime.MemoryStore` on the test's clock, closed
  after the test (``memory_store.image()`` is what a crashed process leaves);
- ``fake_driver``: a seeded :class:`~stateward.actors.FakeDriver`;
- ``postgres``: the PostgreSQL server of ``STATEWARD_TEST_POSTGRES`` (a DSN), for the session;
  without one the test skips, or fails where ``STATEWARD_REQUIRE_POSTGRES=1`` (CI);
- ``postgres_schema``: a fresh schema name on it for one test, dropped afterwards;
- ``postgres_database``: the DSN of a fresh database on it for one test, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest

from stateward.actors import FakeDriver
from stateward.runtime import Environment, MemoryStore, RealClock, VirtualClock, VirtualEventLoop

from ._postgres import PostgresServer, postgres_server

__all__ = (
    "pytest_configure",
    "pytest_asyncio_loop_factories",
    "virtual_clock",
    "env",
    "memory_store",
    "fake_driver",
    "postgres",
    "postgres_schema",
    "postgres_database",
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``virtual_time`` marker."""
    config.addinivalue_line(
        "markers",
        "virtual_time: run the test on a VirtualEventLoop whose clock jumps when the loop is idle",
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Pick the event loop per test: virtual time for ``virtual_time`` tests."""
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual": lambda: VirtualClock().new_event_loop()}
    return {"asyncio": asyncio.new_event_loop}


def _clock() -> VirtualClock | RealClock:
    loop = asyncio.get_running_loop()
    return loop.clock if isinstance(loop, VirtualEventLoop) else RealClock()


@pytest.fixture
async def virtual_clock() -> VirtualClock:
    """The test's virtual clock (the test must be marked ``virtual_time``)."""
    return VirtualClock.current()


@pytest.fixture
async def env() -> Environment:
    """An environment on the test's clock (virtual or real), seed 0."""
    return Environment(clock=_clock(), seed=0)


@pytest.fixture
async def memory_store() -> AsyncIterator[MemoryStore]:
    """A memory store on the test's clock, closed afterwards."""
    store = MemoryStore(clock=_clock())
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def fake_driver(env: Environment) -> FakeDriver:
    """A fake hypervisor driver, seeded from ``env``."""
    return FakeDriver(env=env)


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The test PostgreSQL server; skips without one (fails under STATEWARD_REQUIRE_POSTGRES)."""
    return postgres_server()


@pytest.fixture
def postgres_schema(postgres: PostgresServer) -> Iterator[str]:
    """A schema name no other test uses, dropped after the test."""
    schema = postgres.fresh_schema()
    yield schema
    postgres.drop_schema(schema)


@pytest.fixture
def postgres_database(postgres: PostgresServer) -> Iterator[str]:
    """The DSN of a new database no other test uses, dropped after the test."""
    dsn = postgres.fresh_database()
    yield dsn
    postgres.drop_database(dsn)

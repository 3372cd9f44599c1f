"""Shared test configuration.

Tests marked ``virtual_time`` run on a :class:`~stateward.runtime.VirtualEventLoop`: time only
passes when every task waits, and then jumps to the next timer, so deadlines of seconds or
hours cost no wall time and never depend on machine speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from stateward.runtime import VirtualClock


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Pick the event loop per test: virtual time for ``virtual_time`` tests."""
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual": lambda: VirtualClock().new_event_loop()}
    return {"asyncio": asyncio.new_event_loop}

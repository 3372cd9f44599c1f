"""Shared test configuration: stateward's own pytest plugin.

Tests marked ``virtual_time`` run on a :class:`~stateward.runtime.VirtualEventLoop`: time only
passes when every task waits, and then jumps to the next timer, so deadlines of seconds or
hours cost no wall time and never depend on machine speed. The plugin also gives the
``virtual_clock``, ``env``, ``memory_store`` and ``fake_driver`` fixtures.
"""

pytest_plugins = ("stateward.testing.plugin",)

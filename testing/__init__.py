"""The test kit: what stateward's own tests use, for testing code built on stateward.

- :func:`crash_at_every_commit` crashes a scenario after each of its commits in turn and
  checks what a restarted process finds;
- :mod:`stateward.testing.plugin` is a pytest plugin: the ``virtual_time`` marker (tests on
  virtual time) and fixtures (``virtual_clock``, ``env``, ``memory_store``, ``fake_driver``,
  ``postgres``, ``postgres_schema``);
- :func:`postgres_server` is the PostgreSQL server the tests run against (a
  :class:`PostgresServer`), from ``STATEWARD_TEST_POSTGRES``;
- the simulator itself, for whole runs under chaos, is :mod:`stateward.sim`.
"""

from __future__ import annotations

from stateward.runtime import set_public_module

from ._crash import Crash as Crash
from ._crash import Nondeterministic as Nondeterministic
from ._crash import crash_at_every_commit as crash_at_every_commit
from ._postgres import PostgresServer as PostgresServer
from ._postgres import postgres_server as postgres_server

__all__ = (
    "Crash",
    "Nondeterministic",
    "PostgresServer",
    "crash_at_every_commit",
    "postgres_server",
)

set_public_module(globals())

"""A PostgreSQL server for tests: where it is, a fresh schema per test, and its controls.

The server is named by the environment, as ``.ci/postgres start`` prints it:

- ``STATEWARD_TEST_POSTGRES``: the DSN of a database the tests may create schemas in;
- ``STATEWARD_TEST_PG_CONTROL`` and ``STATEWARD_TEST_PG_DIR``: the script that stops, kills
  and starts that server, and its cluster's folder, for the tests that restart it;
- ``STATEWARD_REQUIRE_POSTGRES=1`` (set by CI): a test that would skip for want of the
  server fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import threading
import urllib.parse
from typing import Any

__all__ = ("PostgresServer", "postgres_server")

_SKIP = (
    'no PostgreSQL server: start one with `eval "$(.ci/postgres start /tmp/stateward-pg)"` '
    "(README: PostgreSQL) or set STATEWARD_TEST_POSTGRES to a DSN"
)


def _required() -> bool:
    return os.environ.get("STATEWARD_REQUIRE_POSTGRES") == "1"


def _missing(reason: str) -> None:
    """Skip the test for want of the server, or fail it where the server is required."""
    import pytest  # only a test asks for the server

    if _required():
        pytest.fail(f"{reason} (STATEWARD_REQUIRE_POSTGRES=1: the PostgreSQL tests must run)")
    pytest.skip(reason)


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end on a loop of its own, in a thread of its own.

    So a synchronous helper works from inside a test's running event loop too.
    """
    result: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=target, name="stateward-test-postgres")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


class PostgresServer:
    """The test server: a DSN, fresh schemas, SQL on the side, and stop/kill/start."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._control = os.environ.get("STATEWARD_TEST_PG_CONTROL")
        self._folder = os.environ.get("STATEWARD_TEST_PG_DIR")

    def fresh_schema(self) -> str:
        """A schema name no test used before (the store creates it)."""
        return f"test_{secrets.token_hex(6)}"

    def execute(self, sql: str, *args: Any, schema: str | None = None) -> list[Any]:
        """Run one statement on a connection of its own; its rows as tuples."""

        async def run() -> list[Any]:
            import asyncpg

            settings = {"search_path": schema} if schema is not None else {}
            connection = await asyncpg.connect(self.dsn, server_settings=settings, timeout=10)
            try:
                return [tuple(row) for row in await connection.fetch(sql, *args)]
            finally:
                await connection.close()

        rows: list[Any] = _run(run())
        return rows

    def drop_schema(self, schema: str) -> None:
        self.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def fresh_database(self) -> str:
        """The DSN of a new, empty database on the server (for code that takes a DSN alone,
        and so uses the default schema)."""
        name = f"test_{secrets.token_hex(6)}"
        self.execute(f'CREATE DATABASE "{name}"')
        parts = urllib.parse.urlsplit(self.dsn)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def drop_database(self, dsn: str) -> None:
        """Drop the database of ``dsn`` (made by :meth:`fresh_database`), connections and all."""
        name = urllib.parse.urlsplit(dsn).path.lstrip("/")
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate_store_connections(self) -> int:
        """Terminate every stateward backend (``pg_terminate_backend``); how many there were."""
        rows = self.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'stateward' AND pid <> pg_backend_pid()"
        )
        return int(rows[0][0])

    def control(self, action: str) -> None:
        """``stop`` (fast), ``kill`` (``pg_ctl stop -m immediate``) or ``start`` the server."""
        if not self._control or not self._folder:
            _missing(
                "the PostgreSQL server cannot be restarted: start it with .ci/postgres, which "
                "sets STATEWARD_TEST_PG_CONTROL and STATEWARD_TEST_PG_DIR"
            )
        subprocess.run(
            [str(self._control), action, str(self._folder)],
            check=True,
            capture_output=True,
            timeout=60,
        )


def postgres_server() -> PostgresServer:
    """The server the environment names, reachable; skip (or fail in CI) without one."""
    dsn = os.environ.get("STATEWARD_TEST_POSTGRES")
    if not dsn:
        _missing(_SKIP)
        raise AssertionError("unreachable")  # pragma: no cover
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _missing("asyncpg is not installed: install stateward[postgres]")
    server = PostgresServer(dsn)
    try:
        server.execute("SELECT 1")
    except Exception as exc:
        _missing(f"the PostgreSQL server at STATEWARD_TEST_POSTGRES does not answer: {exc}")
    return server

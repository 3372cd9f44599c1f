"""What the flow tests share: a store opener for both stores, and recording tasks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from stateward.flows import Failure, Retry, Task
from stateward.runtime import Clock, MemoryStore, Store, open_sqlite_store

#: The stores every durability-sensitive test runs on.
STORES = ("memory", "sqlite")


@contextlib.asynccontextmanager
async def open_store(
    kind: str, tmp_path: Path, *, clock: Clock | None = None
) -> AsyncIterator[Store]:
    """Open a MemoryStore or a SqliteStore file under ``tmp_path`` (the same file each call)."""
    if kind == "memory":
        async with MemoryStore(clock=clock) as memory:
            yield memory
    else:
        async with open_sqlite_store(tmp_path / "flows.db", clock=clock) as sqlite:
            yield sqlite


class Journal:
    """What recorded tasks did, in order: ``("run", name)`` and ``("revert", name, ...)``."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def ran(self) -> list[str]:
        """Names of executes, in start order."""
        return [e[1] for e in self.events if e[0] == "run"]

    def reverted(self) -> list[str]:
        """Names of reverts, in order."""
        return [e[1] for e in self.events if e[0] == "revert"]

    def reverts(self) -> list[tuple[Any, ...]]:
        """Every revert as ``("revert", name, result, failure)``."""
        return [e for e in self.events if e[0] == "revert"]


class Recorded(Task):
    """A task that logs into a Journal and runs ``body`` (if given) with its inputs.

    Without a body it returns ``f"{name}-done"``.
    """

    def __init__(
        self,
        journal: Journal,
        name: str,
        *,
        body: Callable[..., Awaitable[Any]] | None = None,
        requires: tuple[str, ...] = (),
        provides: str | None = None,
        timeout: float = float("inf"),
        retry: Retry | None = None,
        revert_error: Exception | None = None,
    ) -> None:
        super().__init__(name, provides=provides, requires=requires, timeout=timeout, retry=retry)
        self.journal = journal
        self.body = body
        self.revert_error = revert_error

    async def execute(self, **inputs: Any) -> Any:
        self.journal.events.append(("run", self.name))
        if self.body is None:
            return f"{self.name}-done"
        return await self.body(**inputs)

    async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
        self.journal.events.append(("revert", self.name, result, failure))
        if self.revert_error is not None:
            raise self.revert_error


def fails(message: str, error: type[Exception] = RuntimeError) -> Callable[..., Awaitable[Any]]:
    """A body that raises ``error(message)``."""

    async def body(**inputs: Any) -> Any:
        raise error(message)

    return body

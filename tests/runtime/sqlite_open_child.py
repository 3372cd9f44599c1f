"""Child process of ``test_sqlite_open.py``: opens one SQLite store and reports how it went.

Usage: ``python sqlite_open_child.py DB wait|now``. With ``wait`` the child imports everything,
prints ``ready`` and waits for a line on stdin, so that every child opens at the same instant.
It then opens the store, commits one transition of its own and prints ``ok``, or
``error <type>: <message>`` for a stateward error.
"""

from __future__ import annotations

import asyncio
import os
import sys

from stateward.runtime import StatewardError, TransitionRecord, Write, open_sqlite_store


async def main(db: str, mode: str) -> None:
    """Open ``db`` (once the parent says go, with ``wait``), write one row, report."""
    if mode == "wait":
        print("ready", flush=True)
        sys.stdin.readline()
    resource_id = f"child-{os.getpid()}"
    record = TransitionRecord(resource_id, 1, "open", "deposit", "open", None, None, 1.0)
    try:
        async with open_sqlite_store(db) as store:
            await store.commit(Write("account", record, b"\x80"))
    except StatewardError as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        return
    print("ok", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

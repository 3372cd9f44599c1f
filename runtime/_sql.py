"""The queries SQLite and PostgreSQL stores share: the same SQL, the same rows.

The SQL is written with ``?`` placeholders; :func:`numbered` rewrites it for PostgreSQL's
``$1, $2, ...``. A parameter tested for NULL is cast to text, so PostgreSQL knows its type.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from ._check import (
    check_documents_query,
    check_history,
    check_history_between,
    check_resources_query,
    check_text,
)
from ._machine import TransitionRecord
from ._store import Document, GroupCommitter, ResourceSummary

DOCUMENT_COLUMNS = "collection, key, version, body, resource_id, status, dedupe, created, updated"
RECORD_COLUMNS = "resource_id, sequence, source, event, target, task_id, cause, at, payload"
HEAD_COLUMNS = "id, kind, state, revision, updated, snapshot, snapshot_revision, snapshot_state"


@functools.cache
def numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered ``$1, $2, ...`` (none sits in a literal)."""
    parts = sql.split("?")
    return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]


class SqlQueries(GroupCommitter):
    """The read queries of a SQL store; subclasses run them with :meth:`_fetch`."""

    async def _fetch(self, operation: str, sql: str, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    async def get_document(self, collection: str, key: str) -> Document | None:
        """The current version of one document, or None."""
        check_text("collection", collection)
        check_text("key", key)
        rows = await self._fetch(
            "get_document",
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = ? AND key = ?",
            (collection, key),
        )
        return self._document(rows[0]) if rows else None

    async def find_documents(
        self,
        collection: str,
        *,
        resource_id: str | None = None,
        status: str | None = None,
        dedupe: str | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 100,
    ) -> tuple[Document, ...]:
        """Documents matching every given field, newest first (by created, then key)."""
        cursor = check_documents_query(collection, resource_id, status, dedupe, before, limit)
        created, key = cursor if cursor is not None else (math.inf, "")
        rows = await self._fetch(
            "find_documents",
            f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE collection = ? "
            "AND (CAST(? AS TEXT) IS NULL OR resource_id = ?) "
            "AND (CAST(? AS TEXT) IS NULL OR status = ?) "
            "AND (CAST(? AS TEXT) IS NULL OR dedupe = ?) AND (? OR (created, key) < (?, ?)) "
            "ORDER BY created DESC, key DESC LIMIT ?",
            (
                collection,
                resource_id,
                resource_id,
                status,
                status,
                dedupe,
                dedupe,
                before is None,
                created,
                key,
                limit,
            ),
        )
        return tuple(self._document(row) for row in rows)

    async def history(
        self, resource_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[TransitionRecord, ...]:
        """Journal records of one resource with sequence > ``after``, oldest first."""
        check_history(resource_id, after, limit)
        rows = await self._fetch(
            "history",
            f"SELECT {RECORD_COLUMNS} FROM journal WHERE resource_id = ? AND sequence > ? "
            "ORDER BY sequence LIMIT ?",
            (resource_id, after, limit),
        )
        return tuple(self._record(row) for row in rows)

    async def history_between(
        self,
        start: float,
        end: float,
        *,
        after: tuple[float, str, int] | None = None,
        limit: int = 100,
    ) -> tuple[TransitionRecord, ...]:
        """Journal records with ``start <= at < end`` by (at, resource, sequence)."""
        low, high, cursor = check_history_between(start, end, after, limit)
        at, resource_id, sequence = cursor if cursor is not None else (low, "", -1)
        rows = await self._fetch(
            "history",
            f"SELECT {RECORD_COLUMNS} FROM journal WHERE at >= ? AND at < ? "
            "AND (at, resource_id, sequence) > (?, ?, ?) "
            "ORDER BY at, resource_id, sequence LIMIT ?",
            (low, high, at, resource_id, sequence, limit),
        )
        return tuple(self._record(row) for row in rows)

    async def resources(
        self, *, kind: str | None = None, after: str | None = None, limit: int = 1000
    ) -> tuple[ResourceSummary, ...]:
        """Resources ordered by id, starting after ``after``."""
        check_resources_query(kind, after, limit)
        rows = await self._fetch(
            "resources",
            "SELECT id, kind, state, revision, updated FROM resources "
            "WHERE (CAST(? AS TEXT) IS NULL OR kind = ?) AND id > ? ORDER BY id LIMIT ?",
            (kind, kind, after if after is not None else "", limit),
        )
        return tuple(
            ResourceSummary(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                int(r[3]),
                float(r[4]),
                self._quarantined.get(str(r[0])),
            )
            for r in rows
        )

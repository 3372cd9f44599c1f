"""The durable store: its protocol, its records, group commit, and the in-memory store.

A resource's durable state is a *head* (kind, state, revision, time), a *snapshot* of its data
taken every few transitions, and its *journal*: one row per transition, kept as the audit
trail. Loading a resource reads the head, the last snapshot and the journal tail after it.

Every :class:`Write` carries one transition record and states, through its sequence number,
the revision it replaces: a write that does not follow the stored revision fails with
:class:`~stateward.runtime.RevisionConflict` and is never applied.

:class:`GroupCommitter` is the write path shared by the stores: writes from every actor that
arrive while a commit is in flight wait together and go into the next transaction (up to
``max_batch``), so many actors share one fsync. A transient failure (a lock) is retried with
bounded exponential backoff; a lasting one (disk full, I/O error) fails the writes of that
batch with :class:`~stateward.runtime.StoreUnavailable`, marks the store degraded, and the next
batch tries again, so the store recovers by itself when the disk does.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from ._check import (
    INT64_MAX,
    check_documents_query,
    check_history,
    check_history_between,
    check_ids,
    check_resources_query,
    check_text,
    text_problem,
)
from ._env import Clock, RealClock
from ._errors import (
    InvalidArgument,
    ResourceQuarantined,
    RevisionConflict,
    StoreUnavailable,
)
from ._log import get_logger
from ._machine import TransitionRecord

__all__ = (
    "Store",
    "Write",
    "Document",
    "Loaded",
    "ResourceSummary",
    "StoreStatistics",
    "Retention",
    "MemoryStore",
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode(value: Any) -> bytes:
    """msgpack bytes of plain data or msgspec Structs (never pickle: rows cannot run code)."""
    return _encoder.encode(value)


def decode(data: bytes) -> Any:
    """Plain data back from :func:`encode`."""
    return _decoder.decode(data)


class Document(msgspec.Struct, frozen=True, gc=False):
    """A versioned record kept beside the resources: a task record, a flow checkpoint.

    Upper layers define what the body means; the store indexes the other fields.

    Attributes:
        collection: which kind of document (``"task"``).
        key: unique within the collection.
        version: this version; it replaces ``version - 1`` (1 for a new document).
        body: the document, encoded with :func:`encode`.
        resource_id: the resource it belongs to, for listing by resource.
        status: for listing by status.
        dedupe: an idempotency key, unique per resource by convention of the writer.
        created, updated: times, for ordering.
    """

    collection: str
    key: str
    version: int
    body: bytes
    resource_id: str | None = None
    status: str | None = None
    dedupe: str | None = None
    created: float = 0.0
    updated: float = 0.0


class Write(msgspec.Struct, frozen=True, gc=False):
    """What one command commits, atomically: a transition, documents, or both.

    Attributes:
        kind: the resource's kind (its machine's name), with ``record``.
        record: the transition; its ``sequence`` is the new revision, and it replaces
            revision ``sequence - 1``.
        snapshot: the resource's data after the transition, encoded, when this write takes a
            snapshot; None otherwise.
        documents: documents to write in the same transaction, each replacing its
            ``version - 1``.
    """

    kind: str = ""
    record: TransitionRecord | None = None
    snapshot: bytes | None = None
    documents: tuple[Document, ...] = ()

    @property
    def replaces(self) -> int:
        """The revision this write expects the store to hold."""
        return self.record.sequence - 1 if self.record is not None else 0


class Loaded(msgspec.Struct, frozen=True):
    """A resource as stored: head, last snapshot, and the journal after the snapshot.

    Attributes:
        resource_id, kind, state, revision, updated: the head.
        snapshot: the data at ``snapshot_revision`` (encoded), or None if never taken.
        snapshot_revision: the revision of the snapshot (0 when there is none).
        snapshot_state: the machine state at ``snapshot_revision``.
        tail: the journal records after ``snapshot_revision``, oldest first.
    """

    resource_id: str
    kind: str
    state: str
    revision: int
    updated: float
    snapshot: bytes | None
    snapshot_revision: int
    snapshot_state: str | None
    tail: tuple[TransitionRecord, ...]


class ResourceSummary(msgspec.Struct, frozen=True):
    """One line of a resource listing."""

    resource_id: str
    kind: str
    state: str
    revision: int
    updated: float
    quarantined: str | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """How much journal to keep.

    Attributes:
        keep: journal rows to keep per resource before its latest snapshot; ``math.inf``
            (the default) keeps the whole audit trail. Pruned rows are counted in
            :class:`StoreStatistics` and logged.
    """

    keep: float = math.inf

    def __post_init__(self) -> None:
        if not (self.keep == math.inf or (isinstance(self.keep, int) and self.keep >= 0)):
            raise InvalidArgument("keep", expected="an int >= 0 or math.inf", got=self.keep)


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Counters of a store.

    Attributes:
        commits: writes committed (each one a command's transition, its documents, or both;
            each awaited by its writer).
        batches: transactions that committed them (commits / batches is the group size).
        largest_batch: the most transitions one transaction carried.
        retries: transient failures retried.
        failures: writes failed with StoreUnavailable.
        conflicts: writes refused for a revision conflict.
        degraded: True while the last transaction failed; False again after one succeeds.
        quarantined: resources taken out of service.
        pruned: journal rows removed by the retention policy.
        pending: writes waiting for the next transaction.
        rows: journal rows and document rows the committed writes carried (a write of a
            transition with two documents is three); snapshots are not counted.
    """

    commits: int
    batches: int
    largest_batch: int
    retries: int
    failures: int
    conflicts: int
    degraded: bool
    quarantined: int
    pruned: int
    pending: int
    rows: int = 0


@runtime_checkable
class Store(Protocol):
    """What the runtime needs from durable storage."""

    async def commit(self, write: Write) -> None:
        """Commit one transition; return only once it is durable.

        Raises:
            RevisionConflict: the stored revision is not ``write.replaces``.
            StoreUnavailable: the store could not write; nothing was written.
        """
        ...

    def submit(self, write: Write) -> Awaitable[None]:
        """Queue ``write`` like :meth:`commit`, returning at once with something to await.

        Cancelling that wait does not withdraw the write; awaiting it (shielded) tells
        whether it was committed.
        """
        ...

    async def load(self, resource_id: str) -> Loaded | None:
        """The stored resource, or None if it was never written.

        Raises:
            ResourceQuarantined: its rows cannot be decoded or do not add up.
        """
        ...

    async def load_many(self, resource_ids: Sequence[str]) -> dict[str, Loaded]:
        """Several resources at once (eager recovery); quarantined ones are left out."""
        ...

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Take a resource out of service (its data could not be decoded upstream)."""
        ...

    async def history(
        self, resource_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[TransitionRecord, ...]:
        """Journal records of one resource with sequence > ``after``, oldest first."""
        ...

    async def get_document(self, collection: str, key: str) -> Document | None:
        """The current version of one document, or None."""
        ...

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
        """Documents matching every given field, newest first (by created, then key),
        starting after the ``(created, key)`` of the previous page's last document."""
        ...

    async def history_between(
        self,
        start: float,
        end: float,
        *,
        after: tuple[float, str, int] | None = None,
        limit: int = 100,
    ) -> tuple[TransitionRecord, ...]:
        """Journal records with ``start <= at < end`` ordered by (at, resource, sequence),
        starting after the ``(at, resource_id, sequence)`` of the previous page's last record.
        """
        ...

    async def resources(
        self, *, kind: str | None = None, after: str | None = None, limit: int = 1000
    ) -> tuple[ResourceSummary, ...]:
        """Resources ordered by id, starting after ``after``."""
        ...

    def statistics(self) -> StoreStatistics:
        """Counters, including the degraded flag."""
        ...


class _Transient(Exception):
    """A failure worth retrying (a lock); carries the StoreUnavailable to raise at the end."""

    def __init__(self, error: StoreUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


def _is_text(value: object) -> bool:
    return text_problem(value) is None


def _is_optional_text(value: object) -> bool:
    return value is None or text_problem(value) is None


def _is_revision(value: object) -> bool:
    return type(value) is int and 0 < value <= INT64_MAX


def _is_time(value: object) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and -INT64_MAX <= value <= INT64_MAX


_TEXT = "a str of valid Unicode"
#: What the database needs of each field: (field, test, what is expected).
_RECORD_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    *((name, _is_text, _TEXT) for name in ("resource_id", "source", "event", "target")),
    ("task_id", _is_optional_text, f"{_TEXT} or None"),
    ("cause", _is_optional_text, f"{_TEXT} or None"),
    ("sequence", _is_revision, "an int from 1 to 2**63 - 1"),
    ("at", _is_time, "a finite float"),
)
_DOCUMENT_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("collection", _is_text, _TEXT),
    ("key", _is_text, _TEXT),
    *(
        (name, _is_optional_text, f"{_TEXT} or None")
        for name in ("resource_id", "status", "dedupe")
    ),
    ("version", _is_revision, "an int from 1 to 2**63 - 1"),
    ("body", lambda value: type(value) is bytes, "bytes"),
    ("created", _is_time, "a finite float"),
    ("updated", _is_time, "a finite float"),
)


def _field_problem(
    what: str, item: object, fields: tuple[tuple[str, Callable[[object], bool], str], ...]
) -> InvalidArgument | None:
    for name, fits, expected in fields:
        value = getattr(item, name)
        if not fits(value):
            return InvalidArgument(f"{what}.{name}", expected=expected, got=value)
    return None


def _write_problem(write: object) -> InvalidArgument | None:
    """Why the database could not store ``write``, checked before it joins a batch.

    One bad write must be refused alone: once in a transaction, it would fail every other
    write sharing it. The common write, one transition of ASCII names, is checked inline:
    this runs once per transition.
    """
    if (
        type(write) is Write
        and type(write.documents) is tuple
        and all(map(_plain_document, write.documents))
    ):
        r = write.record
        if r is None:
            if write.snapshot is None:
                return None
        elif (
            type(r) is TransitionRecord
            and type(r.resource_id) is str
            and type(r.source) is str
            and type(r.event) is str
            and type(r.target) is str
            and type(write.kind) is str
            and (r.task_id is None or (type(r.task_id) is str and r.task_id.isascii()))
            and (r.cause is None or (type(r.cause) is str and r.cause.isascii()))
            and r.resource_id.isascii()
            and r.source.isascii()
            and r.event.isascii()
            and r.target.isascii()
            and write.kind.isascii()
            and type(r.sequence) is int
            and 0 < r.sequence <= INT64_MAX
            and type(r.at) is float
            and r.at - r.at == 0.0  # finite: inf - inf and nan - nan are nan
            and (write.snapshot is None or type(write.snapshot) is bytes)
        ):
            return None
    return _field_problems(write)


def _plain_document(d: object) -> bool:
    """Whether ``d`` is a document of ASCII names, plain numbers and bytes: the common one."""
    return (
        type(d) is Document
        and type(d.collection) is str
        and d.collection.isascii()
        and type(d.key) is str
        and d.key.isascii()
        and (d.resource_id is None or (type(d.resource_id) is str and d.resource_id.isascii()))
        and (d.status is None or (type(d.status) is str and d.status.isascii()))
        and (d.dedupe is None or (type(d.dedupe) is str and d.dedupe.isascii()))
        and type(d.version) is int
        and 0 < d.version <= INT64_MAX
        and type(d.body) is bytes
        and type(d.created) is float
        and d.created - d.created == 0.0
        and type(d.updated) is float
        and d.updated - d.updated == 0.0
    )


def _field_problems(write: object) -> InvalidArgument | None:
    """The full check of :func:`_write_problem`, naming the first field that does not fit."""
    if type(write) is not Write:
        return InvalidArgument("write", expected="a Write", got=write)
    record = write.record
    if record is not None:
        if type(record) is not TransitionRecord:
            return InvalidArgument("write.record", expected="a TransitionRecord", got=record)
        if (problem := _field_problem("record", record, _RECORD_FIELDS)) is not None:
            return problem
        if not _is_text(write.kind):
            return InvalidArgument("write.kind", expected=_TEXT, got=write.kind)
    if write.snapshot is not None and type(write.snapshot) is not bytes:
        return InvalidArgument("write.snapshot", expected="bytes or None", got=write.snapshot)
    if type(write.documents) is not tuple:
        return InvalidArgument("write.documents", expected="a tuple", got=write.documents)
    for document in write.documents:
        if type(document) is not Document:
            return InvalidArgument("write.documents", expected="Document objects", got=document)
        if (problem := _field_problem("document", document, _DOCUMENT_FIELDS)) is not None:
            return problem
    return None


#: The rows of one transaction, by table: journal rows, resource heads, documents, and the
#: (resource, revision) of every snapshot taken (where retention prunes the journal).
_BatchRows = tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[str, int]]
]


def _rows(writes: Iterable[Write]) -> _BatchRows:
    """The rows an SQL store writes for ``writes``, in their order, as its columns list them.

    Raises:
        TypeError, ValueError: a payload msgpack cannot encode (the write is refused).
    """
    journal_rows: list[tuple[Any, ...]] = []
    head_rows: list[tuple[Any, ...]] = []
    document_rows: list[tuple[Any, ...]] = []
    snapshots: list[tuple[str, int]] = []
    for write in writes:
        document_rows.extend(
            (
                d.collection,
                d.key,
                d.version,
                d.resource_id,
                d.status,
                d.dedupe,
                d.created,
                d.updated,
                d.body,
            )
            for d in write.documents
        )
        r = write.record
        if r is None:
            continue
        payload = encode(r.payload) if r.payload is not None else None
        journal_rows.append(
            (
                r.resource_id,
                r.sequence,
                r.source,
                r.event,
                r.target,
                r.task_id,
                r.cause,
                r.at,
                payload,
            )
        )
        # A new resource without a snapshot has none yet: its whole journal is the tail.
        taken = write.snapshot is not None
        head_rows.append(
            (
                r.resource_id,
                write.kind,
                r.target,
                r.sequence,
                r.at,
                write.snapshot,
                r.sequence if taken else 0,
                r.target if taken else None,
            )
        )
        if taken:
            snapshots.append((r.resource_id, r.sequence))
    return journal_rows, head_rows, document_rows, snapshots


class GroupCommitter:
    """The shared write path: batching, revision checks, retries, statistics.

    Subclasses implement :meth:`_revisions` (stored revisions of resources this store has
    not seen yet) and :meth:`_write` (one transaction). Both may raise :class:`_Transient`
    for a failure worth retrying, or :class:`StoreUnavailable` for one that is not.
    """

    def __init__(
        self,
        *,
        clock: Clock | None,
        max_batch: int,
        retries: int,
        backoff: float,
        retention: Retention,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InvalidArgument("max_batch", expected="an int >= 1", got=max_batch)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument("retries", expected="an int >= 0", got=retries)
        if not isinstance(backoff, int | float) or not 0 <= backoff < math.inf:
            raise InvalidArgument("backoff", expected="seconds >= 0", got=backoff)
        if not isinstance(retention, Retention):
            raise InvalidArgument("retention", expected="a Retention", got=retention)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._max_batch = max_batch
        self._retries = retries
        self._backoff = float(backoff)
        self.retention = retention
        self._pending: deque[tuple[Write, asyncio.Future[None]]] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        # The batch the writer has taken off the queue and is committing now.
        self._inflight: list[tuple[Write, asyncio.Future[None]]] = []
        # Revision of every resource this store has loaded or written: the conflict check.
        self._known: dict[str, int] = {}
        # Version of every document this store has read or written, likewise.
        self._known_documents: dict[tuple[str, str], int] = {}
        self._quarantined: dict[str, str] = {}
        self._closed = False
        self._log = get_logger("stateward.store")
        self._commits = self._batches = self._largest = self._rows_written = 0
        self._retried = self._failures = self._conflicts = self._pruned = 0
        self._degraded = False

    # -- the write path -------------------------------------------------------------------

    async def commit(self, write: Write) -> None:
        """Queue ``write`` for the next transaction and wait until it is durable."""
        await self.submit(write)

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Queue ``write`` for the next transaction; the future resolves once it is durable.

        Cancelling the wait does not withdraw the write: it may still be committed. Await
        the future (shielded) to learn the outcome.
        """
        if self._closed:
            raise StoreUnavailable(
                "commit", reason="the store is closed", advice="nothing was written; open it again"
            )
        problem = _write_problem(write)
        if problem is not None:
            raise problem
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((write, done))
        if self._writer is None:
            self._writer = loop.create_task(self._write_loop())
        elif self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        return done

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            take = min(len(self._pending), self._max_batch)
            batch = self._inflight = [self._pending.popleft() for _ in range(take)]
            try:
                await self._commit_batch(batch)
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(StoreUnavailable("commit", reason="the writer stopped"))
                if isinstance(exc, Exception):
                    self._log.exception("store writer failed", error=repr(exc))
                    continue
                raise

    async def _commit_batch(self, batch: list[tuple[Write, asyncio.Future[None]]]) -> None:
        unknown = [
            w.record.resource_id
            for w, _ in batch
            if w.record is not None and w.record.resource_id not in self._known
        ]
        unknown_documents = [
            (d.collection, d.key)
            for w, _ in batch
            for d in w.documents
            if (d.collection, d.key) not in self._known_documents
        ]
        revisions: dict[str, int] = {}
        versions: dict[tuple[str, str], int] = {}
        try:
            if unknown:
                revisions = await self._with_retries(lambda: self._revisions(unknown))
            if unknown_documents:
                versions = await self._with_retries(
                    lambda: self._document_versions(unknown_documents)
                )
        except StoreUnavailable as error:
            self._fail(batch, error)
            return
        # Check revisions in order; a resource may appear twice in one batch.
        expected: dict[str, int] = {}
        expected_documents: dict[tuple[str, str], int] = {}
        accepted: list[tuple[Write, asyncio.Future[None]]] = []
        for write, done in batch:
            refusal = self._refusal(write, expected, revisions, expected_documents, versions)
            # A committer cancelled while waiting left a cancelled future: never set it.
            if refusal is not None:
                if not done.done():
                    done.set_exception(refusal)
                continue
            if write.record is not None:
                expected[write.record.resource_id] = write.record.sequence
            for document in write.documents:
                expected_documents[document.collection, document.key] = document.version
            accepted.append((write, done))
        if accepted:
            await self._commit_accepted(accepted)

    async def _commit_accepted(self, accepted: list[tuple[Write, asyncio.Future[None]]]) -> bool:
        """Commit writes that passed the revision checks, in one transaction.

        A write whose data the database refuses (a payload msgpack cannot encode) must not
        fail the others: the batch is then committed again one write at a time, and only the
        bad write (and the writes of its resource that follow it) fail.

        Returns:
            Whether every write was committed.
        """
        writes = [w for w, _ in accepted]
        try:
            pruned = await self._with_retries(lambda: self._write(writes))
        except StoreUnavailable as error:
            self._fail(accepted, error)
            return False
        except Exception as exc:
            if len(accepted) == 1:
                self._refuse(accepted[0], exc)
            else:
                await self._commit_one_by_one(accepted)
            return False
        if self._degraded:
            self._log.info("store recovered", batch=len(writes))
        self._degraded = False
        for write in writes:
            if write.record is not None:
                self._known[write.record.resource_id] = write.record.sequence
            for document in write.documents:
                self._known_documents[document.collection, document.key] = document.version
        self._commits += len(writes)
        self._rows_written += sum((w.record is not None) + len(w.documents) for w in writes)
        self._batches += 1
        self._largest = max(self._largest, len(writes))
        if pruned:
            self._pruned += pruned
            self._log.info("journal pruned by retention", rows=pruned, keep=self.retention.keep)
        for _, done in accepted:
            if not done.done():
                done.set_result(None)
        return True

    async def _commit_one_by_one(self, accepted: list[tuple[Write, asyncio.Future[None]]]) -> None:
        refused: dict[str, int] = {}  # resource -> the revision its refused write replaced
        for write, done in accepted:
            record = write.record
            if record is not None and record.resource_id in refused:
                # It follows a refused write of the same resource: its base never landed.
                held = refused[record.resource_id]
                self._conflicts += 1
                if not done.done():
                    done.set_exception(
                        RevisionConflict(record.resource_id, expected=write.replaces, actual=held)
                    )
                continue
            if not await self._commit_accepted([(write, done)]) and record is not None:
                refused[record.resource_id] = write.replaces

    def _refuse(self, entry: tuple[Write, asyncio.Future[None]], exc: Exception) -> None:
        """Fail one write the database could not take; the store itself is healthy."""
        write, done = entry
        where = write.record.resource_id if write.record is not None else "documents"
        self._log.warning("write refused", resource_id=where, error=repr(exc))
        self._failures += 1
        if not done.done():
            error = InvalidArgument(
                "write", expected=f"data the store can encode ({exc})", got=write
            )
            error.__cause__ = exc
            done.set_exception(error)

    def _refusal(
        self,
        write: Write,
        expected: dict[str, int],
        revisions: dict[str, int],
        expected_documents: dict[tuple[str, str], int],
        versions: dict[tuple[str, str], int],
    ) -> Exception | None:
        """Why ``write`` cannot be applied on top of what the store (and this batch) holds."""
        if write.record is not None:
            resource_id = write.record.resource_id
            held = expected.get(resource_id)
            if held is None:
                held = self._known.get(resource_id, revisions.get(resource_id, 0))
            if resource_id in self._quarantined:
                return ResourceQuarantined(resource_id, reason=self._quarantined[resource_id])
            if write.replaces != held:
                self._conflicts += 1
                return RevisionConflict(resource_id, expected=write.replaces, actual=held)
        for document in write.documents:
            name = (document.collection, document.key)
            held = expected_documents.get(name)
            if held is None:
                held = self._known_documents.get(name, versions.get(name, 0))
            if document.version - 1 != held:
                self._conflicts += 1
                return RevisionConflict(
                    f"{document.collection}/{document.key}",
                    expected=document.version - 1,
                    actual=held,
                )
        return None

    async def _with_retries(self, attempt: Any) -> Any:
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except _Transient as transient:
                if tries > self._retries:
                    error = transient.error
                    # The cause is what the database said; the retry wrapper is ours alone.
                    raise StoreUnavailable(
                        error.operation, reason=error.reason, attempts=tries, detail=error.detail
                    ) from (transient.__cause__ or transient.error)
                self._retried += 1
                # Bounded exponential backoff: retries * backoff * 2**retries at most.
                await self._clock.sleep(self._backoff * 2 ** (tries - 1))

    def _fail(
        self, batch: Iterable[tuple[Write, asyncio.Future[None]]], error: StoreUnavailable
    ) -> None:
        self._degraded = True
        failed = 0
        for write, done in batch:
            # A failed commit may still have reached the disk: forget what we believed the
            # revisions were, so the next write checks against what is really stored.
            if write.record is not None:
                self._known.pop(write.record.resource_id, None)
            for document in write.documents:
                self._known_documents.pop((document.collection, document.key), None)
            if not done.done():
                failed += 1
                done.set_exception(error)
        self._failures += failed
        self._log.error("store commit failed", writes=failed, error=str(error))

    async def _revisions(self, resource_ids: list[str]) -> dict[str, int]:
        raise NotImplementedError

    async def _document_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        raise NotImplementedError

    async def _write(self, writes: list[Write]) -> int:
        """Write one transaction; return the number of journal rows pruned."""
        raise NotImplementedError

    # -- shared bookkeeping ---------------------------------------------------------------

    def _document(self, row: Sequence[Any]) -> Document:
        """A document from the columns ``collection, key, version, body, resource_id, status,
        dedupe, created, updated`` of an SQL store's row."""
        return self._seen(
            Document(
                str(row[0]),
                str(row[1]),
                int(row[2]),
                bytes(row[3]),
                row[4],
                row[5],
                row[6],
                float(row[7]),
                float(row[8]),
            )
        )

    def _record(self, row: Sequence[Any]) -> TransitionRecord:
        """A journal row (``resource_id, sequence, source, event, target, task_id, cause, at,
        payload``) as a record; an undecodable payload quarantines its resource."""
        resource_id, sequence = str(row[0]), int(row[1])
        try:
            payload = decode(row[8]) if row[8] is not None else None
        except msgspec.DecodeError as exc:
            reason = f"journal row {sequence} cannot be decoded: {exc}"
            self._quarantined[resource_id] = reason
            raise ResourceQuarantined(resource_id, reason=reason) from exc
        return TransitionRecord(
            resource_id, sequence, row[2], row[3], row[4], row[5], row[6], float(row[7]), payload
        )

    async def _assemble(
        self,
        heads: Iterable[Sequence[Any]],
        tails: Iterable[Sequence[Any]],
        *,
        quarantine_raises: bool,
    ) -> dict[str, Loaded]:
        """Resources from their head rows (``id, kind, state, revision, updated, snapshot,
        snapshot_revision, snapshot_state``) and journal tails, read in one snapshot.

        A resource whose rows do not hold together is quarantined: left out, or raised with
        ``quarantine_raises``.
        """
        by_resource: dict[str, list[Sequence[Any]]] = {}
        for row in tails:
            by_resource.setdefault(str(row[0]), []).append(row)
        found: dict[str, Loaded] = {}
        for head in heads:
            resource_id = str(head[0])
            if resource_id in self._quarantined and not quarantine_raises:
                continue
            try:
                tail = tuple(self._record(row) for row in by_resource.get(resource_id, ()))
                loaded = Loaded(
                    resource_id,
                    str(head[1]),
                    str(head[2]),
                    int(head[3]),
                    float(head[4]),
                    None if head[5] is None else bytes(head[5]),
                    int(head[6]),
                    head[7],
                    tail,
                )
                self._check_chain(loaded)
            except ResourceQuarantined as error:
                await self.quarantine(resource_id, error.reason)
                if quarantine_raises:
                    raise
                continue
            except (TypeError, ValueError) as exc:
                reason = f"row cannot be read: {exc}"
                await self.quarantine(resource_id, reason)
                if quarantine_raises:
                    raise ResourceQuarantined(resource_id, reason=reason) from exc
                continue
            self._loaded(loaded)
            found[resource_id] = loaded
        return found

    async def quarantine(self, resource_id: str, reason: str) -> None:
        raise NotImplementedError

    def _loaded(self, loaded: Loaded) -> None:
        self._known[loaded.resource_id] = loaded.revision

    def _seen(self, document: Document) -> Document:
        self._known_documents[document.collection, document.key] = document.version
        return document

    def _check_chain(self, loaded: Loaded) -> None:
        """Quarantine-worthy inconsistencies between head, snapshot and journal tail."""
        expected = loaded.snapshot_revision + 1
        state = loaded.snapshot_state
        for record in loaded.tail:
            if record.sequence != expected:
                raise ResourceQuarantined(
                    loaded.resource_id,
                    reason=f"journal row {expected} is missing (found {record.sequence})",
                )
            if state is not None and record.source != state:
                raise ResourceQuarantined(
                    loaded.resource_id,
                    reason=f"journal row {record.sequence} starts from `{record.source}` "
                    f"but the resource was in `{state}`",
                )
            state = record.target
            expected += 1
        if expected - 1 != loaded.revision or (state is not None and state != loaded.state):
            raise ResourceQuarantined(
                loaded.resource_id,
                reason=f"head says revision {loaded.revision} in `{loaded.state}`, the journal "
                f"ends at {expected - 1} in `{state}`",
            )

    def statistics(self) -> StoreStatistics:
        """Counters, including the degraded flag."""
        return StoreStatistics(
            commits=self._commits,
            batches=self._batches,
            largest_batch=self._largest,
            retries=self._retried,
            failures=self._failures,
            conflicts=self._conflicts,
            degraded=self._degraded,
            quarantined=len(self._quarantined),
            pruned=self._pruned,
            pending=len(self._pending),
            rows=self._rows_written,
        )

    async def _stop_writer(self) -> None:
        self._closed = True
        # Let the writer finish the batch it holds and drain the queue: cancelling it
        # mid-transaction would fail writes that may already be durable.
        waiting = [done for _, done in (*self._inflight, *self._pending) if not done.done()]
        if waiting and self._writer is not None and not self._writer.done():
            await asyncio.wait(waiting)
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.cancel()
            await asyncio.wait({writer})
        for _, done in self._pending:
            if not done.done():
                done.set_exception(
                    StoreUnavailable(
                        "commit",
                        reason="the store is closed",
                        advice="nothing was written; open it again",
                    )
                )
        self._pending.clear()


class _Row(msgspec.Struct, gc=False):
    """A resource as MemoryStore keeps it: encoded, like a database row."""

    kind: str
    state: str
    revision: int
    updated: float
    snapshot: bytes | None
    snapshot_revision: int
    snapshot_state: str | None


class MemoryStore(GroupCommitter):
    """A store in memory with the same behaviour as the SQLite store, for fast tests.

    Rows are kept encoded (payloads as msgpack bytes), so decoding failures and
    quarantine behave as they do on disk. :meth:`fail_writes` injects disk failures;
    :attr:`commits` counts the transactions committed and :attr:`on_commit` is called after
    each, before anyone learns of it, which is where a test crashes the process
    (``stateward.testing.crash_at_every_commit``).

    Args:
        clock: for retry backoff; the real clock by default.
        max_batch: transitions per transaction at most.
        retries: how often a transient failure is retried.
        backoff: the first retry's delay in seconds; doubled each time.
        retention: how much journal to keep.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_batch: int = 1000,
        retries: int = 5,
        backoff: float = 0.005,
        retention: Retention = Retention(),  # frozen, so sharing is safe
    ) -> None:
        super().__init__(
            clock=clock,
            max_batch=max_batch,
            retries=retries,
            backoff=backoff,
            retention=retention,
        )
        self._rows: dict[str, _Row] = {}
        self._journal: dict[str, list[tuple[TransitionRecord, bytes | None]]] = {}
        self._fault: tuple[int, StoreUnavailable, bool, bool] | None = None
        self._documents: dict[tuple[str, str], Document] = {}
        #: Transactions committed since this store (or the image it was taken from) was new.
        self.commits = 0
        #: Called with the store after each committed transaction, before its writers are
        #: answered; None for nothing.
        self.on_commit: Callable[[MemoryStore], None] | None = None

    def fail_writes(
        self,
        count: int,
        *,
        reason: str = "disk full",
        transient: bool = False,
        after_commit: bool = False,
    ) -> None:
        """Make the next ``count`` transactions fail as a full or locked disk would.

        Args:
            count: transactions to fail.
            reason: the StoreUnavailable's reason.
            transient: fail as a lock does (retried) rather than as a full disk.
            after_commit: write first, then report failure (an fsync error after the data
                reached the disk): the writer cannot know its write is durable.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidArgument("count", expected="an int >= 1", got=count)
        self._fault = (count, StoreUnavailable("commit", reason=reason), transient, after_commit)

    def clear_faults(self) -> None:
        """Forget failures set up with :meth:`fail_writes` that have not happened yet."""
        self._fault = None

    def image(self) -> MemoryStore:
        """What a disk would hold after a power cut: a new store with only what was
        committed (nothing pending, no cache), as a restarted process would open it."""
        copy = MemoryStore(
            clock=self._clock,
            max_batch=self._max_batch,
            retries=self._retries,
            backoff=self._backoff,
            retention=self.retention,
        )
        copy._rows = {k: msgspec.structs.replace(row) for k, row in self._rows.items()}
        copy._journal = {k: list(entries) for k, entries in self._journal.items()}
        copy._documents = dict(self._documents)
        copy._quarantined = dict(self._quarantined)
        copy.commits = self.commits
        return copy

    async def _revisions(self, resource_ids: list[str]) -> dict[str, int]:
        return {r: self._rows[r].revision for r in resource_ids if r in self._rows}

    async def _document_versions(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        return {k: self._documents[k].version for k in keys if k in self._documents}

    async def get_document(self, collection: str, key: str) -> Document | None:
        """The current version of one document, or None."""
        check_text("collection", collection)
        check_text("key", key)
        await asyncio.sleep(0)
        document = self._documents.get((collection, key))
        return self._seen(document) if document is not None else None

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
        """Documents matching every given field, newest first."""
        before = check_documents_query(collection, resource_id, status, dedupe, before, limit)
        await asyncio.sleep(0)
        found = sorted(
            (
                d
                for (c, _), d in self._documents.items()
                if c == collection
                and (resource_id is None or d.resource_id == resource_id)
                and (status is None or d.status == status)
                and (dedupe is None or d.dedupe == dedupe)
                and (before is None or (d.created, d.key) < before)
            ),
            key=lambda d: (d.created, d.key),
            reverse=True,
        )
        return tuple(self._seen(d) for d in found[:limit])

    async def _write(self, writes: list[Write]) -> int:
        await asyncio.sleep(0)  # a transaction is never instantaneous; let others queue up
        after: StoreUnavailable | None = None
        if self._fault is not None:
            count, error, transient, after_commit = self._fault
            self._fault = (count - 1, error, transient, after_commit) if count > 1 else None
            if not after_commit:
                raise _Transient(error) if transient else error
            after = error
        pruned = self._apply(writes)
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit(self)
        if after is not None:
            raise after
        return pruned

    def _apply(self, writes: list[Write]) -> int:
        # Encode first: a payload that cannot be encoded must leave nothing half-applied.
        payloads = [
            encode(w.record.payload)
            if w.record is not None and w.record.payload is not None
            else None
            for w in writes
        ]
        pruned = 0
        for write, payload in zip(writes, payloads, strict=True):
            for document in write.documents:
                self._documents[document.collection, document.key] = document
            record = write.record
            if record is None:
                continue
            stored = msgspec.structs.replace(record, payload=None)
            self._journal.setdefault(record.resource_id, []).append((stored, payload))
            row = self._rows.get(record.resource_id)
            if row is None:
                row = self._rows[record.resource_id] = _Row(
                    write.kind, record.target, 0, record.at, None, 0, None
                )
            row.state, row.revision, row.updated = record.target, record.sequence, record.at
            if write.snapshot is not None:
                row.snapshot = write.snapshot
                row.snapshot_revision, row.snapshot_state = record.sequence, record.target
                pruned += self._prune(record.resource_id, record.sequence)
        return pruned

    def _prune(self, resource_id: str, snapshot_revision: int) -> int:
        if self.retention.keep == math.inf:
            return 0
        journal = self._journal[resource_id]
        cut = snapshot_revision - int(self.retention.keep)
        kept = [entry for entry in journal if entry[0].sequence > cut]
        pruned = len(journal) - len(kept)
        self._journal[resource_id] = kept
        return pruned

    def _decoded(
        self, resource_id: str, entries: Iterable[tuple[TransitionRecord, bytes | None]]
    ) -> list[TransitionRecord]:
        records = []
        for record, payload in entries:
            try:
                value = decode(payload) if payload is not None else None
            except msgspec.DecodeError as exc:
                reason = f"journal row {record.sequence} cannot be decoded: {exc}"
                self._quarantined[resource_id] = reason
                raise ResourceQuarantined(resource_id, reason=reason) from exc
            records.append(msgspec.structs.replace(record, payload=value))
        return records

    async def load(self, resource_id: str) -> Loaded | None:
        """The stored resource, or None if it was never written."""
        check_text("resource_id", resource_id)
        await asyncio.sleep(0)
        if resource_id in self._quarantined:
            raise ResourceQuarantined(resource_id, reason=self._quarantined[resource_id])
        row = self._rows.get(resource_id)
        if row is None:
            return None
        tail = [
            e for e in self._journal.get(resource_id, ()) if e[0].sequence > row.snapshot_revision
        ]
        loaded = Loaded(
            resource_id,
            row.kind,
            row.state,
            row.revision,
            row.updated,
            row.snapshot,
            row.snapshot_revision,
            row.snapshot_state,
            tuple(self._decoded(resource_id, tail)),
        )
        try:
            self._check_chain(loaded)
        except ResourceQuarantined as error:
            self._quarantined[resource_id] = error.reason
            raise
        self._loaded(loaded)
        return loaded

    async def load_many(self, resource_ids: Sequence[str]) -> dict[str, Loaded]:
        """Several resources at once; quarantined ones are left out (and recorded)."""
        found: dict[str, Loaded] = {}
        for resource_id in check_ids(resource_ids):
            try:
                loaded = await self.load(resource_id)
            except ResourceQuarantined:
                continue
            if loaded is not None:
                found[resource_id] = loaded
        return found

    async def quarantine(self, resource_id: str, reason: str) -> None:
        """Take a resource out of service."""
        check_text("resource_id", resource_id)
        check_text("reason", reason)
        self._quarantined[resource_id] = reason
        self._log.error("resource quarantined", resource_id=resource_id, reason=reason)

    async def history(
        self, resource_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[TransitionRecord, ...]:
        """Journal records of one resource with sequence > ``after``, oldest first."""
        check_history(resource_id, after, limit)
        entries = [e for e in self._journal.get(resource_id, ()) if e[0].sequence > after]
        return tuple(self._decoded(resource_id, entries[:limit]))

    async def history_between(
        self,
        start: float,
        end: float,
        *,
        after: tuple[float, str, int] | None = None,
        limit: int = 100,
    ) -> tuple[TransitionRecord, ...]:
        """Journal records with ``start <= at < end`` by (at, resource, sequence)."""
        start, end, after = check_history_between(start, end, after, limit)
        matching = sorted(
            (
                (record.at, resource_id, record.sequence, record, payload)
                for resource_id, entries in self._journal.items()
                for record, payload in entries
                if start <= record.at < end
            ),
            key=lambda item: item[:3],
        )
        if after is not None:
            matching = [m for m in matching if m[:3] > after]
        return tuple(r for m in matching[:limit] for r in self._decoded(m[1], [(m[3], m[4])]))

    async def resources(
        self, *, kind: str | None = None, after: str | None = None, limit: int = 1000
    ) -> tuple[ResourceSummary, ...]:
        """Resources ordered by id, starting after ``after``."""
        check_resources_query(kind, after, limit)
        ids = sorted(
            r
            for r, row in self._rows.items()
            if (kind is None or row.kind == kind) and (after is None or r > after)
        )[:limit]
        return tuple(
            ResourceSummary(
                r,
                self._rows[r].kind,
                self._rows[r].state,
                self._rows[r].revision,
                self._rows[r].updated,
                self._quarantined.get(r),
            )
            for r in ids
        )

    def corrupt(self, resource_id: str) -> None:
        """Overwrite a resource's last journal payload with bytes that do not decode."""
        journal = self._journal[resource_id]
        record, _ = journal[-1]
        journal[-1] = (record, b"\xc1")  # 0xc1 is never used in msgpack

    async def aclose(self) -> None:
        """Finish queued writes and stop."""
        await self._stop_writer()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

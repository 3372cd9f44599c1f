"""Task records the engine cannot decode: quarantined alone, every other task keeps working."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from flow_support import STORES, Journal, Recorded, open_store

from stateward.flows import (
    TASKS,
    Flow,
    FlowEngine,
    QuarantinedTask,
    StepRecord,
    TaskNotFound,
    TaskQuarantined,
    TaskRecord,
    TaskStatus,
    linear,
)
from stateward.runtime import Document, ResourceQuarantined, Store, Write


class Gated(Recorded):
    """A recorded task that says it started, then waits for a gate before it returns."""

    def __init__(self, journal: Journal, name: str, gate: asyncio.Event) -> None:
        super().__init__(journal, name)
        self.gate = gate
        self.started = asyncio.Event()

    async def execute(self, **inputs: Any) -> Any:
        self.journal.events.append(("run", self.name))
        self.started.set()
        await self.gate.wait()
        return f"{self.name}-done"


def build(journal: Journal, gate: asyncio.Event) -> Flow:
    """A two-step flow whose second step waits for ``gate``."""
    return Flow("f", linear(Recorded(journal, "a"), Gated(journal, "b", gate)))


def old_record(task_id: str, resource_id: str, status: TaskStatus, **fields: Any) -> TaskRecord:
    """A record as the engine wrote it, with ``fields`` replaced unchecked (as an old version
    that accepted anything would have written them)."""
    record = TaskRecord(
        id=task_id,
        kind="f",
        flow_version=1,
        resource_id=resource_id,
        request={},
        idempotency_key=None,
        status=status,
        created=10.0,
        updated=10.0,
        steps=[StepRecord("a"), StepRecord("b")],
        version=1,
    )
    return msgspec.structs.replace(record, **fields)


async def plant(
    store: Store,
    task_id: str,
    resource_id: str,
    status: TaskStatus,
    body: bytes,
    *,
    dedupe: str | None = None,
    created: float = 10.0,
) -> None:
    """Write one task document straight into the store, as a buggy writer would have."""
    document = Document(
        TASKS,
        task_id,
        1,
        body,
        resource_id=resource_id,
        status=status.value,
        dedupe=dedupe,
        created=created,
        updated=created,
    )
    await store.commit(Write(documents=(document,)))


ENCODER = msgspec.msgpack.Encoder()

#: Bodies an engine cannot decode into a TaskRecord, each with the dedupe it was indexed by.
BAD_BODIES: dict[str, tuple[Callable[[TaskStatus], bytes], str | None]] = {
    "int-idempotency-key": (
        lambda status: ENCODER.encode(old_record("bad", "web-1", status, idempotency_key=12345)),
        "12345",  # SQLite's TEXT column kept the int key as text
    ),
    "int-input-name": (
        lambda status: ENCODER.encode(old_record("bad", "web-1", status, request={1: "x"})),
        None,
    ),
    "malformed-bytes": (lambda status: b"\xc1\x00garbage", None),
    "wrong-shape": (lambda status: ENCODER.encode(["not", "a", "record"]), None),
    "other-task": (
        lambda status: ENCODER.encode(old_record("someone-else", "web-1", status)),
        None,
    ),
}


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("bad", sorted(BAD_BODIES))
async def test_resume_quarantines_an_undecodable_record_and_resumes_the_rest(
    kind: str, bad: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With one in-flight record that cannot be decoded beside a good one, a new engine (on
    a reopened store) resumes the good task, quarantines the bad one and logs it; get() on
    it raises TaskQuarantined; listings leave it out and return the good records."""
    journal = Journal()
    make_body, dedupe = BAD_BODIES[bad]
    async with open_store(kind, tmp_path) as store:
        stuck = build(journal, asyncio.Event())
        async with FlowEngine(store, flows=[stuck]) as first:
            handle = await first.submit(stuck, resource_id="web-1")
            gated = stuck.task("b")
            assert isinstance(gated, Gated)
            await gated.started.wait()
        async with FlowEngine(store) as other:
            done = await other.run(Flow("other", Recorded(journal, "x")), resource_id="web-1")
        body = make_body(TaskStatus.RUNNING)
        await plant(store, "bad", "web-1", TaskStatus.RUNNING, body, dedupe=dedupe)
        if kind == "memory":
            await check_resume(store, journal, handle.task_id, done.id, caplog)
    if kind == "sqlite":
        async with open_store(kind, tmp_path) as reopened:
            await check_resume(reopened, journal, handle.task_id, done.id, caplog)


async def check_resume(
    store: Store,
    journal: Journal,
    in_flight: str,
    done: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new engine on ``store`` resumes ``in_flight``, quarantines task ``bad``, and lists
    ``in_flight`` and ``done`` as web-1's tasks."""
    gate = asyncio.Event()
    gate.set()
    async with FlowEngine(store, flows=[build(journal, gate)]) as engine:
        with caplog.at_level(logging.INFO, logger="stateward.flows"):
            caplog.clear()
            resumed = await engine.resume()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [h.task_id for h in resumed] == [in_flight]
        assert (await resumed[0].wait()).status is TaskStatus.SUCCEEDED
        [quarantined] = engine.quarantined()
        assert quarantined.id == "bad"
        assert (quarantined.resource_id, quarantined.status) == ("web-1", "running")
        assert engine.statistics().quarantined == 1
        assert [r.getMessage().split(" task_id=")[0] for r in errors] == ["task quarantined"]
        assert getattr(errors[0], "task_id", None) == "bad"

        with pytest.raises(TaskQuarantined) as caught:
            await engine.get("bad")
        assert isinstance(caught.value, ResourceQuarantined)
        assert (caught.value.task_id, caught.value.owner) == ("bad", "web-1")
        assert str(caught.value).startswith("task bad of web-1 is quarantined: its record ")
        assert str(caught.value).endswith(
            "; it is left out of resume and listings, every other task works; inspect it with "
            "`stateward inspect DB --task bad`, then repair or delete its record"
        )

        listed = await engine.tasks("web-1")
        assert {r.id for r in listed} == {in_flight, done}
        assert [a.id for a in await engine.actions("web-1")] == [r.id for r in listed]
        assert await engine.last_fault("web-1") is None
        assert await engine.parked() == ()
        assert await engine.resume() == ()  # still left alone
        assert engine.quarantined() == (quarantined,)
        record = await engine.run(build(journal, gate), resource_id="web-2")
        assert record.status is TaskStatus.SUCCEEDED


@pytest.mark.parametrize("kind", STORES)
async def test_paging_skips_undecodable_records_without_ending_early(
    kind: str, tmp_path: Path
) -> None:
    """A page that meets undecodable records is filled up from the next ones: paging by the
    last record's (created, id) lists every good record exactly once."""
    journal = Journal()
    flow = Flow("f", Recorded(journal, "a"))
    async with open_store(kind, tmp_path) as store, FlowEngine(store, flows=[flow]) as engine:
        good = [await engine.run(flow, resource_id="r") for _ in range(5)]
        for n in range(4):
            # Each beside a good one (same time, its key sorts first): spread over the pages.
            created = good[n].created
            await plant(store, f"bad-{n}", "r", TaskStatus.PARKED, b"\xc1", created=created)
        seen: list[str] = []
        before = None
        while True:
            page = await engine.tasks("r", before=before, limit=2)
            seen.extend(r.id for r in page)
            if len(page) < 2:
                break
            before = (page[-1].created, page[-1].id)
        assert sorted(seen) == sorted(r.id for r in good)
        assert await engine.parked(limit=1) == ()
        assert [q.id for q in engine.quarantined()] == [f"bad-{n}" for n in range(4)]


@pytest.mark.parametrize("kind", STORES)
async def test_idempotent_submit_refuses_to_replace_a_quarantined_task(
    kind: str, tmp_path: Path
) -> None:
    """A submission whose idempotency key matches an undecodable record raises
    TaskQuarantined rather than starting a second task; find() says the same."""
    journal = Journal()
    flow = Flow("f", Recorded(journal, "a"))
    async with open_store(kind, tmp_path) as store, FlowEngine(store, flows=[flow]) as engine:
        body = ENCODER.encode(old_record("bad", "r", TaskStatus.SUCCEEDED, steps="oops"))
        await plant(store, "bad", "r", TaskStatus.SUCCEEDED, body, dedupe="key-1")
        with pytest.raises(TaskQuarantined, match=r"^task bad of r is quarantined"):
            await engine.submit(flow, resource_id="r", idempotency_key="key-1")
        with pytest.raises(TaskQuarantined):
            await engine.find("r", "key-1")
        with pytest.raises(TaskQuarantined):
            await engine.cancel("bad")
        assert journal.ran() == []
        record = await engine.run(flow, resource_id="r", idempotency_key="key-2")
        assert record.status is TaskStatus.SUCCEEDED
        with pytest.raises(TaskNotFound):
            await engine.get("missing")


def test_quarantined_task_is_a_record() -> None:
    """QuarantinedTask is a frozen record with the indexed fields and the reason."""
    entry = QuarantinedTask("t", "r", "running", "why")
    assert (entry.id, entry.resource_id, entry.status, entry.reason) == (
        "t",
        "r",
        "running",
        "why",
    )
    with pytest.raises(AttributeError):
        entry.reason = "other"  # type: ignore[misc]

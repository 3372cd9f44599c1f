"""The flow engine: running, reverting, retrying, timeouts, limits, busy policy, cancelling."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_support import STORES, Journal, Recorded, fails, open_store

from stateward.flows import (
    MAX_RECORD_BYTES,
    TASKS,
    Busy,
    Failure,
    Flow,
    FlowBusy,
    FlowEngine,
    FlowStatistics,
    Retry,
    StepStatus,
    TaskNotFound,
    TaskStatus,
    linear,
    task,
    unordered,
)
from stateward.runtime import (
    CommandRejected,
    Environment,
    InvalidArgument,
    MemoryStore,
    StoreUnavailable,
    VirtualClock,
)


def virtual_env(seed: int = 1) -> Environment:
    """A seeded environment on the running virtual-time loop's clock."""
    return Environment(clock=VirtualClock.current(), seed=seed)


def statuses(record: Any) -> list[tuple[str, StepStatus]]:
    """Each step's name and status."""
    return [(s.name, s.status) for s in record.steps]


def events(record: Any) -> list[str]:
    """The record's history events, oldest first."""
    return [h.event for h in record.history]


async def blocked(gate: asyncio.Event) -> str:
    """Wait for ``gate``; return ``"released"``."""
    await gate.wait()
    return "released"


# --------------------------------------------------------------------------------------------
# Scenario 1: values pass from step to step


@pytest.mark.parametrize("kind", STORES)
async def test_linear_flow_passes_values_between_steps(kind: str, tmp_path: Path) -> None:
    """Each step gets its inputs, by parameter name, from the flow's inputs and earlier steps."""

    async def reserve(flavor: str) -> dict[str, Any]:
        return {"host": "h1", "cpus": 2 if flavor == "small" else 8}

    async def boot(claim: dict[str, Any], image: str) -> str:
        return f"{image}@{claim['host']}x{claim['cpus']}"

    async def announce(server: str, claim: dict[str, Any]) -> str:
        return f"up: {server} on {claim['host']}"

    flow = Flow(
        "create",
        linear(
            task(reserve, provides="claim"),
            task(boot, provides="server"),
            task(announce, provides="message"),
        ),
        inputs=["flavor", "image"],
    )
    async with (
        open_store(kind, tmp_path) as store,
        FlowEngine(store, env=Environment(seed=1)) as engine,
    ):
        record = await engine.run(
            flow, resource_id="vm-1", inputs={"flavor": "small", "image": "cirros"}
        )
        assert record.status is TaskStatus.SUCCEEDED
        assert [(s.name, s.status, s.result, s.attempts) for s in record.steps] == [
            ("reserve", StepStatus.SUCCEEDED, {"host": "h1", "cpus": 2}, 1),
            ("boot", StepStatus.SUCCEEDED, "cirros@h1x2", 1),
            ("announce", StepStatus.SUCCEEDED, "up: cirros@h1x2 on h1", 1),
        ]
        assert (record.kind, record.flow_version, record.resource_id) == ("create", 1, "vm-1")
        assert record.request == {"flavor": "small", "image": "cirros"}
        assert events(record) == ["pending", "running", "succeeded"]
        assert await engine.get(record.id) == record
    async with open_store(kind, tmp_path) as store, FlowEngine(store) as engine:
        if kind == "sqlite":  # the record outlives the process that wrote it
            assert await engine.get(record.id) == record


# --------------------------------------------------------------------------------------------
# Scenario 2: a failed step reverts the steps before it


@pytest.mark.parametrize("kind", STORES)
async def test_failed_step_reverts_earlier_steps_in_reverse_order(
    kind: str, tmp_path: Path
) -> None:
    """The third step fails: the first two revert last-first with their result and the
    Failure; the task ends reverted and is the resource's fault."""
    journal = Journal()
    flow = Flow(
        "create",
        linear(
            Recorded(journal, "reserve", provides="claim"),
            Recorded(journal, "boot", requires=("claim",)),
            Recorded(journal, "network", body=fails("quota exceeded", ValueError)),
        ),
    )
    async with (
        open_store(kind, tmp_path) as store,
        FlowEngine(store, env=Environment(seed=2)) as engine,
    ):
        record = await engine.run(flow, resource_id="vm-1")
        assert record.status is TaskStatus.REVERTED
        assert statuses(record) == [
            ("reserve", StepStatus.REVERTED),
            ("boot", StepStatus.REVERTED),
            ("network", StepStatus.FAILED),
        ]
        failure = Failure("network", "ValueError", "quota exceeded")
        assert journal.reverts() == [
            ("revert", "boot", "boot-done", failure),
            ("revert", "reserve", "reserve-done", failure),
        ]
        network = record.step("network")
        assert (network.error_type, network.error_message) == ("ValueError", "quota exceeded")
        assert (record.error_type, record.error_message) == (
            "ValueError",
            "network: quota exceeded",
        )
        assert events(record) == ["pending", "running", "reverting", "reverted"]
        assert await engine.get(record.id) == record
        assert await engine.last_fault("vm-1") == record
        [action] = await engine.actions("vm-1")
        assert (action.id, action.kind, action.status, action.error) == (
            record.id,
            "create",
            TaskStatus.REVERTED,
            "network: quota exceeded",
        )


async def test_first_step_failing_ends_failed_with_nothing_to_revert() -> None:
    """When no step completed, the task ends failed, not reverted, and no revert runs."""
    journal = Journal()
    flow = Flow("f", linear(Recorded(journal, "a", body=fails("nope")), Recorded(journal, "b")))
    async with MemoryStore() as store, FlowEngine(store) as engine:
        record = await engine.run(flow, resource_id="r")
    assert record.status is TaskStatus.FAILED
    assert statuses(record) == [("a", StepStatus.FAILED), ("b", StepStatus.PENDING)]
    assert journal.events == [("run", "a")]
    assert events(record) == ["pending", "running", "failed"]


# --------------------------------------------------------------------------------------------
# Scenario 3: retries with backoff


@pytest.mark.virtual_time
async def test_transient_failures_are_retried_with_seeded_backoff() -> None:
    """A step failing 3 times then succeeding takes 4 attempts, waits the seeded backoff
    delays on the clock, and records 3 retry events."""
    clock = VirtualClock.current()
    calls = 0

    async def attach() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise ConnectionError(f"refused {calls}")
        return "attached"

    policy = Retry(attempts=5, backoff=1.0, factor=2.0, jitter=0.2, on=(ConnectionError,))
    flow = Flow("attach", task(attach, retry=policy))
    async with MemoryStore(clock=clock) as store, FlowEngine(store, env=virtual_env(7)) as engine:
        start = clock.monotonic()
        record = await engine.run(flow, resource_id="vm-1")
        elapsed = clock.monotonic() - start
    step = record.steps[0]
    assert (record.status, step.status, step.attempts, step.result) == (
        TaskStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        4,
        "attached",
    )
    assert (step.error_type, step.error_message) == (None, None)
    rng = Environment(seed=7).random("flows.retry")
    assert step.delays == [policy.delay(n, rng) for n in (1, 2, 3)]
    for n, delay in enumerate(step.delays, start=1):
        base = 2.0 ** (n - 1)
        assert base * 0.8 <= delay <= base * 1.2
    assert step.delays[0] < step.delays[1] < step.delays[2]
    assert elapsed == pytest.approx(sum(step.delays))
    retries = [h for h in record.history if h.event == "retry"]
    assert [(h.step, h.detail) for h in retries] == [
        (
            "attach",
            f"attempt {n} failed (ConnectionError: refused {n}); retrying in {d:.3f}s",
        )
        for n, d in enumerate(step.delays, start=1)
    ]
    assert [h.at - retries[0].at for h in retries[1:]] == pytest.approx(
        [step.delays[0], step.delays[0] + step.delays[1]]
    )


@pytest.mark.virtual_time
async def test_retries_run_out_and_the_step_fails() -> None:
    """A step that keeps failing stops after ``attempts`` tries with the last error."""
    calls = 0

    async def attach() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"refused {calls}")

    flow = Flow("attach", task(attach, retry=Retry(attempts=3, backoff=0.5)))
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        record = await engine.run(flow, resource_id="vm-1")
    step = record.steps[0]
    assert (record.status, step.status, step.attempts, len(step.delays)) == (
        TaskStatus.FAILED,
        StepStatus.FAILED,
        3,
        2,
    )
    assert (step.error_type, step.error_message) == ("ConnectionError", "refused 3")
    assert events(record).count("retry") == 2


@pytest.mark.virtual_time
@pytest.mark.parametrize("failures", [2, 3])
async def test_a_revert_is_retried_by_its_own_policy(failures: int) -> None:
    """A revert failing transiently is tried again after the seeded backoff, up to its
    ``revert_retry`` attempts; the steps before it are reverted once it holds, and left
    as they are (the task ``revert_failed``) when it never does."""
    clock = VirtualClock.current()
    undone: list[str] = []
    calls = 0

    async def claim() -> str:
        return "claim-1"

    async def release(result: str, failure: Failure) -> None:
        undone.append(result)

    async def attach() -> str:
        return "attached"

    async def detach(result: str, failure: Failure) -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise ConnectionError(f"refused {calls}")
        undone.append(result)

    async def spawn() -> None:
        raise RuntimeError("no room")

    policy = Retry(attempts=3, backoff=2.0, jitter=0.0, on=(ConnectionError,))
    flow = Flow(
        "boot",
        linear(
            task(claim, revert=release),
            task(attach, revert=detach, revert_retry=policy),
            task(spawn),
        ),
    )
    async with MemoryStore(clock=clock) as store, FlowEngine(store, env=virtual_env()) as engine:
        start = clock.monotonic()
        record = await engine.run(flow, resource_id="vm-1")
        elapsed = clock.monotonic() - start
    retries = [h.detail or "" for h in record.history if h.event == "retry"]
    assert len(retries) == min(failures, 2)
    assert all(r.startswith("revert attempt") for r in retries)
    assert elapsed == pytest.approx(2.0 + 4.0 if failures >= 2 else 2.0)
    if failures < 3:
        assert record.status is TaskStatus.REVERTED
        assert undone == ["attached", "claim-1"]
    else:
        assert record.status is TaskStatus.REVERT_FAILED
        assert record.step("attach").status is StepStatus.REVERT_FAILED
        assert undone == []  # the claim stays: the record says why


@pytest.mark.virtual_time
async def test_exceptions_not_worth_retrying_fail_at_once() -> None:
    """An exception outside ``Retry.on`` fails the step on its first attempt, without waiting."""
    clock = VirtualClock.current()
    journal = Journal()
    policy = Retry(attempts=5, backoff=10.0, on=(ConnectionError,))
    flow = Flow(
        "f", Recorded(journal, "attach", body=fails("bad flavor", ValueError), retry=policy)
    )
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        start = clock.monotonic()
        record = await engine.run(flow, resource_id="vm-1")
        assert clock.monotonic() == start
    step = record.steps[0]
    assert (step.attempts, step.delays, step.status) == (1, [], StepStatus.FAILED)
    assert "retry" not in events(record)
    assert journal.ran() == ["attach"]


# --------------------------------------------------------------------------------------------
# Scenario 4: concurrent branches


@pytest.mark.virtual_time
async def test_failed_concurrent_branch_reverts_every_completed_sibling() -> None:
    """One unordered branch fails: siblings still running finish, then every completed
    sibling and the step before them revert, last-first; later steps never run."""
    clock = VirtualClock.current()
    journal = Journal()

    async def slow() -> str:
        await asyncio.sleep(10)
        return "slow-done"

    async def breaks() -> None:
        await asyncio.sleep(1)
        raise RuntimeError("link down")

    flow = Flow(
        "fan",
        linear(
            Recorded(journal, "prep"),
            unordered(
                Recorded(journal, "quick"),
                Recorded(journal, "slow", body=slow),
                Recorded(journal, "breaks", body=breaks),
                Recorded(journal, "quick2"),
            ),
            Recorded(journal, "after"),
        ),
    )
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        start = clock.monotonic()
        record = await engine.run(flow, resource_id="r")
        assert clock.monotonic() - start == 10
    assert record.status is TaskStatus.REVERTED
    assert journal.ran() == ["prep", "quick", "slow", "breaks", "quick2"]
    assert journal.reverted() == ["quick2", "slow", "quick", "prep"]
    failure = Failure("breaks", "RuntimeError", "link down")
    assert {e[3] for e in journal.reverts()} == {failure}
    assert statuses(record) == [
        ("prep", StepStatus.REVERTED),
        ("quick", StepStatus.REVERTED),
        ("slow", StepStatus.REVERTED),
        ("breaks", StepStatus.FAILED),
        ("quick2", StepStatus.REVERTED),
        ("after", StepStatus.PENDING),
    ]
    reverting = next(h for h in record.history if h.event == "reverting")
    slow_step = record.step("slow")
    assert slow_step.finished is not None
    assert slow_step.started is not None
    assert slow_step.finished - slow_step.started == 10
    assert reverting.at >= slow_step.finished


# --------------------------------------------------------------------------------------------
# Timeouts, size limit, failing reverts, non-plain data


@pytest.mark.virtual_time
async def test_step_timeout_is_recorded_and_the_flow_reverts() -> None:
    """A step running past its timeout fails with StepTimeout and earlier steps revert."""
    clock = VirtualClock.current()
    journal = Journal()

    async def hang() -> None:
        await asyncio.sleep(3600)

    flow = Flow(
        "f",
        linear(
            Recorded(journal, "a"),
            Recorded(journal, "hang", body=hang, timeout=5),
            Recorded(journal, "c"),
        ),
    )
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        start = clock.monotonic()
        record = await engine.run(flow, resource_id="r")
        assert clock.monotonic() - start == 5
    hung = record.step("hang")
    assert (hung.status, hung.error_type, hung.error_message) == (
        StepStatus.FAILED,
        "StepTimeout",
        "step 'hang' did not finish within 5s",
    )
    assert record.status is TaskStatus.REVERTED
    assert record.error_message == "hang: step 'hang' did not finish within 5s"
    assert journal.reverted() == ["a"]
    assert "c" not in journal.ran()


@pytest.mark.virtual_time
async def test_step_raising_its_own_timeout_error_is_not_a_step_timeout() -> None:
    """A TimeoutError the step raises itself, before its deadline, is recorded as it is."""

    async def call() -> None:
        raise TimeoutError("socket timed out")

    flow = Flow("f", task(call, timeout=60))
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        record = await engine.run(flow, resource_id="r")
    step = record.steps[0]
    assert (step.error_type, step.error_message) == ("TimeoutError", "socket timed out")


async def test_huge_result_fails_its_step_with_record_too_large() -> None:
    """A result that would make the record too large fails the step, stores no part of it,
    and reverts the steps before."""
    assert MAX_RECORD_BYTES == 1 << 20
    journal = Journal()

    async def dump() -> str:
        return "x" * 50_000

    flow = Flow("f", linear(Recorded(journal, "a"), Recorded(journal, "dump", body=dump)))
    async with MemoryStore() as store, FlowEngine(store, max_record_bytes=20_000) as engine:
        record = await engine.run(flow, resource_id="r")
        document = await store.get_document(TASKS, record.id)
        assert document is not None
        assert len(document.body) <= 20_000
        assert b"xxxxxxxx" not in document.body
        stored = await engine.get(record.id)
    dumped = stored.step("dump")
    assert (dumped.status, dumped.result, dumped.error_type) == (
        StepStatus.FAILED,
        None,
        "RecordTooLarge",
    )
    assert dumped.error_message is not None
    assert dumped.error_message.startswith(f"task {record.id} would take ")
    assert dumped.error_message.endswith(
        " bytes, over the 20000-byte limit of a task record; keep step results small "
        "(store bulky data elsewhere and return its id)"
    )
    assert stored.status is TaskStatus.REVERTED
    assert journal.reverted() == ["a"]  # dump never succeeded, so it is not reverted


async def test_failing_revert_ends_revert_failed_with_details() -> None:
    """A revert that raises stops the revert: the task ends revert_failed and says which."""
    journal = Journal()
    flow = Flow(
        "f",
        linear(
            Recorded(journal, "a"),
            Recorded(journal, "b", revert_error=OSError("volume busy")),
            Recorded(journal, "c", body=fails("boom")),
        ),
    )
    async with MemoryStore() as store, FlowEngine(store) as engine:
        record = await engine.run(flow, resource_id="r")
        assert await engine.last_fault("r") == record
    assert record.status is TaskStatus.REVERT_FAILED
    assert statuses(record) == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.REVERT_FAILED),
        ("c", StepStatus.FAILED),
    ]
    b = record.step("b")
    assert (b.error_type, b.error_message) == ("OSError", "volume busy")
    assert (record.error_type, record.error_message) == (
        "OSError",
        "revert of b failed: volume busy",
    )
    last = record.history[-1]
    assert (last.event, last.detail) == ("revert_failed", "revert of b failed")
    assert journal.reverted() == ["b"]


async def test_non_plain_result_fails_the_step() -> None:
    """A step returning something msgpack cannot store fails with TypeError."""

    async def opaque() -> object:
        return object()

    flow = Flow("f", task(opaque))
    async with MemoryStore() as store, FlowEngine(store) as engine:
        record = await engine.run(flow, resource_id="r")
    assert record.status is TaskStatus.FAILED
    assert record.steps[0].error_type == "TypeError"


async def test_inputs_must_be_plain_data_and_complete() -> None:
    """Submitting inputs that are not plain data, or missing some, is an InvalidArgument."""
    journal = Journal()
    flow = Flow(
        "f", Recorded(journal, "a", requires=("image", "flavor")), inputs=["image", "flavor"]
    )
    async with MemoryStore() as store, FlowEngine(store) as engine:
        with pytest.raises(
            InvalidArgument,
            match=r"^inputs: expected plain data \(msgpack: Encoding objects of type object is "
            r"unsupported\), got \{",
        ):
            await engine.submit(
                flow, resource_id="r", inputs={"image": object(), "flavor": "small"}
            )
        with pytest.raises(
            InvalidArgument, match=r"^inputs: expected values for image, flavor, got \['image'\]$"
        ):
            await engine.submit(flow, resource_id="r", inputs={"image": "cirros"})
        with pytest.raises(InvalidArgument, match=r"^resource_id: expected a non-empty str"):
            await engine.submit(flow, resource_id="", inputs={"image": "c", "flavor": "s"})
        assert await engine.tasks("r") == ()
    assert journal.events == []


async def test_engine_checks_its_arguments() -> None:
    """FlowEngine wants a Store, a Busy policy and an int size limit."""
    with pytest.raises(InvalidArgument, match=r"^store: expected a Store, got 'db'$"):
        FlowEngine("db")  # type: ignore[arg-type]
    async with MemoryStore() as store:
        with pytest.raises(InvalidArgument, match=r"^on_busy: expected a Busy, got 'queue'$"):
            FlowEngine(store, on_busy="queue")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match=r"^max_record_bytes: expected an int"):
            FlowEngine(store, max_record_bytes=1.5)  # type: ignore[arg-type]


async def test_submit_after_close_is_refused() -> None:
    """A closed engine refuses new flows with StoreUnavailable."""
    flow = Flow("f", Recorded(Journal(), "a"))
    async with MemoryStore() as store:
        engine = FlowEngine(store)
        await engine.aclose()
        with pytest.raises(
            StoreUnavailable, match=r"^store submit failed: the flow engine is closed"
        ):
            await engine.submit(flow, resource_id="r")


# --------------------------------------------------------------------------------------------
# One flow per resource: Busy.REJECT and Busy.QUEUE


async def test_busy_reject_refuses_a_second_flow_for_the_resource() -> None:
    """With Busy.REJECT, submitting while the resource runs a flow raises FlowBusy."""
    gate = asyncio.Event()
    flow = Flow("hold", Recorded(Journal(), "hold", body=lambda: blocked(gate)))
    async with MemoryStore() as store, FlowEngine(store) as engine:
        first = await engine.submit(flow, resource_id="vm-1")
        with pytest.raises(
            FlowBusy,
            match=rf"^vm-1 already runs task {first.task_id}; wait for it, cancel it, or "
            r"submit with on_busy=Busy.QUEUE$",
        ) as info:
            await engine.submit(flow, resource_id="vm-1")
        assert isinstance(info.value, CommandRejected)
        assert (info.value.resource_id, info.value.active) == ("vm-1", first.task_id)
        other = await engine.submit(flow, resource_id="vm-2")  # other resources are free
        assert engine.statistics() == FlowStatistics(running=2, queued=0)
        gate.set()
        assert (await first.wait()).status is TaskStatus.SUCCEEDED
        assert (await other.wait()).status is TaskStatus.SUCCEEDED
        again = await engine.run(flow, resource_id="vm-1")  # free again once it ended
        assert again.status is TaskStatus.SUCCEEDED
        assert len(await engine.tasks("vm-1")) == 2


@pytest.mark.virtual_time
async def test_busy_queue_runs_the_second_flow_after_the_first() -> None:
    """With Busy.QUEUE, a second flow is recorded pending and runs when the first ends."""
    gate = asyncio.Event()
    order: list[str] = []

    async def work(label: str) -> str:
        order.append(f"start {label}")
        if label == "first":
            await gate.wait()
        order.append(f"end {label}")
        return label

    flow = Flow("op", task(work), inputs=["label"])
    env = virtual_env()
    async with MemoryStore() as store, FlowEngine(store, env=env, on_busy=Busy.QUEUE) as engine:
        first = await engine.submit(flow, resource_id="vm-1", inputs={"label": "first"})
        second = await engine.submit(flow, resource_id="vm-1", inputs={"label": "second"})
        assert second.record.status is TaskStatus.PENDING
        assert (await engine.get(second.task_id)).status is TaskStatus.PENDING
        assert engine.statistics() == FlowStatistics(running=1, queued=1)
        await asyncio.sleep(0.01)
        assert order == ["start first"]
        gate.set()
        one, two = await first.wait(), await second.wait()
    assert order == ["start first", "end first", "start second", "end second"]
    assert (one.status, two.status) == (TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED)
    assert events(two) == ["pending", "running", "succeeded"]
    assert two.history[1].at >= one.updated


# --------------------------------------------------------------------------------------------
# Idempotency keys


@pytest.mark.parametrize("kind", STORES)
async def test_idempotency_key_returns_the_same_task(kind: str, tmp_path: Path) -> None:
    """A second submission with the same key returns the first task: same id, one record,
    the steps ran once; also from another engine on the same store."""
    journal = Journal()
    flow = Flow("create", Recorded(journal, "boot"))
    async with open_store(kind, tmp_path) as store:
        async with FlowEngine(store, env=Environment(seed=3)) as engine:
            first = await engine.run(flow, resource_id="vm-1", idempotency_key="req-1")
            again = await engine.run(flow, resource_id="vm-1", idempotency_key="req-1")
            assert again.id == first.id
            assert again.status is TaskStatus.SUCCEEDED
            other = await engine.run(flow, resource_id="vm-2", idempotency_key="req-1")
            assert other.id != first.id
        async with FlowEngine(store, env=Environment(seed=4)) as later:
            handle = await later.submit(flow, resource_id="vm-1", idempotency_key="req-1")
            assert handle.task_id == first.id
            assert (await handle.wait()) == first
            assert [r.id for r in await later.tasks("vm-1")] == [first.id]
    assert journal.ran() == ["boot", "boot"]  # vm-1 once, vm-2 once


async def test_idempotency_key_while_in_flight_returns_the_running_task() -> None:
    """Submitting the same key while the first is still running does not start another,
    even under Busy.REJECT."""
    gate = asyncio.Event()
    journal = Journal()
    flow = Flow("create", Recorded(journal, "boot", body=lambda: blocked(gate)))
    async with MemoryStore() as store, FlowEngine(store) as engine:
        first = await engine.submit(flow, resource_id="vm-1", idempotency_key="k")
        second = await engine.submit(flow, resource_id="vm-1", idempotency_key="k")
        assert second.task_id == first.task_id
        gate.set()
        assert (await second.wait()).id == first.task_id
        assert len(await engine.tasks("vm-1")) == 1
    assert journal.ran() == ["boot"]


# --------------------------------------------------------------------------------------------
# Cancelling


@pytest.mark.virtual_time
async def test_cancel_reverts_what_ran_and_ends_cancelled() -> None:
    """Cancelling a running task stops its current step, reverts completed steps last-first
    and ends cancelled; later steps never run."""
    gate = asyncio.Event()
    journal = Journal()
    flow = Flow(
        "f",
        linear(
            Recorded(journal, "a"),
            Recorded(journal, "b"),
            Recorded(journal, "hold", body=lambda: blocked(gate)),
            Recorded(journal, "c"),
        ),
    )
    async with MemoryStore() as store, FlowEngine(store, env=virtual_env()) as engine:
        handle = await engine.submit(flow, resource_id="r")
        await asyncio.sleep(1)
        assert journal.ran() == ["a", "b", "hold"]
        record = await engine.cancel(handle.task_id)
        assert record.status is TaskStatus.CANCELLED
        assert await handle.wait() == record
        assert await engine.get(handle.task_id) == record
        assert await engine.cancel(handle.task_id) == record  # ended: cancelling is a no-op
        assert await engine.last_fault("r") is None  # cancelling is not a fault
    cancelled = Failure("", "Cancelled", "cancelled on request")
    assert journal.reverts() == [
        ("revert", "b", "b-done", cancelled),
        ("revert", "a", "a-done", cancelled),
    ]
    assert "c" not in journal.ran()
    assert events(record)[-2:] == ["reverting", "cancelled"]
    assert record.step("c").status is StepStatus.PENDING
    hold = record.step("hold")
    assert (hold.status, hold.error_type, hold.error_message) == (
        StepStatus.FAILED,
        "Cancelled",
        "cancelled on request",
    )


async def test_cancel_of_a_queued_task_ends_it_without_running() -> None:
    """A queued task cancelled before it starts ends cancelled and never runs."""
    gate = asyncio.Event()
    journal = Journal()
    flow = Flow("f", Recorded(journal, "hold", body=lambda: blocked(gate)))
    async with MemoryStore() as store, FlowEngine(store, on_busy=Busy.QUEUE) as engine:
        first = await engine.submit(flow, resource_id="r")
        second = await engine.submit(flow, resource_id="r")
        record = await engine.cancel(second.task_id)
        assert record.status is TaskStatus.CANCELLED
        assert engine.statistics() == FlowStatistics(running=1, queued=0)
        gate.set()
        await first.wait()
    assert journal.ran() == ["hold"]


async def test_cancel_of_an_unknown_task_raises_task_not_found() -> None:
    """Cancelling an id no task has raises TaskNotFound."""
    async with MemoryStore() as store, FlowEngine(store) as engine:
        with pytest.raises(TaskNotFound, match=r"^no task 'task-x'; list a resource's tasks"):
            await engine.cancel("task-x")


async def test_no_step_outlives_the_engine_s_close() -> None:
    """Closing an engine while two concurrent steps run cancels both and waits for their
    cleanup: when aclose() returns, no step of the engine is running."""
    cleaned: list[str] = []
    holding: list[str] = []
    both = asyncio.Event()

    async def hold(name: str) -> None:
        holding.append(name)
        if len(holding) == 2:
            both.set()
        try:
            await asyncio.sleep(3600)
        finally:
            for _ in range(3):
                await asyncio.sleep(0)  # cleanup that takes a few turns of the loop
            cleaned.append(name)

    async def left() -> None:
        await hold("left")

    async def right() -> None:
        await hold("right")

    flow = Flow("hold", unordered(task(left), task(right)))
    async with MemoryStore() as store:
        before = asyncio.all_tasks()
        engine = FlowEngine(store, flows=[flow])
        await engine.submit(flow, resource_id="r-1")
        await both.wait()
        await engine.aclose()
        assert sorted(cleaned) == ["left", "right"]
        running = [repr(t.get_coro()) for t in asyncio.all_tasks() - before]
        assert [r for r in running if "FlowEngine" in r] == []

"""The flow engine: runs flows as durable tasks, reverts them, resumes them after a crash.

Every change to a task record is a *checkpoint*: the whole record, committed through the
store's group commit as a document of the ``"task"`` collection, before the flow moves on.
A step that must not run twice has its start checkpointed (with every result before it)
before it runs, and its result before the step after it starts; its failure is checkpointed
before the flow reverts. So after a crash the record tells which steps completed (they never
run again) and which one was interrupted (it is reconciled, then run again).

A step that may run twice (``idempotent``, or with a ``reconcile``) takes no checkpoint of its
own: its result rides on the next one (the next step's start, or the task's end). A crash
before that runs it again, or asks its ``reconcile`` first. A flow of such steps commits its
record twice: when it is submitted and when it ends.

If a checkpoint cannot be committed (the store is down), the run stops where it is, like a
crash: nothing is marked done that was not, and :meth:`FlowEngine.resume` continues it once
the store is back. Stopping the engine abandons running flows the same way, without reverting
anything: cancellation of the process is not a decision to undo the work.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import msgspec

from stateward.runtime import (
    Document,
    Environment,
    InvalidArgument,
    Store,
    StoreError,
    StoreUnavailable,
    Write,
    get_logger,
)

from ._errors import FlowBusy, RecordTooLarge, StepTimeout, TaskNotFound, TaskQuarantined
from ._flow import Failure, Flow, Task
from ._records import (
    FAULTS,
    Action,
    HistoryEvent,
    QuarantinedTask,
    StepRecord,
    StepStatus,
    TaskRecord,
    TaskStatus,
)

__all__ = ("Busy", "FlowEngine", "FlowHandle", "FlowStatistics", "MAX_RECORD_BYTES", "TASKS")

#: The store collection that holds task records.
TASKS = "task"
#: A task record (steps, results and history included) may take this many bytes encoded;
#: a checkpoint that would exceed it fails its step with RecordTooLarge instead.
MAX_RECORD_BYTES = 1 << 20

_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(TaskRecord)
#: What a step's result adds to its record's encoding besides the result itself, at most:
#: its status, times and attempts (the size check's estimate; the checkpoint measures).
_STEP_OVERHEAD = 64
#: The largest page a query takes: what a database's 64-bit integer column holds.
_MAX_PAGE = 2**63 - 1
#: Why msgpack may refuse a value: a type it does not know, an int beyond 64 bits, a str
#: with a lone surrogate, nesting deeper than it recurses.
_UNENCODABLE = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)
#: Why a stored body may not decode: malformed bytes, the wrong shape, nesting too deep.
_UNDECODABLE = (msgspec.MsgspecError, RecursionError, TypeError)


def _text(name: str, value: object, *, optional: bool = False) -> str:
    """``value`` as an exact, non-empty str of valid Unicode, or InvalidArgument (whose
    message offers None too when ``optional``: the caller took care of None)."""
    if not isinstance(value, str) or not value:
        expected = "a non-empty str or None" if optional else "a non-empty str"
        raise InvalidArgument(name, expected=expected, got=value)
    if type(value) is not str:
        value = str.__str__(value)  # a StrEnum member or other subclass: the text it holds
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgument(
                name, expected="a str of valid Unicode (this one has a lone surrogate)", got=value
            ) from None
    return value


def _page(limit: object) -> int:
    """``limit`` as a page size from 1 to 2**63 - 1, or InvalidArgument."""
    if type(limit) is not int or not 1 <= limit <= _MAX_PAGE:
        raise InvalidArgument("limit", expected="an int from 1 to 2**63 - 1", got=limit)
    return limit


def _time(name: str, value: object) -> float:
    """``value`` as a finite time in seconds, or InvalidArgument."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise InvalidArgument(name, expected="a finite time in seconds or None", got=value)


def _mark(before: object) -> tuple[float, str] | None:
    """``before`` as a page mark ``(created, task id)``, or InvalidArgument."""
    if before is None:
        return None
    expected = "None or the (created, id) of the last task of the previous page"
    if not isinstance(before, tuple) or len(before) != 2:
        raise InvalidArgument("before", expected=expected, got=before)
    created, key = before
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise InvalidArgument("before", expected=expected, got=before)
    try:
        created = float(created)
    except OverflowError:
        created = math.inf
    if not math.isfinite(created) or not isinstance(key, str):
        raise InvalidArgument("before", expected=expected, got=before)
    try:
        key.encode()
    except UnicodeEncodeError:
        raise InvalidArgument("before", expected=expected, got=before) from None
    return created, str.__str__(key)


class Busy(enum.Enum):
    """What submitting a flow for a resource that already runs one does."""

    #: Raise FlowBusy.
    REJECT = "reject"
    #: Record the task as pending; it runs when the resource's current flow ends.
    QUEUE = "queue"


@dataclass(frozen=True, slots=True)
class FlowStatistics:
    """Flows in flight in one engine: running (one per resource) and queued behind them;
    and the tasks it found with a record it cannot decode (see FlowEngine.quarantined)."""

    running: int
    queued: int
    quarantined: int = 0


class _StepFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class _Run:
    """One flow in flight in this process."""

    def __init__(self, flow: Flow, record: TaskRecord) -> None:
        self.flow = flow
        self.record = record
        self.values: dict[str, Any] = dict(record.request)
        for step in record.steps:
            provides = flow.task(step.name).provides
            if provides is not None and step.status in (
                StepStatus.SUCCEEDED,
                StepStatus.REVERTING,
                StepStatus.REVERT_FAILED,
            ):
                self.values[provides] = step.result
        self.lock = asyncio.Lock()
        self.cancel_requested = False
        # True while the driver itself runs a step (a lone ready step runs inline, without
        # a task of its own); a cancel request then cancels the driver.
        self.inline = False
        # A change is in memory only (a deferred step result); the next checkpoint takes it.
        self.dirty = False
        # A deferred result of a step that must not run twice: checkpoint it before the
        # next step starts, whatever that step is.
        self.flush = False
        # Resumed after a crash: a step that may run twice is reconciled before it runs, its
        # start and its result having perhaps never been recorded. Those reconciled already.
        self.resumed = False
        self.reconciled: set[str] = set()
        # The encoded size of the last checkpoint, and what deferred results added since:
        # an oversized record is caught without encoding it for every step.
        self.size = 0
        self.added = 0
        # Insertion-ordered (a dict), so cancelling them is deterministic.
        self.steps: dict[asyncio.Task[None], None] = {}
        self.driver: asyncio.Task[None] | None = None
        self.done: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()


def _failed(pending: Any) -> bool:
    future = asyncio.ensure_future(pending)
    return future.cancelled() or future.exception() is not None


class FlowHandle:
    """A submitted task: its id now, its final record later."""

    def __init__(self, record: TaskRecord, done: asyncio.Future[TaskRecord]) -> None:
        self.task_id = record.id
        self.resource_id = record.resource_id
        self._record = record
        self._done = done

    @property
    def record(self) -> TaskRecord:
        """The task record as it is now (it changes while the task runs)."""
        return self._record

    def done(self) -> bool:
        """True once the task ended (or its run was interrupted)."""
        return self._done.done()

    async def wait(self) -> TaskRecord:
        """The final record.

        Raises:
            StoreUnavailable: the run was interrupted because a checkpoint could not be
                committed; :meth:`FlowEngine.resume` continues it later.
            RevisionConflict: another engine resumed the task, so this run stopped.
        """
        return await asyncio.shield(self._done)

    def __repr__(self) -> str:
        return f"<FlowHandle {self.task_id} {self._record.kind} {self._record.status}>"


class FlowEngine:
    """Runs flows for resources, one at a time per resource, durably.

    Args:
        store: where task records are checkpointed.
        env: clock (timeouts, backoff, record times), random stream (retry jitter) and ids.
        flows: the flows it may run, and resume: a task whose flow is not registered (or
            whose version differs) is parked on resume.
        on_busy: what submitting to a resource that already runs a flow does.
        max_record_bytes: the size limit of one task record.
    """

    def __init__(
        self,
        store: Store,
        *,
        env: Environment | None = None,
        flows: Iterable[Flow] = (),
        on_busy: Busy = Busy.REJECT,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        if not isinstance(store, Store):
            raise InvalidArgument("store", expected="a Store", got=store)
        if not isinstance(on_busy, Busy):
            raise InvalidArgument("on_busy", expected="a Busy", got=on_busy)
        if isinstance(max_record_bytes, bool) or not isinstance(max_record_bytes, int):
            raise InvalidArgument("max_record_bytes", expected="an int", got=max_record_bytes)
        self.store = store
        self.env = env if env is not None else Environment()
        self.on_busy = on_busy
        self.max_record_bytes = max_record_bytes
        self._flows: dict[str, Flow] = {}
        for flow in flows:
            self.register(flow)
        self._active: dict[str, _Run] = {}
        self._queued: dict[str, list[_Run]] = {}
        self._runs: dict[str, _Run] = {}
        self._submitting: dict[str, asyncio.Lock] = {}
        self._quarantined: dict[str, QuarantinedTask] = {}
        self._rng = self.env.random("flows.retry")
        self._log = get_logger("stateward.flows")
        self._closed = False

    def register(self, flow: Flow) -> None:
        """Allow ``flow`` to run and to be resumed."""
        if not isinstance(flow, Flow):
            raise InvalidArgument("flow", expected="a Flow", got=flow)
        self._flows[flow.name] = flow

    # -- submitting ---------------------------------------------------------------------

    async def submit(
        self,
        flow: Flow,
        *,
        resource_id: str,
        inputs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        task_id: str | None = None,
        commit: Callable[[Document], Awaitable[object]] | None = None,
    ) -> FlowHandle:
        """Start ``flow`` for ``resource_id``; return once its task record is committed.

        Args:
            flow: what to run (registered on the way if it was not).
            resource_id: the resource it runs for; one flow per resource at a time.
            inputs: the flow's inputs, as plain data.
            idempotency_key: a second submission with the same key for the same resource
                returns the first task instead of starting another.
            task_id: the new task's id, when the caller recorded it already (for example
                in the transition that started the operation); a fresh id by default.
            commit: commits the task record's first version (the document it is given)
                together with the caller's own write, in one transaction: an actor's
                transition that starts the operation, say (``FSMActor.transition(...,
                documents=(document,))``). The flow starts once it returns; if it raises,
                nothing was submitted. The engine commits the record alone by default.

        Raises:
            FlowBusy: the resource runs a flow and the policy is ``Busy.REJECT``.
            InvalidArgument: an argument of the wrong type: ids and the key must be
                non-empty text, inputs a mapping of str to plain data with a value for each
                of the flow's inputs. Nothing is written then.
            TaskQuarantined: the task with that idempotency key has a record that cannot
                be decoded; no second task is started in its place.
        """
        if self._closed:
            raise StoreUnavailable("submit", reason="the flow engine is closed")
        if not isinstance(flow, Flow):
            raise InvalidArgument("flow", expected="a Flow", got=flow)
        resource_id = _text("resource_id", resource_id)
        if idempotency_key is not None:
            idempotency_key = _text("idempotency_key", idempotency_key, optional=True)
        if task_id is not None:
            task_id = _text("task_id", task_id, optional=True)
        if commit is not None and not callable(commit):
            raise InvalidArgument("commit", expected="an async callable or None", got=commit)
        request = self._request(flow, inputs)
        registered = self._flows.setdefault(flow.name, flow)
        if registered is not flow:
            self._flows[flow.name] = flow
        lock = self._submitting.setdefault(resource_id, asyncio.Lock())
        async with lock:
            if idempotency_key is not None:
                existing = await self._existing(resource_id, idempotency_key)
                if existing is not None:
                    return existing
            active = self._active.get(resource_id)
            if active is not None and self.on_busy is Busy.REJECT:
                raise FlowBusy(resource_id, active=active.record.id)
            now = self.env.clock.now()
            record = TaskRecord(
                id=task_id if task_id is not None else self.env.ids.next("task"),
                kind=flow.name,
                flow_version=flow.version,
                resource_id=resource_id,
                request=request,
                idempotency_key=idempotency_key,
                status=TaskStatus.PENDING,
                created=now,
                updated=now,
                steps=[StepRecord(t.name) for t in flow.tasks],
                history=[HistoryEvent(now, TaskStatus.PENDING.value)],
            )
            run = _Run(flow, record)
            await self._checkpoint(run, commit=commit)
            self._runs[record.id] = run
            # Decided after the commit: the active flow may have ended while it ran.
            if resource_id not in self._active:
                self._start(run)
            else:
                self._queued.setdefault(resource_id, []).append(run)
            return FlowHandle(record, run.done)

    @staticmethod
    def _request(flow: Flow, inputs: object) -> dict[str, Any]:
        """The inputs as the plain data a task record holds, or InvalidArgument."""
        expected = "a mapping of str to plain data (or None)"
        if inputs is None:
            request: dict[Any, Any] = {}
        elif isinstance(inputs, Mapping):
            request = dict(inputs)
        else:
            raise InvalidArgument("inputs", expected=expected, got=inputs)
        if not all(isinstance(name, str) for name in request):
            raise InvalidArgument("inputs", expected=expected, got=inputs)
        missing = [name for name in flow.inputs if name not in request]
        if missing:
            raise InvalidArgument(
                "inputs", expected=f"values for {', '.join(flow.inputs)}", got=sorted(request)
            )
        try:
            plain: dict[str, Any] = msgspec.msgpack.decode(_encoder.encode(request))
        except _UNENCODABLE as exc:
            raise InvalidArgument(
                "inputs", expected=f"plain data (msgpack: {exc})", got=inputs
            ) from exc
        return plain

    async def run(
        self,
        flow: Flow,
        *,
        resource_id: str,
        inputs: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> TaskRecord:
        """Submit ``flow`` and wait for its final record."""
        handle = await self.submit(
            flow, resource_id=resource_id, inputs=inputs, idempotency_key=idempotency_key
        )
        return await handle.wait()

    async def find(self, resource_id: str, idempotency_key: str) -> TaskRecord | None:
        """The task submitted for ``resource_id`` with ``idempotency_key``, if any.

        Raises:
            InvalidArgument: an id or key that is not non-empty text.
            TaskQuarantined: that task's record cannot be decoded.
        """
        resource_id = _text("resource_id", resource_id)
        idempotency_key = _text("idempotency_key", idempotency_key)
        handle = await self._existing(resource_id, idempotency_key)
        return handle.record if handle is not None else None

    def handle(self, task_id: str) -> FlowHandle | None:
        """The handle of a task running (or queued) in this engine, if it is."""
        run = self._runs.get(_text("task_id", task_id))
        return FlowHandle(run.record, run.done) if run is not None else None

    async def _existing(self, resource_id: str, key: str) -> FlowHandle | None:
        for run in self._runs.values():
            if run.record.resource_id == resource_id and run.record.idempotency_key == key:
                return FlowHandle(run.record, run.done)
        found = await self.store.find_documents(TASKS, resource_id=resource_id, dedupe=key, limit=1)
        if not found:
            return None
        record = self._decode(found[0])
        done: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        if record.status.is_terminal:
            done.set_result(record)
        else:
            # In flight in the store but not here: a crashed run that resume() will pick up.
            done.set_exception(
                StoreUnavailable(
                    "submit",
                    reason=f"task {record.id} is in flight from an earlier run; resume() it",
                )
            )
            done.exception()  # mark retrieved: the handle re-raises it on wait()
        return FlowHandle(record, done)

    def _start(self, run: _Run) -> None:
        self._active[run.record.resource_id] = run
        run.driver = asyncio.get_running_loop().create_task(self._drive(run))

    # -- cancelling and closing -----------------------------------------------------------

    async def cancel(self, task_id: str) -> TaskRecord:
        """Stop a running task and revert what it did; it ends ``cancelled``.

        Raises:
            TaskNotFound: no task with that id runs here.
            TaskQuarantined: its record cannot be decoded.
        """
        task_id = _text("task_id", task_id)
        run = self._runs.get(task_id)
        if run is None:
            record = await self.get(task_id)
            if record.status.is_terminal:
                return record
            raise TaskNotFound(task_id)
        if run.cancel_requested:
            return await asyncio.shield(run.done)  # already on its way out
        run.cancel_requested = True
        queued = self._queued.get(run.record.resource_id, [])
        if run in queued:
            queued.remove(run)
            await self._finish(run, TaskStatus.CANCELLED, None)
        for step in run.steps:
            step.cancel()
        if run.inline and run.driver is not None:
            run.driver.cancel()
        return await asyncio.shield(run.done)

    async def aclose(self) -> None:
        """Abandon every running flow where it is, without reverting: resume() continues
        them in the next process (or after the store comes back)."""
        self._closed = True
        drivers = [r.driver for r in self._runs.values() if r.driver is not None]
        for driver in drivers:
            driver.cancel()
        if drivers:
            await asyncio.wait(drivers)
        for run in list(self._runs.values()):
            if not run.done.done():
                run.done.set_exception(StoreUnavailable("run", reason="the flow engine closed"))
                run.done.exception()
        self._runs.clear()
        self._active.clear()
        self._queued.clear()

    async def __aenter__(self) -> FlowEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- running ------------------------------------------------------------------------

    async def _drive(self, run: _Run) -> None:
        record = run.record
        try:
            if record.status is TaskStatus.REVERTING:
                await self._backward(run, self._failure_of(record))
                return
            broken = next((s for s in record.steps if s.status is StepStatus.FAILED), None)
            if broken is not None:
                # It failed before a crash (or a store failure) kept it from recording the
                # revert: revert now rather than run the failed step again.
                await self._backward(
                    run,
                    Failure(broken.name, broken.error_type or "Error", broken.error_message or ""),
                )
                return
            # No checkpoint of its own: the first step's start carries the new status.
            self._mark(run, TaskStatus.RUNNING)
            try:
                await self._forward(run)
            except _StepFailed as failed:
                await self._backward(run, failed.failure)
                return
            if run.cancel_requested:
                for interrupted in record.steps:
                    if interrupted.status is StepStatus.RUNNING:
                        # Stopped on request, not by a crash: the step did not complete, and
                        # a finished record must not show it running (_backward checkpoints).
                        interrupted.status = StepStatus.FAILED
                        interrupted.finished = self.env.clock.now()
                        interrupted.error_type = "Cancelled"
                        interrupted.error_message = "cancelled on request"
                await self._backward(run, None)
                return
            await self._finish(run, TaskStatus.SUCCEEDED, None)
        except (StoreError, RecordTooLarge) as exc:
            # The record cannot be made durable (the store is down, or another engine now
            # owns the task: RevisionConflict): stop here, as a crash would.
            self._log.error(
                "flow interrupted: checkpoint failed", task_id=record.id, error=str(exc)
            )
            self._release(run)
            if not run.done.done():
                run.done.set_exception(exc)
                run.done.exception()
        except asyncio.CancelledError:
            for step in run.steps:
                step.cancel()
            raise

    async def _forward(self, run: _Run) -> None:
        flow, record = run.flow, run.record
        failure: Failure | None = None
        # Readiness is judged from the steps that finished here (or before a resume), never
        # from a status alone: a concurrent step is marked succeeded before its checkpoint
        # is committed, and only a finished step has its output in the run's values for
        # certain (a checkpoint too large for the record turns it into a failure).
        completed = {s.name for s in record.steps if s.status is StepStatus.SUCCEEDED}
        started: set[str] = set()
        running: dict[asyncio.Task[None], str] = {}
        order = {t.name: n for n, t in enumerate(flow.tasks)}
        loop = asyncio.get_running_loop()
        try:
            while True:
                if failure is None and not run.cancel_requested:
                    ready = [
                        t
                        for t in flow.tasks
                        if t.name not in started
                        and t.name not in completed
                        and flow.depends[t.name] <= completed
                    ]
                    if len(ready) == 1 and not running:
                        # A lone step (every step of a linear flow) runs right here: a task
                        # and a wait per step would cost more than the step itself often does.
                        lone = ready[0]
                        started.add(lone.name)
                        failure = await self._inline(run, lone)
                        if failure is None and not run.cancel_requested:
                            completed.add(lone.name)
                        continue
                    for t in ready:
                        started.add(t.name)
                        step_task = loop.create_task(self._step(run, t))
                        run.steps[step_task] = None
                        running[step_task] = t.name
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                # A set's order follows object addresses: handle steps in flow order
                # instead, so which failure counts never depends on the process.
                for finished in sorted(done, key=lambda t: order[running[t]]):
                    name = running.pop(finished)
                    run.steps.pop(finished, None)
                    if finished.cancelled():
                        continue  # cancelled on request: the step did not complete
                    error = finished.exception()
                    if error is None:
                        completed.add(name)
                    elif isinstance(error, _StepFailed):
                        failure = failure or error.failure
                    else:
                        raise error  # the others are cancelled on the way out
        finally:
            # However the flow leaves (a step's crash, the engine closing), its steps have
            # ended, cleanup included, before it has: none outlives the engine's aclose().
            if running:
                for other in running:
                    other.cancel()
                await asyncio.wait(running)
        # A deferred result is recorded by the status change that follows (end or revert).
        if failure is not None:
            raise _StepFailed(failure)

    async def _inline(self, run: _Run, task: Task) -> Failure | None:
        """Run one step in the driver; its failure, or None. A requested cancel stops it."""
        run.inline = True
        try:
            await self._step(run, task)
        except _StepFailed as failed:
            return failed.failure
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not run.cancel_requested or current is None or current.cancelling() > 1:
                raise  # the engine is closing (or the caller cancelled us): abandon
            current.uncancel()  # our own cancel request: stop the flow, do not die
        finally:
            run.inline = False
        return None

    async def _step(self, run: _Run, task: Task) -> None:
        record = run.record
        step = record.step(task.name)
        inputs = {name: run.values.get(name) for name in task.requires}
        clock = self.env.clock
        rerunnable = task.rerunnable
        if run.resumed and task.reconciles and task.name not in run.reconciled:
            # Its start may never have been recorded: ask whether it happened before a crash.
            run.reconciled.add(task.name)
            outcome = await task.reconcile(**inputs)
            done = outcome is not None and outcome.done
            detail = "already done: not run again" if done else "not done: runs again"
            record.history.append(HistoryEvent(clock.now(), "reconciled", task.name, detail))
            run.dirty = True
            run.added += len(detail) + _STEP_OVERHEAD
            if done:
                assert outcome is not None
                step.attempts += 1
                step.started = clock.now()
                await self._succeeded(run, task, step, outcome.result, rerunnable=True)
                return
        tries = 0
        while True:
            tries += 1
            step.status = StepStatus.RUNNING
            step.attempts += 1
            step.started = clock.now()
            step.finished = None
            if not rerunnable or run.flush or tries > 1:
                await self._checkpoint(run)
            try:
                result = await self._execute(task, inputs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                step.error_type, step.error_message = type(exc).__name__, str(exc)
                if tries < task.retry.attempts and isinstance(exc, task.retry.on):
                    delay = task.retry.delay(tries, self._rng)
                    step.delays.append(delay)
                    what = f"attempt {tries} failed ({step.error_type}: {step.error_message})"
                    await self._retry_after(run, task.name, what, delay)
                    continue
                await self._fail(run, task, step, exc)
            await self._succeeded(run, task, step, result, rerunnable=rerunnable)
            return

    async def _fail(self, run: _Run, task: Task, step: StepRecord, exc: Exception) -> NoReturn:
        """Record the step failed with ``exc``, commit that, and stop the flow with it."""
        step.status = StepStatus.FAILED
        step.finished = self.env.clock.now()
        step.error_type, step.error_message = type(exc).__name__, str(exc)
        await self._checkpoint(run)
        raise _StepFailed(Failure(task.name, step.error_type, step.error_message)) from exc

    async def _succeeded(
        self, run: _Run, task: Task, step: StepRecord, result: Any, *, rerunnable: bool
    ) -> None:
        """Record a step's result: deferred to the next checkpoint when the step may run
        twice or runs in the driver, committed now otherwise; a result that cannot be
        encoded, or makes the record too large, fails the step instead."""
        record = run.record
        try:
            body = _encoder.encode(result)
            result = msgspec.msgpack.decode(body)
        except _UNENCODABLE as exc:
            await self._fail(run, task, step, exc)
        # The output enters the run's values together with the status: whoever sees the
        # step succeeded finds its output.
        step.status = StepStatus.SUCCEEDED
        step.result = result
        step.finished = self.env.clock.now()
        step.error_type = step.error_message = None
        if task.provides is not None:
            run.values[task.provides] = result
        try:
            run.added += len(body) + _STEP_OVERHEAD
            if rerunnable or run.inline:
                # The next checkpoint (a step's start, or the flow's end) records this
                # result; one that must not run twice is recorded before any step starts.
                # The size is checked now, so an oversized result fails this step.
                self._check_size(run)
                run.dirty = True
                run.flush = run.flush or not rerunnable
            else:
                await self._checkpoint(run)
        except RecordTooLarge as exc:
            step.result = None
            if task.provides is not None:
                run.values.pop(task.provides, None)
                if task.provides in record.request:
                    run.values[task.provides] = record.request[task.provides]
            await self._fail(run, task, step, exc)

    async def _execute(self, task: Task, inputs: dict[str, Any]) -> Any:
        if task.timeout == math.inf:
            return await task.execute(**inputs)
        scope = asyncio.timeout(task.timeout)
        try:
            async with scope:
                return await task.execute(**inputs)
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the step's own TimeoutError (a socket's, say), not its deadline
            raise StepTimeout(task.name, task.timeout) from exc

    async def _backward(self, run: _Run, failure: Failure | None) -> None:
        """Revert completed steps, last first; end reverted, failed, cancelled or
        revert_failed."""
        flow, record = run.flow, run.record
        if failure is not None:
            record.error_type = failure.error_type
            record.error_message = f"{failure.step}: {failure.message}"
        undo = [
            t
            for t in reversed(flow.tasks)
            if record.step(t.name).status in (StepStatus.SUCCEEDED, StepStatus.REVERTING)
        ]
        already = any(s.status is StepStatus.REVERTED for s in record.steps)
        if not undo:
            final = (
                TaskStatus.CANCELLED
                if failure is None
                else (TaskStatus.REVERTED if already else TaskStatus.FAILED)
            )
            await self._finish(run, final, None)
            return
        await self._set_status(run, TaskStatus.REVERTING)
        cause = failure if failure is not None else Failure("", "Cancelled", "cancelled on request")
        for t in undo:
            step = record.step(t.name)
            step.status = StepStatus.REVERTING
            await self._checkpoint(run)
            inputs = {name: run.values.get(name) for name in t.requires}
            try:
                await self._revert(run, t, cause, inputs)
            except Exception as exc:
                step.status = StepStatus.REVERT_FAILED
                step.error_type, step.error_message = type(exc).__name__, str(exc)
                record.error_type = type(exc).__name__
                record.error_message = f"revert of {t.name} failed: {exc}"
                await self._finish(run, TaskStatus.REVERT_FAILED, f"revert of {t.name} failed")
                return
            step.status = StepStatus.REVERTED
            await self._checkpoint(run)
        final = TaskStatus.CANCELLED if failure is None else TaskStatus.REVERTED
        await self._finish(run, final, None)

    async def _revert(self, run: _Run, t: Task, cause: Failure, inputs: dict[str, Any]) -> None:
        """Revert one step, retried by its ``revert_retry``; the last failure raises."""
        policy, step = t.revert_retry, run.record.step(t.name)
        tries = 0
        while True:
            tries += 1
            try:
                await t.revert(step.result, cause, **inputs)
                return
            except Exception as exc:
                if tries >= policy.attempts or not isinstance(exc, policy.on):
                    raise
                what = f"revert attempt {tries} failed ({type(exc).__name__}: {exc})"
                await self._retry_after(run, t.name, what, policy.delay(tries, self._rng))

    async def _retry_after(self, run: _Run, step: str, what: str, delay: float) -> None:
        """Record a retry of ``step`` in the task's history, then wait ``delay`` seconds."""
        clock = self.env.clock
        run.record.history.append(
            HistoryEvent(clock.now(), "retry", step, f"{what}; retrying in {delay:.3f}s")
        )
        await self._checkpoint(run)
        await clock.sleep(delay)

    def _failure_of(self, record: TaskRecord) -> Failure | None:
        # _backward stores a failure as the record's error; none means it was a cancel.
        if record.error_type is None:
            return None
        failed = next(
            (s for s in record.steps if s.status is StepStatus.FAILED and s.error_type is not None),
            None,
        )
        if failed is None:
            return Failure("", record.error_type, record.error_message or "")
        return Failure(
            failed.name, failed.error_type or record.error_type, failed.error_message or ""
        )

    def _mark(self, run: _Run, status: TaskStatus, detail: str | None = None) -> bool:
        """Change the status in memory (the next checkpoint records it); False if unchanged."""
        record = run.record
        if record.status is status:
            return False
        record.status = status
        record.history.append(HistoryEvent(self.env.clock.now(), status.value, None, detail))
        return True

    async def _set_status(self, run: _Run, status: TaskStatus, detail: str | None = None) -> None:
        if self._mark(run, status, detail) or run.dirty:
            await self._checkpoint(run)

    async def _finish(self, run: _Run, status: TaskStatus, detail: str | None) -> None:
        await self._set_status(run, status, detail)
        self._release(run)
        if not run.done.done():
            run.done.set_result(run.record)
        log = self._log.info if status is TaskStatus.SUCCEEDED else self._log.warning
        log("task ended", task_id=run.record.id, kind=run.record.kind, status=status.value)

    def _release(self, run: _Run) -> None:
        resource_id = run.record.resource_id
        self._runs.pop(run.record.id, None)
        if self._active.get(resource_id) is run:
            del self._active[resource_id]
            queued = self._queued.get(resource_id)
            if queued:
                self._start(queued.pop(0))
            else:
                self._queued.pop(resource_id, None)

    def _check_size(self, run: _Run) -> None:
        """RecordTooLarge if the record, with what was added since its last checkpoint,
        would exceed the limit; encoded only when the running estimate comes close."""
        if run.size + run.added <= self.max_record_bytes:
            return
        size = len(_encoder.encode(run.record))
        if size > self.max_record_bytes:
            raise RecordTooLarge(run.record.id, size=size, limit=self.max_record_bytes)

    async def _checkpoint(
        self, run: _Run, *, commit: Callable[[Document], Awaitable[object]] | None = None
    ) -> None:
        """Commit the whole record as its next version (through ``commit``, when the caller
        writes it with its own); serialised per task."""
        async with run.lock:
            record = run.record
            record.updated = self.env.clock.now()
            record.version += 1
            body = _encoder.encode(record)
            if len(body) > self.max_record_bytes:
                record.version -= 1
                raise RecordTooLarge(record.id, size=len(body), limit=self.max_record_bytes)
            run.dirty = run.flush = False
            run.size, run.added = len(body), 0
            document = Document(
                TASKS,
                record.id,
                record.version,
                body,
                resource_id=record.resource_id,
                status=record.status.value,
                dedupe=record.idempotency_key,
                created=record.created,
                updated=record.updated,
            )
            if commit is not None:
                try:
                    await commit(document)
                except BaseException:
                    record.version -= 1
                    raise
                return
            pending = self.store.submit(Write(documents=(document,)))
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                # The write is queued and may still land: learn its fate, so that the
                # version in memory stays the one in the store.
                await asyncio.wait({asyncio.ensure_future(pending)})
                if _failed(pending):
                    record.version -= 1
                raise
            except BaseException:
                record.version -= 1
                raise

    # -- resuming -----------------------------------------------------------------------

    async def resume(self) -> tuple[FlowHandle, ...]:
        """Continue every task left in flight by an earlier process (or interrupted run).

        Completed steps are not run again. An interrupted step is first reconciled (if its
        task can tell whether it already happened) and otherwise runs again. A task whose
        flow is not registered, or was registered with another version, is parked. A task
        whose record cannot be decoded is quarantined (logged, listed by
        :meth:`quarantined`) and left where it is; every other task resumes.
        """
        found: list[TaskRecord] = []
        for status in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.REVERTING):
            before: tuple[float, str] | None = None
            while True:
                page = await self.store.find_documents(
                    TASKS, status=status.value, before=before, limit=500
                )
                if not page:
                    break
                before = (page[-1].created, page[-1].key)
                found.extend(self._decoded(d for d in page if d.key not in self._runs))
        # Oldest first, so each resource's queue keeps its submission order.
        handles: list[FlowHandle] = []
        for record in sorted(found, key=lambda r: (r.created, r.id)):
            handle = await self._resume_one(record)
            if handle is not None:
                handles.append(handle)
        return tuple(sorted(handles, key=lambda h: (h.record.created, h.task_id)))

    async def _resume_one(self, record: TaskRecord) -> FlowHandle | None:
        flow = self._flows.get(record.kind)
        if (
            flow is None
            or flow.version != record.flow_version
            or [s.name for s in record.steps] != [t.name for t in flow.tasks]
        ):
            known = f"v{flow.version}" if flow is not None else "not registered"
            detail = (
                f"flow {record.kind!r} v{record.flow_version} is {known} here; "
                "not run against a definition it was not made with"
            )
            run = _Run.__new__(_Run)
            run.record, run.lock = record, asyncio.Lock()
            record.status = TaskStatus.PARKED
            record.error_message = detail  # what actions() shows for a parked task
            record.history.append(HistoryEvent(self.env.clock.now(), "parked", None, detail))
            await self._checkpoint(run)
            self._log.error("task parked", task_id=record.id, kind=record.kind, detail=detail)
            return None
        run = _Run(flow, record)
        run.resumed = True
        record.history.append(HistoryEvent(self.env.clock.now(), "resumed"))
        for step in record.steps:
            if step.status is not StepStatus.RUNNING:
                continue
            task = flow.task(step.name)
            run.reconciled.add(step.name)
            outcome = None
            if task.reconciles:
                inputs = {name: run.values.get(name) for name in task.requires}
                outcome = await task.reconcile(**inputs)
            if outcome is not None and outcome.done:
                step.status = StepStatus.SUCCEEDED
                step.result = msgspec.msgpack.decode(_encoder.encode(outcome.result))
                step.finished = self.env.clock.now()
                if task.provides is not None:
                    run.values[task.provides] = step.result
                detail = "already done: not run again"
            else:
                step.status = StepStatus.PENDING
                detail = (
                    "not done: runs again" if outcome is not None else "no reconcile: runs again"
                )
            record.history.append(
                HistoryEvent(self.env.clock.now(), "reconciled", step.name, detail)
            )
        await self._checkpoint(run)
        self._runs[record.id] = run
        if record.resource_id in self._active:
            self._queued.setdefault(record.resource_id, []).append(run)
        else:
            self._start(run)
        return FlowHandle(record, run.done)

    # -- queries ------------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskRecord:
        """The stored record of one task.

        Raises:
            InvalidArgument: ``task_id`` is not non-empty text.
            TaskNotFound: no such task.
            TaskQuarantined: its record cannot be decoded.
        """
        document = await self.store.get_document(TASKS, _text("task_id", task_id))
        if document is None:
            raise TaskNotFound(task_id)
        return self._decode(document)

    async def tasks(
        self,
        resource_id: str | None = None,
        *,
        status: TaskStatus | None = None,
        since: float | None = None,
        before: tuple[float, str] | None = None,
        limit: int = 50,
    ) -> tuple[TaskRecord, ...]:
        """Tasks newest first, of one resource or (``resource_id=None``) of every resource;
        page with the last one's ``(created, id)``.

        Args:
            resource_id: whose tasks; None for every resource's.
            status: only tasks in this status.
            since: only tasks created at or after this time (on the engine's clock).
            before: the ``(created, id)`` of the previous page's last task.
            limit: at most this many.

        A task whose record cannot be decoded is left out (and quarantined); a page shorter
        than ``limit`` is still the last one.

        Raises:
            InvalidArgument: a non-text id, a status that is no TaskStatus, a ``since`` that
                is no finite number, a malformed ``before``, or a ``limit`` that is not an
                int from 1 to 2**63 - 1.
        """
        if status is not None and not isinstance(status, TaskStatus):
            raise InvalidArgument("status", expected="a TaskStatus or None", got=status)
        if since is not None:
            since = _time("since", since)
        return await self._listing(
            resource_id=None if resource_id is None else _text("resource_id", resource_id),
            status=None if status is None else status.value,
            before=_mark(before),
            limit=_page(limit),
            since=since,
        )

    async def last_fault(self, resource_id: str) -> TaskRecord | None:
        """The resource's most recent failed task (its "fault"), or None."""
        resource_id = _text("resource_id", resource_id)
        before: tuple[float, str] | None = None
        while True:
            page = await self._listing(resource_id=resource_id, status=None, before=before)
            for record in page:
                if record.status in FAULTS:
                    return record
            if len(page) < 100:
                return None
            before = (page[-1].created, page[-1].id)

    async def actions(self, resource_id: str, *, limit: int = 100) -> tuple[Action, ...]:
        """One line per task of the resource, newest first (undecodable ones left out)."""
        return tuple(
            Action(
                r.id,
                r.kind,
                r.status,
                r.created,
                r.updated,
                r.error_message if r.status in FAULTS or r.status is TaskStatus.PARKED else None,
            )
            for r in await self.tasks(resource_id, limit=limit)
        )

    async def parked(self, *, limit: int = 100) -> tuple[TaskRecord, ...]:
        """Tasks parked because their flow's definition changed, newest first."""
        return await self._listing(
            resource_id=None, status=TaskStatus.PARKED.value, before=None, limit=_page(limit)
        )

    def quarantined(self) -> tuple[QuarantinedTask, ...]:
        """The tasks this engine found with a record it cannot decode, by id.

        :meth:`resume` reads every task in flight, so after it this lists each such task
        that was in flight; queries add those they meet. They are found again by every new
        engine (nothing is written to them): repair or delete the record in the store.
        """
        return tuple(self._quarantined[key] for key in sorted(self._quarantined))

    async def _listing(
        self,
        *,
        resource_id: str | None,
        status: str | None,
        before: tuple[float, str] | None,
        limit: int = 100,
        since: float | None = None,
    ) -> tuple[TaskRecord, ...]:
        """Up to ``limit`` decodable records, newest first, none created before ``since``:
        undecodable ones are skipped and the page is filled up from the next ones, so a
        short page is the last one."""
        found: list[TaskRecord] = []
        while True:
            wanted = limit - len(found)
            page = await self.store.find_documents(
                TASKS, resource_id=resource_id, status=status, before=before, limit=wanted
            )
            if since is not None and page and page[-1].created < since:
                page = tuple(d for d in page if d.created >= since)
                found.extend(self._decoded(page))
                return tuple(found)  # every later page is older still
            found.extend(self._decoded(page))
            if len(page) < wanted or len(found) >= limit:
                return tuple(found)
            before = (page[-1].created, page[-1].key)

    def _decoded(self, documents: Iterable[Document]) -> list[TaskRecord]:
        """The records of ``documents`` that decode; the others are quarantined."""
        records: list[TaskRecord] = []
        for document in documents:
            try:
                records.append(self._decode(document))
            except TaskQuarantined:
                continue
        return records

    def _decode(self, document: Document) -> TaskRecord:
        """The task record of ``document``; TaskQuarantined if it cannot be one."""
        try:
            record = _record_decoder.decode(document.body)
        except _UNDECODABLE as exc:
            reason = f"its record cannot be decoded ({type(exc).__name__}: {exc})"
            raise self._quarantine(document, reason) from exc
        if record.id != document.key or record.resource_id != document.resource_id:
            reason = (
                f"its record is of task {record.id} of {record.resource_id}, but is stored as "
                f"task {document.key} of {document.resource_id}"
            )
            raise self._quarantine(document, reason)
        if self._quarantined:
            self._quarantined.pop(record.id, None)  # repaired in the store since
        return record

    def _quarantine(self, document: Document, reason: str) -> TaskQuarantined:
        key, owner = document.key, document.resource_id
        if key not in self._quarantined:
            self._quarantined[key] = QuarantinedTask(key, owner, document.status, reason)
            self._log.error("task quarantined", task_id=key, resource_id=owner, reason=reason)
        return TaskQuarantined(key, reason=reason, owner=owner)

    def statistics(self) -> FlowStatistics:
        """Runs in flight and queued in this engine."""
        return FlowStatistics(
            running=len(self._active),
            queued=sum(len(q) for q in self._queued.values()),
            quarantined=len(self._quarantined),
        )

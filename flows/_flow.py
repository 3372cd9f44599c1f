"""Tasks, retry policies, and flows built from linear, unordered and graph patterns.

A :class:`Task` has an async ``execute`` whose parameters name its inputs, an optional
``revert`` (given the execute result and the failure that made the flow revert) and an
optional ``reconcile`` (asked on resume whether an interrupted step already happened).

A :class:`Flow` compiles its patterns once, when it is built, into steps with explicit
dependencies, and checks them: duplicate names, missing inputs, cycles and ambiguous
outputs are all reported together in one :class:`FlowDefinitionError`. The steps' order is
stable (definition order among ready steps), so recovery never depends on scheduling.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stateward.runtime import InvalidArgument

from ._errors import FlowDefinitionError

__all__ = (
    "Retry",
    "Reconciled",
    "Failure",
    "Task",
    "task",
    "Pattern",
    "linear",
    "unordered",
    "graph",
    "Flow",
)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a step is tried, and how long to wait in between.

    Attributes:
        attempts: tries in all (1 means no retry).
        backoff: the delay before the second try, in seconds.
        factor: each further delay is this many times the previous one.
        max_backoff: no delay is longer.
        jitter: each delay varies by up to this fraction, drawn from the injected random
            stream (so a seeded run repeats exactly).
        on: the exception types worth retrying; others fail the step at once.
    """

    attempts: int = 1
    backoff: float = 0.1
    factor: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.1
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or self.attempts < 1
        ):
            raise InvalidArgument("attempts", expected="an int >= 1", got=self.attempts)
        for name in ("backoff", "factor", "max_backoff", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise InvalidArgument(name, expected="a finite number >= 0", got=value)
        if not self.on or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.on
        ):
            raise InvalidArgument("on", expected="a tuple of exception types", got=self.on)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed try number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.backoff * self.factor ** (attempt - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rng.random() - 1)))


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What ``reconcile`` found out: did the interrupted step already happen?

    Attributes:
        done: True if the outside world shows the step's effect.
        result: the step's result when ``done`` (what execute would have returned).
    """

    done: bool
    result: Any = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a flow is reverting: which step failed and how."""

    step: str
    error_type: str
    message: str


class Task:
    """One step of work. Subclass it, or wrap a function with :func:`task`.

    ``execute``'s parameter names are the task's inputs (unless ``requires`` is given); its
    return value is stored under ``provides``, if set.

    Args:
        name: unique in its flow; the class name by default.
        provides: the name under which the result is passed to later tasks.
        requires: input names, if not execute's parameters.
        timeout: seconds one attempt of execute may take.
        retry: the retry policy of execute.
        revert_retry: the retry policy of revert (one try by default): a revert that
            fails for good leaves the task ``revert_failed`` and the steps before it
            unreverted, so a revert whose failures are transient should retry.
        idempotent: running it again with the same inputs does its work at most once and
            returns the same result (its side effects are keyed by an operation id, say).
            Such a step, like one with a ``reconcile``, gets no checkpoint of its own: its
            result is committed with the next checkpoint, and a crash before that runs it
            again (or asks its ``reconcile``).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        provides: str | None = None,
        requires: Iterable[str] | None = None,
        timeout: float = math.inf,
        retry: Retry | None = None,
        revert_retry: Retry | None = None,
        idempotent: bool = False,
    ) -> None:
        self.name = name if name is not None else type(self).__name__
        if not isinstance(self.name, str) or not self.name:
            raise InvalidArgument("name", expected="a non-empty str", got=self.name)
        if provides is not None and (not isinstance(provides, str) or not provides):
            raise InvalidArgument("provides", expected="a non-empty str or None", got=provides)
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidArgument("timeout", expected="seconds > 0", got=timeout)
        for name, policy in (("retry", retry), ("revert_retry", revert_retry)):
            if policy is not None and not isinstance(policy, Retry):
                raise InvalidArgument(name, expected="a Retry", got=policy)
        if not isinstance(idempotent, bool):
            raise InvalidArgument("idempotent", expected="a bool", got=idempotent)
        self.idempotent = idempotent
        self.provides = provides
        self.requires: tuple[str, ...] = (
            tuple(requires) if requires is not None else _parameters(self.execute)
        )
        self.timeout = float(timeout)
        self.retry = retry if retry is not None else Retry()
        self.revert_retry = revert_retry if revert_retry is not None else Retry()

    # The hooks take ``*args: Any, **kwargs: Any`` so that subclasses may declare their
    # inputs as named parameters (that is how a task names its inputs) and still type-check.

    async def execute(self, *args: Any, **inputs: Any) -> Any:
        """Do the work; the return value is the step's result (plain data)."""
        raise NotImplementedError(f"task {self.name!r} must implement execute()")

    async def revert(self, *args: Any, **inputs: Any) -> None:
        """Undo what execute did: called as ``revert(result, failure, **inputs)`` with what
        execute returned and why the flow reverts. Default: nothing to undo."""

    async def reconcile(self, *args: Any, **inputs: Any) -> Reconciled | None:
        """On resume, tell whether the interrupted step already happened; None: unknown
        (the step then simply runs again)."""
        return None

    @property
    def reconciles(self) -> bool:
        """True when the task has its own reconcile."""
        return type(self).reconcile is not Task.reconcile

    @property
    def rerunnable(self) -> bool:
        """True when a crash may run the step again (it is idempotent) or ask it whether it
        happened (it reconciles), so that it needs no checkpoint of its own."""
        return self.idempotent or self.reconciles

    def __repr__(self) -> str:
        return f"<Task {self.name!r} requires={list(self.requires)} provides={self.provides!r}>"


def _parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    names = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        names.append(parameter.name)
    return tuple(names)


class _FunctionTask(Task):
    def __init__(
        self,
        execute: Callable[..., Awaitable[Any]],
        revert: Callable[..., Awaitable[None]] | None,
        reconcile: Callable[..., Awaitable[Reconciled | None]] | None,
        **options: Any,
    ) -> None:
        self._execute = execute
        self._revert = revert
        self._reconcile = reconcile
        options.setdefault("requires", _parameters(execute))
        options.setdefault("name", execute.__name__)
        super().__init__(**options)

    async def execute(self, **inputs: Any) -> Any:
        return await self._execute(**inputs)

    async def revert(self, result: Any, failure: Failure, **inputs: Any) -> None:
        if self._revert is not None:
            await self._revert(result, failure, **inputs)

    async def reconcile(self, **inputs: Any) -> Reconciled | None:
        return await self._reconcile(**inputs) if self._reconcile is not None else None

    @property
    def reconciles(self) -> bool:
        return self._reconcile is not None


def task(
    execute: Callable[..., Awaitable[Any]],
    *,
    name: str | None = None,
    provides: str | None = None,
    revert: Callable[..., Awaitable[None]] | None = None,
    reconcile: Callable[..., Awaitable[Reconciled | None]] | None = None,
    timeout: float = math.inf,
    retry: Retry | None = None,
    revert_retry: Retry | None = None,
    idempotent: bool = False,
) -> Task:
    """A task from async functions: ``execute(**inputs)``,
    ``revert(result, failure, **inputs)``, ``reconcile(**inputs)``; the options are
    :class:`Task`'s."""
    if not inspect.iscoroutinefunction(execute):
        raise InvalidArgument("execute", expected="an async function", got=execute)
    return _FunctionTask(
        execute,
        revert,
        reconcile,
        name=name if name is not None else execute.__name__,
        provides=provides,
        timeout=timeout,
        retry=retry,
        revert_retry=revert_retry,
        idempotent=idempotent,
    )


@dataclass(frozen=True)
class Pattern:
    """How some tasks relate: ``linear``, ``unordered`` or ``graph``."""

    kind: str
    items: tuple[Task | Pattern, ...]
    links: tuple[tuple[str, str], ...] = field(default=())


def _items(items: Sequence[Task | Pattern]) -> tuple[Task | Pattern, ...]:
    for item in items:
        if not isinstance(item, Task | Pattern):
            raise InvalidArgument("items", expected="Tasks or patterns", got=item)
    return tuple(items)


def linear(*items: Task | Pattern) -> Pattern:
    """Each item starts after the previous one finished."""
    return Pattern("linear", _items(items))


def unordered(*items: Task | Pattern) -> Pattern:
    """The items run concurrently; none may use another's output."""
    return Pattern("unordered", _items(items))


def graph(*items: Task | Pattern, links: Iterable[tuple[str, str]] = ()) -> Pattern:
    """The items run as soon as the outputs they require exist, and after the tasks
    ``links`` names before them (``(before, after)`` pairs)."""
    return Pattern("graph", _items(items), tuple(links))


class Flow:
    """A named, versioned, checked arrangement of tasks.

    Args:
        name: the flow's name; a task record's ``kind``.
        steps: a task or a pattern.
        version: bump it whenever the steps change: a task persisted by another version is
            parked on resume rather than run against a definition it was not made with.
        inputs: names the caller provides when submitting.
    """

    def __init__(
        self,
        name: str,
        steps: Task | Pattern,
        *,
        version: int = 1,
        inputs: Iterable[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument("name", expected="a non-empty str", got=name)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidArgument("version", expected="an int >= 1", got=version)
        if not isinstance(steps, Task | Pattern):
            raise InvalidArgument("steps", expected="a Task or a pattern", got=steps)
        self.name = name
        self.version = version
        self.inputs = tuple(inputs)
        problems: list[str] = []
        tasks: list[Task] = []
        deps: dict[str, set[str]] = {}
        self._compile(steps, frozenset(), tasks, deps, problems)
        self._check(tasks, deps, problems)
        if problems:
            raise FlowDefinitionError(name, problems)
        self.tasks: tuple[Task, ...] = tuple(self._order(tasks, deps))
        self.depends: Mapping[str, frozenset[str]] = {n: frozenset(d) for n, d in deps.items()}
        self._by_name = {t.name: t for t in self.tasks}

    def task(self, name: str) -> Task:
        """The task called ``name``."""
        return self._by_name[name]

    def _compile(
        self,
        item: Task | Pattern,
        upstream: frozenset[str],
        tasks: list[Task],
        deps: dict[str, set[str]],
        problems: list[str],
    ) -> frozenset[str]:
        """Add ``item``'s tasks after ``upstream``; return the names that finish it."""
        if isinstance(item, Task):
            if item.name in deps:
                problems.append(f"duplicate task name {item.name!r}")
                return frozenset()
            tasks.append(item)
            deps[item.name] = set(upstream)
            return frozenset({item.name})
        if item.kind == "linear":
            current = upstream
            for child in item.items:
                current = self._compile(child, current, tasks, deps, problems) or current
            return current
        first = len(tasks)
        sinks: set[str] = set()
        for child in item.items:
            sinks |= self._compile(child, upstream, tasks, deps, problems)
        if item.kind == "unordered":
            return frozenset(sinks)
        members = tasks[first:]
        names = {t.name for t in members}
        providers = {t.provides: t.name for t in members if t.provides is not None}
        for member in members:
            for needed in member.requires:
                if needed in providers and providers[needed] != member.name:
                    deps[member.name].add(providers[needed])
        for before, after in item.links:
            if before not in names or after not in names:
                problems.append(f"link ({before!r}, {after!r}) names a task outside its graph")
                continue
            deps[after].add(before)
        needed_by_others = {d for m in members for d in deps[m.name] if d in names}
        return frozenset(names - needed_by_others)

    def _check(self, tasks: list[Task], deps: dict[str, set[str]], problems: list[str]) -> None:
        providers: dict[str, str] = {}
        for t in tasks:
            if t.provides is None:
                continue
            if t.provides in providers:
                problems.append(
                    f"{t.provides!r} is provided by both {providers[t.provides]!r} and {t.name!r}"
                )
            providers.setdefault(t.provides, t.name)
        cycle = self._cycle(tasks, deps)
        if cycle:
            problems.append("cycle: " + " -> ".join(cycle))
            return
        for t in tasks:
            ancestors = self._ancestors(t.name, deps)
            for needed in t.requires:
                if needed in self.inputs:
                    continue
                source = providers.get(needed)
                if source is None:
                    problems.append(
                        f"task {t.name!r} requires {needed!r}, which no task provides and "
                        "the flow does not take as input"
                    )
                elif source not in ancestors:
                    problems.append(
                        f"task {t.name!r} requires {needed!r} from {source!r}, which does not "
                        "run before it (a concurrent sibling or a later task)"
                    )

    @staticmethod
    def _ancestors(name: str, deps: Mapping[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(deps.get(name, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(deps.get(current, ()))
        return seen

    @staticmethod
    def _cycle(tasks: list[Task], deps: Mapping[str, set[str]]) -> list[str]:
        state: dict[str, int] = {}
        path: list[str] = []

        def visit(name: str) -> list[str]:
            state[name] = 1
            path.append(name)
            for dep in sorted(deps.get(name, ())):
                if state.get(dep) == 1:
                    return [*path[path.index(dep) :], dep]
                if dep not in state:
                    found = visit(dep)
                    if found:
                        return found
            path.pop()
            state[name] = 2
            return []

        for t in tasks:
            if t.name not in state:
                found = visit(t.name)
                if found:
                    return found
        return []

    @staticmethod
    def _order(tasks: list[Task], deps: Mapping[str, set[str]]) -> list[Task]:
        """Topological order; among ready tasks, definition order (stable step ids)."""
        done: set[str] = set()
        ordered: list[Task] = []
        remaining = list(tasks)
        while remaining:
            ready = next(t for t in remaining if deps[t.name] <= done)
            ordered.append(ready)
            done.add(ready.name)
            remaining.remove(ready)
        return ordered

    def __repr__(self) -> str:
        return f"<Flow {self.name!r} v{self.version}: {[t.name for t in self.tasks]}>"

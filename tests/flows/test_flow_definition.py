"""Flow definitions: tasks, retry policies, patterns, dependencies and their validation."""

from __future__ import annotations

import math
import random

import pytest

from stateward.flows import (
    Failure,
    Flow,
    FlowDefinitionError,
    Reconciled,
    Retry,
    Task,
    graph,
    linear,
    task,
    unordered,
)
from stateward.runtime import InvalidArgument, StatewardError


class Step(Task):
    """A task whose inputs are given explicitly; it returns its own name."""

    async def execute(self, **inputs: object) -> str:
        return self.name


def step(name: str, *requires: str, provides: str | None = None) -> Task:
    """A task called ``name`` taking ``requires`` as inputs and providing ``provides``."""
    return Step(name, provides=provides, requires=requires)


# --------------------------------------------------------------------------------------------
# Tasks


def test_task_inputs_come_from_execute_parameter_names() -> None:
    """A function task requires its execute's parameter names and is named after it."""

    async def resize(instance: str, flavor: str, **extra: object) -> None:
        return None

    made = task(resize, provides="resized")
    assert (made.name, made.requires, made.provides) == (
        "resize",
        ("instance", "flavor"),
        "resized",
    )
    assert made.reconciles is False


def test_task_subclass_inputs_and_reconcile_flag() -> None:
    """A Task subclass takes its inputs from execute's signature and knows it reconciles."""

    class Boot(Task):
        async def execute(self, image: str) -> str:
            return image

        async def reconcile(self, image: str) -> Reconciled | None:
            return Reconciled(done=True, result=image)

    boot = Boot(provides="server")
    assert (boot.name, boot.requires, boot.provides) == ("Boot", ("image",), "server")
    assert boot.reconciles is True
    assert Task("plain").reconciles is False
    assert repr(boot) == "<Task 'Boot' requires=['image'] provides='server'>"


def test_task_rejects_sync_functions_and_bad_options() -> None:
    """task() wants an async function; Task checks name, provides, timeout and retry."""

    def sync() -> None:
        return None

    with pytest.raises(InvalidArgument, match=r"^execute: expected an async function, got "):
        task(sync)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^name: expected a non-empty str, got ''$"):
        Task("")
    with pytest.raises(InvalidArgument, match=r"^provides: expected a non-empty str or None"):
        Task("t", provides="")
    with pytest.raises(InvalidArgument, match=r"^timeout: expected seconds > 0, got 0$"):
        Task("t", timeout=0)
    with pytest.raises(InvalidArgument, match=r"^retry: expected a Retry, got 3$"):
        Task("t", retry=3)  # type: ignore[arg-type]


async def test_base_task_execute_is_abstract() -> None:
    """A Task without execute says which task must implement it."""
    with pytest.raises(NotImplementedError, match=r"^task 'bare' must implement execute\(\)$"):
        await Task("bare").execute()


# --------------------------------------------------------------------------------------------
# Retry


def test_retry_validates_its_fields() -> None:
    """Retry refuses attempts < 1, negative or infinite numbers, and non-exception types."""
    with pytest.raises(InvalidArgument, match=r"^attempts: expected an int >= 1, got 0$"):
        Retry(attempts=0)
    with pytest.raises(InvalidArgument, match=r"^attempts: expected an int >= 1, got True$"):
        Retry(attempts=True)
    with pytest.raises(InvalidArgument, match=r"^backoff: expected a finite number >= 0"):
        Retry(backoff=-1)
    with pytest.raises(InvalidArgument, match=r"^max_backoff: expected a finite number >= 0"):
        Retry(max_backoff=math.inf)
    with pytest.raises(InvalidArgument, match=r"^on: expected a tuple of exception types"):
        Retry(on=(int,))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^on: expected a tuple of exception types"):
        Retry(on=())


def test_retry_delay_grows_by_factor_within_jitter_and_caps() -> None:
    """Delays grow by ``factor`` from ``backoff``, vary by at most ``jitter``, stop at the cap."""
    policy = Retry(attempts=10, backoff=1.0, factor=2.0, max_backoff=5.0, jitter=0.1)
    rng = random.Random(3)
    delays = [policy.delay(n, rng) for n in range(1, 7)]
    bases = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    exact = Retry(backoff=0.5, factor=3.0, jitter=0.0)
    assert [exact.delay(n, rng) for n in (1, 2, 3)] == [0.5, 1.5, 4.5]
    again = random.Random(3)
    assert [policy.delay(n, again) for n in range(1, 7)] == delays


# --------------------------------------------------------------------------------------------
# Flows: compiling patterns


def test_linear_flow_chains_each_step_after_the_previous() -> None:
    """In a linear flow every step depends on the one before it, in definition order."""
    flow = Flow("chain", linear(step("a"), step("b"), step("c")))
    assert [t.name for t in flow.tasks] == ["a", "b", "c"]
    assert dict(flow.depends) == {"a": frozenset(), "b": {"a"}, "c": {"b"}}
    assert flow.task("b").name == "b"
    assert repr(flow) == "<Flow 'chain' v1: ['a', 'b', 'c']>"


def test_unordered_inside_linear_joins_before_the_next_step() -> None:
    """Siblings of an unordered block all follow the step before it and precede the next."""
    flow = Flow("fan", linear(step("prep"), unordered(step("x"), step("y")), step("join")))
    assert [t.name for t in flow.tasks] == ["prep", "x", "y", "join"]
    assert dict(flow.depends) == {
        "prep": frozenset(),
        "x": {"prep"},
        "y": {"prep"},
        "join": {"x", "y"},
    }


def test_graph_dependencies_come_from_provides_requires_and_links() -> None:
    """A graph orders steps by the data they exchange plus explicit (before, after) links."""
    flow = Flow(
        "g",
        graph(
            step("attach", "volume", "port"),
            step("make_port", provides="port"),
            step("make_volume", provides="volume"),
            step("audit"),
            step("notify"),
            links=[("audit", "make_volume"), ("attach", "notify")],
        ),
    )
    assert dict(flow.depends) == {
        "attach": {"make_volume", "make_port"},
        "make_port": frozenset(),
        "make_volume": {"audit"},
        "audit": frozenset(),
        "notify": {"attach"},
    }
    # Topological, and definition order among the ready ones.
    assert [t.name for t in flow.tasks] == ["make_port", "audit", "make_volume", "attach", "notify"]


def test_graph_sinks_feed_the_next_linear_step() -> None:
    """A step after a graph depends on the graph's last steps only."""
    flow = Flow(
        "g2",
        linear(
            graph(step("a", provides="va"), step("b", "va")),
            step("after"),
        ),
    )
    assert flow.depends["after"] == {"b"}


def test_step_order_is_stable_across_builds() -> None:
    """Building the same flow twice gives the same step order (no set or hash order)."""

    def build() -> list[str]:
        names = [f"s{i}" for i in range(30)]
        return [t.name for t in Flow("many", unordered(*(step(n) for n in names))).tasks]

    assert build() == build() == [f"s{i}" for i in range(30)]


def test_flow_inputs_satisfy_requirements() -> None:
    """A requirement named in the flow's inputs needs no provider."""
    flow = Flow("in", step("boot", "image"), inputs=["image"], version=3)
    assert (flow.inputs, flow.version) == (("image",), 3)


def test_explicit_requires_override_the_signature() -> None:
    """``requires`` names the inputs when execute takes **kwargs."""
    flow = Flow(
        "explicit",
        linear(step("a", provides="v"), Step("b", requires=["v"])),
    )
    assert flow.depends["b"] == {"a"}


# --------------------------------------------------------------------------------------------
# Flows: validation


def test_every_definition_problem_is_reported_at_once() -> None:
    """Duplicate names, missing inputs and ambiguous providers come in one error."""
    with pytest.raises(FlowDefinitionError) as info:
        Flow(
            "broken",
            linear(
                step("a", provides="v"),
                step("a"),
                step("b", provides="v"),
                step("c", "nowhere"),
            ),
        )
    error = info.value
    assert isinstance(error, StatewardError)
    assert error.flow == "broken"
    assert error.problems == (
        "duplicate task name 'a'",
        "'v' is provided by both 'a' and 'b'",
        "task 'c' requires 'nowhere', which no task provides and the flow does not take as input",
    )
    assert str(error) == "flow 'broken' is invalid: " + "; ".join(error.problems)


def test_cycle_through_links_is_reported_with_its_path() -> None:
    """Links that close a loop are reported as a cycle naming its steps."""
    with pytest.raises(
        FlowDefinitionError, match=r"^flow 'loop' is invalid: cycle: a -> b -> c -> a$"
    ):
        Flow(
            "loop",
            graph(step("a"), step("b"), step("c"), links=[("b", "a"), ("c", "b"), ("a", "c")]),
        )


def test_cycle_is_reported_together_with_other_problems() -> None:
    """A cycle does not hide the duplicate names and ambiguous providers found before it."""
    with pytest.raises(FlowDefinitionError) as info:
        Flow(
            "knot",
            graph(
                step("a", provides="v"),
                step("b", provides="v"),
                step("b"),
                links=[("a", "b"), ("b", "a")],
            ),
        )
    assert info.value.problems == (
        "duplicate task name 'b'",
        "'v' is provided by both 'a' and 'b'",
        "cycle: a -> b -> a",
    )


def test_link_outside_its_graph_is_reported() -> None:
    """A link naming a task outside its graph is a definition error."""
    with pytest.raises(
        FlowDefinitionError, match=r"link \('a', 'ghost'\) names a task outside its graph"
    ):
        Flow("g", graph(step("a"), links=[("a", "ghost")]))


def test_input_from_a_concurrent_sibling_is_refused() -> None:
    """An unordered step cannot use a sibling's output: the sibling does not run before it."""
    with pytest.raises(FlowDefinitionError) as info:
        Flow("race", unordered(step("make", provides="port"), step("use", "port")))
    assert info.value.problems == (
        "task 'use' requires 'port' from 'make', which does not run before it "
        "(a concurrent sibling or a later task)",
    )


def test_input_from_a_later_step_is_refused() -> None:
    """A linear step cannot use the output of a step after it."""
    with pytest.raises(FlowDefinitionError, match=r"task 'use' requires 'port' from 'make'"):
        Flow("late", linear(step("use", "port"), step("make", provides="port")))


def test_flow_checks_its_arguments() -> None:
    """Flow wants a non-empty name, a positive int version and a task or pattern."""
    with pytest.raises(InvalidArgument, match=r"^name: expected a non-empty str, got ''$"):
        Flow("", step("a"))
    with pytest.raises(InvalidArgument, match=r"^version: expected an int >= 1, got 0$"):
        Flow("f", step("a"), version=0)
    with pytest.raises(InvalidArgument, match=r"^steps: expected a Task or a pattern, got 'a'$"):
        Flow("f", "a")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^items: expected Tasks or patterns, got 1$"):
        linear(step("a"), 1)  # type: ignore[arg-type]


def test_failure_names_the_failed_step() -> None:
    """A Failure carries the failed step, the error type and its message."""
    failure = Failure("boot", "ValueError", "no image")
    assert (failure.step, failure.error_type, failure.message) == ("boot", "ValueError", "no image")

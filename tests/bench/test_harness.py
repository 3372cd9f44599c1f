"""The benchmark harness: ratios, goals, selection, percentiles and the public names."""

from __future__ import annotations

import math

import pytest

import stateward.bench
from stateward.bench import Goal, Registry, Round, Row, Sizes, compare
from stateward.bench._harness import Comparison, Side, percentile, run_rows
from stateward.runtime import InvalidArgument


def _row(name: str, *, higher_is_better: bool = True, **kwargs: object) -> Row:
    def measure(sizes: Sizes) -> Comparison:
        return Comparison(
            subject=Side(name="s", value=50.0, rounds=(50.0,)),
            baseline=Side(name="b", value=100.0, rounds=(100.0,)),
        )

    return Row(
        name=name,
        unit="op/s",
        higher_is_better=higher_is_better,
        measure=measure,
        summary="test row",
        **kwargs,  # type: ignore[arg-type]
    )


def test_all_matches_public_names() -> None:
    """`stateward.bench.__all__` lists exactly the public names the package defines."""
    public = {name for name in vars(stateward.bench) if not name.startswith("_")}
    assert set(stateward.bench.__all__) == public
    assert isinstance(stateward.bench.__all__, tuple)


@pytest.mark.parametrize(("higher_is_better", "expected"), [(True, 0.5), (False, 2.0)])
def test_ratio_above_one_means_better(higher_is_better: bool, expected: float) -> None:
    """The ratio is value/baseline for throughputs and baseline/value for costs."""
    report = run_rows([_row("r", higher_is_better=higher_is_better)], stateward.bench.TINY_SIZES)
    assert report.results[0].ratio == expected


def test_goals_pass_and_fail() -> None:
    """A min-ratio goal compares the ratio; a max-value goal compares the value itself."""
    report = run_rows(
        [
            _row("ratio.ok", goal=Goal.min_ratio(0.5)),
            _row("ratio.bad", goal=Goal.min_ratio(0.6)),
            _row("value.ok", higher_is_better=False, goal=Goal.max_value(50)),
            _row("value.bad", higher_is_better=False, goal=Goal.max_value(49)),
            _row("reference"),
        ],
        stateward.bench.TINY_SIZES,
    )
    assert [r.passed for r in report.results] == [True, False, True, False, None]


def test_missing_peer_row_is_skipped_with_a_note() -> None:
    """A row whose required module is not importable is skipped and says how to install it."""
    report = run_rows(
        [_row("peer.none", requires=("stateward_no_such_peer",))], stateward.bench.TINY_SIZES
    )
    assert report.results == ()
    assert report.skipped[0].name == "peer.none"
    assert "stateward_no_such_peer not importable" in report.skipped[0].reason
    assert "stateward[peers]" in report.skipped[0].reason


def test_registry_selects_by_glob_in_registration_order() -> None:
    """`select` keeps registration order and rejects a glob that matches nothing."""
    registry = Registry([_row("b.one"), _row("a.two"), _row("b.three")])
    assert [r.name for r in registry.select(["b.*"])] == ["b.one", "b.three"]
    assert len(registry.select(None)) == 3
    with pytest.raises(InvalidArgument, match=r"got 'c\.\*'"):
        registry.select(["b.*", "c.*"])


def test_registry_rejects_duplicate_names() -> None:
    """Two rows cannot share a name."""
    with pytest.raises(InvalidArgument, match="a name not registered yet"):
        Registry([_row("x"), _row("x")])


def test_compare_interleaves_and_keeps_best_or_median() -> None:
    """Rounds alternate subject/baseline after warm-up; best or median is kept per side."""
    calls: list[str] = []
    subject_values = iter([9.0, 1.0, 3.0, 2.0])
    baseline_values = iter([9.0, 5.0, 4.0, 6.0])

    def subject() -> Round:
        calls.append("s")
        return Round(next(subject_values), latencies=(0.001,))

    def baseline() -> Round:
        calls.append("b")
        return Round(next(baseline_values))

    s, b = compare(
        ("s", subject),
        ("b", baseline),
        rounds=3,
        warmup_rounds=1,
        higher_is_better=False,
        how="median",
    )
    assert calls == ["s", "b"] * 4
    assert (s.value, s.rounds, s.p50, s.p99) == (2.0, (1.0, 3.0, 2.0), 0.001, 0.001)
    assert (b.value, b.p50) == (5.0, None)


def test_percentile_is_nearest_rank() -> None:
    """p50 and p99 follow the nearest-rank definition."""
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 0.50) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isclose(percentile([3.0, 1.0, 2.0], 0.5), 2.0)

"""The benchmark report for people: figures printed whole, verdicts exact, ``--check``."""

from __future__ import annotations

import gc
import importlib.util
import io

import pytest
from rich.console import Console

import stateward.bench
from stateward.bench import Goal, Row, Sizes
from stateward.bench._cli import main
from stateward.bench._harness import (
    TUNED_GC,
    Comparison,
    Settings,
    Side,
    applied,
    loop_runner,
    run_rows,
)
from stateward.bench._report import format_against, report_table, verdict

LONG_BASELINE = "a baseline described at great length, " * 4


def _row(name: str, value: float, baseline: float, goal: Goal | None) -> Row:
    def measure(sizes: Sizes) -> Comparison:
        return Comparison(
            subject=Side(name="subject", value=value, rounds=(value,)),
            baseline=Side(name=LONG_BASELINE.strip(), value=baseline, rounds=(baseline,)),
        )

    return Row(
        name=name,
        unit="op/s",
        higher_is_better=True,
        measure=measure,
        summary="test row",
        goal=goal,
    )


ROWS = [
    _row("close.call", 2.97, 10.0, Goal.min_ratio(0.3)),
    _row("comfortable", 1234.5, 1.0, Goal.min_ratio(50)),
    _row("reference.only", 5.0, 4.0, None),
]


@pytest.mark.parametrize(
    ("value", "bound", "printed"),
    [(0.297, 0.3, "0.297"), (0.29999, 0.3, "0.29999"), (4.0000001, 4, "4.0000001"), (4, 4, "4")],
)
def test_a_figure_is_printed_on_the_side_of_the_bound_it_is_on(
    value: float, bound: float, printed: str
) -> None:
    """Rounding never carries a figure across the goal's bound."""
    assert format_against(value, bound) == printed


def test_a_missed_goal_says_fail_with_both_figures() -> None:
    """0.297 against a goal of 0.3 is FAIL 0.297 < 0.3, never a pass and never 0.30."""
    close, comfortable, reference = run_rows(ROWS, stateward.bench.TINY_SIZES).results
    assert verdict(close) == "FAIL: ratio 0.297 < 0.3"
    assert verdict(comfortable) == "pass: ratio 1,234 ≥ 50"
    assert verdict(reference) == ""


@pytest.mark.parametrize("width", [60, 100, 160, 240])
def test_no_figure_is_cut_at_any_width(width: int) -> None:
    """Every value, ratio and verdict appears whole, whatever the console's width: the
    baseline wraps, or the table becomes a list."""
    report = run_rows(ROWS, stateward.bench.TINY_SIZES)
    out = io.StringIO()
    Console(file=out, width=width).print(report_table(report, width=width))
    text = out.getvalue()
    for needle in ("2.97 op/s", "1.23 k op/s", "0.297x", "FAIL: ratio 0.297 < 0.3", "1,234x"):
        assert needle in text, (width, needle)
    assert "…" not in text


def test_check_turns_a_missed_goal_into_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    """`--check` exits 1 naming the rows that missed their goals; without it, 0."""
    argv = ["bench", "--sizes", "tiny", "--only", "actor.passivated_memory"]
    # A goal nothing meets: the row's own goal is met here, so patch the registry's copy.
    from stateward.bench._rows import ROWS as REGISTRY

    row = next(r for r in REGISTRY if r.name == "actor.passivated_memory")
    impossible = Row(
        name=row.name,
        unit=row.unit,
        higher_is_better=row.higher_is_better,
        measure=row.measure,
        summary=row.summary,
        goal=Goal.max_value(1),
    )
    REGISTRY._rows[row.name] = impossible
    try:
        assert main(argv) == 0
        assert main([*argv, "--check"]) == 1
        assert "1 goal(s) missed: actor.passivated_memory" in capsys.readouterr().err
    finally:
        REGISTRY._rows[row.name] = row


def test_the_tuned_collector_is_applied_and_undone() -> None:
    """`--gc tuned` freezes what is alive and raises the young threshold for the row only."""
    before = gc.get_threshold()
    with applied(Settings(gc="tuned")):
        assert gc.get_threshold() == TUNED_GC
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_uvloop_setting_runs_rows_on_uvloop() -> None:
    """`--loop uvloop` gives every row's runner a uvloop loop; the default stays asyncio's."""
    uvloop = pytest.importorskip("uvloop", reason="the fast extra is not installed")
    with applied(Settings(loop="uvloop")), loop_runner() as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
    with loop_runner() as runner:
        assert not isinstance(runner.get_loop(), uvloop.Loop)


def test_uvloop_missing_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the fast extra, `--loop uvloop` says what to install instead of failing rows."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "uvloop" else real(name, *args),
    )
    assert (
        main(["bench", "--sizes", "tiny", "--only", "actor.passivated_memory", "--loop", "uvloop"])
        == 2
    )
    assert "pip install 'stateward[fast]'" in capsys.readouterr().err

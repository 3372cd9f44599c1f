"""Rendering a benchmark report: the rich table for people, the JSON file for tools."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TextIO

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._harness import Report, Result

__all__ = (
    "format_against",
    "format_quantity",
    "format_seconds",
    "ratio_text",
    "verdict",
    "report_table",
    "write_json",
    "write_json_document",
)

_SI_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_quantity(value: float) -> str:
    """A figure with three significant digits and an SI prefix: ``1.35 M``, ``145 k``, ``812``."""
    if not math.isfinite(value):
        return str(value)
    for scale, prefix in _SI_PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def format_seconds(seconds: float | None) -> str:
    """A latency in the unit that keeps it readable: ``6.9 µs``, ``1.2 ms``; ``-`` if none."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def format_against(value: float, bound: float) -> str:
    """``value`` with three significant digits, or with as many more (up to 12) as it takes
    for the printed figure to compare with ``bound`` as the real one does: 0.297 against 0.3
    prints ``0.297``, never ``0.30``, and 4.001 against 4 never prints ``4``."""
    if not math.isfinite(value):
        return str(value)
    side = (value > bound) - (value < bound)
    for digits in range(3, 12):
        text = _significant(value, digits)
        printed = float(text.replace(",", ""))
        if (printed > bound) - (printed < bound) == side:
            return text
    return _significant(value, 12)


def _significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits in fixed notation, thousands grouped and
    trailing zeros dropped: ``0.297``, ``1,500``, ``4.0000001``."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def ratio_text(result: Result) -> str:
    """The ratio as printed, exact enough to be compared with a ratio goal: ``0.297x``."""
    if result.goal is not None and result.goal.kind == "min_ratio":
        return format_against(result.ratio, result.goal.bound) + "x"
    return format_against(result.ratio, math.inf) + "x"


def verdict(result: Result) -> str:
    """``pass`` or ``FAIL`` with the figures compared, as printed (empty without a goal):
    ``FAIL: ratio 0.297 < 0.4``, ``pass: 3 ≤ 4 commit/boot``."""
    goal, passed = result.goal, result.passed
    if goal is None or passed is None:
        return ""
    bound = _significant(goal.bound, 12)
    if goal.kind == "min_ratio":
        figure = format_against(result.ratio, goal.bound)
        return f"pass: ratio {figure} ≥ {bound}" if passed else f"FAIL: ratio {figure} < {bound}"
    figure = format_against(result.value, goal.bound)
    unit = result.unit
    return f"pass: {figure} ≤ {bound} {unit}" if passed else f"FAIL: {figure} > {bound} {unit}"


def _latency(result: Result) -> str:
    if result.p50 is None:
        return ""
    return f"{format_seconds(result.p50)} / {format_seconds(result.p99)}"


_CAPTION = (
    "ratio > 1 means better than the baseline: value/baseline when higher is better, "
    "baseline/value when lower is better; both measured in this run"
)
#: The narrowest the baseline column is squeezed to before the table gives way to a list.
_BASELINE_MIN = 24


def _cells(result: Result) -> tuple[str, ...]:
    return (
        result.name,
        f"{format_quantity(result.value)} {result.unit}",
        _latency(result),
        result.baseline,
        format_quantity(result.baseline_value),
        ratio_text(result),
        verdict(result),
    )


def _styled(text: str) -> Text:
    style = "green" if text.startswith("pass") else "red" if text.startswith("FAIL") else ""
    return Text(text, style=style)


_HEADERS = ("row", "value", "p50 / p99", "baseline", "baseline value", "ratio", "goal")
_BASELINE = _HEADERS.index("baseline")
_RIGHT = frozenset(("value", "p50 / p99", "baseline value", "ratio"))


def report_table(report: Report, *, width: int = 160) -> RenderableType:
    """The report for people: a table, one line per result (skipped rows are not in it).

    Every figure is printed whole whatever ``width`` is: the baseline's text wraps, and
    when even that does not make the table fit, each result becomes a few lines of its
    own instead.
    """
    chosen = report.settings
    title = (
        f"stateward bench ({report.sizes.name}, {chosen.loop} loop, {chosen.gc} GC) — "
        f"{report.python} on {report.machine}"
    )
    rows = [_cells(result) for result in report.results]
    widths = [max([len(h)] + [len(r[n]) for r in rows]) for n, h in enumerate(_HEADERS)]
    # Borders and padding: a bar and two spaces per column, and the last bar.
    fixed = sum(w for n, w in enumerate(widths) if n != _BASELINE) + 3 * len(_HEADERS) + 1
    baseline_width = min(widths[_BASELINE], _BASELINE_MIN)
    if fixed + baseline_width > width:
        return _report_list(title, rows)
    table = Table(title=title, caption=_CAPTION)
    for n, header in enumerate(_HEADERS):
        if n == _BASELINE:
            table.add_column(header, overflow="fold", min_width=baseline_width)
        else:
            table.add_column(
                header,
                justify="right" if header in _RIGHT else "left",
                no_wrap=True,
                min_width=widths[n],
            )
    for cells in rows:
        table.add_row(*cells[:-1], _styled(cells[-1]))
    return table


def _report_list(title: str, rows: list[tuple[str, ...]]) -> RenderableType:
    """The report as a few lines per result, for a console too narrow for the table."""
    lines: list[Text] = [Text(title, style="bold")]
    for name, value, latency, baseline, baseline_value, ratio, judged in rows:
        lines.append(Text(f"{name}: {value}" + (f" (p50 / p99 {latency})" if latency else "")))
        lines.append(Text(f"  vs {baseline}: {baseline_value}"))
        line = Text(f"  ratio {ratio}")
        if judged:
            line.append(", goal ")
            line.append_text(_styled(judged))
        lines.append(line)
    lines.append(Text(_CAPTION))
    return Group(*lines)


def write_json(report: Report, out: Path | TextIO) -> None:
    """Write the report's JSON contract form to ``out``: a file (UTF-8) or a text stream.

    The JSON is indented and ends with a newline; a stream (standard output for
    ``--json -``) is flushed.
    """
    write_json_document(report.to_json(), out)


def write_json_document(document: object, out: Path | TextIO) -> None:
    """Write ``document`` as indented JSON to the file ``out`` or to the stream ``out``."""
    text = json.dumps(document, indent=2) + "\n"
    if isinstance(out, Path):
        out.write_text(text, encoding="utf-8")
    else:
        out.write(text)
        out.flush()

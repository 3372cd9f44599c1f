"""Rendering a benchmark report: the rich table for people, the JSON file for tools."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TextIO

from rich.table import Table

from ._harness import Report, Result

__all__ = (
    "format_quantity",
    "format_seconds",
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


def _mark(result: Result) -> str:
    passed = result.passed
    if passed is None:
        return ""
    return "[green]✓ pass[/]" if passed else "[red]✗ FAIL[/]"


def _latency(result: Result) -> str:
    if result.p50 is None:
        return ""
    return f"{format_seconds(result.p50)} / {format_seconds(result.p99)}"


def report_table(report: Report) -> Table:
    """The report as a rich table, one line per result (skipped rows are not in it)."""
    table = Table(
        title=f"stateward bench ({report.sizes.name}) — {report.python} on {report.machine}",
        caption=(
            "ratio > 1 means better than the baseline: value/baseline when higher is better, "
            "baseline/value when lower is better; both measured in this run"
        ),
    )
    table.add_column("row", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("p50 / p99", justify="right", no_wrap=True)
    table.add_column("baseline", no_wrap=True)
    table.add_column("baseline value", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("goal", no_wrap=True)
    table.add_column("", no_wrap=True)
    for result in report.results:
        table.add_row(
            result.name,
            format_quantity(result.value),
            result.unit,
            _latency(result),
            result.baseline,
            format_quantity(result.baseline_value),
            f"{result.ratio:.2f}x",
            "" if result.goal is None else result.goal.describe(result.unit),
            _mark(result),
        )
    return table


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

"""stateward.bench: benchmarks against baselines and peers, and the command line.

Every row compares a subject with a baseline measured in the same run; see
:mod:`stateward.bench._harness` for the method. ``stateward bench --quick`` runs them all.
"""

from ._cli import main as main
from ._harness import FULL_SIZES as FULL_SIZES
from ._harness import QUICK_SIZES as QUICK_SIZES
from ._harness import SIZES as SIZES
from ._harness import TINY_SIZES as TINY_SIZES
from ._harness import Comparison as Comparison
from ._harness import Goal as Goal
from ._harness import Registry as Registry
from ._harness import Report as Report
from ._harness import Result as Result
from ._harness import Round as Round
from ._harness import Row as Row
from ._harness import Side as Side
from ._harness import Sizes as Sizes
from ._harness import Skipped as Skipped
from ._harness import compare as compare
from ._harness import run_rows as run_rows
from ._rows import ROWS as ROWS

__all__ = (
    # running
    "ROWS",
    "run_rows",
    "main",
    # sizes
    "Sizes",
    "TINY_SIZES",
    "QUICK_SIZES",
    "FULL_SIZES",
    "SIZES",
    # defining rows
    "Registry",
    "Row",
    "Goal",
    "Round",
    "Side",
    "Comparison",
    "compare",
    # results
    "Report",
    "Result",
    "Skipped",
)

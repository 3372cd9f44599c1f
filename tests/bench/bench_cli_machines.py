"""State machines and decoys for the ``stateward diagram`` tests (imported by name)."""

from __future__ import annotations

from stateward.runtime import Machine, StateKind, Transition

LIGHT = Machine(
    "light",
    states={"off": StateKind.STABLE, "on": StateKind.STABLE, "broken": StateKind.TERMINAL},
    initial="off",
    transitions=[
        Transition("off", "switch_on", "on"),
        Transition("on", "switch_off", "off"),
        Transition("on", "burn_out", "broken"),
    ],
)


class Holder:
    """Lets the tests reach a machine through a dotted attribute path."""

    light = LIGHT


NOT_A_MACHINE = {"states": ["off", "on"]}

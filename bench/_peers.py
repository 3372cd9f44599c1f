"""Peer libraries, measured the same way as stateward: pykka (actors) and automaton (FSMs).

The peers come from the optional ``peers`` extra, pinned there so that figures stay
comparable between runs. They are imported inside the round functions, never at module import,
so that the CLI works without them and the rows that need them are skipped with a note.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ._baselines import CYCLE_EVENTS, CYCLE_STATES
from ._harness import Round

__all__ = (
    "PYKKA",
    "AUTOMATON",
    "pykka_tell_round",
    "pykka_ask_round",
    "automaton_transition_round",
)

#: The peers' names in reports.
PYKKA = "pykka ThreadingActor"
AUTOMATON = "automaton FiniteMachine"

#: How long to wait for a pykka actor to drain before declaring the round broken; far above
#: any real round, it only turns a hang into an error.
_DRAIN_TIMEOUT = 300.0


def pykka_tell_round(messages: int) -> Round:
    """Tells per second from the main thread to one counting pykka thread actor."""
    import pykka

    drained = threading.Event()

    class Counter(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            self.count += 1
            if self.count == messages:
                drained.set()
            return None

    ref = Counter.start()
    try:
        tell = ref.tell
        start = time.perf_counter()
        for i in range(messages):
            tell(i)
        if not drained.wait(_DRAIN_TIMEOUT):
            raise RuntimeError(f"pykka actor did not drain {messages} tells")
        elapsed = time.perf_counter() - start
    finally:
        ref.stop()
    return Round(messages / elapsed)


def pykka_ask_round(asks: int) -> Round:
    """Sequential blocking ask round trips per second to one pykka thread actor."""
    import pykka

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    ref = Echo.start()
    try:
        ask = ref.ask
        clock = time.perf_counter
        latencies = [0.0] * asks
        start = clock()
        for i in range(asks):
            sent = clock()
            ask(i)
            latencies[i] = clock() - sent
        elapsed = clock() - start
    finally:
        ref.stop()
    return Round(asks / elapsed, latencies)


def automaton_transition_round(transitions: int) -> Round:
    """Transitions per second of ``FiniteMachine.process_event`` cycling the 4-state loop."""
    from automaton import machines

    machine = machines.FiniteMachine()
    for state in CYCLE_STATES:
        machine.add_state(state)
    for i, (state, event) in enumerate(zip(CYCLE_STATES, CYCLE_EVENTS, strict=True)):
        machine.add_transition(state, CYCLE_STATES[(i + 1) % len(CYCLE_STATES)], event)
    machine.default_start_state = CYCLE_STATES[0]
    machine.initialize()
    process_event = machine.process_event
    events = CYCLE_EVENTS
    cycle = len(events)
    start = time.perf_counter()
    for i in range(transitions):
        process_event(events[i % cycle])
    elapsed = time.perf_counter() - start
    return Round(transitions / elapsed)

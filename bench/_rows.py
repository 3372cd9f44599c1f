"""The registered benchmark rows: what is compared with what, and the goals.

Async rounds of one row share one event loop (an :class:`asyncio.Runner`), so that both sides
of a comparison run on the same loop, one round after the other.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any

from ._baselines import (
    BARE_ACTOR,
    DICT_MACHINE,
    MAILBOX_CAPACITY,
    bare_ask_round,
    bare_idle_memory_round,
    bare_spawn_round,
    bare_tell_round,
    dict_transition_round,
)
from ._dbos_rows import DBOS_ROWS
from ._fleet_rows import FLEET_ROWS
from ._flow_rows import FLOW_ROWS
from ._harness import Comparison, Goal, Registry, Round, Row, Sizes, compare, loop_runner
from ._lease_rows import LEASE_ROWS
from ._peers import (
    AUTOMATON,
    PYKKA,
    automaton_transition_round,
    pykka_ask_round,
    pykka_tell_round,
)
from ._pg_rows import PG_ROWS
from ._settings_rows import SETTINGS_ROWS
from ._sim_rows import SIM_ROWS
from ._stateward import (
    STATEWARD,
    fire_round,
    fsm_actor_round,
    idle_memory_round,
    passivated_memory_round,
    spawn_round,
    tell_round,
)
from ._stateward import ask_round as stateward_ask_round
from ._store_rows import STORE_ROWS

__all__ = ("ROWS",)

_AsyncRound = Callable[[int], Coroutine[Any, Any, Round]]

#: Pinned peers must come from the ``peers`` extra; a row needing one is skipped without it.
_PYKKA_MODULE = "pykka"
_AUTOMATON_MODULE = "automaton"


def _on(runner: asyncio.Runner, round_: _AsyncRound, size: int) -> Callable[[], Round]:
    """A zero-argument callable that runs one async round of ``size`` on ``runner``."""
    return lambda: runner.run(round_(size))


def _async_pair(
    sizes: Sizes,
    size: int,
    subject: tuple[str, _AsyncRound],
    baseline: tuple[str, _AsyncRound],
    *,
    higher_is_better: bool = True,
    median: bool = False,
) -> Comparison:
    with loop_runner() as runner:
        subject_side, baseline_side = compare(
            (subject[0], _on(runner, subject[1], size)),
            (baseline[0], _on(runner, baseline[1], size)),
            rounds=sizes.rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=higher_is_better,
            how="median" if median else "best",
        )
    details = {"size": size, "mailbox_capacity": MAILBOX_CAPACITY}
    return Comparison(subject=subject_side, baseline=baseline_side, details=details)


def _measure_tell(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes, sizes.messages, (STATEWARD, tell_round), (BARE_ACTOR, bare_tell_round)
    )


def _measure_ask(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes, sizes.asks, (STATEWARD, stateward_ask_round), (BARE_ACTOR, bare_ask_round)
    )


def _measure_idle_memory(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes,
        sizes.idle_actors,
        (STATEWARD, idle_memory_round),
        (BARE_ACTOR, bare_idle_memory_round),
        higher_is_better=False,
        median=True,
    )


def _measure_passivated_memory(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes,
        sizes.idle_actors,
        (f"{STATEWARD} (passivated)", passivated_memory_round),
        (BARE_ACTOR, bare_idle_memory_round),
        higher_is_better=False,
        median=True,
    )


def _measure_spawn(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes, sizes.spawns, (STATEWARD, spawn_round), (BARE_ACTOR, bare_spawn_round)
    )


def _measure_transition(sizes: Sizes) -> Comparison:
    # automaton is the reference when it is installed; without the peers extra the row still
    # runs, against the floor of any table-driven machine, and says which one it used.
    baseline: tuple[str, Callable[[], Round]]
    waived: str | None = None
    if importlib.util.find_spec(_AUTOMATON_MODULE) is None:
        baseline = (DICT_MACHINE, lambda: dict_transition_round(sizes.transitions))
        # No library can match a bare dict lookup; the goal is about automaton.
        waived = "automaton is not installed; the dict baseline is a floor, not a goal"
    else:
        baseline = (AUTOMATON, lambda: automaton_transition_round(sizes.transitions))
    subject_side, baseline_side = compare(
        (STATEWARD, lambda: fire_round(sizes.transitions)),
        baseline,
        rounds=sizes.rounds,
        warmup_rounds=sizes.warmup_rounds,
        higher_is_better=True,
    )
    return Comparison(
        subject=subject_side,
        baseline=baseline_side,
        details={"size": sizes.transitions},
        waive_goal=waived,
    )


def _measure_actor_transition(sizes: Sizes) -> Comparison:
    return _async_pair(
        sizes, sizes.asks, (STATEWARD, fsm_actor_round), (BARE_ACTOR, bare_ask_round)
    )


def _measure_pykka(
    sizes: Sizes, size: int, peer_round: Callable[[int], Round], bare_round: _AsyncRound
) -> Comparison:
    with loop_runner() as runner:
        subject_side, baseline_side = compare(
            (PYKKA, lambda: peer_round(size)),
            (BARE_ACTOR, _on(runner, bare_round, size)),
            rounds=sizes.peer_rounds,
            warmup_rounds=sizes.warmup_rounds,
            higher_is_better=True,
        )
    return Comparison(subject=subject_side, baseline=baseline_side, details={"size": size})


def _measure_pykka_tell(sizes: Sizes) -> Comparison:
    return _measure_pykka(sizes, sizes.peer_messages, pykka_tell_round, bare_tell_round)


def _measure_pykka_ask(sizes: Sizes) -> Comparison:
    return _measure_pykka(sizes, sizes.peer_asks, pykka_ask_round, bare_ask_round)


#: Every row, in report order. With the cache of recovery databases in ``_store_rows`` and the
#: shared simulations of ``_sim_rows``, the only module-level mutable object in
#: ``stateward.bench``.
ROWS = Registry(
    [
        Row(
            name="actor.tell",
            unit="msg/s",
            higher_is_better=True,
            measure=_measure_tell,
            summary="awaited tells to one counting actor, until the last is handled",
            goal=Goal.min_ratio(0.5),
        ),
        Row(
            name="actor.ask",
            unit="ask/s",
            higher_is_better=True,
            measure=_measure_ask,
            summary="sequential ask round trips to one actor",
            goal=Goal.min_ratio(0.5),
        ),
        Row(
            name="actor.idle_memory",
            unit="B/actor",
            higher_is_better=False,
            measure=_measure_idle_memory,
            summary="traced bytes per live idle actor (asked once, then waiting)",
            goal=Goal.max_value(2048),
        ),
        Row(
            name="actor.passivated_memory",
            unit="B/actor",
            higher_is_better=False,
            measure=_measure_passivated_memory,
            summary="traced bytes per passivated actor (registered, not instantiated)",
            goal=Goal.max_value(300),
        ),
        Row(
            name="actor.spawn",
            unit="spawn/s",
            higher_is_better=True,
            measure=_measure_spawn,
            summary="actors spawned until their tasks have started",
        ),
        Row(
            name="fsm.transition",
            unit="transition/s",
            higher_is_better=True,
            measure=_measure_transition,
            summary="MachineInstance.fire around a 4-state loop "
            "(vs automaton if installed, else a dict lookup)",
            goal=Goal.min_ratio(1.0),
        ),
        Row(
            name="fsm.actor_transition",
            unit="transition/s",
            higher_is_better=True,
            measure=_measure_actor_transition,
            summary="sequential asks firing events on an FSM actor (reference)",
        ),
        Row(
            name="peer.pykka.tell",
            unit="msg/s",
            higher_is_better=True,
            measure=_measure_pykka_tell,
            summary="pykka thread actor tells (reference)",
            requires=(_PYKKA_MODULE,),
        ),
        Row(
            name="peer.pykka.ask",
            unit="ask/s",
            higher_is_better=True,
            measure=_measure_pykka_ask,
            summary="pykka thread actor blocking asks (reference)",
            requires=(_PYKKA_MODULE,),
        ),
        *STORE_ROWS,
        *PG_ROWS,
        *FLOW_ROWS,
        *DBOS_ROWS,
        *FLEET_ROWS,
        *LEASE_ROWS,
        *SIM_ROWS,
        *SETTINGS_ROWS,
    ]
)

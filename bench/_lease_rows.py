"""The lease rows: fit checks against a busy host calendar, and leases created on a fleet.

``lease.fit`` asks a :class:`~stateward.actors.Calendar` holding :data:`FIT_HOLDS` holds
whether one more fits over a random window, against a linear scan that collects every
hold overlapping the window and sweeps their starts and ends (what a lease service that
keeps its leases in rows does per request). Both answer the same windows; the answers are
checked equal after the clock stops.

``lease.create`` creates leases of one m1.tiny slot each on a durable fleet of
:data:`~stateward.bench._fleet_rows.FLEET_HOSTS` hosts, against ``fleet.boot`` of as many
instances on the same setup.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ._fleet_rows import (
    FLAVOR,
    FLEET_CLIENTS,
    FLEET_HOSTS,
    _add_hosts,
    _discard,
    _scratch,
    fleet_boot_round,
)
from ._harness import Comparison, Goal, Round, Row, Sizes, compare

if TYPE_CHECKING:
    from stateward.actors import Calendar

__all__ = ("LEASE_ROWS", "FIT_HOLDS", "lease_create_round")

#: Holds in the calendar of ``lease.fit``.
FIT_HOLDS = 10_000
#: Seconds the holds of ``lease.fit`` are spread over, and the longest one.
FIT_HORIZON, FIT_LONGEST = 365 * 86_400.0, 7 * 86_400.0
FIT_GOAL_RATIO = 50.0
#: The vcpus each hold is checked against in ``lease.fit`` (holds take one each).
FIT_VCPUS = 100
#: Leases per round of ``lease.create`` (at most; the quick sizes create fewer).
CREATE_LEASES = 1_000
#: Seconds from now the created leases start, and how long each lasts.
CREATE_START, CREATE_LENGTH = 3_600.0, 3_600.0


def _fit_calendar(seed: int) -> tuple[Calendar, list[tuple[float, float, tuple[int, int, int]]]]:
    from stateward.actors import Calendar, Capacity, Hold

    rng = random.Random(seed)
    holds = []
    for n in range(FIT_HOLDS):
        start = rng.uniform(0, FIT_HORIZON)
        length = rng.uniform(60, FIT_LONGEST)
        holds.append(Hold(f"l-{n}", start, start + length, Capacity(1, 256, 1)))
    rows = [(h.start, h.end, (h.amount.vcpus, h.amount.ram_mb, h.amount.disk_gb)) for h in holds]
    return Calendar(holds), rows


def _scan_peak(
    rows: list[tuple[float, float, tuple[int, int, int]]], start: float, end: float
) -> tuple[int, int, int]:
    """The most held over ``[start, end)``: every overlapping row, swept."""
    changes: list[tuple[float, int, int, int]] = []
    for s, e, (v, r, d) in rows:
        if s < end and e > start:
            changes.append((max(s, start), v, r, d))
            changes.append((e, -v, -r, -d))
    changes.sort()
    top, level = [0, 0, 0], [0, 0, 0]
    for _, v, r, d in changes:
        level[0] += v
        level[1] += r
        level[2] += d
        top = [max(a, b) for a, b in zip(top, level, strict=True)]
    return top[0], top[1], top[2]


def _measure_fit(sizes: Sizes) -> Comparison:
    from stateward.actors import Capacity

    queries = max(50, sizes.asks // 10)
    calendar, rows = _fit_calendar(seed=7)
    rng = random.Random(11)
    windows = []
    for _ in range(queries):
        start = rng.uniform(0, FIT_HORIZON)
        windows.append((start, start + rng.uniform(3_600, 86_400)))
    asked = Capacity(1, 256, 1)
    # About the usual peak of a day's window: some windows fit, others do not.
    capacity = Capacity(FIT_VCPUS, 10**9, 10**6)
    answers: dict[str, list[bool]] = {"calendar": [], "scan": []}

    def calendar_side() -> Round:
        shortfall = calendar.shortfall
        began = time.perf_counter()
        found = [shortfall(start, end, asked, capacity) is None for start, end in windows]
        elapsed = time.perf_counter() - began
        answers["calendar"] = found
        return Round(queries / elapsed)

    def scan_side() -> Round:
        began = time.perf_counter()
        found = [_scan_peak(rows, start, end)[0] + 1 <= FIT_VCPUS for start, end in windows]
        elapsed = time.perf_counter() - began
        answers["scan"] = found
        return Round(queries / elapsed)

    subject, baseline = compare(
        ("stateward Calendar.shortfall", calendar_side),
        ("a linear scan of the same holds, swept", scan_side),
        rounds=sizes.rounds,
        warmup_rounds=sizes.warmup_rounds,
        higher_is_better=True,
    )
    if answers["calendar"] != answers["scan"]:
        raise AssertionError("the calendar and the scan disagree on whether a window fits")
    details: dict[str, object] = {
        "holds": FIT_HOLDS,
        "breakpoints": calendar.breakpoints,
        "queries_per_round": queries,
        "horizon_days": FIT_HORIZON / 86_400,
        "fitting_windows": sum(answers["calendar"]),
        "checked": "both sides gave the same answer for every window",
    }
    return Comparison(subject=subject, baseline=baseline, details=details)


async def lease_create_round(path: Path, *, leases: int, clients: int = FLEET_CLIENTS) -> float:
    """Leases created per second (one m1.tiny slot each) on a fresh durable fleet."""
    from stateward.actors import FakeDriver, Fleet, InstanceReservation
    from stateward.runtime import Durability

    async with Fleet.open(path, driver=FakeDriver(), durability=Durability.FULL) as fleet:
        await _add_hosts(fleet)
        now = fleet.env.clock.now()
        todo = iter(range(leases))
        slot = (InstanceReservation(FLAVOR[0], count=1),)

        async def client() -> None:
            for n in todo:
                await fleet.leases.create(
                    f"lease-{n:06d}",
                    start=now + CREATE_START,
                    end=now + CREATE_START + CREATE_LENGTH,
                    reservations=slot,
                )

        tasks = [asyncio.create_task(client()) for _ in range(max(1, min(clients, leases)))]
        began = time.perf_counter()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        pending = await fleet.leases.list(state="pending")
        if len(pending) != leases:
            raise AssertionError(f"{len(pending)} of {leases} leases are pending")
    return leases / elapsed


def _measure_create(sizes: Sizes) -> Comparison:
    leases = max(1, min(CREATE_LEASES, sizes.fleet_boots // 4))
    with _scratch() as (runner, fresh):

        def lease_side() -> Round:
            path = fresh("leases")
            try:
                return Round(runner.run(lease_create_round(path, leases=leases)))
            finally:
                _discard(path)

        def boot_side() -> Round:
            path = fresh("boots")
            try:
                return runner.run(fleet_boot_round(path, boots=leases)).round
            finally:
                _discard(path)

        subject, baseline = compare(
            ("stateward fleet.leases.create, one slot each", lease_side),
            (f"stateward fleet.boot of as many instances on {FLEET_HOSTS} hosts", boot_side),
            rounds=sizes.fleet_rounds,
            warmup_rounds=0,
            higher_is_better=True,
        )
    details: dict[str, object] = {
        "leases": leases,
        "hosts": FLEET_HOSTS,
        "clients": FLEET_CLIENTS,
        "reservation": f"1 slot of {FLAVOR[0]}, the same window for all",
        "durability": "FULL (WAL)",
        "checked": "every lease pending after the clock stops",
    }
    return Comparison(subject=subject, baseline=baseline, details=details)


#: The lease rows, in report order.
LEASE_ROWS = (
    Row(
        name="lease.fit",
        unit="fit/s",
        higher_is_better=True,
        measure=_measure_fit,
        summary=f"fit checks against a host calendar of {FIT_HOLDS:,} holds vs a linear "
        "scan of the same holds",
        goal=Goal.min_ratio(FIT_GOAL_RATIO),
    ),
    Row(
        name="lease.create",
        unit="lease/s",
        higher_is_better=True,
        measure=_measure_create,
        summary=f"leases created on {FLEET_HOSTS} hosts (SQLite FULL) vs fleet.boot of as many "
        "instances",
    ),
)

"""A host's calendar of holds over time: the step function against a brute-force model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateward.actors import Capacity
from stateward.actors._calendar import Calendar, Hold
from stateward.runtime import InvalidArgument

ROOM = Capacity(vcpus=8, ram_mb=16, disk_gb=100)

windows = st.tuples(st.integers(0, 40), st.integers(1, 20)).map(lambda w: (w[0], w[0] + w[1]))
amounts = st.builds(Capacity, st.integers(0, 4), st.integers(0, 8), st.integers(0, 30))
#: A script: add hold n (window, amount), or remove hold n.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 7), windows, amounts),
        st.tuples(st.just("remove"), st.integers(0, 7), st.just((0, 1)), st.just(Capacity())),
    ),
    max_size=30,
)


def used(holds: dict[str, Hold], at: float) -> tuple[int, int, int]:
    """The model: what is held at ``at``, summed over the holds."""
    live = [h.amount for h in holds.values() if h.start <= at < h.end]
    return (
        sum(a.vcpus for a in live),
        sum(a.ram_mb for a in live),
        sum(a.disk_gb for a in live),
    )


@settings(max_examples=300, deadline=None)
@given(steps, windows, amounts, st.integers(1, 20))
def test_the_calendar_agrees_with_summing_every_hold(
    script: list[tuple[str, int, tuple[int, int], Capacity]],
    window: tuple[int, int],
    asked: Capacity,
    duration: int,
) -> None:
    calendar = Calendar()
    model: dict[str, Hold] = {}
    for op, n, (start, end), amount in script:
        name = f"hold-{n}"
        if op == "add" and name not in model:
            model[name] = Hold(name, float(start), float(end), amount)
            assert calendar.add(model[name]) is True
            assert calendar.add(model[name]) is False  # the same hold again: a no-op
        elif op == "remove":
            assert calendar.remove(name) == model.pop(name, None)
    start, end = window
    points = [start] + [h.start for h in model.values() if start < h.start < end]
    top = [max(used(model, t)[i] for t in points) for i in range(3)]
    assert calendar.peak(start, end) == Capacity(*top)
    # Fit: the first moment in time order that falls short, or none.
    room = (ROOM.vcpus, ROOM.ram_mb, ROOM.disk_gb)
    need = (asked.vcpus, asked.ram_mb, asked.disk_gb)
    short = calendar.shortfall(start, end, asked, ROOM)
    first = next(
        (
            t
            for t in sorted(set(points))
            if any(u + a > r for u, a, r in zip(used(model, t), need, room, strict=True))
        ),
        None,
    )
    assert (short.at if short else None) == first
    # The earliest fit: no earlier integer start fits, and the one found does.
    found = calendar.earliest_fit(duration, asked, ROOM, after=0.0)
    assert found is not None
    assert calendar.shortfall(found, found + duration, asked, ROOM) is None
    assert all(
        calendar.shortfall(t, t + duration, asked, ROOM) is not None for t in range(int(found))
    )
    # Rebuilt from its holds (as a host restores it), it is the same calendar.
    assert Calendar(calendar.holds).peak(start, end) == calendar.peak(start, end)
    # Breakpoints stay as few as the holds shape: at most two per hold.
    assert calendar.breakpoints <= 2 * len(model)


def test_a_shortfall_says_when_and_what() -> None:
    calendar = Calendar([Hold("a", 10.0, 20.0, Capacity(6, 4, 10))])
    short = calendar.shortfall(0.0, 30.0, Capacity(4, 4, 10), ROOM)
    assert short is not None
    assert (short.at, short.resource, short.held, short.asked, short.capacity) == (
        10.0,
        "vcpus",
        6,
        4,
        8,
    )
    assert calendar.shortfall(20.0, 30.0, Capacity(4, 4, 10), ROOM) is None
    assert calendar.earliest_fit(5.0, Capacity(4, 4, 10), ROOM, after=8.0) == 20.0
    assert calendar.earliest_fit(5.0, Capacity(9, 0, 0), ROOM, after=0.0) is None


def test_bad_holds_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="after its start"):
        Hold("a", 5.0, 5.0, Capacity())
    with pytest.raises(InvalidArgument, match="finite"):
        Hold("a", 0.0, float("inf"), Capacity())
    with pytest.raises(InvalidArgument, match="Capacity"):
        Hold("a", 0.0, 1.0, 3)  # type: ignore[arg-type]
    calendar = Calendar([Hold("a", 0.0, 1.0, Capacity(1))])
    with pytest.raises(InvalidArgument, match="new id"):
        calendar.add(Hold("a", 0.0, 2.0, Capacity(1)))
    assert calendar.peak(0.0, 2.0) == Capacity(1)  # the refused one changed nothing

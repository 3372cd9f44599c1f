"""Tests of the event bus: topic patterns, bounded buffers, overflow, receiving, closing."""

from __future__ import annotations

import asyncio

import pytest

from stateward.runtime import (
    BusStatistics,
    Environment,
    Event,
    EventBus,
    InvalidArgument,
    Overflow,
    Subscription,
    SubscriptionClosed,
    VirtualClock,
    open_actor_system,
)


def drain(subscription: Subscription) -> list[object]:
    """Every payload buffered in ``subscription``, oldest first, without waiting."""
    payloads: list[object] = []
    while (event := subscription.receive_nowait()) is not None:
        payloads.append(event.payload)
    return payloads


# --------------------------------------------------------------------------------------------
# Patterns and topics


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.b", "a.b.c", False),
        ("a.b.c", "a.x.c", False),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*.c", "a.b.b.c", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*.*", "a.b", True),
        ("a.#", "a", True),
        ("a.#", "a.b", True),
        ("a.#", "a.b.c.d", True),
        ("a.#", "b.a", False),
        ("#", "a", True),
        ("#", "a.b.c", True),
        ("#.c", "c", True),
        ("#.c", "a.b.c", True),
        ("#.c", "a.b.c.d", False),
        ("a.#.d", "a.d", True),
        ("a.#.d", "a.b.c.d", True),
        ("a.#.d", "a.b.c", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
        ("a.*.#", "a.b.c.d", True),
        ("transition.*.i-42", "transition.instance.i-42", True),
        ("transition.*.i-42", "transition.instance.i-4", False),
    ],
)
def test_pattern_matching(pattern: str, topic: str, matches: bool) -> None:
    """`*` matches exactly one word, `#` zero or more words, other words match exactly."""
    bus = EventBus()
    subscription = bus.subscribe(pattern)
    assert bus.publish(topic, "payload") == int(matches)
    assert drain(subscription) == (["payload"] if matches else [])


@pytest.mark.parametrize("pattern", ["", "a..b", ".a", "a.", "a.b*", "a#", "#a.b", "a b", 5, None])
def test_invalid_pattern_is_refused(pattern: object) -> None:
    """A pattern that is not dot-separated words, `*` or `#` raises InvalidArgument."""
    bus = EventBus()
    with pytest.raises(InvalidArgument, match=r"^pattern: expected ") as info:
        bus.subscribe(pattern)  # type: ignore[arg-type]
    assert info.value.got == pattern
    assert bus.statistics().subscriptions == 0


@pytest.mark.parametrize(
    "topic", ["", "a.*", "a.#", "#", "a..b", ".a", "a.", "a b", None, 42, ["a", "b"]]
)
def test_invalid_topic_is_refused(topic: object) -> None:
    """Publishing to a topic that is not dot-separated words raises InvalidArgument."""
    bus = EventBus()
    bus.subscribe("#")
    with pytest.raises(
        InvalidArgument, match=r"^topic: expected a non-empty topic without wildcards, got "
    ):
        bus.publish(topic, "payload")  # type: ignore[arg-type]
    assert bus.statistics().published == 0


# --------------------------------------------------------------------------------------------
# Publishing


def test_publish_returns_the_number_of_matching_subscriptions() -> None:
    """publish() returns how many subscriptions matched, and every match gets the event."""
    bus = EventBus()
    everything = bus.subscribe("#")
    instances = bus.subscribe("instance.*")
    one = bus.subscribe("instance.i-1")
    hosts = bus.subscribe("host.#")

    assert bus.publish("instance.i-1", 1) == 3
    assert bus.publish("instance.i-2", 2) == 2
    assert bus.publish("lease.l-1", 3) == 1

    assert drain(everything) == [1, 2, 3]
    assert drain(instances) == [1, 2]
    assert drain(one) == [1]
    assert drain(hosts) == []


def test_publish_with_no_subscriber_returns_zero_and_counts() -> None:
    """An event nobody subscribed to is counted as published and matches nothing."""
    bus = EventBus()
    assert bus.publish("instance.i-1", "payload") == 0
    assert bus.statistics().published == 1
    assert bus.statistics().delivered == 0


def test_event_carries_topic_and_the_payload_object() -> None:
    """A received Event has the published topic and the very payload object."""
    bus = EventBus()
    subscription = bus.subscribe("instance.*")
    payload = {"state": "active"}
    bus.publish("instance.i-1", payload)
    event = subscription.receive_nowait()
    assert event == Event("instance.i-1", payload)
    assert event is not None
    assert event.payload is payload


def test_new_subscription_sees_a_topic_published_before() -> None:
    """Subscribing after a topic was routed once still delivers its later events."""
    bus = EventBus()
    early = bus.subscribe("instance.*")
    assert bus.publish("instance.i-1", 1) == 1
    late = bus.subscribe("instance.i-1")
    assert bus.publish("instance.i-1", 2) == 2
    assert drain(early) == [1, 2]
    assert drain(late) == [2]


async def test_slow_subscriber_never_blocks_the_publisher() -> None:
    """Publishing 10x a reader's buffer completes synchronously; a fast reader gets it all."""
    bus = EventBus()
    slow = bus.subscribe("work.#", buffer=4)
    fast = bus.subscribe("work.#", buffer=40)

    counts = [bus.publish("work.item", n) for n in range(40)]  # no await: it cannot wait

    assert counts == [2] * 40
    assert drain(fast) == list(range(40))
    assert drain(slow) == [36, 37, 38, 39]
    assert (slow.dropped, fast.dropped) == (36, 0)


# --------------------------------------------------------------------------------------------
# Overflow


def test_drop_oldest_keeps_the_newest_events() -> None:
    """With DROP_OLDEST a full buffer loses its oldest event; the losses are counted."""
    bus = EventBus()
    subscription = bus.subscribe("tick", buffer=3, overflow=Overflow.DROP_OLDEST)
    for n in range(10):
        bus.publish("tick", n)

    assert drain(subscription) == [7, 8, 9]
    assert subscription.dropped == 7
    assert subscription.delivered == 10
    assert bus.statistics() == BusStatistics(subscriptions=1, published=10, delivered=10, dropped=7)


def test_drop_newest_keeps_the_unbroken_prefix() -> None:
    """With DROP_NEWEST a full buffer refuses incoming events; the losses are counted."""
    bus = EventBus()
    subscription = bus.subscribe("tick", buffer=3, overflow=Overflow.DROP_NEWEST)
    for n in range(10):
        bus.publish("tick", n)

    assert drain(subscription) == [0, 1, 2]
    assert subscription.dropped == 7
    assert subscription.delivered == 3
    stats = bus.statistics()
    assert (stats.published, stats.delivered, stats.dropped) == (10, 3, 7)


def test_default_overflow_is_drop_oldest() -> None:
    """A subscription without an overflow policy keeps the newest events."""
    bus = EventBus()
    subscription = bus.subscribe("tick", buffer=2)
    for n in range(5):
        bus.publish("tick", n)
    assert drain(subscription) == [3, 4]


def test_bus_dropped_sums_every_subscription() -> None:
    """The bus counts the drops of all its subscriptions together."""
    bus = EventBus()
    oldest = bus.subscribe("tick", buffer=1, overflow=Overflow.DROP_OLDEST)
    newest = bus.subscribe("tick", buffer=2, overflow=Overflow.DROP_NEWEST)
    roomy = bus.subscribe("tick", buffer=100)
    for n in range(6):
        bus.publish("tick", n)
    assert (oldest.dropped, newest.dropped, roomy.dropped) == (5, 4, 0)
    assert bus.statistics().dropped == 9


def test_reading_makes_room_again() -> None:
    """Events read from a full buffer free room, so later events are kept again."""
    bus = EventBus()
    subscription = bus.subscribe("tick", buffer=2, overflow=Overflow.DROP_NEWEST)
    bus.publish("tick", 1)
    bus.publish("tick", 2)
    bus.publish("tick", 3)  # dropped
    assert drain(subscription) == [1, 2]
    bus.publish("tick", 4)
    assert drain(subscription) == [4]
    assert subscription.dropped == 1


def test_delivered_count_never_goes_down() -> None:
    """Closing a subscription does not take its deliveries out of the bus counters."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    bus.publish("tick", 1)
    assert bus.statistics().delivered == 1
    subscription.close()
    assert bus.statistics().delivered == 1


@pytest.mark.parametrize("buffer", [0, -1, True, 1.5, "10", None])
def test_bad_buffer_is_refused(buffer: object) -> None:
    """A buffer that is not an int >= 1 raises InvalidArgument."""
    bus = EventBus()
    with pytest.raises(InvalidArgument, match=r"^buffer: expected an int >= 1, got "):
        bus.subscribe("tick", buffer=buffer)  # type: ignore[arg-type]
    assert bus.statistics().subscriptions == 0


@pytest.mark.parametrize("overflow", ["drop_oldest", None, 1])
def test_bad_overflow_is_refused(overflow: object) -> None:
    """An overflow that is not an Overflow member raises InvalidArgument."""
    bus = EventBus()
    with pytest.raises(InvalidArgument, match=r"^overflow: expected an Overflow, got "):
        bus.subscribe("tick", overflow=overflow)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Receiving and closing


@pytest.mark.virtual_time
async def test_receive_waits_for_an_event() -> None:
    """receive() suspends until an event is published, then returns it."""
    bus = EventBus()
    subscription = bus.subscribe("instance.*")
    receiver = asyncio.create_task(subscription.receive())
    await asyncio.sleep(1)
    assert not receiver.done()

    bus.publish("instance.i-1", "payload")
    event = await asyncio.wait_for(receiver, timeout=1)
    assert event == Event("instance.i-1", "payload")


def test_receive_nowait_returns_none_while_empty() -> None:
    """receive_nowait() on an open, empty subscription returns None."""
    subscription = EventBus().subscribe("tick")
    assert subscription.receive_nowait() is None


@pytest.mark.virtual_time
async def test_async_iteration_ends_after_close() -> None:
    """`async for` yields the events in order and stops once the subscription is closed."""
    bus = EventBus()
    subscription = bus.subscribe("tick")

    async def collect() -> list[object]:
        return [event.payload async for event in subscription]

    consumer = asyncio.create_task(collect())
    for n in range(3):
        bus.publish("tick", n)
        await asyncio.sleep(0)
    subscription.close()
    assert await asyncio.wait_for(consumer, timeout=1) == [0, 1, 2]


def test_buffered_events_are_readable_after_close() -> None:
    """Closing keeps the buffered events; once drained, receive_nowait raises."""
    bus = EventBus()
    subscription = bus.subscribe("tick.#")
    bus.publish("tick.a", 1)
    bus.publish("tick.b", 2)
    subscription.close()

    assert drain_until_closed(subscription) == [1, 2]
    with pytest.raises(SubscriptionClosed, match=r"^subscription to 'tick\.#' is closed$") as info:
        subscription.receive_nowait()
    assert info.value.pattern == "tick.#"


def drain_until_closed(subscription: Subscription) -> list[object]:
    """Read a closed subscription's buffer until it raises SubscriptionClosed."""
    payloads: list[object] = []
    while True:
        try:
            event = subscription.receive_nowait()
        except SubscriptionClosed:
            return payloads
        assert event is not None, "a closed subscription never returns None"
        payloads.append(event.payload)


@pytest.mark.virtual_time
async def test_receive_after_close_raises_once_drained() -> None:
    """receive() returns the buffered events after close, then raises SubscriptionClosed."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    bus.publish("tick", 1)
    subscription.close()
    assert (await subscription.receive()).payload == 1
    with pytest.raises(SubscriptionClosed, match=r"'tick' is closed"):
        await subscription.receive()


@pytest.mark.virtual_time
async def test_close_wakes_a_waiting_receiver() -> None:
    """A receive() waiting on an empty subscription raises SubscriptionClosed on close."""
    subscription = EventBus().subscribe("tick")
    receiver = asyncio.create_task(subscription.receive())
    await asyncio.sleep(1)
    subscription.close()
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(receiver, timeout=1)


@pytest.mark.virtual_time
async def test_concurrent_receivers_share_events_and_all_end_on_close() -> None:
    """Each event wakes one of several waiting receivers; close() ends all the others."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    receivers = [asyncio.create_task(subscription.receive()) for _ in range(3)]
    await asyncio.sleep(1)
    bus.publish("tick", 1)
    bus.publish("tick", 2)
    await asyncio.sleep(1)
    subscription.close()
    _, pending = await asyncio.wait(receivers, timeout=10)
    for task in pending:
        task.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    assert not pending, "a receiver waited forever on a closed subscription"
    got = sorted(task.result().payload for task in receivers if task.exception() is None)
    closed = [t for t in receivers if isinstance(t.exception(), SubscriptionClosed)]
    assert (got, len(closed)) == ([1, 2], 1)


@pytest.mark.virtual_time
async def test_cancelled_receiver_passes_its_wakeup_on() -> None:
    """A receiver cancelled after an event woke it leaves that event to another receiver."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    woken = asyncio.create_task(subscription.receive())
    other = asyncio.create_task(subscription.receive())
    await asyncio.sleep(1)
    bus.publish("tick", 1)  # wakes `woken`, which leaves before it runs
    woken.cancel()
    done, _ = await asyncio.wait({other}, timeout=10)
    other.cancel()
    await asyncio.gather(woken, other, return_exceptions=True)
    assert done == {other}, "the event stayed buffered while a receiver was waiting"
    assert other.result().payload == 1


def test_unsubscribe_stops_delivery() -> None:
    """A closed subscription no longer matches, and the bus forgets it."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    other = bus.subscribe("tick")
    assert bus.publish("tick", 1) == 2
    subscription.close()
    assert subscription.closed
    assert bus.publish("tick", 2) == 1
    assert bus.statistics().subscriptions == 1
    assert drain_until_closed(subscription) == [1]
    assert drain(other) == [1, 2]


def test_close_is_idempotent() -> None:
    """Closing a subscription twice is harmless."""
    bus = EventBus()
    subscription = bus.subscribe("tick")
    subscription.close()
    subscription.close()
    assert bus.statistics().subscriptions == 0


def test_with_block_closes_the_subscription() -> None:
    """Leaving a subscription's `with` block unsubscribes it."""
    bus = EventBus()
    with bus.subscribe("tick") as subscription:
        assert bus.publish("tick", 1) == 1
    assert subscription.closed
    assert bus.publish("tick", 2) == 0


def test_bus_close_closes_every_subscription() -> None:
    """EventBus.close() closes all its subscriptions."""
    bus = EventBus()
    subscriptions = [bus.subscribe("a"), bus.subscribe("b.#"), bus.subscribe("#")]
    bus.close()
    assert all(s.closed for s in subscriptions)
    assert bus.statistics().subscriptions == 0


# --------------------------------------------------------------------------------------------
# The actor system's bus


@pytest.mark.virtual_time
async def test_system_bus_counts_drops_in_system_statistics() -> None:
    """Events lost on system.bus show up in system.statistics().bus_dropped."""
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with open_actor_system(env=env) as system:
        newest = system.bus.subscribe("alarm.*", buffer=2, overflow=Overflow.DROP_NEWEST)
        oldest = system.bus.subscribe("alarm.#", buffer=1)
        for n in range(5):
            assert system.bus.publish(f"alarm.a{n}", n) == 2
        assert drain(newest) == [0, 1]
        assert drain(oldest) == [4]
        assert system.statistics().bus_dropped == 3 + 4
        assert system.bus.statistics().dropped == 7


@pytest.mark.virtual_time
async def test_system_close_ends_bus_subscriptions() -> None:
    """Closing the actor system closes its bus, which ends subscribers' iteration."""
    env = Environment(clock=VirtualClock.current(), seed=1)
    async with open_actor_system(env=env) as system:
        subscription = system.bus.subscribe("tick")

        async def collect() -> list[object]:
            return [event.payload async for event in subscription]

        consumer = asyncio.create_task(collect())
        system.bus.publish("tick", "last")
        await asyncio.sleep(0)
    assert subscription.closed
    assert await asyncio.wait_for(consumer, timeout=1) == ["last"]

"""Publish/subscribe by topic pattern, where a slow subscriber never blocks a publisher.

Topics are dot-separated words (``instance.i-42.transition``). A pattern matches topics word by
word: ``*`` stands for exactly one word, ``#`` for zero or more (as in AMQP topic exchanges).

Every subscription has a bounded buffer. :meth:`EventBus.publish` never waits: when a buffer is
full, the subscription's :class:`Overflow` policy decides which event is lost, and the loss is
counted on the subscription and on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._errors import InvalidArgument, SubscriptionClosed

__all__ = ("Event", "EventBus", "Overflow", "Subscription", "BusStatistics")

_WORD = re.compile(r"[^.*#\s]+")
_TOPIC = "a non-empty topic without wildcards"
_TOPIC_FORM = re.compile(r"[^.*#\s]+(?:\.[^.*#\s]+)*")


class Overflow(enum.Enum):
    """What a full subscription buffer does with one more event."""

    #: Drop the oldest buffered event to make room: a subscriber sees the latest news.
    DROP_OLDEST = "drop_oldest"
    #: Drop the incoming event: a subscriber sees an unbroken prefix.
    DROP_NEWEST = "drop_newest"


@dataclass(frozen=True, slots=True)
class Event:
    """One published event: its topic and its payload."""

    topic: str
    payload: Any


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """Counters of an :class:`EventBus`."""

    subscriptions: int
    published: int
    delivered: int
    dropped: int


def _parse(pattern: str) -> tuple[str, ...]:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidArgument("pattern", expected="a non-empty topic pattern", got=pattern)
    words = tuple(pattern.split("."))
    for word in words:
        if word not in ("*", "#") and not _WORD.fullmatch(word):
            raise InvalidArgument(
                "pattern",
                expected="dot-separated words, `*` (one word) or `#` (any number of words)",
                got=pattern,
            )
    return words


def _matches(pattern: tuple[str, ...], topic: list[str]) -> bool:
    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(topic)
        word = pattern[i]
        if word == "#":
            return any(match(i + 1, k) for k in range(j, len(topic) + 1))
        return j < len(topic) and word in ("*", topic[j]) and match(i + 1, j + 1)

    return match(0, 0)


class Subscription:
    """A bounded stream of the events whose topic matches :attr:`pattern`.

    Use it as an async iterator, or call :meth:`receive`. Close it (or leave its ``with``
    block) to stop receiving.
    """

    def __init__(self, bus: EventBus, pattern: str, buffer: int, overflow: Overflow) -> None:
        self._bus = bus
        self.pattern = pattern
        self._words = _parse(pattern)
        self._buffer: deque[Event] = deque()
        self._capacity = buffer
        self._overflow = overflow
        # Tasks waiting in receive(); each event wakes one, closing wakes all.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        #: Events handed to this subscription.
        self.delivered = 0
        #: Events lost to overflow.
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            self._bus._dropped += 1
            if self._overflow is Overflow.DROP_NEWEST:
                return
            self._buffer.popleft()
        self._buffer.append(event)
        self.delivered += 1
        self._bus._delivered += 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def receive_nowait(self) -> Event | None:
        """The next buffered event, or None when there is none yet.

        Raises:
            SubscriptionClosed: the subscription is closed and its buffer is empty.
        """
        if self._buffer:
            return self._buffer.popleft()
        if self.closed:
            raise SubscriptionClosed(self.pattern)
        return None

    async def receive(self) -> Event:
        """Wait for the next event.

        Raises:
            SubscriptionClosed: the subscription is closed and its buffer is empty.
        """
        while True:
            event = self.receive_nowait()
            if event is not None:
                return event
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken but are leaving: pass the turn on
                raise
            finally:
                if not waiter.done() or waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)

    def close(self) -> None:
        """Stop receiving; events already buffered can still be read."""
        if self.closed:
            return
        self.closed = True
        self._bus._unsubscribe(self)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Subscription({self.pattern!r}, buffered={len(self._buffer)}, "
            f"dropped={self.dropped}, closed={self.closed})"
        )


class EventBus:
    """Topic-based publish/subscribe inside one actor system."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        # topic -> matching subscriptions; cleared whenever the subscriptions change.
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    def subscribe(
        self, pattern: str, *, buffer: int = 1000, overflow: Overflow = Overflow.DROP_OLDEST
    ) -> Subscription:
        """Subscribe to every topic matching ``pattern``.

        Args:
            pattern: dot-separated words; ``*`` matches one word, ``#`` any number.
            buffer: events kept for a subscriber that has not read them yet.
            overflow: which event to lose when the buffer is full.
        """
        if not isinstance(buffer, int) or isinstance(buffer, bool) or buffer < 1:
            raise InvalidArgument("buffer", expected="an int >= 1", got=buffer)
        if not isinstance(overflow, Overflow):
            raise InvalidArgument("overflow", expected="an Overflow", got=overflow)
        subscription = Subscription(self, pattern, buffer, overflow)
        self._subscriptions.append(subscription)
        self._routes.clear()
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        self._routes.clear()

    def publish(self, topic: str, payload: Any) -> int:
        """Hand ``payload`` to every matching subscription, never waiting.

        Returns:
            How many subscriptions matched.
        """
        if not isinstance(topic, str) or not _TOPIC_FORM.fullmatch(topic):
            raise InvalidArgument("topic", expected=_TOPIC, got=topic)
        return self._emit(topic, payload)

    def _emit(self, topic: str, payload: Any) -> int:
        """Publish a topic that is known to be valid (the runtime builds its own)."""
        self._published += 1
        if not self._subscriptions:
            return 0  # skip routing, which would miss its cache on every resource id
        route = self._routes.get(topic)
        if route is None:
            words = topic.split(".")
            route = tuple(s for s in self._subscriptions if _matches(s._words, words))
            if len(self._routes) >= 10_000:
                self._routes.clear()  # bound the cache; topics can carry resource ids
            self._routes[topic] = route
        if route:
            event = Event(topic, payload)
            for subscription in route:
                subscription._offer(event)
        return len(route)

    def statistics(self) -> BusStatistics:
        """Counters: subscriptions, events published, delivered and dropped."""
        return BusStatistics(
            subscriptions=len(self._subscriptions),
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
        )

    def close(self) -> None:
        """Close every subscription."""
        for subscription in list(self._subscriptions):
            subscription.close()

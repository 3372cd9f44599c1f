"""Pins the reply types of ``ActorRef.ask``: mypy checks this file, pytest does not run it.

Each ``assert_type`` is a positive case. Each ``# type: ignore[code]`` marks a call that must
stay an error: mypy's ``warn_unused_ignores`` (on under ``strict``) fails this file the day the
error disappears.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_type

from stateward.runtime import (
    DEFAULT,
    Actor,
    ActorContext,
    ActorRef,
    ActorSystem,
    DriveTo,
    Fire,
    Request,
    TransitionRecord,
)


@dataclass(frozen=True, slots=True)
class Ping(Request[int]):
    """A user's request whose reply is an int."""

    times: int = 1


@dataclass(frozen=True, slots=True)
class LoudPing(Ping):
    """A request that inherits its reply type from its base."""


class Pinger(Actor):
    """An actor that answers :class:`Ping`."""

    async def receive(self, message: Any) -> Any:
        """Reply to a ping with its count."""
        assert isinstance(message, Ping)
        return message.times


async def fsm_commands(ref: ActorRef) -> None:
    """Fire replies with a TransitionRecord, DriveTo with a tuple of them."""
    assert_type(await ref.ask(Fire("start")), TransitionRecord)
    assert_type(await ref.ask(Fire("start", payload={"n": 1}, task_id="t-1")), TransitionRecord)
    assert_type(await ref.ask(Fire("start"), timeout=2.5), TransitionRecord)
    assert_type(await ref.ask(Fire("start"), timeout=DEFAULT), TransitionRecord)
    assert_type(await ref.ask(DriveTo("running")), tuple[TransitionRecord, ...])
    assert_type(await ref.ask(DriveTo("running"), timeout=1), tuple[TransitionRecord, ...])


async def plain_messages(ref: ActorRef) -> None:
    """An event name or any other object can still be asked; its reply is Any."""
    assert_type(await ref.ask("start"), Any)
    assert_type(await ref.ask(None), Any)
    assert_type(await ref.ask(object(), timeout=1.0), Any)
    assert_type(await ref.ask(("a", 1)), Any)


async def user_requests(system: ActorSystem) -> None:
    """A user's Request[R] types its reply R, inherited by subclasses."""
    ref = system.spawn(Pinger, address="pinger")
    assert_type(ref, ActorRef)
    assert_type(await ref.ask(Ping(3)), int)
    assert_type(await ref.ask(LoudPing()), int)
    assert_type(await system.lookup("pinger").ask(Ping()), int)


async def requests_are_covariant(ref: ActorRef, request: Request[bool]) -> None:
    """A Request[bool] is a Request[int]: its reply is an int too."""
    wider: Request[int] = request
    assert_type(await ref.ask(wider), int)
    assert_type(await ref.ask(request), bool)


async def tells_and_later_asks(ref: ActorRef, context: ActorContext) -> None:
    """tell and ask_later take requests and plain messages alike and return None."""
    assert_type(await ref.tell(Fire("start")), None)
    assert_type(ref.tell_nowait(DriveTo("running")), None)
    assert_type(await ref.tell("start"), None)
    assert_type(context.ask_later(ref, Ping(), tag="ping"), None)


async def wrong_uses(ref: ActorRef) -> None:
    """Each line is a type error mypy must keep reporting."""
    name: str = await ref.ask(Fire("start"))  # type: ignore[assignment]
    records: list[TransitionRecord] = await ref.ask(DriveTo("up"))  # type: ignore[assignment]
    count: str = await ref.ask(Ping())  # type: ignore[assignment]
    await ref.ask(Fire("start"), timeout="soon")  # type: ignore[call-overload]
    await ref.ask(Fire("start"), 1.0)  # type: ignore[call-overload]
    await ref.ask("start", timeout=None)  # type: ignore[call-overload]
    Fire(3)  # type: ignore[arg-type]
    DriveTo("up").goal = "down"  # type: ignore[misc]
    del name, records, count

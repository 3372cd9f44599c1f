"""Requests that name the type of their reply.

A message class that derives from ``Request[R]`` tells the type checker what
:meth:`~stateward.runtime.ActorRef.ask` returns for it::

    @dataclass(frozen=True, slots=True)
    class GetHost(Request[HostStatus]):
        host_id: str

    status = await ref.ask(GetHost("h-1"))  # HostStatus to mypy

The base is for the type checker only: it has no fields, no ``__init__`` and empty
``__slots__``, so a slotted message stays slotted and building or sending one costs what it did
without the base. The runtime never looks at it; the actor that handles the message is what
makes the promise true. Any other message (an event name, any object) can still be asked, and
its reply is typed ``Any``.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ("Request",)

#: The type of the reply to a request.
R_co = TypeVar("R_co", covariant=True)


class Request(Generic[R_co]):
    """Base of a message whose reply to :meth:`~stateward.runtime.ActorRef.ask` is ``R_co``."""

    __slots__ = ()


class ReplyTypeMismatch:
    """What mypy says ``ask`` returns when a request's reply is used as another type.

    Never built. A variable annotated ``str`` that receives the reply to a ``Request[int]``
    would otherwise match ``ask``'s overload for plain messages and be typed ``Any``, hiding the
    mistake; this type makes mypy report "expression has type ReplyTypeMismatch" there instead.
    """

    __slots__ = ()

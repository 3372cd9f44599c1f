"""Checks of values that cross into the store, shared by every layer of the runtime.

A value reaches SQLite (or msgpack) only once it has passed these: text is an exact ``str``
of valid Unicode, integers fit the database's 64-bit columns, times are finite. A value that
fails raises :class:`~stateward.runtime.InvalidArgument` naming the parameter, so one bad
value is refused alone at the boundary instead of failing a whole transaction later.
"""

from __future__ import annotations

import math

from ._errors import InvalidArgument

__all__ = ()  # used by the runtime's modules; nothing here is public API

#: The largest integer a database column (SQLite's or PostgreSQL's bigint) holds.
INT64_MAX = 2**63 - 1


def text_problem(value: object) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    if type(value) is not str:
        return "a str"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "a str of valid Unicode (it has a lone surrogate)"
    return None


def check_text(name: str, value: object, *, optional: bool = False) -> None:
    """Raise InvalidArgument unless ``value`` is storable text (or None when ``optional``)."""
    if value is None and optional:
        return
    problem = text_problem(value)
    if problem is not None:
        raise InvalidArgument(name, expected=problem + (" or None" if optional else ""), got=value)


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """``value`` as an int in ``[minimum, INT64_MAX]``, or InvalidArgument."""
    if type(value) is not int or value < minimum:
        raise InvalidArgument(name, expected=f"an int >= {minimum}", got=value)
    if value > INT64_MAX:
        raise InvalidArgument(name, expected="an int <= 2**63 - 1 (a database bigint)", got=value)
    return value


def check_time(name: str, value: object) -> float:
    """``value`` as a finite float (seconds on the injected clock), or InvalidArgument."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(name, expected="a finite number of seconds", got=value)
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidArgument(name, expected="a finite number of seconds", got=value)
    return seconds


def check_page(limit: object) -> int:
    """A page size: an int from 1 to 2**63 - 1."""
    return check_int("limit", limit, minimum=1)

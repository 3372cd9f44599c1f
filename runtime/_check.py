"""Checks of values that cross into the store, shared by every layer of the runtime.

A value reaches SQLite (or msgpack) only once it has passed these: text is an exact ``str``
of valid Unicode, integers fit the database's 64-bit columns, times are finite. A value that
fails raises :class:`~stateward.runtime.InvalidArgument` naming the parameter, so one bad
value is refused alone at the boundary instead of failing a whole transaction later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def check_page(limit: object) -> int:
    """A page size: an int from 1 to 2**63 - 1."""
    return check_int("limit", limit, minimum=1)


def check_number(name: str, value: object) -> float:
    """``value`` as a float SQLite can compare (infinities included), or InvalidArgument."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            pass
        else:
            if not math.isnan(number):
                return number
    raise InvalidArgument(name, expected="a number of seconds (not NaN)", got=value)


def check_cursor(name: str, value: object, shape: str, *, size: int = 2) -> tuple[float, str]:
    """The (time, key) that start a paging cursor of ``size`` fields, or InvalidArgument."""
    if type(value) is not tuple or len(value) != size:
        raise InvalidArgument(name, expected=f"{shape} or None", got=value)
    key = value[1]
    check_text(f"{name}[1]", key)
    return check_number(f"{name}[0]", value[0]), key


def check_ids(resource_ids: object) -> list[str]:
    """``resource_ids`` as a list of storable ids, or InvalidArgument."""
    if not isinstance(resource_ids, Sequence) or isinstance(resource_ids, str | bytes):
        raise InvalidArgument(
            "resource_ids", expected="a sequence of resource ids (str)", got=resource_ids
        )
    ids = list(resource_ids)
    for resource_id in ids:
        check_text("resource_ids[]", resource_id)
    return ids


# -- the arguments of each store query, checked alike by every store ----------------------


def check_history(resource_id: object, after: object, limit: object) -> None:
    """The arguments of ``Store.history``."""
    check_text("resource_id", resource_id)
    check_int("after", after, minimum=0)
    check_page(limit)


def check_history_between(
    start: object, end: object, after: object, limit: object
) -> tuple[float, float, tuple[float, str, int] | None]:
    """The arguments of ``Store.history_between``: its bounds and cursor, checked."""
    low, high = check_number("start", start), check_number("end", end)
    cursor = None
    if after is not None:
        at, resource_id = check_cursor(
            "after", after, "an (at, resource_id, sequence) tuple", size=3
        )
        assert isinstance(after, tuple)
        cursor = (at, resource_id, check_int("after[2]", after[2], minimum=0))
    check_page(limit)
    return low, high, cursor


def check_documents_query(
    collection: object,
    resource_id: object,
    status: object,
    dedupe: object,
    before: object,
    limit: object,
) -> tuple[float, str] | None:
    """The arguments of ``Store.find_documents``; its cursor, checked."""
    check_text("collection", collection)
    check_text("resource_id", resource_id, optional=True)
    check_text("status", status, optional=True)
    check_text("dedupe", dedupe, optional=True)
    cursor = None
    if before is not None:
        cursor = check_cursor("before", before, "a (created, key) tuple")
    check_page(limit)
    return cursor


def check_resources_query(kind: object, after: object, limit: object) -> None:
    """The arguments of ``Store.resources``."""
    check_text("kind", kind, optional=True)
    check_text("after", after, optional=True)
    check_page(limit)

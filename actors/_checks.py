"""Checks of the arguments the fleet's public API takes.

Each raises :class:`~stateward.runtime.InvalidArgument` naming the argument, what it expected
and what it got, before anything is sent to an actor or committed: a bad argument is refused
at the boundary and never reaches the journal, where it would fail a commit (text that is not
valid Unicode, an int too large for a database column) or be read back as something else.
"""

from __future__ import annotations

import math
import os
import re
from enum import Enum
from pathlib import Path
from typing import TypeVar

from stateward.runtime import InvalidArgument

__all__ = (
    "MAX_INT",
    "MAX_TEXT",
    "check_name",
    "check_text",
    "check_optional_text",
    "check_texts",
    "check_int",
    "check_seconds",
    "check_flag",
    "check_member",
    "check_path",
)

#: The largest int a database column (a 64-bit integer) holds.
MAX_INT = 2**63 - 1
#: The longest text (names, keys, ids) the fleet takes, in characters.
MAX_TEXT = 255

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_NAME_EXPECTED = "letters, digits, '-' and '_' (no dots or spaces)"

E = TypeVar("E", bound=Enum)


def check_name(kind: str, value: object) -> str:
    """A host, instance or group name: letters, digits, ``-`` and ``_``."""
    if type(value) is not str or len(value) > MAX_TEXT or not _NAME.fullmatch(value):
        expected = _NAME_EXPECTED
        if type(value) is str and len(value) > MAX_TEXT:
            expected = f"at most {MAX_TEXT} characters"
        raise InvalidArgument(f"{kind} name", expected=expected, got=value)
    return value


def check_text(name: str, value: object, *, optional: bool = False) -> str:
    """Non-empty text of valid Unicode (no lone surrogates), at most MAX_TEXT characters."""
    either = " or None" if optional else ""
    if type(value) is not str or not value:
        raise InvalidArgument(name, expected=f"a non-empty str{either}", got=value)
    if len(value) > MAX_TEXT:
        raise InvalidArgument(
            name, expected=f"a str of at most {MAX_TEXT} characters{either}", got=value
        )
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgument(
                name,
                expected=f"a str of valid Unicode (it has a lone surrogate){either}",
                got=value,
            ) from None
    return value


def check_optional_text(name: str, value: object) -> str | None:
    """:func:`check_text`, or None."""
    return None if value is None else check_text(name, value, optional=True)


def check_texts(name: str, value: object) -> tuple[str, ...]:
    """A tuple or list of :func:`check_text` values."""
    if not isinstance(value, tuple | list):
        raise InvalidArgument(name, expected="a tuple of str", got=value)
    return tuple(check_text(f"{name}[{n}]", item) for n, item in enumerate(value))


def check_int(name: str, value: object, *, low: int = 0, high: int = MAX_INT) -> int:
    """An int (not a bool) from ``low`` to ``high``."""
    if type(value) is not int or not low <= value <= high:
        top = "2**63 - 1" if high == MAX_INT else str(high)
        raise InvalidArgument(name, expected=f"an int from {low} to {top}", got=value)
    return value


def check_seconds(name: str, value: object) -> float:
    """A finite number of seconds > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(name, expected="seconds > 0 (a finite number)", got=value)
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not 0 < seconds < math.inf:
        raise InvalidArgument(name, expected="seconds > 0 (a finite number)", got=value)
    return seconds


def check_flag(name: str, value: object) -> bool:
    """True or False (not merely truthy)."""
    if not isinstance(value, bool):
        raise InvalidArgument(name, expected="True or False", got=value)
    return value


def check_member(name: str, value: object, kind: type[E]) -> E:
    """A member of the enum ``kind``."""
    if not isinstance(value, kind):
        members = ", ".join(f"{kind.__name__}.{m.name}" for m in kind)
        raise InvalidArgument(name, expected=f"one of {members}", got=value)
    return value


def check_path(name: str, value: object) -> str | Path | None:
    """A filesystem path (a str or an ``os.PathLike`` of str), or None."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise InvalidArgument(name, expected="a str or os.PathLike path, or None", got=value)
    path = os.fspath(value)
    problem = None
    if not isinstance(path, str) or not path:
        problem = "a non-empty str or os.PathLike of str"
    elif "\x00" in path:
        problem = "a path without NUL characters"
    else:
        try:
            os.fsencode(path)
        except UnicodeEncodeError:
            problem = "a path the file system can encode"
    if problem is not None:
        raise InvalidArgument(name, expected=problem, got=value)
    return value if isinstance(value, str | Path) else Path(path)

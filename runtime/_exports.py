"""Exported classes and functions name their package as their module.

A user should read ``stateward.actors.DuplicateName`` in a traceback or a repr, not the private
module that happens to define it; pickle then finds the class by that public path too.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping

from ._errors import InvalidArgument

__all__ = ("set_public_module",)


def set_public_module(namespace: Mapping[str, object]) -> None:
    """Make each class and function a package exports say it lives in that package.

    Call it at the end of the package's ``__init__`` with ``globals()``: every class and
    function named in its ``__all__`` gets the package's ``__name__`` as ``__module__``. Other
    exported values (constants, machines, type aliases) are left alone.

    The string annotations of a class (``from __future__ import annotations``) are evaluated
    first, in the module that defined it: ``typing.get_type_hints`` and msgspec look such
    names up in the namespace of ``__module__``, and the package's namespace holds only the
    public names.

    Args:
        namespace: the package's globals; it must hold ``__name__`` and ``__all__``.

    Raises:
        InvalidArgument: ``namespace`` has no ``__name__`` str or ``__all__`` of bound names.
    """
    package = namespace.get("__name__")
    if not isinstance(package, str):
        raise InvalidArgument(
            "namespace['__name__']", expected="the package's name, a str", got=package
        )
    names = namespace.get("__all__")
    if not (isinstance(names, tuple | list) and all(n in namespace for n in names)):
        raise InvalidArgument(
            "namespace['__all__']", expected="a tuple of names bound in namespace", got=names
        )
    for name in names:
        value = namespace[name]
        if isinstance(value, type):
            _resolve_annotations(value)
            value.__module__ = package
        elif isinstance(value, types.FunctionType):
            value.__module__ = package


def _resolve_annotations(cls: type) -> None:
    """Replace the class's own string annotations by the objects they name.

    A class whose annotations name something imported only for type checkers keeps them as
    they are: they did not resolve before either.
    """
    annotations = inspect.get_annotations(cls)
    if not any(isinstance(value, str) for value in annotations.values()):
        return
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError:
        return
    cls.__annotations__ = {key: hints[key] for key in annotations}

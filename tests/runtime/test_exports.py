"""Tests that each package's public names and its `__all__` agree, and of the exception tree.

After trio's ``_tests/test_exports.py``: a name that is public by accident, or listed but
missing, fails here rather than in a user's code.
"""

from __future__ import annotations

import builtins
import importlib
import pickle
import pkgutil
import re
import subprocess
import sys
import traceback
import types
import typing

import msgspec
import pytest

import stateward.actors
import stateward.bench
import stateward.flows
import stateward.runtime
from stateward.runtime import StatewardError, _errors

PACKAGES = [stateward.runtime, stateward.flows, stateward.actors, stateward.bench]
package_ids = pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
#: The packages whose exported classes and functions name the package as their module.
HOMES = [stateward.runtime, stateward.flows, stateward.actors]


def public_names(package: types.ModuleType) -> set[str]:
    """The non-underscore, non-module names bound in ``package``'s namespace."""
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def exported_definitions() -> list[tuple[str, types.ModuleType, type | types.FunctionType]]:
    """Every class and function of :data:`HOMES`, as ``(package.name, package, value)``."""
    return [
        (f"{package.__name__}.{name}", package, value)
        for package in HOMES
        for name in package.__all__
        if isinstance(value := getattr(package, name), type | types.FunctionType)
    ]


definition_ids = pytest.mark.parametrize(
    ("name", "package", "value"),
    exported_definitions(),
    ids=[name for name, _, _ in exported_definitions()],
)


def exported_exceptions() -> list[tuple[str, type[BaseException]]]:
    """Every exception class any package exports, as ``(package.name, class)``."""
    found = []
    for package in PACKAGES:
        for name in package.__all__:
            value = getattr(package, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found.append((f"{package.__name__}.{name}", value))
    return found


# --------------------------------------------------------------------------------------------
# __all__


@package_ids
def test_all_is_a_tuple_of_str(package: types.ModuleType) -> None:
    """__all__ is a tuple of str, so it cannot be mutated by importers."""
    assert type(package.__all__) is tuple
    assert all(type(name) is str for name in package.__all__)


@package_ids
def test_all_has_no_duplicates(package: types.ModuleType) -> None:
    """No name is listed twice in __all__."""
    duplicates = sorted({n for n in package.__all__ if package.__all__.count(n) > 1})
    assert duplicates == []


@package_ids
def test_every_name_in_all_exists(package: types.ModuleType) -> None:
    """Every name in __all__ is an attribute of the package."""
    missing = sorted(name for name in package.__all__ if not hasattr(package, name))
    assert missing == []


@package_ids
def test_every_public_name_is_in_all(package: types.ModuleType) -> None:
    """Every public, non-module attribute of the package is listed in __all__."""
    unlisted = sorted(public_names(package) - set(package.__all__))
    assert unlisted == []


@package_ids
def test_star_import_gives_exactly_all(package: types.ModuleType) -> None:
    """`from package import *` binds exactly the names of __all__."""
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(package.__all__)


def test_runtime_reexports_every_private_module_export() -> None:
    """Every name a private runtime module lists in its __all__ is exported by the package."""
    package = stateward.runtime
    missing = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name in getattr(module, "__all__", ()):
            if name not in package.__all__:
                missing.append(f"{info.name}.{name}")
            else:
                assert getattr(package, name) is getattr(module, name)
    assert missing == []


# --------------------------------------------------------------------------------------------
# Public paths


def test_exported_definitions_exist() -> None:
    """Classes and functions of every home package are checked (the checks are not vacuous)."""
    names = {name for name, _, _ in exported_definitions()}
    assert {
        "stateward.runtime.ActorRef",
        "stateward.runtime.open_actor_system",
        "stateward.flows.TaskRecord",
        "stateward.actors.DuplicateName",
    } <= names


@definition_ids
def test_exported_definitions_name_their_package_as_module(
    name: str, package: types.ModuleType, value: type | types.FunctionType
) -> None:
    """An exported class or function says it lives in its package, not in a private module."""
    assert value.__module__ == package.__name__, name


@definition_ids
def test_exported_definitions_are_found_at_their_public_path(
    name: str, package: types.ModuleType, value: type | types.FunctionType
) -> None:
    """``__module__`` and ``__qualname__`` lead back to the very object, as pickle needs."""
    found: object = importlib.import_module(value.__module__)
    for part in value.__qualname__.split("."):
        found = getattr(found, part)
    assert found is value, name
    assert f"{value.__module__}.{value.__qualname__}" == name
    if isinstance(value, type):
        assert pickle.loads(pickle.dumps(value)) is value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param(name, value, id=name)
        for name, _, value in exported_definitions()
        if isinstance(value, type)
    ],
)
def test_exported_class_annotations_resolve(name: str, value: type) -> None:
    """Type hints of exported classes still resolve, though their module is the package."""
    typing.get_type_hints(value, include_extras=True)


def test_reprs_and_tracebacks_show_public_paths() -> None:
    """A class's repr and an error's traceback line name the public path."""
    assert repr(stateward.actors.DuplicateName) == "<class 'stateward.actors.DuplicateName'>"
    assert repr(stateward.flows.TaskNotFound) == "<class 'stateward.flows.TaskNotFound'>"
    error = stateward.runtime.InvalidArgument("timeout", expected="a number", got="soon")
    line = traceback.format_exception_only(error)[-1]
    assert line.startswith("stateward.runtime.InvalidArgument: "), line


def test_exported_structs_decode_in_a_fresh_interpreter() -> None:
    """msgspec resolves every exported Struct's fields, before any module built a decoder.

    msgspec evaluates string annotations in the namespace of the class's ``__module__``, once,
    on first use; a fresh interpreter makes sure no earlier use cached the answer.
    """
    structs = [
        name
        for name, _, value in exported_definitions()
        if isinstance(value, type) and issubclass(value, msgspec.Struct)
    ]
    assert "stateward.runtime.TransitionRecord" in structs
    code = (
        "import importlib, msgspec\n"
        f"for path in {structs!r}:\n"
        "    module, _, name = path.rpartition('.')\n"
        "    msgspec.inspect.type_info(getattr(importlib.import_module(module), name))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# The exception tree


def test_exported_exceptions_exist() -> None:
    """The runtime exports its exceptions (so the checks below are not vacuous)."""
    names = {name for name, _ in exported_exceptions()}
    assert "stateward.runtime.StatewardError" in names
    assert "stateward.runtime.InvalidTransition" in names


@pytest.mark.parametrize(("name", "cls"), exported_exceptions(), ids=lambda v: str(v))
def test_every_exported_exception_is_a_stateward_error(name: str, cls: type) -> None:
    """Every exception class any package exports derives from StatewardError."""
    assert issubclass(cls, StatewardError), f"{name} does not derive from StatewardError"


def error_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in the `_errors` module, by name."""
    return {
        name: value
        for name, value in vars(_errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ != builtins.__name__
    }


def drawn_tree() -> list[tuple[int, str, str]]:
    """The tree drawn in `_errors`'s docstring, as ``(depth, class name, rest of line)``."""
    doc = _errors.__doc__
    assert doc is not None
    lines = doc.split("StatewardError\n", 1)[1].split("\n\n", 1)[0].splitlines()
    tree = [(0, "StatewardError", "")]
    for line in lines:
        found = re.fullmatch(r"\s{4}(?P<prefix>[│ ]*)[├└]── (?P<name>\w+)(?P<rest>.*)", line)
        assert found is not None, f"unexpected line in the exception tree: {line!r}"
        tree.append((len(found["prefix"]) // 4 + 1, found["name"], found["rest"]))
    return tree


def test_error_docstring_mentions_every_exception() -> None:
    """The `_errors` docstring names every exception class the module defines."""
    doc = _errors.__doc__
    assert doc is not None
    unmentioned = sorted(n for n in error_classes() if not re.search(rf"\b{n}\b", doc))
    assert unmentioned == []


def test_error_tree_lists_exactly_the_exception_classes() -> None:
    """The drawn tree has one line per exception class of `_errors`, no more, no less."""
    names = [name for _, name, _ in drawn_tree()]
    assert len(names) == len(set(names))
    assert set(names) == set(error_classes())
    assert set(names) == set(_errors.__all__)


def test_error_tree_matches_the_class_hierarchy() -> None:
    """Each class's parent in the drawn tree is its base class, `(also X)` an extra base."""
    classes = error_classes()
    parents: list[str] = []
    for depth, name, rest in drawn_tree():
        del parents[depth:]
        cls = classes[name]
        also = re.search(r"\(also (\w+)\)", rest)
        extra = None
        if also is not None:
            extra = classes.get(also[1]) or getattr(builtins, also[1])
            assert issubclass(cls, extra), name
        if parents:
            stateward_bases = [
                b for b in cls.__bases__ if issubclass(b, StatewardError) and b is not extra
            ]
            assert stateward_bases == [classes[parents[-1]]], name
        parents.append(name)


def test_set_public_module_moves_classes_and_functions_only() -> None:
    """Classes and functions of __all__ get the package's name; their hints still resolve."""
    module = types.ModuleType("stateward_user._private")
    exec(
        "from __future__ import annotations\n"
        "from typing import Any\n"
        "class Point:\n"
        "    x: int\n"
        "    extra: dict[str, Any]\n"
        "def origin() -> Point:\n"
        "    return Point()\n"
        "LIMIT = 3\n",
        vars(module),
    )
    sys.modules[module.__name__] = module
    try:
        namespace = {
            "__name__": "stateward_user",
            "__all__": ("Point", "origin", "LIMIT"),
            "Point": module.Point,
            "origin": module.origin,
            "LIMIT": module.LIMIT,
        }
        stateward.runtime.set_public_module(namespace)
    finally:
        del sys.modules[module.__name__]
    assert module.Point.__module__ == module.origin.__module__ == "stateward_user"
    assert typing.get_type_hints(module.Point) == {"x": int, "extra": dict[str, typing.Any]}


@pytest.mark.parametrize(
    "namespace",
    [
        {"__all__": ()},
        {"__name__": 3, "__all__": ()},
        {"__name__": "pkg"},
        {"__name__": "pkg", "__all__": "name"},
        {"__name__": "pkg", "__all__": ("missing",)},
    ],
)
def test_set_public_module_refuses_a_namespace_without_name_and_all(
    namespace: dict[str, object],
) -> None:
    """A namespace without a str __name__ and an __all__ of bound names is InvalidArgument."""
    with pytest.raises(stateward.runtime.InvalidArgument, match="namespace"):
        stateward.runtime.set_public_module(namespace)

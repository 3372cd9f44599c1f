"""Tests that each package's public names and its `__all__` agree, and of the exception tree.

After trio's ``_tests/test_exports.py``: a name that is public by accident, or listed but
missing, fails here rather than in a user's code.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil
import re
import types

import pytest

import stateward.actors
import stateward.bench
import stateward.flows
import stateward.runtime
from stateward.runtime import StatewardError, _errors

PACKAGES = [stateward.runtime, stateward.flows, stateward.actors, stateward.bench]
package_ids = pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)


def public_names(package: types.ModuleType) -> set[str]:
    """The non-underscore, non-module names bound in ``package``'s namespace."""
    return {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


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
        and value.__module__ == _errors.__name__
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

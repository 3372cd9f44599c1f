"""The distribution's metadata says what the code needs: its dependencies, licence and build."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: The folders installed as the library (the command line's is ``bench``).
LIBRARY = ("stateward", "runtime", "flows", "actors", "sim", "testing")
COMMAND_LINE = ("bench",)
#: The pytest plugin, which only pytest loads: what it imports is the ``testing`` extra.
PLUGIN = Path("testing") / "plugin.py"


def _imported(folders: tuple[str, ...]) -> dict[str, set[Path]]:
    """Top-level names of the modules imported by the files of ``folders``, with the files."""
    found: dict[str, set[Path]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / PLUGIN:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.partition(".")[0], set()).add(path)
    return found


def _dependencies(extra: str | None = None) -> set[str]:
    """The import names of the declared dependencies (distribution names, normalized), or
    of an extra's."""
    project = PYPROJECT["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {
        re.split(r"[<>=!~ \[;]", spec, maxsplit=1)[0].lower().replace("-", "_") for spec in specs
    }


def test_the_pytest_plugin_imports_only_its_extra() -> None:
    """``stateward[testing]`` installs what the pytest plugin imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / PLUGIN).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
    foreign = {n for n in found if n not in sys.stdlib_module_names and n != "stateward"}
    assert foreign == {"pytest"}
    assert foreign <= _dependencies("testing")


def test_every_dependency_is_imported() -> None:
    """Each declared dependency is imported by the library or its command line."""
    imported = _imported(LIBRARY + COMMAND_LINE)
    assert sorted(_dependencies() - set(imported)) == []


#: The extras the library imports when present: each import is guarded, so the library works
#: without them and says which extra to install.
OPTIONAL = ("postgres", "testing")


def test_the_library_imports_only_declared_dependencies() -> None:
    """Every module the library imports is the standard library's, stateward's, declared, or
    an optional extra's."""
    foreign = {
        name
        for name in _imported(LIBRARY)
        if name not in sys.stdlib_module_names and name != "stateward"
    }
    declared = _dependencies().union(*(_dependencies(extra) for extra in OPTIONAL))
    assert sorted(foreign - declared) == []


def test_the_library_works_without_its_optional_extras() -> None:
    """With asyncpg and pytest absent the library imports, and the PostgreSQL store names the
    extra to install instead of failing on an import."""
    blocked = sorted(_dependencies("postgres") | _dependencies("testing"))
    script = f"""
import asyncio, sys
for name in {blocked!r}:
    sys.modules[name] = None
import stateward, stateward.runtime, stateward.testing
from stateward.runtime import StoreUnavailable, open_postgres_store
try:
    asyncio.run(open_postgres_store("postgresql://localhost/db"))
except StoreUnavailable as error:
    print(error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "install stateward[postgres]" in done.stdout


def test_rich_is_imported_only_by_the_command_line() -> None:
    """rich renders the command line's output; the library itself never imports it."""
    users = _imported(LIBRARY + COMMAND_LINE).get("rich", set())
    assert users
    assert (
        sorted(str(p.relative_to(ROOT)) for p in users if p.relative_to(ROOT).parts[0] != "bench")
        == []
    )


def test_licence_and_build_requirements() -> None:
    """The Apache-2.0 expression ships with its text and builds with setuptools >= 77."""
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]

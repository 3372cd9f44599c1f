"""The README's code blocks run as written: each Python block as its own file, copied as is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Seconds one example may take in its own interpreter (imports included).
EXAMPLE_TIMEOUT = 50


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, in order."""
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def run_example(source: str, where: Path, name: str = "example.py") -> list[str]:
    """Run ``source`` as the file ``where/name`` in a fresh interpreter; its stdout lines.

    The interpreter starts in ``where``, so the files an example creates stay there, and
    anything it writes to stderr (a library's stray output, a traceback) fails the test.
    """
    where.mkdir(parents=True, exist_ok=True)
    script = where / name
    script.write_text(source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def python_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    found = blocks("python")
    assert len(found) == 7
    return found


def test_embedding_example_prints_the_refused_delete(
    tmp_path: Path, python_blocks: list[str]
) -> None:
    """The embedding example runs alone and prints the error of a refused transition."""
    lines = run_example(python_blocks[0], tmp_path)
    assert lines[-1] == "srv-1 cannot `delete` in state `running`; allowed: stop"


def test_durable_example_persists_across_two_runs(tmp_path: Path, python_blocks: list[str]) -> None:
    """The durable example runs alone; a second run restores srv-1 from state.db."""
    assert run_example(python_blocks[1], tmp_path) == ["srv-1 at revision 3"]
    assert run_example(python_blocks[1], tmp_path) == ["srv-1 at revision 6"]


def test_flows_example_reverts_the_failed_boot(tmp_path: Path, python_blocks: list[str]) -> None:
    """The flows example runs alone: the claim is released and the fault is recorded."""
    lines = run_example(python_blocks[2], tmp_path)
    assert lines[0] == "released claim-4 because power_on failed"
    assert lines[1].startswith("reverted [('reserve', <StepStatus.REVERTED")
    assert lines[2] == "power_on: no power"
    assert len(lines) == 3


def test_fleet_example_boots_and_deletes(tmp_path: Path, python_blocks: list[str]) -> None:
    """The fleet example runs alone: it boots web-1, is refused a start, and deletes it."""
    assert run_example(python_blocks[3], tmp_path) == [
        "succeeded ['schedule', 'allocate_ports', 'attach_volumes', 'spawn', 'power_on']",
        "active None running h-1 ('port-default-000001',)",
        "['instance.web-1.boot', 'instance.web-1.scheduled', 'instance.web-1.networked', "
        "'instance.web-1.volumes_attached', 'instance.web-1.spawned']",
        "web-1 cannot `start` in state `active`; allowed: stop, reboot, reboot_hard, pause, "
        "suspend, rebuild, delete, migrate, resize, live_migrate, evacuate",
        "deleted Capacity(vcpus=0, ram_mb=0, disk_gb=0) ()",
    ]


def test_durable_and_fleet_examples_run_unchanged_on_postgresql(
    tmp_path: Path, python_blocks: list[str], request: pytest.FixtureRequest
) -> None:
    """The durable and fleet examples, their file name swapped for a PostgreSQL DSN (as the
    README's PostgreSQL section says), print what they print on SQLite."""
    durable = python_blocks[1]
    fleet = python_blocks[3]
    assert 'open_sqlite_store("state.db")' in durable
    assert 'Fleet.open("cloud.db"' in fleet
    dsn = request.getfixturevalue("postgres_database")
    durable = durable.replace('open_sqlite_store("state.db")', f"open_postgres_store({dsn!r})")
    durable = durable.replace("    open_sqlite_store,\n", "    open_postgres_store,\n")
    assert run_example(durable, tmp_path) == ["srv-1 at revision 3"]
    assert run_example(durable, tmp_path) == ["srv-1 at revision 6"]
    on_sqlite = run_example(fleet, tmp_path / "sqlite")
    assert run_example(fleet.replace('"cloud.db"', repr(dsn)), tmp_path / "pg") == on_sqlite


def test_moves_example_resizes_and_confirms(tmp_path: Path, python_blocks: list[str]) -> None:
    """The moves example runs alone: a resize to the other host, confirmed, the source claim
    given up."""
    assert run_example(python_blocks[4], tmp_path) == [
        "resized m1.large 1",
        "resize completed m1.small m1.large",
        "[('h-1', []), ('h-2', ['web-1'])]",
    ]


def test_lease_example_hears_the_heads_up_and_the_end(
    tmp_path: Path, python_blocks: list[str]
) -> None:
    """The lease example reserves two hosts, hears ``starting_soon`` 300 s ahead, boots into
    the lease and hears it end, leaving the instance."""
    assert run_example(python_blocks[5], tmp_path) == [
        "pending ('h-1', 'h-2')",
        "lease.batch.starting_soon -300.0",
        "True",
        "lease.batch.ended ['job-1']",
        "['create', 'created', 'starting_soon', 'start', 'started', 'ending_soon', 'end', 'ended']",
    ]


def test_simulator_example_finds_the_bug_planted_in_its_own_code(
    tmp_path: Path, python_blocks: list[str]
) -> None:
    """The simulator example runs alone: the careful bank holds under crashes, the careless
    one loses or makes money, and the failing seed comes with the line that reruns it."""
    lines = run_example(python_blocks[6], tmp_path)
    assert lines[0] == "careful=True: 0 of 10 seeds failed"
    failed = re.fullmatch(r"careful=False: (\d+) of 10 seeds failed", lines[1])
    assert failed is not None
    assert int(failed[1]) > 0
    assert lines[2].startswith("Violation(invariant='money is conserved', detail='after ")
    assert "the wallets hold" in lines[2]
    assert lines[3].startswith("stateward.sim.simulate(Bank, SimConfig(seed=")
    assert len(lines) == 4


def test_readme_install_commands_are_what_ci_runs() -> None:
    """Each editable install the README's shell blocks give is the one .ci/run makes."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace(" --quiet", "")
    installs = [
        re.sub(r"^.*?(pip install .*?)(?: &&.*)?$", r"\1", line)
        for block in blocks("sh")
        for line in block.splitlines()
        if "pip install -e" in line
    ]
    assert installs
    for install in installs:
        assert install in ci, install

"""The ``stateward`` command line, run in-process through ``main``."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import re
import signal
import subprocess
import sys
import tempfile
from importlib import metadata
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stateward
from stateward.bench import _cli as cli
from stateward.bench import main
from stateward.runtime import FSMActor, InvalidArgument, open_actor_system, open_sqlite_store

HELPERS = "bench_cli_machines"
CONTRACT_KEYS = {
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "higher_is_better",
}


@pytest.fixture(autouse=True)
def _helpers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the helper module of this folder importable by its bare name."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_diagram_prints_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    """`diagram MODULE:NAME` prints the machine's Mermaid rendering and exits 0."""
    assert main(["diagram", f"{HELPERS}:LIGHT"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stateDiagram-v2\n")
    assert "    [*] --> off\n" in out
    assert "    on --> broken: burn_out\n" in out


def test_diagram_prints_dot(capsys: pytest.CaptureFixture[str]) -> None:
    """`--format dot` prints the Graphviz rendering."""
    assert main(["diagram", f"{HELPERS}:LIGHT", "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "light" {\n')
    assert '"on" -> "broken" [label="burn_out"];' in out


def test_diagram_follows_dotted_attribute(capsys: pytest.CaptureFixture[str]) -> None:
    """NAME may be a dotted path of attributes inside the module."""
    assert main(["diagram", f"{HELPERS}:Holder.light"]) == 0
    assert capsys.readouterr().out.startswith("stateDiagram-v2\n")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "no_colon_here",
            "expected MODULE:NAME such as `mypkg.machines:INSTANCE`, got 'no_colon_here'",
        ),
        (":LIGHT", "expected MODULE:NAME"),
        (f"{HELPERS}:", "expected MODULE:NAME"),
        (
            "stateward_no_such_module:M",
            "cannot import module 'stateward_no_such_module': "
            "no module named 'stateward_no_such_module'",
        ),
        (f"{HELPERS}:MISSING", f"module '{HELPERS}' has no attribute 'MISSING'"),
        (f"{HELPERS}:Holder.nope", f"{HELPERS}:Holder has no attribute 'nope'"),
        (
            f"{HELPERS}:NOT_A_MACHINE",
            f"{HELPERS}:NOT_A_MACHINE is a dict, expected a stateward.runtime.Machine",
        ),
    ],
)
def test_diagram_bad_spec_is_usage_error(
    spec: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed spec, missing module or attribute, or a non-Machine exits 2 and says so."""
    assert main(["diagram", spec]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "stateward diagram: error: " in captured.err
    assert message in captured.err


def test_diagram_rejects_unknown_format(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --format is rejected by argparse with exit 2."""
    assert main(["diagram", f"{HELPERS}:LIGHT", "--format", "svg"]) == 2
    assert "invalid choice: 'svg'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["frobnicate"]])
def test_missing_or_unknown_command_is_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """No subcommand, or an unknown one, exits 2 with argparse's message."""
    assert main(argv) == 2
    assert "stateward: error:" in capsys.readouterr().err


def test_bench_only_glob_matching_nothing_is_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--only` with a glob that matches no row exits 2, naming the glob and the rows."""
    assert main(["bench", "--quick", "--only", "actor.*", "nosuch.*"]) == 2
    err = capsys.readouterr().err
    assert "stateward bench: error: --only: expected a glob matching at least one of" in err
    assert "actor.tell" in err
    assert "got 'nosuch.*'" in err


def test_bench_quick_and_sizes_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """`--quick` with the hidden `--sizes` is a usage error rather than a silent choice."""
    assert main(["bench", "--quick", "--sizes", "tiny"]) == 2
    assert "--quick and --sizes are exclusive" in capsys.readouterr().err


def test_bench_json_directory_must_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` into a missing directory fails before any row runs."""
    assert main(["bench", "--json", str(tmp_path / "nope" / "b.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _check_contract(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"python", "machine", "results", "settings"}
    assert data["settings"] == {"loop": "asyncio", "gc": "default"}
    assert isinstance(data["python"], str)
    assert isinstance(data["machine"], str)
    results: list[dict[str, object]] = data["results"]
    for result in results:
        assert set(result) >= CONTRACT_KEYS
        assert isinstance(result["ratio"], float)
        assert result["ratio"] > 0
        assert isinstance(result["higher_is_better"], bool)
    return results


def test_bench_quick_fsm_transition_writes_contract_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench --quick --only fsm.transition --json` writes the contract with one result."""
    path = tmp_path / "b.json"
    assert main(["bench", "--quick", "--only", "fsm.transition", "--json", str(path)]) == 0
    results = _check_contract(path)
    assert [r["name"] for r in results] == ["fsm.transition"]
    assert results[0]["unit"] == "transition/s"
    assert results[0]["higher_is_better"] is True
    assert "fsm.transition" in capsys.readouterr().out


def test_bench_every_row_runs_at_tiny_sizes(tmp_path: Path) -> None:
    """Every registered row runs end to end (at tiny sizes) and lands in the JSON or is skipped."""
    path = tmp_path / "b.json"
    assert main(["bench", "--sizes", "tiny", "--json", str(path)]) == 0
    names = [r["name"] for r in _check_contract(path)]
    assert names[:7] == [
        "actor.tell",
        "actor.ask",
        "actor.idle_memory",
        "actor.passivated_memory",
        "actor.spawn",
        "fsm.transition",
        "fsm.actor_transition",
    ]


def test_bench_without_peers_skips_and_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the peers extra, peer rows are skipped with a note and fsm uses the dict floor."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name in {"pykka", "automaton", "dbos"}:
            return None
        return real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    path = tmp_path / "b.json"
    argv = ["bench", "--sizes", "tiny", "--only", "fsm.transition", "peer.*", "--json", str(path)]
    assert main(argv) == 0
    [result] = _check_contract(path)
    assert result["baseline"] == "dict lookup loop"
    assert result["goal"] is None
    assert isinstance(result["details"], dict)
    assert "automaton is not installed" in result["details"]["goal_waived"]
    out = capsys.readouterr().out
    assert "skipped peer.pykka.tell: pykka not importable" in out
    assert "stateward[peers]" in out


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """`bench --help` returns 0 and lists the rows."""
    assert main(["bench", "--help"]) == 0
    assert "actor.idle_memory" in capsys.readouterr().out


def test_diagram_imports_from_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module in the working directory is importable, and sys.path is restored after."""
    name = "stateward_cwd_machines"
    (tmp_path / f"{name}.py").write_text(f"from {HELPERS} import LIGHT as M\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in {"", str(tmp_path)}])
    try:
        assert main(["diagram", f"{name}:M"]) == 0
    finally:
        sys.modules.pop(name, None)
    assert capsys.readouterr().out.startswith("stateDiagram-v2\n")
    assert str(tmp_path) not in sys.path


def test_bench_json_path_that_is_a_directory_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` naming a directory fails before any row runs, instead of after all of them."""
    assert (
        main(["bench", "--sizes", "tiny", "--only", "fsm.transition", "--json", str(tmp_path)]) == 2
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"stateward bench: error: --json: expected the path of a file, not a directory, "
        f"got {str(tmp_path)!r}"
    ) in captured.err


@pytest.mark.parametrize(
    "spec", ["..relative:M", "a..b:M", "has space:M", f"{HELPERS}:a..b", f"{HELPERS}:1x"]
)
def test_diagram_malformed_names_are_usage_errors(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """MODULE and NAME must be dotted Python names: anything else exits 2 and says so."""
    assert main(["diagram", spec]) == 2
    err = capsys.readouterr().err
    assert "stateward diagram: error: expected MODULE:NAME with dotted Python names" in err
    assert f"got {spec!r}" in err


def test_diagram_module_that_exits_on_import_fails_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module that calls sys.exit while imported exits 1 with a message; main returns."""
    name = "stateward_exiting_module"
    (tmp_path / f"{name}.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["diagram", f"{name}:M"]) == 1
    finally:
        sys.modules.pop(name, None)
    assert (
        f"stateward diagram: error: importing {name!r} failed: SystemExit: 3"
        in capsys.readouterr().err
    )


def test_interrupt_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C during a command exits 130 with one line."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_diagram", interrupted)
    assert main(["diagram", f"{HELPERS}:LIGHT"]) == 130
    assert capsys.readouterr().err == "stateward diagram: interrupted\n"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            OSError(28, "No space left on device"),
            "stateward diagram: error: [Errno 28] No space left on device\n",
        ),
        (
            InvalidArgument("x", expected="y", got="z"),
            "stateward diagram: error: x: expected y, got 'z'\n",
        ),
    ],
)
def test_failures_while_running_are_one_line_and_exit_1(
    error: Exception,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An OS error or a stateward error while a command runs is one line, exit 1."""

    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(cli, "_diagram", failing)
    assert main(["diagram", f"{HELPERS}:LIGHT"]) == 1
    assert capsys.readouterr().err == line


# --- conventions of the command line -------------------------------------------------------

#: A simulation far longer than any test waits for: it is still running when interrupted.
ENDLESS_SIMULATION = ["simulate", "--seed", "1", "--duration", "10000000"]
#: Seconds a command is left running before it is interrupted, and then given to end.
RUNNING_FOR = 3.0
ENDING_WITHIN = 30.0


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`stateward --version` prints the installed distribution's version, as __version__ is."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stateward {metadata.version('stateward')}\n"
    assert stateward.__version__ == metadata.version("stateward")


def test_python_m_stateward_is_the_command_line() -> None:
    """`python -m stateward` runs the same command line as the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "stateward", "--version"],
        capture_output=True,
        text=True,
        timeout=ENDING_WITHIN,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"stateward {stateward.__version__}\n",
        "",
    )


def test_bench_json_dash_writes_the_json_alone_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`bench --json -` writes the contract JSON alone to stdout; the table goes to stderr."""
    argv = ["bench", "--sizes", "tiny", "--only", "fsm.transition", "--json", "-"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert [result["name"] for result in data["results"]] == ["fsm.transition"]
    assert "fsm.transition" in captured.err
    assert "written to" not in captured.err


def test_bench_json_file_named_dash_is_written_as_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json ./-` is a file called `-`, not standard output."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--sizes", "tiny", "--only", "fsm.transition", "--json", "./-"]) == 0
    _check_contract(tmp_path / "-")
    assert "results written to ./-" in capsys.readouterr().out


async def _light_database(path: Path) -> None:
    from bench_cli_machines import LIGHT

    class Light(FSMActor):
        machine = LIGHT

    async with open_sqlite_store(path) as store, open_actor_system(store=store) as system:
        await system.spawn(Light, address="light-1").ask("switch_on")


@pytest.mark.parametrize("argv", [["--json"], ["--json", "-"]])
def test_inspect_json_dash_or_no_path_writes_to_stdout(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`inspect DB --json` and `inspect DB --json -` print the same JSON to stdout."""
    db = tmp_path / "state.db"
    asyncio.run(_light_database(db))
    assert main(["inspect", str(db), *argv]) == 0
    captured = capsys.readouterr()
    [resource] = json.loads(captured.out)["resources"]
    assert resource["id"] == "light-1"
    assert captured.err == ""


def test_inspect_json_path_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`inspect DB --json PATH` writes the JSON to PATH and nothing to stdout."""
    db = tmp_path / "state.db"
    asyncio.run(_light_database(db))
    assert main(["inspect", str(db), "--json", str(tmp_path / "out.json")]) == 0
    assert capsys.readouterr().out == ""
    [resource] = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["resources"]
    assert resource["id"] == "light-1"
    assert main(["inspect", str(db), "--json", str(tmp_path)]) == 2
    assert "--json: expected the path of a file, not a directory" in capsys.readouterr().err


def _interrupted(argv: list[str]) -> tuple[int, str]:
    """Run ``python -m stateward ARGV``, press Ctrl-C while it runs; its exit code and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stateward", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start tests with Ctrl-C ignored, which the child would inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=RUNNING_FOR)  # still running: it is interrupted mid-command
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=ENDING_WITHIN)
    finally:
        if process.poll() is None:  # it did not end: fail this test, not the next one
            process.kill()
            process.communicate()
    return process.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (ENDLESS_SIMULATION, "stateward simulate: interrupted"),
        (["simulate", "--seeds", "0..99999", "--hosts", "5"], "stateward simulate: interrupted"),
    ],
)
def test_ctrl_c_ends_a_command_with_one_line(argv: list[str], line: str) -> None:
    """Ctrl-C in the middle of a simulation ends it with exit 130 and one line: no traceback,
    and no report of the tasks the interrupted run abandoned."""
    code, err = _interrupted(argv)
    assert code == 130
    lines = [text for text in err.splitlines() if text.strip()]
    assert lines[-1] == line
    # Before it, at most the sweep's progress bar as it stood, and no report of any kind.
    assert len(lines) <= 2
    assert not re.search(r"Traceback|Task|coroutine|Exception|Error|Warning", err), err


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    value=st.one_of(
        st.sampled_from(["-", "./-", "out.json", "no/such/dir/x.json", ".", "..", "/", "a\0b"]),
        st.text(st.characters(codec="utf-8"), max_size=12),
    )
)
def test_any_json_argument_is_stdout_a_file_or_one_line(value: str) -> None:
    """Whatever follows `--json`, inspect writes the JSON to stdout or to that file, or says in
    one line why it cannot (exit 2 for a path that names no writable file), never a traceback."""
    with tempfile.TemporaryDirectory() as where, contextlib.chdir(where):
        db = Path(where, "state.db")
        asyncio.run(_light_database(db))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["inspect", str(db), f"--json={value}"])
        if code == 0:
            written = out.getvalue() if value == "-" else Path(value).read_text(encoding="utf-8")
            [resource] = json.loads(written)["resources"]
            assert resource["id"] == "light-1"
        else:
            assert code in {1, 2}
            lines = err.getvalue().splitlines()
            assert lines[-1].startswith("stateward inspect: error: --json"), lines
            assert "bug in stateward" not in err.getvalue()

"""``stateward simulate``: exit codes, the digest line, determinism, outputs, planted bugs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stateward.bench import ROWS, TINY_SIZES, main, run_rows
from stateward.bench import _simulate as simulate_cli
from stateward.bench._cli import build_parser
from stateward.sim import SimResult
from stateward.sim.fleet import FleetConfig, FleetScenario, simulate_fleet

#: A fleet small enough for a run of a fraction of a second.
SMALL = ["--hosts", "5", "--instances", "30", "--duration", "3000"]
#: The CI sweep's fleet (the issue: at least 50 seeds of a small fleet, all faults).
SWEEP = ["--hosts", "5", "--instances", "30", "--duration", "10000"]
SWEEP_SEEDS = "0..49"
#: The planted-bug sweeps: a couple of dozen seeds of the same fleet.
PLANTED_SEEDS = "0..23"
DIGEST_LINE = re.compile(r"^event-log sha256: [0-9a-f]{64}$")
#: A sweep's last line: its digest is over the seeds' event-log digests.
SWEEP_DIGEST_LINE = re.compile(r"^sweep sha256: [0-9a-f]{64}$")
#: What ``--duration`` and the seeds accept, as the usage errors say it.
DURATIONS = "simulated seconds, more than 0 and at most 10,000,000"
SEEDS = "an integer from 0 to 9223372036854775807"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["simulate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _digest(out: str) -> str:
    last = out.rstrip("\n").splitlines()[-1]
    assert DIGEST_LINE.match(last), last
    return last.removeprefix(simulate_cli.DIGEST_PREFIX)


def _sweep_digest(out: str) -> str:
    last = out.rstrip("\n").splitlines()[-1]
    assert SWEEP_DIGEST_LINE.match(last), last
    return last.removeprefix(simulate_cli.SWEEP_DIGEST_PREFIX)


def test_clean_run_exits_0_and_ends_with_the_digest(capsys: pytest.CaptureFixture[str]) -> None:
    """A small clean run exits 0, prints the summary tables, and ends with the digest line."""
    code, out, _ = _run(capsys, "--seed", "3", *SMALL)
    assert code == 0
    _digest(out)
    for heading in ("operations by kind and outcome", "faults", "simulated / wall", "events / s"):
        assert heading in out
    assert "seed 3: every invariant held" in out


def test_same_seed_same_digest_other_seed_other_digest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same seed gives the same digest; another seed gives another."""
    first = _digest(_run(capsys, "--seed", "3", *SMALL)[1])
    again = _digest(_run(capsys, "--seed", "3", *SMALL)[1])
    other = _digest(_run(capsys, "--seed", "4", *SMALL)[1])
    assert first == again
    assert other != first


def test_digest_does_not_depend_on_the_process_hash_seed(tmp_path: Path) -> None:
    """Two processes with different string-hash salts print the same digest line."""
    lines = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "stateward.bench", "simulate", "--seed", "5", *SMALL],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        lines.append(done.stdout.rstrip("\n").splitlines()[-1])
    assert DIGEST_LINE.match(lines[0])
    assert lines[0] == lines[1]


def test_check_determinism_passes(capsys: pytest.CaptureFixture[str]) -> None:
    """--check-determinism runs the seed twice and finds the same event log."""
    code, out, _ = _run(capsys, "--seed", "2", *SMALL, "--check-determinism")
    assert code == 0
    assert "determinism: both runs of seed 2 logged the same events" in out
    _digest(out)


def test_check_determinism_reports_the_first_divergence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run that logs a different event is reported at its index, exit 1."""
    calls: list[int] = []

    def flaky(config: FleetConfig) -> SimResult:
        result = simulate_fleet(config)
        calls.append(1)
        if len(calls) == 2:
            result.trace[7] = {**result.trace[7], "at": -1.0}
        return result

    monkeypatch.setattr(simulate_cli, "simulate_fleet", flaky)
    code, out, _ = _run(capsys, "--seed", "2", *SMALL, "--check-determinism")
    assert code == 1
    assert "seed 2: NOT deterministic: the two runs diverge at event 7" in out
    assert '"at": -1.0' in out
    assert (
        "reproduce: stateward simulate --seed 2 --hosts 5 --instances 30 --duration 3000 "
        "--check-determinism\n" in out
    )
    _digest(out)


def test_first_divergence_covers_a_shorter_log() -> None:
    """Logs that agree until one ends diverge where the shorter one ended."""
    events: list[dict[str, Any]] = [{"at": 0.0, "kind": "a"}, {"at": 1.0, "kind": "b"}]
    assert simulate_cli.first_divergence(events, list(events)) is None
    short = simulate_cli.first_divergence(events, events[:1])
    assert short == simulate_cli.Divergence(1, events[1], None)
    # 1 and 1.0 are equal in Python but not in the encoded event log.
    changed = [events[0], {"at": 1, "kind": "b"}]
    assert simulate_cli.first_divergence(events, changed) == simulate_cli.Divergence(
        1, events[1], changed[1]
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--faults", "actor_crash,meteor"],
            "--faults: expected all, none or a comma-separated list of: "
            + ", ".join(FleetScenario.sites())
            + ", got 'meteor'",
        ),
        (
            ["--seeds", "5..2"],
            "--seeds: expected A..B with A <= B (did you mean 2..5?), got '5..2'",
        ),
        (["--seeds", "1-5"], "--seeds: expected A..B with integers 0 <= A <= B, got '1-5'"),
        (["--seed", "1", "--seeds", "1..3"], "argument --seeds: not allowed with argument --seed"),
        (["--hosts", "-3"], "--hosts: expected an integer from 1 to 10,000, got -3"),
        (
            ["--hosts", str(10**12)],
            f"--hosts: expected an integer from 1 to 10,000, got {10**12}",
        ),
        (
            ["--instances", "0"],
            "--instances: expected an integer from 1 to 1,000,000, got 0",
        ),
        (
            ["--clients", str(2**64)],
            f"--clients: expected an integer from 1 to 10,000, got {2**64}",
        ),
        (["--duration", "inf"], f"--duration: expected {DURATIONS}, got inf"),
        (["--duration", "1e308"], f"--duration: expected {DURATIONS}, got 1e+308"),
        (["--duration", "10000000.5"], f"--duration: expected {DURATIONS}, got 10000000.5"),
        (["--duration", "nan"], f"--duration: expected {DURATIONS}, got nan"),
        (["--duration", "-5"], f"--duration: expected {DURATIONS}, got -5.0"),
        (["--duration", "0"], f"--duration: expected {DURATIONS}, got 0.0"),
        (["--seed", "-1"], f"--seed: expected {SEEDS}, got -1"),
        (["--seed", str(2**63)], f"--seed: expected {SEEDS}, got {2**63}"),
        (["--seeds", f"{2**63 - 1}..{2**63}"], f"--seeds: expected {SEEDS}, got {2**63}"),
        (["--seeds", "0..100000"], "--seeds: expected at most 100,000 seeds, got '0..100000'"),
        (
            ["--seeds", f"0..{10**30}"],
            f"--seeds: expected at most 100,000 seeds, got '0..{10**30}'",
        ),
        (["--planted-bug", "typo"], "argument --planted-bug: invalid choice: 'typo'"),
        (["--seeds", "1..2", "--trace", "t.jsonl"], "--trace: expected one run (--seed S)"),
        (["--json", "/no/such/dir/x.json"], "--json: expected a file in an existing directory"),
        (["--json", "a\0b"], "--json: expected a path without NUL characters"),
        (["--trace", "a\0b"], "--trace: expected a path without NUL characters"),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad usage exits 2 before simulating anything, and says what was expected."""
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.startswith("usage: stateward simulate")
    assert out == ""


@pytest.mark.parametrize("flag", ["--trace", "--json"])
def test_output_path_that_is_a_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str
) -> None:
    """--trace or --json naming a directory exits 2 before simulating, not after."""
    code, out, err = _run(capsys, "--seed", "1", *SMALL, flag, str(tmp_path))
    assert code == 2
    assert out == ""
    assert f"{flag}: expected the path of a file, not a directory, got '" in err


def test_longest_duration_is_accepted() -> None:
    """The documented maximum itself is a valid duration."""
    args = build_parser().parse_args(["simulate", "--duration", "1e7"])
    options = simulate_cli.SimulateOptions(seeds=(1,), duration=args.duration)
    simulate_cli.check_options(options)
    assert simulate_cli.MAX_DURATION == 1e7


def test_json_and_trace_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--json writes the summary; --trace writes the event log whose sha256 is the digest."""
    summary_path, trace_path = tmp_path / "run.json", tmp_path / "run.jsonl"
    code, out, _ = _run(
        capsys,
        "--seed",
        "6",
        *SMALL,
        "--faults",
        "actor_crash,message_loss",
        "--json",
        str(summary_path),
        "--trace",
        str(trace_path),
    )
    assert code == 0
    digest = _digest(out)
    summary = json.loads(summary_path.read_text())
    assert summary["seed"] == 6
    assert summary["ok"] is True
    assert summary["violations"] == []
    assert summary["digest"] == digest
    assert summary["config"] == {
        "hosts": 5,
        "instances": 30,
        "duration": 3000.0,
        "clients": 20,
        "faults": ["actor_crash", "message_loss"],
        "planted_bugs": [],
    }
    assert set(summary["enabled_faults"]) <= {"actor_crash", "message_loss"}
    assert set(summary["faults"]) <= set(summary["enabled_faults"])
    assert summary["operations"]["boot"]["ok"] > 0
    assert summary["simulated_seconds"] >= 3000.0
    assert summary["simulated_per_wall"] > 1.0
    assert summary["events_per_second"] > 0
    assert summary["incarnations"] == 1
    assert summary["reproduce"] == (
        "stateward simulate --seed 6 --hosts 5 --instances 30 --duration 3000 "
        "--faults actor_crash,message_loss"
    )
    raw = trace_path.read_bytes()
    lines = raw.splitlines()
    assert len(lines) == summary["events"]
    assert hashlib.sha256(b"\n".join(lines)).hexdigest() == digest
    events = [json.loads(line) for line in lines]
    assert events[0] == {"at": 0.0, "kind": "incarnation", "number": 1}
    assert {"invoke", "ok", "heal"} <= {event["kind"] for event in events}


def test_json_dash_writes_the_summary_alone_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--json - writes the summary alone to stdout; the tables and the digest go to stderr."""
    code, out, err = _run(capsys, "--seed", "6", *SMALL, "--json", "-")
    assert code == 0
    summary = json.loads(out)
    assert summary["seed"] == 6
    assert summary["digest"] == _digest(err)
    assert "operations by kind and outcome" in err
    assert "written to" not in err


def test_a_sweep_names_its_digest_as_the_sweep_s(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A sweep ends with `sweep sha256:`, the digest of its seeds' event-log digests, which its
    JSON summary names sweep_digest; `--json -` puts that summary alone on stdout."""
    code, out, err = _run(capsys, "--seeds", "2..3", *SMALL, "--json", "-")
    assert code == 0
    summary = json.loads(out)
    digests = [result["digest"] for result in summary["results"]]
    assert _sweep_digest(err) == simulate_cli.sweep_digest(digests) == summary["sweep_digest"]
    assert "digest" not in summary
    singles = [_digest(_run(capsys, "--seed", str(seed), *SMALL)[1]) for seed in (2, 3)]
    assert digests == singles


def test_reproduce_command_parses_back_to_the_same_run() -> None:
    """The reproduce command names every non-default option and parses back to the config."""
    config = FleetConfig(
        seed=12,
        hosts=7,
        instances=99,
        duration=1234.5,
        faults=frozenset({"process_crash", "host_down"}),
        clients=3,
        planted_bugs=frozenset({"leak-claim"}),
    )
    command = simulate_cli.reproduce_command(config)
    assert command == (
        "stateward simulate --seed 12 --hosts 7 --instances 99 --duration 1234.5 "
        "--faults host_down,process_crash --clients 3 --planted-bug leak-claim"
    )
    args = build_parser().parse_args(command.split()[1:])
    assert args.seed == 12
    assert (args.hosts, args.instances, args.duration, args.clients) == (7, 99, 1234.5, 3)
    assert simulate_cli.parse_faults(args.faults) == config.faults
    assert args.planted_bug == ["leak-claim"]
    assert simulate_cli.reproduce_command(FleetConfig(seed=4)) == "stateward simulate --seed 4"
    none = FleetConfig(seed=4, faults=frozenset())
    assert simulate_cli.reproduce_command(none) == "stateward simulate --seed 4 --faults none"


def test_a_violation_prints_seed_invariant_history_and_reproduce(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One failing run prints the seed, the invariant, the resources' events, the command."""
    code, out, _ = _run(capsys, "--seed", "1", *SMALL, "--planted-bug", "leak-claim")
    assert code == 1
    assert re.search(r"^seed 1: \d+ invariant violation\(s\)$", out, re.M)
    assert re.search(r"✗ claims belong to live instances: after (recovery|heal): h-", out)
    assert "last events of the resources concerned:" in out
    assert re.search(r"^ +\d+\.\d{3}  (invoke|ok) +i-", out, re.M)
    assert (
        "reproduce: stateward simulate --seed 1 --hosts 5 --instances 30 --duration 3000 "
        "--planted-bug leak-claim\n" in out
    )
    _digest(out)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "bug", ["leak-claim", "skip-journal-tail", "release-source-early", "fit-at-start-only"]
)
def test_a_sweep_finds_each_planted_bug(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bug: str
) -> None:
    """A sweep of a couple of dozen seeds finds the planted bug and prints how to reproduce it."""
    path = tmp_path / "sweep.json"
    code, out, err = _run(
        capsys, "--seeds", PLANTED_SEEDS, *SWEEP, "--planted-bug", bug, "--json", str(path)
    )
    assert code == 1
    summary = json.loads(path.read_text())
    assert summary["runs"] == 24
    assert summary["failed"], "the simulator did not find the planted bug"
    first = summary["failed"][0]
    assert first["invariants"]
    reproduce = first["reproduce"]
    assert reproduce == (
        f"stateward simulate --seed {first['seed']} --hosts 5 --instances 30 --duration 10000 "
        f"--planted-bug {bug}"
    )
    assert f"reproduce: {reproduce}\n" in out
    assert f"seed {first['seed']} FAILED: " in err
    assert f"{len(summary['failed'])} of 24 seeds failed" in out
    assert _sweep_digest(out) == summary["sweep_digest"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ci_sweep_of_50_seeds_holds_every_invariant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Fifty seeds of a small fleet under every fault site hold every invariant."""
    path = tmp_path / "sweep.json"
    code, out, _ = _run(capsys, "--seeds", SWEEP_SEEDS, *SWEEP, "--json", str(path))
    summary = json.loads(path.read_text())
    failures = [(f["seed"], f["invariants"], f["reproduce"]) for f in summary["failed"]]
    assert failures == []
    assert code == 0
    assert summary["runs"] == summary["passed"] == 50
    assert "all 50 seeds held every invariant" in out
    # The sweep really was under chaos: crashes of actors and of the whole process.
    fired = {name for name, count in summary["faults"].items() if count}
    assert {"process_crash", "actor_crash", "host_down", "message_loss"} <= fired
    digests = [result["digest"] for result in summary["results"]]
    assert _sweep_digest(out) == simulate_cli.sweep_digest(digests) == summary["sweep_digest"]


def test_sim_rows_run_at_tiny_sizes() -> None:
    """sim.speed is its own ratio against real time; sim.events is against fleet.boot."""
    report = run_rows(ROWS.select(["sim.*"]), TINY_SIZES)
    assert not report.skipped
    speed, events = report.results
    assert speed.name == "sim.speed"
    assert speed.baseline_value == 1.0
    assert speed.ratio == speed.value > 1.0
    assert speed.details["hosts"] == 100
    assert speed.details["instances"] == 1_000
    assert speed.details["chaos_seconds"] == TINY_SIZES.sim_duration
    assert "size_note" in speed.details
    assert speed.goal is not None
    assert events.name == "sim.events"
    assert events.baseline.startswith("fleet.boot")
    assert events.ratio == pytest.approx(events.value / events.baseline_value)
    assert events.details["baseline_boots"] == TINY_SIZES.sim_boots
    assert events.details["invariants"] == "all held"


def test_runs_leave_no_incarnation_behind() -> None:
    """Crashed incarnations (their loops stopped with tasks inside task groups) are
    collected once their run is over: fleets do not pile up run after run."""
    import gc

    from stateward.actors import Fleet

    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, Fleet) for o in gc.get_objects())

    counts = []
    logging.disable(logging.CRITICAL)  # captured records would keep what they mention alive
    try:
        for _ in range(3):
            config = FleetConfig(seed=1, hosts=5, instances=30, duration=10_000.0)
            result = simulate_fleet(config)
            assert result.incarnations > 2
            counts.append(alive())
    finally:
        logging.disable(logging.NOTSET)
    assert counts == [0, 0, 0]

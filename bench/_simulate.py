"""``stateward simulate``: run the chaos simulator from the command line and report on it.

One seed (``--seed S``) runs one fleet simulation (:func:`stateward.sim.fleet.simulate_fleet`) and
prints a summary: operations by kind and outcome, faults by kind and which fault sites the
seed switched on, simulated and wall time, their ratio, events per second and process
incarnations. A sweep (``--seeds A..B``, both ends included) runs every seed in turn under a
progress bar and prints what the seeds did together and which of them failed.

On a violation the output names the seed, each invariant with its detail, the last events of
the resources concerned and a one-line command that reproduces the run
(:func:`reproduce_command`). ``--check-determinism`` runs each seed twice and compares the
two event logs event by event; a divergence is a failure too, reported with the index of the
first differing event and both versions of it.

The last line of one run is always ``event-log sha256: <hex>``, the run's event-log digest
(:attr:`SimResult.digest`). The last line of a sweep is ``sweep sha256: <hex>``, the sha256 of
the seeds' event-log digests (hex, one per line, in seed order; :func:`sweep_digest`), which
its JSON summary names ``sweep_digest``. Wall-clock figures are reported but never part of a
digest.

Exit codes follow the CLI: 0 when every invariant held (and every determinism check
agreed), 1 on a violation or a divergence, 2 on bad usage.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from stateward.actors import ACTIONS
from stateward.runtime import InvalidArgument
from stateward.sim import Divergence, SimResult, Violation, first_divergence, sweep_digest
from stateward.sim.fleet import PLANTED_BUGS, FleetConfig, FleetScenario, simulate_fleet

from ._flow_rows import quiet_logs
from ._report import format_quantity, write_json_document

__all__ = (
    "DEFAULTS",
    "MAX_CLIENTS",
    "MAX_DURATION",
    "MAX_HOSTS",
    "MAX_INSTANCES",
    "MAX_SEED",
    "MAX_SWEEP",
    "check_options",
    "DIGEST_PREFIX",
    "SWEEP_DIGEST_PREFIX",
    "Divergence",
    "SimulateOptions",
    "first_divergence",
    "parse_faults",
    "parse_seeds",
    "reproduce_command",
    "result_json",
    "run_simulate",
    "sweep_digest",
)

#: The start of the last line of every run's output (the design's contract).
DIGEST_PREFIX = "event-log sha256: "
#: How the last line of a sweep starts: its digest is over the seeds' digests, not an event log.
SWEEP_DIGEST_PREFIX = "sweep sha256: "
#: ``FleetConfig``'s defaults, which are also the command's.
DEFAULTS = FleetConfig(seed=0)
#: The fleet scenario's fault sites, in order.
FAULTS = tuple(FleetScenario.sites())
#: The largest values the command accepts: beyond them a run would not finish in any
#: useful time (or at all), so they are refused as bad usage instead. Simulated seconds of
#: chaos (about 116 days):
MAX_DURATION = 10_000_000.0
#: Hosts in the fleet (all of them are added before the chaos starts).
MAX_HOSTS = 10_000
#: Instances the workload keeps around.
MAX_INSTANCES = 1_000_000
#: Concurrent clients.
MAX_CLIENTS = 10_000
#: The largest seed (seeds are integers from 0, as a signed 64-bit integer holds them).
MAX_SEED = 2**63 - 1
#: Seeds in one sweep.
MAX_SWEEP = 100_000
#: Violations printed in full per run; the rest are counted (all of them go to ``--json``).
SHOWN_VIOLATIONS = 10
#: Events of the resources concerned printed after the violations.
SHOWN_HISTORY = 30
#: Known outcomes of a client operation, in column order (Jepsen's: invoked, then ok,
#: failed, or not started at all once a recovery asked again).
_OUTCOMES = ("ok", "failed", "not-started")
_SEEDS = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulateOptions:
    """What one invocation of ``stateward simulate`` asks for.

    Attributes:
        seeds: the seeds to run, in order (one for ``--seed``).
        sweep: True for ``--seeds A..B`` (a sweep summary instead of one run's).
        hosts: hosts in the fleet.
        instances: instances the workload keeps around.
        duration: simulated seconds of chaos.
        faults: the fault sites allowed.
        clients: concurrent clients.
        planted_bugs: deliberate bugs switched on.
        check_determinism: run each seed twice and compare the event logs.
        json_path: where to write the summary as JSON, if anywhere: a file, or a stream
            (standard output for ``--json -``).
        trace_path: where to write the event log as JSON lines (one run only).
    """

    seeds: Sequence[int]
    sweep: bool = False
    hosts: int = DEFAULTS.hosts
    instances: int = DEFAULTS.instances
    duration: float = DEFAULTS.duration
    faults: frozenset[str] = DEFAULTS.faults
    clients: int = DEFAULTS.clients
    planted_bugs: tuple[str, ...] = ()
    check_determinism: bool = False
    json_path: Path | TextIO | None = None
    trace_path: Path | None = None

    def config(self, seed: int) -> FleetConfig:
        """The simulator's configuration for ``seed``.

        Raises:
            InvalidArgument: a value the simulator does not accept (e.g. ``hosts=0``).
        """
        return FleetConfig(
            seed=seed,
            hosts=self.hosts,
            instances=self.instances,
            duration=self.duration,
            faults=self.faults,
            clients=self.clients,
            planted_bugs=frozenset(self.planted_bugs),
        )


@dataclass(slots=True)
class _SeedOutcome:
    """What a sweep keeps of one seed (the event log itself is dropped)."""

    config: FleetConfig
    ok: bool
    digest: str
    violations: list[Violation]
    history: list[dict[str, Any]]
    divergence: Divergence | None
    summary: dict[str, Any]
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    simulated: float = 0.0
    wall: float = 0.0
    events: int = 0

    @property
    def failed(self) -> bool:
        """A violated invariant or a divergence."""
        return not self.ok or self.divergence is not None


# --- parsing -------------------------------------------------------------------------------


def parse_seeds(text: str) -> range:
    """The seeds of ``A..B``, both ends included.

    Raises:
        InvalidArgument: not of that form, or ``A`` is greater than ``B``.
    """
    match = _SEEDS.match(text)
    if match is None:
        raise InvalidArgument("--seeds", expected="A..B with integers 0 <= A <= B", got=text)
    first, last = int(match[1]), int(match[2])
    if first > last:
        raise InvalidArgument(
            "--seeds", expected=f"A..B with A <= B (did you mean {last}..{first}?)", got=text
        )
    return range(first, last + 1)


def parse_faults(text: str) -> frozenset[str]:
    """The fault sites of ``all``, ``none`` or a comma-separated list of names.

    Raises:
        InvalidArgument: an empty item or a name that is not a fault site.
    """
    spec = text.strip()
    if spec == "all":
        return frozenset(FAULTS)
    if spec == "none":
        return frozenset()
    names = [name.strip() for name in spec.split(",")]
    unknown = [name for name in names if name not in FAULTS]
    if unknown or not names:
        raise InvalidArgument(
            "--faults",
            expected=f"all, none or a comma-separated list of: {', '.join(FAULTS)}",
            got=", ".join(unknown) if unknown else text,
        )
    return frozenset(names)


# --- pure helpers --------------------------------------------------------------------------


def _number(value: float) -> str:
    """A float the way a person types it, and as ``float()`` reads it back."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def reproduce_command(config: FleetConfig, *, check_determinism: bool = False) -> str:
    """The one-line ``stateward simulate`` command that runs ``config`` again."""
    return config.command(check_determinism=check_determinism)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def _violation_json(violation: Violation) -> dict[str, Any]:
    return {
        "invariant": violation.invariant,
        "detail": violation.detail,
        "resources": list(violation.resources),
    }


def _operations_json(operations: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (kind, outcome), count in sorted(operations.items()):
        nested.setdefault(kind, {})[outcome] = count
    return nested


def result_json(
    config: FleetConfig,
    result: SimResult,
    *,
    divergence: Divergence | None = None,
    checked: bool = False,
) -> dict[str, Any]:
    """The summary of one run as JSON-ready data (the same figures as the table)."""
    return {
        "seed": config.seed,
        "ok": result.ok and divergence is None,
        "config": {
            "hosts": config.hosts,
            "instances": config.instances,
            "duration": config.duration,
            "clients": config.clients,
            "faults": [name for name in FAULTS if name in config.faults],
            "planted_bugs": sorted(config.planted_bugs),
        },
        "violations": [_violation_json(v) for v in result.violations],
        "operations": _operations_json(result.operations),
        "faults": {name: result.faults[name] for name in FAULTS if result.faults[name]},
        "enabled_faults": list(result.enabled_faults),
        "simulated_seconds": result.simulated,
        "wall_seconds": result.wall,
        "simulated_per_wall": _ratio(result.simulated, result.wall),
        "events": result.events,
        "events_per_second": _ratio(result.events, result.wall),
        "incarnations": result.incarnations,
        "determinism": {
            "checked": checked,
            "diverged_at": None if divergence is None else divergence.index,
        },
        "digest": result.digest,
        "reproduce": reproduce_command(config, check_determinism=divergence is not None),
    }


# --- rendering -----------------------------------------------------------------------------


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value:,.0f} s ({value / 3600:.1f} h)"
    if value >= 1:
        return f"{value:,.1f} s"
    return f"{value * 1000:.0f} ms"


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _operations_table(operations: Counter[tuple[str, str]], title: str) -> Table:
    kinds_seen = {kind for kind, _ in operations}
    kinds = [k for k in ("boot", *ACTIONS) if k in kinds_seen]
    kinds += sorted(kinds_seen - set(kinds))
    outcomes_seen = {outcome for _, outcome in operations}
    outcomes = [o for o in _OUTCOMES if o in outcomes_seen] or ["ok", "failed"]
    outcomes += sorted(outcomes_seen - set(outcomes))
    table = Table(title=title)
    table.add_column("operation", no_wrap=True)
    for outcome in outcomes:
        table.add_column(outcome, justify="right", no_wrap=True)
    table.add_column("total", justify="right", no_wrap=True)
    for kind in kinds:
        counts = [operations[kind, outcome] for outcome in outcomes]
        table.add_row(kind, *(f"{c:,}" for c in counts), f"{sum(counts):,}")
    totals = [sum(operations[k, o] for k in kinds) for o in outcomes]
    table.add_section()
    table.add_row("all", *(f"{c:,}" for c in totals), f"{sum(totals):,}")
    return table


def _faults_table(
    faults: Counter[str], *, allowed: frozenset[str], enabled: Counter[str], runs: int
) -> Table:
    """Faults fired by kind; ``enabled`` counts the runs in which each site was switched on."""
    table = Table(title="faults")
    table.add_column("fault site", no_wrap=True)
    table.add_column("site" if runs == 1 else "on in runs", no_wrap=True)
    table.add_column("fired", justify="right", no_wrap=True)
    for name in FAULTS:
        if name not in allowed:
            state = "excluded"
        elif runs == 1:
            state = "on" if enabled[name] else "off (seed)"
        else:
            state = f"{enabled[name]}/{runs}"
        table.add_row(name, state, f"{faults[name]:,}")
    table.add_section()
    table.add_row("all", "", f"{sum(faults.values()):,}")
    return table


def _run_table(config: FleetConfig, result: SimResult) -> Table:
    table = Table(title=f"stateward simulate — seed {config.seed}", show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value")
    allowed = [name for name in FAULTS if name in config.faults]
    table.add_row(
        "fleet",
        f"{config.hosts:,} hosts, up to {config.instances:,} instances, {config.clients} clients",
    )
    table.add_row(
        "phases",
        f"chaos for {_seconds(config.duration)}, then heal (faults off, hosts back), "
        "then the liveness check",
    )
    table.add_row(
        "fault sites allowed",
        "all" if len(allowed) == len(FAULTS) else (", ".join(allowed) or "none"),
    )
    table.add_row(
        "fault sites on",
        f"{len(result.enabled_faults)}: {', '.join(result.enabled_faults) or '-'}",
    )
    if config.planted_bugs:
        table.add_row("planted bugs", ", ".join(sorted(config.planted_bugs)))
    table.add_row("simulated time", _seconds(result.simulated))
    table.add_row("wall time", _seconds(result.wall))
    table.add_row("simulated / wall", _times(_ratio(result.simulated, result.wall)))
    table.add_row("events", f"{result.events:,}")
    table.add_row("events / s (wall)", format_quantity(_ratio(result.events, result.wall)))
    table.add_row(
        "incarnations", f"{result.incarnations} ({result.incarnations - 1} process crashes)"
    )
    table.add_row("invariants", "all held" if result.ok else f"{len(result.violations)} violated")
    return table


def _event_line(event: dict[str, Any]) -> str:
    rest = " ".join(
        f"{key}={value}"
        for key, value in event.items()
        if key not in ("at", "kind", "resource") and value is not None
    )
    resource = event.get("resource") or ""
    return f"{event.get('at', 0.0):>12.3f}  {event.get('kind', '?'):<11} {resource:<12} {rest}"


def _concerned(violations: Sequence[Violation]) -> tuple[str, ...]:
    resources: list[str] = []
    for violation in violations[:SHOWN_VIOLATIONS]:
        for resource in violation.resources:
            if resource and resource not in resources:
                resources.append(resource)
    return tuple(resources)


def _history(result: SimResult) -> list[dict[str, Any]]:
    """The last events of the resources the violations name (the violations themselves are
    printed already, so their own events are left out)."""
    if result.ok:
        return []
    events = result.history_of(_concerned(result.violations), last=len(result.trace))
    return [event for event in events if event.get("kind") != "violation"][-SHOWN_HISTORY:]


def _print_violations(
    console: Console, config: FleetConfig, violations: Sequence[Violation]
) -> None:
    console.print(
        Text(f"seed {config.seed}: {len(violations)} invariant violation(s)", style="bold red")
    )
    for violation in violations[:SHOWN_VIOLATIONS]:
        console.print(
            Text.assemble(("  ✗ ", "red"), (violation.invariant, "bold"), f": {violation.detail}"),
            soft_wrap=True,
        )
    if len(violations) > SHOWN_VIOLATIONS:
        console.print(f"  … and {len(violations) - SHOWN_VIOLATIONS} more (see --json)")


def _print_history(console: Console, history: Sequence[dict[str, Any]]) -> None:
    if not history:
        return
    console.print(Text("last events of the resources concerned:", style="bold"))
    console.print(Text(f"{'at (s)':>12}  {'kind':<11} {'resource':<12} detail", style="dim"))
    for event in history:
        console.print(Text(_event_line(event)), soft_wrap=True)


def _print_divergence(console: Console, seed: int, divergence: Divergence) -> None:
    console.print(
        Text(
            f"seed {seed}: NOT deterministic: the two runs diverge at event {divergence.index}",
            style="bold red",
        )
    )
    for label, event in (("first run ", divergence.first), ("second run", divergence.second)):
        shown = "(the log ended here)" if event is None else json.dumps(event, sort_keys=False)
        console.print(Text(f"  {label}: {shown}"), soft_wrap=True)


def _print_reproduce(console: Console, command: str) -> None:
    console.print(Text("reproduce: ", style="bold") + Text(command), soft_wrap=True)


def _print_digest(console: Console, digest: str, *, prefix: str = DIGEST_PREFIX) -> None:
    console.print(Text(prefix + digest), soft_wrap=True, highlight=False)


# --- running -------------------------------------------------------------------------------


def _progress(console: Console, *, transient: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    )


def _simulate_checked(
    config: FleetConfig, *, check_determinism: bool, on_run: Callable[[], None] | None = None
) -> tuple[SimResult, Divergence | None]:
    """Run ``config`` (twice when checking determinism); ``on_run`` is called after each run."""
    result = simulate_fleet(config)
    if on_run is not None:
        on_run()
    if not check_determinism:
        return result, None
    again = simulate_fleet(config)
    if on_run is not None:
        on_run()
    return result, first_divergence(result.trace, again.trace)


def _write_json(console: Console, out: Path | TextIO, data: dict[str, Any]) -> None:
    write_json_document(data, out)
    if isinstance(out, Path):
        console.print(Text(f"summary written to {out}"), soft_wrap=True)


def _write_trace(path: Path, trace: Sequence[dict[str, Any]]) -> None:
    """One event per line, encoded exactly as the digest encodes it."""
    with path.open("wb") as out:
        for event in trace:
            out.write(_encode(event))
            out.write(b"\n")


def _run_single(
    options: SimulateOptions, config: FleetConfig, console: Console, progress_console: Console
) -> int:
    runs = 2 if options.check_determinism else 1
    with quiet_logs(), _progress(progress_console, transient=True) as progress:
        task = progress.add_task(
            f"simulating seed {config.seed}: {config.hosts} hosts, {config.instances} "
            f"instances, {_number(config.duration)} simulated seconds",
            total=runs,
        )
        result, divergence = _simulate_checked(
            config,
            check_determinism=options.check_determinism,
            on_run=lambda: progress.advance(task),
        )
    console.print(_run_table(config, result))
    console.print(_operations_table(result.operations, "operations by kind and outcome"))
    enabled = Counter(result.enabled_faults)
    console.print(_faults_table(result.faults, allowed=config.faults, enabled=enabled, runs=1))
    if options.trace_path is not None:
        _write_trace(options.trace_path, result.trace)
        console.print(Text(f"event log written to {options.trace_path}"), soft_wrap=True)
    if options.json_path is not None:
        data = result_json(config, result, divergence=divergence, checked=options.check_determinism)
        _write_json(console, options.json_path, data)
    if options.check_determinism and divergence is None:
        console.print(f"determinism: both runs of seed {config.seed} logged the same events")
    failed = not result.ok or divergence is not None
    if not result.ok:
        _print_violations(console, config, result.violations)
        _print_history(console, _history(result))
    if divergence is not None:
        _print_divergence(console, config.seed, divergence)
    if failed:
        _print_reproduce(
            console, reproduce_command(config, check_determinism=divergence is not None)
        )
    else:
        console.print(Text(f"seed {config.seed}: every invariant held", style="green"))
    _print_digest(console, result.digest)
    return 1 if failed else 0


def _seed_outcome(
    config: FleetConfig, result: SimResult, divergence: Divergence | None, *, checked: bool
) -> _SeedOutcome:
    return _SeedOutcome(
        config=config,
        ok=result.ok,
        digest=result.digest,
        violations=list(result.violations),
        history=_history(result),
        divergence=divergence,
        summary=result_json(config, result, divergence=divergence, checked=checked),
        operations=Counter(result.operations),
        faults=Counter(result.faults),
        simulated=result.simulated,
        wall=result.wall,
        events=result.events,
    )


def _sweep_table(options: SimulateOptions, outcomes: Sequence[_SeedOutcome]) -> Table:
    seeds = options.seeds
    failed = [o for o in outcomes if o.failed]
    wall = sum(o.wall for o in outcomes)
    simulated = sum(o.simulated for o in outcomes)
    events = sum(o.events for o in outcomes)
    table = Table(title=f"stateward simulate — sweep of seeds {seeds[0]}..{seeds[-1]}")
    table.add_column("what", no_wrap=True)
    table.add_column("value")
    table.show_header = False
    config = outcomes[0].config
    table.add_row(
        "fleet",
        f"{config.hosts:,} hosts, up to {config.instances:,} instances, {config.clients} "
        f"clients, {_seconds(config.duration)} of chaos each",
    )
    if config.planted_bugs:
        table.add_row("planted bugs", ", ".join(sorted(config.planted_bugs)))
    table.add_row("seeds run", f"{len(outcomes):,}")
    table.add_row("passed", f"{len(outcomes) - len(failed):,}")
    table.add_row("failed", f"{len(failed):,}")
    if options.check_determinism:
        diverged = sum(1 for o in outcomes if o.divergence is not None)
        table.add_row("determinism", f"each seed run twice; {diverged} diverged")
    table.add_row("simulated time", _seconds(simulated))
    table.add_row("wall time (simulations)", _seconds(wall))
    table.add_row("simulated / wall", _times(_ratio(simulated, wall)))
    table.add_row("events", f"{events:,}")
    table.add_row("events / s (wall)", format_quantity(_ratio(events, wall)))
    return table


def _failures_table(outcomes: Sequence[_SeedOutcome]) -> Table:
    table = Table(title="failing seeds")
    table.add_column("seed", justify="right", no_wrap=True)
    table.add_column("invariants violated")
    table.add_column("first violation")
    for outcome in outcomes:
        names = Counter(v.invariant for v in outcome.violations)
        if outcome.divergence is not None:
            names["deterministic replay"] += 1
        first = (
            outcome.violations[0].detail
            if outcome.violations
            else f"diverged at event {outcome.divergence.index}"
            if outcome.divergence is not None
            else ""
        )
        table.add_row(
            str(outcome.config.seed),
            ", ".join(f"{name} ({count})" for name, count in names.items()),
            first,
        )
    return table


def _run_sweep(options: SimulateOptions, console: Console, progress_console: Console) -> int:
    configs = [options.config(seed) for seed in options.seeds]
    outcomes: list[_SeedOutcome] = []
    with quiet_logs(), _progress(progress_console, transient=False) as progress:
        task = progress.add_task(
            f"sweep {options.seeds[0]}..{options.seeds[-1]}", total=len(configs)
        )
        failures = 0
        for config in configs:
            progress.update(task, description=f"seed {config.seed} ({failures} failed so far)")
            result, divergence = _simulate_checked(
                config, check_determinism=options.check_determinism
            )
            outcome = _seed_outcome(config, result, divergence, checked=options.check_determinism)
            del result
            outcomes.append(outcome)
            if outcome.failed:
                failures += 1
                names = sorted({v.invariant for v in outcome.violations})
                if outcome.divergence is not None:
                    names.append("deterministic replay")
                progress.console.print(
                    Text(f"seed {config.seed} FAILED: {', '.join(names)}", style="red"),
                    soft_wrap=True,
                )
            progress.advance(task)
        progress.update(task, description=f"sweep done ({failures} failed)")
    failed = [o for o in outcomes if o.failed]
    operations: Counter[tuple[str, str]] = Counter()
    faults: Counter[str] = Counter()
    enabled: Counter[str] = Counter()
    for outcome in outcomes:
        operations.update(outcome.operations)
        faults.update(outcome.faults)
        enabled.update(outcome.summary["enabled_faults"])
    console.print(_sweep_table(options, outcomes))
    console.print(_operations_table(operations, "operations by kind and outcome (all seeds)"))
    console.print(
        _faults_table(faults, allowed=options.faults, enabled=enabled, runs=len(outcomes))
    )
    digest = sweep_digest(o.digest for o in outcomes)
    if options.json_path is not None:
        data = {
            "seeds": {"first": options.seeds[0], "last": options.seeds[-1]},
            "runs": len(outcomes),
            "passed": len(outcomes) - len(failed),
            "failed": [
                {
                    "seed": o.config.seed,
                    "invariants": sorted({v.invariant for v in o.violations}),
                    "diverged_at": None if o.divergence is None else o.divergence.index,
                    "reproduce": o.summary["reproduce"],
                }
                for o in failed
            ],
            "operations": _operations_json(operations),
            "faults": {name: faults[name] for name in FAULTS if faults[name]},
            "simulated_seconds": sum(o.simulated for o in outcomes),
            "wall_seconds": sum(o.wall for o in outcomes),
            "events": sum(o.events for o in outcomes),
            "sweep_digest": digest,
            "results": [o.summary for o in outcomes],
        }
        _write_json(console, options.json_path, data)
    if failed:
        console.print(_failures_table(failed))
        detailed = failed[0]
        if detailed.violations:
            console.print(Text(f"the first failing seed, {detailed.config.seed}, in detail:"))
            _print_violations(console, detailed.config, detailed.violations)
            _print_history(console, detailed.history)
        if detailed.divergence is not None:
            _print_divergence(console, detailed.config.seed, detailed.divergence)
        for outcome in failed:
            _print_reproduce(console, outcome.summary["reproduce"])
        console.print(Text(f"{len(failed)} of {len(outcomes)} seeds failed", style="bold red"))
    else:
        console.print(Text(f"all {len(outcomes)} seeds held every invariant", style="green"))
    _print_digest(console, digest, prefix=SWEEP_DIGEST_PREFIX)
    return 1 if failed else 0


def check_options(options: SimulateOptions) -> None:
    """Check everything about ``options`` that can be checked without running anything.

    Raises:
        InvalidArgument: the options describe no valid run (bad usage: exit code 2).
    """
    flag = "--seeds" if options.sweep else "--seed"
    try:
        count = len(options.seeds)
    except OverflowError:  # a range longer than the platform's sizes
        count = MAX_SWEEP + 1
    if not count:
        raise InvalidArgument("--seeds", expected="at least one seed", got=list(options.seeds))
    if count > MAX_SWEEP:
        seeds = options.seeds
        shown = f"{seeds.start}..{seeds.stop - 1}" if isinstance(seeds, range) else f"{count:,}"
        raise InvalidArgument(flag, expected=f"at most {MAX_SWEEP:,} seeds", got=shown)
    for seed in options.seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise InvalidArgument(flag, expected=f"an integer from 0 to {MAX_SEED}", got=seed)
    for name, value, most in (
        ("--hosts", options.hosts, MAX_HOSTS),
        ("--instances", options.instances, MAX_INSTANCES),
        ("--clients", options.clients, MAX_CLIENTS),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise InvalidArgument(name, expected=f"an integer from 1 to {most:,}", got=value)
    duration = options.duration
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not 0 < duration <= MAX_DURATION
    ):
        raise InvalidArgument(
            "--duration",
            expected=f"simulated seconds, more than 0 and at most {MAX_DURATION:,.0f}",
            got=duration,
        )
    for name in options.planted_bugs:
        if name not in PLANTED_BUGS:
            raise InvalidArgument(
                "--planted-bug", expected=f"one of {', '.join(PLANTED_BUGS)}", got=name
            )
    if options.sweep and options.trace_path is not None:
        raise InvalidArgument(
            "--trace", expected="one run (--seed S); a sweep keeps no event logs", got="--seeds"
        )
    for flag, path in (("--json", options.json_path), ("--trace", options.trace_path)):
        if not isinstance(path, Path):
            continue  # none, or a stream
        if "\0" in str(path):
            raise InvalidArgument(flag, expected="a path without NUL characters", got=str(path))
        if path.is_dir():
            raise InvalidArgument(
                flag, expected="the path of a file, not a directory", got=str(path)
            )
        if not path.parent.is_dir():
            raise InvalidArgument(flag, expected="a file in an existing directory", got=str(path))
    options.config(options.seeds[0])  # the simulator's own checks (hosts >= 1, ...)


def run_simulate(options: SimulateOptions, *, console: Console, progress_console: Console) -> int:
    """Run what ``options`` asks for, print to ``console``, and return the exit code.

    Progress goes to ``progress_console`` (standard error on the command line). Call
    :func:`check_options` first: an error it would raise is bad usage, one raised while
    simulating is not.
    """
    check_options(options)
    if options.sweep:
        return _run_sweep(options, console, progress_console)
    return _run_single(options, options.config(options.seeds[0]), console, progress_console)

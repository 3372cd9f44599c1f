"""The ``stateward`` command line.

Subcommands (each one adds its parser in an ``_add_<name>`` function and sets ``handler``):

- ``bench``: run the benchmark rows against their baselines, print a table, write JSON.
- ``diagram``: render a :class:`stateward.runtime.Machine` as Mermaid or Graphviz dot.
- ``inspect``: read a database offline (read-only): resources, one resource's history,
  task records (one task, a resource's tasks, the parked ones).
- ``simulate``: the deterministic chaos simulator, one seed or a sweep of seeds
  (:mod:`stateward.bench._simulate`).

Every command that takes ``--json PATH`` takes ``--json -`` for standard output; what it
would print for people then goes to standard error, so standard output holds the JSON alone.
``stateward --version`` prints the installed version.

Exit codes: 0 success, 1 a failure while running (for ``simulate``: a violated invariant;
for ``bench --check``: a missed goal),
2 bad usage, 130 interrupted. No command ends in a traceback: an error nobody foresaw is
reported in one line (exit code 1), Ctrl-C in one line (exit code 130; see
:mod:`stateward.__main__` for what the process does after it), and output cut short by a
closed pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from stateward import __version__
from stateward.runtime import InvalidArgument, SchemaError, StatewardError, is_dsn

from ._harness import FULL_SIZES, QUICK_SIZES, SIZES, Result, Row, Settings, Skipped, run_rows
from ._inspect import DEFAULT_LIMIT, MAX_LIMIT, InspectFailed, Options, printable, run_inspect
from ._report import format_quantity, ratio_text, report_table, verdict, write_json
from ._rows import ROWS
from ._simulate import DEFAULTS as SIM_DEFAULTS
from ._simulate import SimulateOptions, check_options, parse_faults, parse_seeds, run_simulate

__all__ = ("main",)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_Handler = Callable[[argparse.Namespace, argparse.ArgumentParser], int]

#: Width used when stdout is not a terminal (a file, a pipe, a test's capture): wide enough
#: for the table not to wrap, since nobody is resizing anything.
_PLAIN_WIDTH = 160
#: Characters of an unforeseen error's message that are printed.
_MESSAGE_WIDTH = 500
#: The ``--json`` argument that means standard output (``./-`` is a file called ``-``).
_STDOUT = "-"
#: ``--json``'s help, shared by the commands that take it.
_JSON_HELP = "also write the {what} to PATH as JSON; - writes it to standard output alone"


def _usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    """Report bad usage the way argparse does, but return instead of exiting."""
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


def _failure(parser: argparse.ArgumentParser, message: str) -> int:
    """Report a failure while running in one line, and return its exit code."""
    print(f"{parser.prog}: error: {printable(message)}", file=sys.stderr)
    return EXIT_FAILURE


def _output_path_error(flag: str, path: Path) -> str | None:
    """What is wrong with ``path`` as a file to write, checked before any work starts."""
    if "\0" in str(path):
        return f"{flag}: expected a path without NUL characters, got {str(path)!r}"
    if path.is_dir():
        return f"{flag}: expected the path of a file, not a directory, got {str(path)!r}"
    if not path.parent.is_dir():
        return f"{flag}: directory {str(path.parent)!r} does not exist"
    return None


def _stdout_console(*, json_to_stdout: bool = False) -> Console:
    """The console for what people read: standard output, or standard error when standard
    output carries JSON (``--json -``)."""
    console = Console(stderr=json_to_stdout)
    if not console.is_terminal:
        console = Console(width=_PLAIN_WIDTH, stderr=json_to_stdout)
    return console


def _json_target(flag: str, value: str | None) -> tuple[Path | TextIO | None, str | None]:
    """Where ``--json VALUE`` writes (a file, standard output, or nowhere) and, when the path
    cannot be written, what is wrong with it."""
    if value is None:
        return None, None
    if value == _STDOUT:
        return sys.stdout, None
    path = Path(value)
    return path, _output_path_error(flag, path)


# --- bench ---------------------------------------------------------------------------------


def _add_bench(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure stateward against its baselines and peers",
        description=(
            "Run the benchmark rows. Each row is measured against its baseline in the same "
            "run; a ratio above 1 means better than the baseline. Rows: " + ", ".join(ROWS.names())
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small sizes: the whole suite in well under a minute ({QUICK_SIZES.rounds} rounds)",
    )
    # Hidden: the test suite runs rows at ``tiny`` sizes to check wiring, not speed.
    parser.add_argument("--sizes", choices=tuple(SIZES), default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="GLOB",
        help="run only the rows whose names match one of these fnmatch globs (e.g. 'actor.*')",
    )
    parser.add_argument("--json", metavar="PATH", help=_JSON_HELP.format(what="results"))
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop every row runs on (default: asyncio; uvloop needs the fast "
        "extra: pip install 'stateward[fast]')",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "tuned"),
        default="default",
        help="Python's garbage collector as it comes (default), or tuned as the README "
        "advises a service: gc.freeze() and gc.set_threshold(50_000, 20, 20)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when a row misses its goal (for CI); the table says which",
    )
    parser.set_defaults(handler=_bench, command_parser=parser)


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.sizes is not None and args.quick:
        return _usage_error(parser, "--quick and --sizes are exclusive")
    sizes = SIZES[args.sizes] if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    try:
        rows = ROWS.select(args.only)
    except InvalidArgument as exc:
        return _usage_error(parser, str(exc))
    json_target, problem = _json_target("--json", args.json)
    if problem is not None:
        return _usage_error(parser, problem)
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return _usage_error(
            parser,
            "--loop uvloop needs uvloop, which is not installed: pip install 'stateward[fast]'",
        )

    progress_console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console,
    ) as progress:
        task = progress.add_task(f"bench ({sizes.name})", total=len(rows))

        def on_start(row: Row) -> None:
            progress.update(task, description=f"{row.name}: {row.summary}")

        def on_done(row: Row, outcome: Result | Skipped) -> None:
            if isinstance(outcome, Skipped):
                progress.console.print(f"[yellow]skipped[/] {row.name}: {escape(outcome.reason)}")
            else:
                judged = verdict(outcome)
                progress.console.print(
                    f"{row.name}: {format_quantity(outcome.value)} {outcome.unit}, "
                    f"ratio {ratio_text(outcome)} vs {escape(outcome.baseline)}"
                    + (f" ({judged})" if judged else ""),
                    soft_wrap=True,
                )
            progress.advance(task)

        report = run_rows(
            rows,
            sizes,
            on_start=on_start,
            on_done=on_done,
            chosen=Settings(loop=args.loop, gc=args.gc),
        )

    console = _stdout_console(json_to_stdout=json_target is sys.stdout)
    console.print(report_table(report, width=console.width))
    for skipped in report.skipped:
        console.print(
            f"[yellow]skipped[/] {skipped.name}: {escape(skipped.reason)}", soft_wrap=True
        )
    if json_target is not None:
        write_json(report, json_target)
        if isinstance(json_target, Path):
            console.print(f"results written to {escape(args.json)}", soft_wrap=True)
    missed = [result.name for result in report.results if result.passed is False]
    if args.check and missed:
        print(f"{parser.prog}: {len(missed)} goal(s) missed: {', '.join(missed)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# --- diagram -------------------------------------------------------------------------------


def _add_diagram(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "diagram",
        help="render a state machine as Mermaid or Graphviz dot",
        description="Import MODULE, take its attribute NAME (a stateward Machine), render it.",
    )
    parser.add_argument(
        "machine",
        metavar="MODULE:NAME",
        help="where the Machine lives, e.g. mypkg.machines:INSTANCE",
    )
    parser.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="output format (default: mermaid)",
    )
    parser.set_defaults(handler=_diagram, command_parser=parser)


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """Let modules of the working directory be imported, as ``python -m`` would.

    A console script's ``sys.path`` starts with the script's own folder, not the working
    directory, so ``stateward diagram mymachines:M`` could not find ``mymachines.py``.
    The path is restored afterwards because ``main`` is also called in-process.
    """
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)


def _diagram(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from stateward.runtime import Machine

    spec: str = args.machine
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        return _usage_error(
            parser,
            f"expected MODULE:NAME such as `mypkg.machines:INSTANCE`, got {spec!r}",
        )
    if not all(part.isidentifier() for part in (*module_name.split("."), *attribute.split("."))):
        return _usage_error(
            parser,
            "expected MODULE:NAME with dotted Python names such as "
            f"`mypkg.machines:INSTANCE`, got {spec!r}",
        )
    try:
        with _cwd_importable():
            target: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a module on the path to the one asked for is a usage error; a missing
        # dependency inside an existing module is that module's failure, reported below.
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            return _usage_error(
                parser, f"cannot import module {module_name!r}: no module named {exc.name!r}"
            )
        return _failure(parser, f"importing {module_name!r} failed: {exc}")
    except (Exception, SystemExit) as exc:
        # SystemExit too: a module that exits while imported must not end the command line.
        return _failure(parser, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}")
    for depth, part in enumerate(attribute.split(".")):
        try:
            target = getattr(target, part)
        except AttributeError:
            where = ".".join(attribute.split(".")[:depth])
            owner = f"{module_name}:{where}" if where else f"module {module_name!r}"
            return _usage_error(parser, f"{owner} has no attribute {part!r}")
    if not isinstance(target, Machine):
        return _usage_error(
            parser,
            f"{spec} is a {type(target).__name__}, expected a stateward.runtime.Machine",
        )
    rendered = target.to_mermaid() if args.format == "mermaid" else target.to_dot()
    sys.stdout.write(rendered)
    return EXIT_OK


# --- inspect -------------------------------------------------------------------------------


def _add_inspect(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="read a stateward database offline: resources, their history, tasks",
        description=(
            "List the resources of a stateward database, one resource's transition "
            "history or tasks, one task record, or the parked tasks. A SQLite file is opened "
            "read-only and never locked for writing; a PostgreSQL schema is read in one "
            "read-only transaction; either way the processes that own it may keep running."
        ),
    )
    parser.add_argument(
        "db",
        metavar="DB",
        help="the SQLite file, or a PostgreSQL DSN (postgresql://user@host:port/database)",
    )
    parser.add_argument(
        "--schema",
        metavar="NAME",
        help="with a PostgreSQL DSN: the schema the store wrote (default: stateward)",
    )
    # One view per invocation.
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--resource", metavar="ID", help="show this resource's transition history")
    view.add_argument(
        "--task", metavar="ID", help="show one task record: its fields, steps and history"
    )
    view.add_argument(
        "--parked",
        action="store_true",
        help="list the tasks parked because their flow's definition changed, newest first",
    )
    view.add_argument(
        "--timers",
        action="store_true",
        help="list the pending durable timers, soonest first",
    )
    view.add_argument(
        "--migrations",
        action="store_true",
        help="list the moves: kind, instance, source, destination, state and reason",
    )
    view.add_argument(
        "--leases",
        action="store_true",
        help="list the leases (window, reservations, policy, hosts) and each host's holds; "
        "a lease's history is --resource ID",
    )
    parser.add_argument(
        "--tasks",
        action="store_true",
        help="with --resource: list the resource's tasks, newest first, instead of its history",
    )
    parser.add_argument("--kind", metavar="KIND", help="list only resources of this kind")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N rows, 1 to {MAX_LIMIT:,} (default: {DEFAULT_LIMIT}); a note says "
        "when more exist",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const=_STDOUT,
        metavar="PATH",
        help="print JSON instead of tables: to standard output when PATH is - or left out "
        "(then give DB first), else to the file PATH",
    )
    parser.set_defaults(handler=_inspect, command_parser=parser)


def _inspect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        return _usage_error(
            parser, f"--limit: expected an integer from 1 to {MAX_LIMIT:,}, got {args.limit}"
        )
    for flag, value in (
        ("--resource", args.resource),
        ("--task", args.task),
        ("--kind", args.kind),
    ):
        if value is not None and not _is_utf8(value):
            return _usage_error(parser, f"{flag}: expected UTF-8 text, got {value!r}")
    if args.kind is not None and (
        args.resource is not None
        or args.task is not None
        or args.parked
        or args.timers
        or args.migrations
        or args.leases
    ):
        return _usage_error(
            parser,
            "--kind filters the resource list; drop it with --resource, --task, --parked, "
            "--timers, --migrations, --leases",
        )
    postgres = is_dsn(args.db)
    if args.schema is not None and not postgres:
        return _usage_error(parser, "--schema names a PostgreSQL schema: give a DSN as DB")
    if args.tasks and args.resource is None:
        return _usage_error(parser, "--tasks lists one resource's tasks: add --resource ID")
    json_target, problem = _json_target("--json", args.json)
    if problem is not None:
        return _usage_error(parser, problem)
    options = Options(
        db=args.db if postgres else Path(args.db),
        schema=args.schema or "stateward",
        resource=args.resource,
        kind=args.kind,
        limit=args.limit,
        as_json=json_target is not None,
        task=args.task,
        tasks=args.tasks,
        parked=args.parked,
        timers=args.timers,
        migrations=args.migrations,
        leases=args.leases,
    )
    try:
        if isinstance(json_target, Path):
            try:
                out = json_target.open("w", encoding="utf-8")
            except OSError as exc:
                return _failure(parser, f"--json: cannot write {args.json!r}: {exc.strerror}")
            with out:
                run_inspect(options, console=_stdout_console(), out=out)
        else:
            run_inspect(options, console=_stdout_console())
    except InspectFailed as exc:
        if exc.usage:
            return _usage_error(parser, str(exc))
        return _failure(parser, str(exc))
    except SchemaError as exc:
        return _failure(parser, str(exc))
    return EXIT_OK


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes (the shell passes bytes that are not UTF-8 as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- simulate ------------------------------------------------------------------------------


def _add_simulate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from stateward.sim.fleet import PLANTED_BUGS

    from ._simulate import FAULTS

    parser = subparsers.add_parser(
        "simulate",
        help="chaos-test a whole fleet on a virtual clock, replayable from its seed",
        description=(
            "Run the deterministic chaos simulator: a fleet of hosts and instances on a "
            "virtual clock, clients issuing operations while fault sites fire (chaos), then "
            "faults off and hosts back (heal), then the liveness check. Invariants are "
            "checked throughout. Exit 0 when every invariant held, 1 on a violation (with "
            "the seed and a command reproducing it), 2 on bad usage. The last line is "
            "`event-log sha256: <hex>`, the same for the same seed and code; for a sweep, "
            "`sweep sha256: <hex>`, over the seeds' event-log digests."
        ),
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="the seed of the run (default: 1); everything follows from it",
    )
    which.add_argument(
        "--seeds",
        metavar="A..B",
        help="sweep the seeds A to B (both included), with a progress bar and a summary",
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=SIM_DEFAULTS.hosts,
        metavar="H",
        help=f"hosts in the fleet (default: {SIM_DEFAULTS.hosts})",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=SIM_DEFAULTS.instances,
        metavar="I",
        help=f"instances the workload keeps around (default: {SIM_DEFAULTS.instances})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=SIM_DEFAULTS.duration,
        metavar="SIM_SECONDS",
        help=f"simulated seconds of chaos (default: {SIM_DEFAULTS.duration:g}, one day)",
    )
    parser.add_argument(
        "--faults",
        default="all",
        metavar="all|none|LIST",
        help="the fault sites allowed, each still switched on or off by the seed: all "
        "(default), none, or a comma-separated list of: " + ", ".join(FAULTS),
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=SIM_DEFAULTS.clients,
        metavar="N",
        help=f"concurrent clients (default: {SIM_DEFAULTS.clients})",
    )
    parser.add_argument(
        "--planted-bug",
        action="append",
        choices=tuple(PLANTED_BUGS),
        default=[],
        metavar="NAME",
        help="switch on a deliberate bug, to see the simulator find it (repeatable): "
        + "; ".join(f"{name}: {what}" for name, what in PLANTED_BUGS.items()),
    )
    parser.add_argument(
        "--check-determinism",
        action="store_true",
        help="run each seed twice and report the first event where the two logs diverge",
    )
    parser.add_argument(
        "--json", metavar="PATH", help=_JSON_HELP.format(what="summary (and violations)")
    )
    parser.add_argument(
        "--trace", type=Path, metavar="PATH", help="write the event log as JSON lines (one run)"
    )
    parser.set_defaults(handler=_simulate, command_parser=parser)


def _simulate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        seeds: Sequence[int]
        if args.seeds is not None:
            seeds = parse_seeds(args.seeds)
        else:
            seeds = (1 if args.seed is None else args.seed,)
        options = SimulateOptions(
            seeds=seeds,
            sweep=args.seeds is not None,
            hosts=args.hosts,
            instances=args.instances,
            duration=args.duration,
            faults=parse_faults(args.faults),
            clients=args.clients,
            planted_bugs=tuple(dict.fromkeys(args.planted_bug)),
            check_determinism=args.check_determinism,
            json_path=_json_target("--json", args.json)[0],
            trace_path=args.trace,
        )
        check_options(options)
    except InvalidArgument as exc:
        return _usage_error(parser, str(exc))
    return run_simulate(
        options,
        console=_stdout_console(json_to_stdout=options.json_path is sys.stdout),
        progress_console=Console(stderr=True),
    )


# --- entry point ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``stateward`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="stateward",
        description="stateward: structured state management for cloud resources.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_bench(subparsers)
    _add_diagram(subparsers)
    _add_inspect(subparsers)
    _add_simulate(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``stateward`` command line and return its exit code.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when None.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on bad usage (2); ``main`` returns instead so that
        # it can be called in-process, by tests and by other tools.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: _Handler = args.handler
    command_parser: argparse.ArgumentParser = args.command_parser
    try:
        return handler(args, command_parser)
    except KeyboardInterrupt:
        print(f"{command_parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): nothing left to say, and nowhere to say it.
        _drop_stdout()
        return EXIT_FAILURE
    except SystemExit as exc:
        # rich's answer to a closed pipe, once it has pointed stdout at the null device.
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except StatewardError as exc:
        return _failure(command_parser, _clip(str(exc)))
    except OSError as exc:
        return _failure(command_parser, _clip(str(exc)))
    except Exception as exc:
        return _failure(
            command_parser,
            f"unexpected {type(exc).__name__}: {_clip(str(exc))}; this is a bug in stateward: "
            "please report it with the command line that caused it",
        )


def _clip(message: str) -> str:
    message = " ".join(message.splitlines())
    return message if len(message) <= _MESSAGE_WIDTH else message[: _MESSAGE_WIDTH - 1] + "…"


def _drop_stdout() -> None:
    """Point standard output at the null device, so that the interpreter's last flush of
    what could not be written fails no more (Python's documented idiom for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (an in-process caller's capture): nothing will be flushed


if __name__ == "__main__":
    sys.exit(main())

"""``python -m stateward`` and the ``stateward`` console script: the command line as a process.

:func:`stateward.bench.main` runs a command and returns its exit code; it can be called
in-process. This module adds what only a process may do: Ctrl-C at any moment, even while
the command line is still being imported, ends it with one line and exit code 130, and
nothing else is printed after that line. An interrupted command leaves its work abandoned
(event loops stopped mid-step, tasks never awaited, a store's worker thread); letting the
interpreter shut down normally would report each of them, or wait on the thread, so the
process flushes its output and exits at once. The files a command writes are closed by then
(the interrupt unwinds through it), and a store's commits are atomic.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ("main",)

#: The exit code of an interrupted command (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def main() -> int:
    """Run the ``stateward`` command line on ``sys.argv`` and return its exit code."""
    try:
        from stateward.bench import main as run

        code = run()
    except KeyboardInterrupt:  # before the command line could catch it: while importing
        print("stateward: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Flush standard output and error, then end the process without any cleanup."""
    for stream in (sys.stdout, sys.stderr):
        # A closed stream or a closed pipe: nothing more can be said there.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

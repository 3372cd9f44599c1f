"""The runtime logs through the standard logging module and is silent until asked not to be."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCENARIO = textwrap.dedent(
    """
    import asyncio, logging, sys

    from stateward.runtime import Actor, ActorCrashed, open_actor_system

    if sys.argv[1] == "configured":
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")

    class Fragile(Actor):
        async def receive(self, message):
            raise RuntimeError("boom")

    async def main():
        async with open_actor_system() as system:
            try:
                await system.spawn(Fragile, address="frag-1").ask("x")
            except ActorCrashed:
                pass

    asyncio.run(main())
    """
)


def run(mode: str) -> subprocess.CompletedProcess[str]:
    """Run the scenario in a fresh interpreter, as an application would."""
    return subprocess.run(
        [sys.executable, "-c", SCENARIO, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_the_runtime_writes_nothing_on_its_own() -> None:
    """A crash and its restart print nothing to stdout or stderr without logging set up."""
    done = run("silent")
    assert (done.stdout, done.stderr) == ("", "")


def test_configured_logging_shows_events_with_their_fields() -> None:
    """With logging.basicConfig, events reach stateward.* loggers with their bound fields."""
    done = run("configured")
    assert done.stdout == ""
    crashed = [line for line in done.stderr.splitlines() if "actor crashed" in line]
    assert crashed, done.stderr
    assert crashed[0].startswith("stateward.system ERROR actor crashed system='stateward' ")
    assert "address='frag-1'" in crashed[0]
    assert "RuntimeError('boom')" in done.stderr

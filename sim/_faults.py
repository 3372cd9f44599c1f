"""Fault sites: the ways a run goes wrong, each switched on or off per seed.

A site is a name, what it does, and how it fires. *Timed* sites have a ``fire`` function
that the world calls at random moments of the chaos phase (a store failure, a host going
down). *Ambient* sites have none: the code they affect asks :meth:`World.rate` how likely
they are, every time it could happen (a lost message, a failing driver call). The process
crash is ambient too; the world itself schedules it.

Every run decides once, from its seed, which of the allowed sites are on and how strongly
(FoundationDB's "buggify"), so different seeds explore different mixes of failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateward.runtime import InvalidArgument

if TYPE_CHECKING:
    from ._world import Scenario

__all__ = (
    "FaultSite",
    "Faults",
    "MessageLost",
    "PROCESS_CRASH",
    "STORE_FAILURE",
    "STORE_FALSE_FAILURE",
    "DISK_FULL",
    "MESSAGE_DELAY",
    "MESSAGE_LOSS",
    "CORE_FAULTS",
)

#: ``fire(scenario, app)``: inject the fault now (``app`` is what the scenario's ``open``
#: returned for this incarnation; ``scenario.world`` is the world).
Fire = Callable[[Any, Any], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class FaultSite:
    """One way a run goes wrong.

    Attributes:
        name: how options and reports name it (``"host_down"``).
        description: what it does, in a few words.
        fire: for a timed site, what injecting it does (it calls :meth:`World.fault` when it
            did inject something); None for an ambient site.
    """

    name: str
    description: str
    fire: Fire | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidArgument(
                "FaultSite.name", expected="a name like host_down (an identifier)", got=self.name
            )


class Faults(Mapping[str, FaultSite]):
    """The fault sites of a scenario, by name, in the order given.

    Raises:
        InvalidArgument: two sites share a name, or one is no :class:`FaultSite`.
    """

    __slots__ = ("_sites",)

    def __init__(self, sites: Iterable[FaultSite]) -> None:
        self._sites: dict[str, FaultSite] = {}
        for site in sites:
            if not isinstance(site, FaultSite):
                raise InvalidArgument("faults", expected="FaultSite items", got=site)
            if site.name in self._sites:
                raise InvalidArgument("faults", expected="unique names", got=site.name)
            self._sites[site.name] = site

    def __getitem__(self, name: str) -> FaultSite:
        return self._sites[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sites)

    def __len__(self) -> int:
        return len(self._sites)

    def check(self, names: Iterable[str], *, option: str = "faults") -> frozenset[str]:
        """``names`` as a set, when each names a site here.

        Raises:
            InvalidArgument: a name that is not a site, with the known ones.
        """
        chosen = frozenset(names)
        unknown = sorted(chosen - self._sites.keys())
        if unknown:
            raise InvalidArgument(
                option, expected=f"names from {', '.join(self._sites)}", got=unknown
            )
        return chosen

    def __repr__(self) -> str:
        return f"Faults({', '.join(self._sites)})"


class MessageLost(Exception):
    """A message between a client and the system was lost (see :meth:`World.network`)."""


def _store_failure(scenario: Scenario[Any], app: Any) -> None:
    world = scenario.world
    world.store.fail_writes(1, reason="I/O error")
    world.fault("store_failure")


def _store_false_failure(scenario: Scenario[Any], app: Any) -> None:
    world = scenario.world
    world.store.fail_writes(1, reason="I/O error", after_commit=True)
    world.fault("store_false_failure")


def _disk_full(scenario: Scenario[Any], app: Any) -> None:
    world = scenario.world
    world.store.fail_writes(world.random("faults").randint(2, 10), reason="disk full")
    world.fault("disk_full")


#: The process dies at once: no cleanup runs; the next incarnation opens what was committed.
PROCESS_CRASH = FaultSite("process_crash", "the process dies without any cleanup")
#: One transaction fails before anything is written.
STORE_FAILURE = FaultSite("store_failure", "one commit fails (I/O error)", _store_failure)
#: One transaction is written, then reported failed (an fsync error after the write).
STORE_FALSE_FAILURE = FaultSite(
    "store_false_failure", "one commit is durable but reported failed", _store_false_failure
)
#: Several transactions in a row fail.
DISK_FULL = FaultSite("disk_full", "2 to 10 commits in a row fail (disk full)", _disk_full)
#: A client's request or reply waits 1 to 30 s (see :meth:`World.network`).
MESSAGE_DELAY = FaultSite("message_delay", "a request or reply is delayed 1-30 s")
#: A client's request or reply is lost (see :meth:`World.network`).
MESSAGE_LOSS = FaultSite("message_loss", "a request or reply is lost")

#: The sites every scenario has: the process, its store and its clients' network.
CORE_FAULTS = (
    MESSAGE_DELAY,
    MESSAGE_LOSS,
    STORE_FAILURE,
    STORE_FALSE_FAILURE,
    DISK_FULL,
    PROCESS_CRASH,
)

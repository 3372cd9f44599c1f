"""Pins the reply types of the domain's requests: mypy checks this file, pytest does not run it.

A host actor's messages are ``Request[R]``: ``ask`` on one is typed ``R``, and a caller who
takes the reply for something else is a type error. Each ``# type: ignore[code]`` marks a use
that must stay an error (``warn_unused_ignores`` fails the file the day it stops being one).
"""

from __future__ import annotations

from typing import assert_type

from stateward.actors import (
    Capacity,
    Claim,
    ClaimCapacity,
    Configure,
    Fleet,
    GetHost,
    Heartbeat,
    HostStatus,
    InstanceStatus,
    ReleaseClaim,
)
from stateward.flows import TaskRecord
from stateward.runtime import ActorRef


async def host_requests(ref: ActorRef) -> None:
    """Configure, Heartbeat and GetHost reply with a HostStatus; a claim with a Claim; a
    release with whether there was one."""
    assert_type(await ref.ask(Configure(Capacity(vcpus=4))), HostStatus)
    assert_type(await ref.ask(Heartbeat()), HostStatus)
    assert_type(await ref.ask(GetHost()), HostStatus)
    claim = ClaimCapacity("c-1", "t-1", "web-1", Capacity(vcpus=1))
    assert_type(await ref.ask(claim), Claim)
    assert_type(await ref.ask(ReleaseClaim("c-1")), bool)


async def fleet_calls(fleet: Fleet) -> None:
    """The fleet's calls return the records their actors reply with."""
    assert_type(await fleet.hosts.get("h-1"), HostStatus)
    assert_type(await fleet.instances.get("web-1"), InstanceStatus)
    assert_type(await fleet.instances.stop("web-1"), TaskRecord)


async def wrong_uses(ref: ActorRef) -> None:
    """Each line is a type error mypy must keep reporting."""
    status: InstanceStatus = await ref.ask(GetHost())  # type: ignore[assignment]
    held = ClaimCapacity("c-1", "t-1", "web-1", Capacity())
    claim: HostStatus = await ref.ask(held)  # type: ignore[assignment]
    released: str = await ref.ask(ReleaseClaim("c-1"))  # type: ignore[assignment]
    claim_id = (await ref.ask(Heartbeat())).claim_id  # type: ignore[attr-defined]
    del status, claim, released, claim_id

"""The instance machine: Nova's vm_state and task_state names, commands and their sources."""

from __future__ import annotations

import pytest

from stateward.actors import (
    ACTIONS,
    INSTANCE,
    Capacity,
    FakeDriver,
    Flavor,
    Fleet,
    task_state,
    vm_state,
)
from stateward.bench._cli import main as cli_main
from stateward.runtime import InvalidTransition, Machine, StateKind

#: The stable states each command may start from (``delete`` also interrupts a build).
SOURCES = {
    "boot": {"new", "deleted"},
    "stop": {"active"},
    "start": {"stopped"},
    "reboot": {"active"},
    "reboot_hard": {"active", "stopped", "error"},
    "pause": {"active"},
    "unpause": {"paused"},
    "suspend": {"active"},
    "resume": {"suspended"},
    "rebuild": {"active", "stopped", "error"},
    "migrate": {"active", "stopped"},
    "resize": {"active", "stopped"},
    "live_migrate": {"active"},
    "evacuate": {"active", "stopped", "error"},
    "confirm_resize": {"resized"},
    "revert_resize": {"resized"},
    "delete": {
        "active",
        "stopped",
        "paused",
        "suspended",
        "error",
        "resized",
        "building/scheduling",
        "building/networking",
        "building/block_device_mapping",
        "building/spawning",
    },
}


def test_instance_machine_is_a_sound_definition() -> None:
    """Rebuilding INSTANCE from its parts passes validation: every state reachable, no
    dead ends, no terminal state (a deleted name boots again)."""
    again = Machine(
        "instance",
        initial=INSTANCE.initial,
        states=dict(INSTANCE.states),
        transitions=list(INSTANCE.transitions),
    )
    assert again.initial == "new"
    assert [s for s, k in INSTANCE.states.items() if k is StateKind.TERMINAL] == []
    assert INSTANCE.kind("deleted") is StateKind.STABLE
    for state, kind in INSTANCE.states.items():
        assert (kind is StateKind.TRANSITIONAL) == ("/" in state), state


def test_vm_state_and_task_state_split_a_state() -> None:
    """A machine state splits into Nova's vm_state and task_state."""
    assert vm_state("active/rebooting_hard") == "active"
    assert task_state("active/rebooting_hard") == "rebooting_hard"
    assert vm_state("building/block_device_mapping") == "building"
    assert task_state("building/block_device_mapping") == "block_device_mapping"
    assert vm_state("stopped") == "stopped"
    assert task_state("stopped") is None


def test_vm_states_use_nova_names() -> None:
    """Every vm_state and task_state of the machine is one of Nova's names."""
    nova_vm = {
        "new",
        "building",
        "active",
        "stopped",
        "paused",
        "suspended",
        "resized",
        "error",
        "deleted",
    }
    nova_task = {
        "scheduling",
        "networking",
        "block_device_mapping",
        "spawning",
        "powering-off",
        "powering-on",
        "rebooting",
        "rebooting_hard",
        "pausing",
        "unpausing",
        "suspending",
        "resuming",
        "rebuilding",
        "deleting",
        # Moves: Nova's names where it has one; a cold migration and an evacuation are
        # told apart from a resize and a rebuild here.
        "migrating",
        "migrating_cold",
        "resize_migrating",
        "resize_confirming",
        "resize_reverting",
        "evacuating",
    }
    assert {vm_state(s) for s in INSTANCE.states} == nova_vm
    assert {task_state(s) for s in INSTANCE.states} - {None} == nova_task


@pytest.mark.parametrize("command", sorted(SOURCES))
def test_each_command_starts_only_from_its_source_states(command: str) -> None:
    """A command is allowed exactly in its source states, and leads to a transitional state
    named after its task."""
    allowed_in = {s for s in INSTANCE.states if command in INSTANCE.allowed(s)}
    assert allowed_in == SOURCES[command]
    for source in allowed_in:
        target = INSTANCE.target(source, command)
        assert "/" in target
        if command != "delete" or "/" not in source:
            assert vm_state(target) == vm_state(source) or command == "boot"


def test_actions_are_the_commands_besides_boot() -> None:
    """ACTIONS lists every user command but boot, in a stable order."""
    assert ACTIONS == (
        "stop",
        "start",
        "reboot",
        "reboot_hard",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "rebuild",
        "delete",
    )


def test_failed_tasks_go_back_and_damage_goes_to_error() -> None:
    """``failed`` returns to the state the command started from (a rebuild's to error);
    ``damaged`` always ends in error."""
    assert INSTANCE.target("active/powering-off", "failed") == "active"
    assert INSTANCE.target("stopped/powering-on", "failed") == "stopped"
    assert INSTANCE.target("paused/unpausing", "failed") == "paused"
    assert INSTANCE.target("active/rebuilding", "failed") == "error"
    assert INSTANCE.target("building/spawning", "failed") == "error"
    for state in INSTANCE.states:
        if "damaged" in INSTANCE.allowed(state):
            assert INSTANCE.target(state, "damaged") == "error"


def test_deleted_allows_only_a_new_boot() -> None:
    """``deleted`` frees the name: ``boot`` leaves it for a new build, nothing else does."""
    assert INSTANCE.allowed("deleted") == ("boot",)
    assert INSTANCE.target("deleted", "boot") == "building/scheduling"
    with pytest.raises(InvalidTransition, match=r"cannot `delete` in state `deleted`"):
        INSTANCE.target("deleted", "delete")


async def test_command_refused_by_the_state_lists_the_allowed_actions() -> None:
    """``start`` on an active instance fails with InvalidTransition naming the user actions
    the state allows (not internal events such as ``lost``), and changes nothing."""
    async with Fleet.open(None, driver=FakeDriver()) as fleet:
        await fleet.flavors.add(Flavor("m1.small", 1, 2048, 20))
        await fleet.images.add("cirros")
        await fleet.hosts.add("h-1", capacity=Capacity(8, 16384, 200))
        record = await fleet.instances.boot("web-1", flavor="m1.small", image="cirros")
        await fleet.tasks.wait(record.id)
        before = await fleet.instances.get("web-1")
        with pytest.raises(InvalidTransition) as caught:
            await fleet.instances.start("web-1")
        assert str(caught.value) == (
            "web-1 cannot `start` in state `active`; allowed: "
            "stop, reboot, reboot_hard, pause, suspend, rebuild, delete, "
            "migrate, resize, live_migrate, evacuate"
        )
        assert caught.value.allowed == before.allowed
        assert await fleet.instances.get("web-1") == before


def test_diagram_renders_the_instance_machine(capsys: pytest.CaptureFixture[str]) -> None:
    """``stateward diagram stateward.actors:INSTANCE --format mermaid`` renders every state."""
    code = cli_main(["diagram", "stateward.actors:INSTANCE", "--format", "mermaid"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("stateDiagram-v2")
    assert "building/spawning" in out
    assert "active/powering-off" in out


def test_diagram_renders_dot_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The dot format renders the same machine."""
    assert cli_main(["diagram", "stateward.actors:INSTANCE", "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert "digraph" in out
    assert '"building/spawning"' in out

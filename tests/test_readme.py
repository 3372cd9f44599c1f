"""The README's embedding examples run as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
#: structlog's default output (the host application decides where logs go).
LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")


def python_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each README example runs; the durable one persists across two runs; the fleet boots."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "srv-1 cannot `delete` in state `running`; allowed: stop" in printed
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    asyncio.run(namespace["main"]())
    asyncio.run(namespace["main"]())  # a second run restores srv-1 from state.db
    printed = capsys.readouterr().out
    assert printed.splitlines() == ["srv-1 at revision 3", "srv-1 at revision 6"]
    exec(compile(blocks[2], "README.md", "exec"), namespace)
    asyncio.run(namespace["boot"]())
    lines = [line for line in capsys.readouterr().out.splitlines() if not LOG.match(line)]
    assert lines[0] == "released claim-4 because power_on failed"
    assert lines[1].startswith("reverted [('reserve', <StepStatus.REVERTED")
    assert lines[2] == "power_on: no power"
    exec(compile(blocks[3], "README.md", "exec"), namespace)
    asyncio.run(namespace["cloud"]())
    lines = [line for line in capsys.readouterr().out.splitlines() if not LOG.match(line)]
    assert lines == [
        "succeeded ['schedule', 'allocate_ports', 'attach_volumes', 'spawn', 'power_on']",
        "active None running h-1 ('port-default-000001',)",
        "['instance.web-1.boot', 'instance.web-1.scheduled', 'instance.web-1.networked', "
        "'instance.web-1.volumes_attached', 'instance.web-1.spawned']",
        "web-1 cannot `start` in state `active`; allowed: stop, reboot, reboot_hard, pause, "
        "suspend, rebuild, delete",
        "deleted Capacity(vcpus=0, ram_mb=0, disk_gb=0) ()",
    ]

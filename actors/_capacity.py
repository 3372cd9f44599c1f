"""Amounts of capacity: what hosts have, claims take and leases hold."""

from __future__ import annotations

import msgspec

from stateward.runtime import InvalidArgument

__all__ = ("Capacity",)


class Capacity(msgspec.Struct, frozen=True):
    """Amounts of vcpus, RAM and disk."""

    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0

    def __post_init__(self) -> None:
        for name in ("vcpus", "ram_mb", "disk_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgument(name, expected="an int >= 0", got=value)

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            self.vcpus + other.vcpus, self.ram_mb + other.ram_mb, self.disk_gb + other.disk_gb
        )

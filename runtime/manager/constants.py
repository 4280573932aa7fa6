"""The manager's enums; its Redis keys are in `runtime.manager.keys`."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Priority"]


class Priority(IntEnum):
    """Higher is served first; a lower class waits while a higher one has work."""

    LOW = 0
    NORMAL = 1
    HIGH = 2

"""Polling until a real server has caught up (a scrape, a rule evaluation, a controller)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["until"]

T = TypeVar("T")


def until(what: str, probe: Callable[[], T | None], timeout: float = 90) -> T:
    """`probe()`'s first value that is not None; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s: {what}")
        time.sleep(0.2)

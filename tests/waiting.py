"""Polling until a real server has caught up (a scrape, a rule evaluation, a controller, a
worker finishing a task): the one helper every test folder uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 90,
    *,
    ignoring: tuple[type[BaseException], ...] = (),
    interval: float = 0.2,
) -> T:
    """`probe()`'s first answer that is neither None nor False; fails naming `what` (and the
    last answer) after `timeout`. Exceptions of the `ignoring` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except ignoring as err:
            value, last = None, err
        else:
            last = value
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s: {what} (last: {last!r})")
        time.sleep(interval)

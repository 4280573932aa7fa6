"""What every dependency's rules share: the runbook they point at, the unreachable verdict."""

from __future__ import annotations

from typing import Final

from ops.diagnostics.check import Check, Status

__all__ = ["RUNBOOK", "unreachable"]

# Every piece of advice points at the section of the runbook that goes further.
RUNBOOK: Final = "docs/operations.md"


def unreachable(name: str, what: str, error: str, advice: str) -> Check:
    """A dependency that did not answer: critical, with the connection error as the detail."""
    return Check(
        name=name,
        status=Status.CRITICAL,
        value=None,
        threshold=f"{what} answers",
        detail=error,
        advice=advice,
    )

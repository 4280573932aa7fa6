"""The health report: every check, what was not checked, the recommendations; rendering.

`recommendations` and `exit_code` are pure; `table` builds a rich Table (no printing here).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field
from rich.table import Table
from rich.text import Text

from ops.diagnostics.check import Check, Status, worst

__all__ = ["EXIT_CRITICAL", "EXIT_OK", "Report", "build_report", "recommendations", "table"]

# `agentops doctor` exits 0 when nothing is critical (warnings included) and 1 when any check
# is critical, so a cron job or a CI gate can page on it; 2 is kept for bad options or config.
EXIT_OK = 0
EXIT_CRITICAL = 1

_STYLE = {Status.HEALTHY: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red"}


class Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stack: str
    status: Status
    checks: list[Check]
    not_checked: list[str] = Field(description="dependencies skipped, and the option to give")
    recommendations: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT_CRITICAL if self.status is Status.CRITICAL else EXIT_OK


def recommendations(checks: Iterable[Check]) -> list[str]:
    """The advice of every failing check, critical first, each piece once."""
    failing = sorted(
        (c for c in checks if c.status is not Status.HEALTHY and c.advice),
        key=lambda c: -c.status.rank,
    )
    seen: dict[str, None] = {}
    for check in failing:
        seen.setdefault(f"[{check.status.value}] {check.name}: {check.advice}")
    return list(seen)


def build_report(stack: str, checks: list[Check], not_checked: list[str]) -> Report:
    return Report(
        stack=stack,
        status=worst(checks),
        checks=checks,
        not_checked=not_checked,
        recommendations=recommendations(checks),
    )


def _value(value: float | int | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table(report: Report) -> Table:
    grid = Table(title=f"agentops doctor — stack {report.stack}: {report.status.value}")
    for column in ("check", "status", "value", "threshold", "detail"):
        grid.add_column(column, overflow="fold")
    for check in report.checks:
        # Text, not str: rich would read "[...]" in an error message as markup and drop it.
        grid.add_row(
            Text(check.name),
            Text(check.status.value, style=_STYLE[check.status]),
            Text(_value(check.value)),
            Text(check.threshold),
            Text(check.detail),
        )
    return grid

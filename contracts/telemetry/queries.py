"""PromQL shared by the alert catalogue and the dashboards: one definition per signal."""

from __future__ import annotations

from contracts.telemetry import metrics as m

__all__ = ["success_rate"]


def success_rate(window: str, filters: tuple[str, ...] = ()) -> str:
    """Share of completed tasks that succeeded, per agent type, over `window`.

    `filters` are extra label matchers (`agent_type=~"$agent_type"`). A type whose every task
    fails has no `succeeded` series at all (a labelled counter appears on its first
    increment), so the numerator falls back to 0 × total. With no traffic the ratio is
    0/0 = NaN, which no comparison accepts: idle types never alert.
    """

    def tasks(*matchers: str) -> str:
        inner = ",".join([*filters, *matchers])
        selector = f"{m.TASKS}{{{inner}}}" if inner else m.TASKS
        return f"sum by (agent_type) (rate({selector}[{window}]))"

    total = tasks()
    succeeded = tasks('status="succeeded"')
    return f"({succeeded} or {total} * 0) / {total}"

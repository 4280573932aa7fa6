"""Cost probe: the cost engine's spend report against its budgets and the stack's."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import ValidationError

from contracts import endpoints
from contracts.settings.service import read_secret_file
from ops.diagnostics.check import Check
from ops.diagnostics.platform import PlatformExpectations
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.rules import unreachable
from ops.diagnostics.rules.cost import budget_check, budget_config_check, projection_check
from ops.diagnostics.settings import DoctorSettings
from runtime.cost.schemas import ReportOut

__all__ = ["cost_checks"]

_ADVICE = "Check the cost-engine pods (agentops-platform namespace), the URL and the token."


def _report(url: str, token_file: Path | None, timeout: float) -> ReportOut:
    headers = {}
    if token_file is not None:
        headers["Authorization"] = f"Bearer {read_secret_file(token_file, 'cost engine token')}"
    # One day of series is enough: today's spend; month to date is computed regardless.
    response = httpx.get(
        f"{url.rstrip('/')}{endpoints.COST_API}/report",
        params={"days": 1},
        headers=headers,
        timeout=timeout,
    )
    if response.status_code != 200:
        raise ValueError(f"the cost engine answered {response.status_code}: {response.text}")
    return ReportOut.model_validate_json(response.content)


def cost_checks(
    url: str, token_file: Path | None, expect: PlatformExpectations, settings: DoctorSettings
) -> list[Check]:
    try:
        report = _report(url, token_file, settings.timeout_s)
    except (httpx.HTTPError, ValidationError, ValueError) as err:
        return [unreachable("cost.report", "the cost engine's report", describe(err), _ADVICE)]
    today = next((d for d in report.series if d.date == report.as_of), None)
    checks = [
        budget_check(
            "month", report.month_to_date_usd, report.monthly_budget_usd, expect.downgrade_at
        )
    ]
    if today is not None:
        checks.append(budget_check("day", today.spend_usd, today.budget_usd, expect.downgrade_at))
    checks += [
        projection_check(report.projected_month_end_usd, report.monthly_budget_usd),
        budget_config_check(report.monthly_budget_usd, expect.monthly_budget_usd),
    ]
    return checks

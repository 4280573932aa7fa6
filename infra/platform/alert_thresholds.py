"""The stack's numbers the alert catalogue is built from (Prometheus in the cluster and the
local platform's Prometheus alike)."""

from __future__ import annotations

from decimal import Decimal

from contracts.config import PlatformConfig
from contracts.telemetry.alerts import AlertThresholds

__all__ = ["alert_thresholds"]


def alert_thresholds(cfg: PlatformConfig) -> AlertThresholds:
    return AlertThresholds(
        hourly_token_budget=cfg.monitoring.hourly_token_budget,
        daily_budget_usd=Decimal(cfg.cost.budget.daily_usd),
        monthly_budget_usd=Decimal(cfg.cost.budget.monthly_usd),
        budget_thresholds=tuple(cfg.cost.alert_thresholds),
    )

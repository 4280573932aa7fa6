"""Prometheus, Alertmanager routes, Grafana and tracing."""

from __future__ import annotations

import re
from typing import Final, Self

from pydantic import Field, model_validator

from contracts.config.base import ConfigModel, RuleViolation
from contracts.config.quota import NamespaceQuotaConfig

__all__ = [
    "CLOUDWATCH_RETENTION_DAYS",
    "AlertingConfig",
    "EmailReceiverConfig",
    "LogsConfig",
    "MonitoringConfig",
    "PagerDutyReceiverConfig",
    "SlackReceiverConfig",
]


class SlackReceiverConfig(ConfigModel):
    channel: str = Field(
        pattern=r"^#[a-z0-9_-]{1,80}$", description="channel for every alert, critical or not"
    )
    # The webhook URL is a secret: `pulumi config set --secret agentops:slackWebhookUrl ...`.


class EmailReceiverConfig(ConfigModel):
    to: list[str] = Field(min_length=1, description="recipients of alert e-mails")
    sender: str = Field(description="From: address")
    smarthost: str = Field(pattern=r"^[A-Za-z0-9.-]+:\d{2,5}$", description="SMTP host:port")
    # The SMTP password is a secret: `agentops:smtpPassword`.

    @model_validator(mode="after")
    def _addresses(self) -> Self:
        mail = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
        for i, addr in enumerate([*self.to, self.sender]):
            if not mail.match(addr):
                key = f"to[{i}]" if i < len(self.to) else "sender"
                raise RuleViolation(key, addr, "must be an e-mail address")
        return self


class PagerDutyReceiverConfig(ConfigModel):
    enabled: bool = Field(default=True, description="page on critical alerts")
    # The routing key is a secret: `agentops:pagerdutyRoutingKey`.


class AlertingConfig(ConfigModel):
    slack: SlackReceiverConfig | None = Field(default=None, description="every alert to Slack")
    email: EmailReceiverConfig | None = Field(default=None, description="every alert by e-mail")
    pagerduty: PagerDutyReceiverConfig | None = Field(
        default=None, description="critical alerts to PagerDuty (required in prod)"
    )

    def reaches_people(self) -> bool:
        """Slack or e-mail take warnings and criticals alike; PagerDuty only pages criticals."""
        return self.slack is not None or self.email is not None


# The retention periods CloudWatch Logs accepts (PutRetentionPolicy's retentionInDays).
CLOUDWATCH_RETENTION_DAYS: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip


class LogsConfig(ConfigModel):
    enabled: bool = Field(
        default=False,
        description=(
            "ship the nodes' container logs to CloudWatch Logs (AWS stacks only): Fluent Bit "
            "as a DaemonSet, an application and an audit log group"
        ),
    )
    retention_days: int = Field(
        default=30, description="days CloudWatch Logs keeps both log groups' events"
    )

    @model_validator(mode="after")
    def _retention(self) -> Self:
        if self.retention_days not in CLOUDWATCH_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in CLOUDWATCH_RETENTION_DAYS)
            raise RuleViolation(
                "retentionDays", self.retention_days, f"CloudWatch Logs allows only {allowed}"
            )
        return self


class MonitoringConfig(ConfigModel):
    enabled: bool = Field(default=True, description="install the monitoring stack")
    retention: str = Field(
        default="15d", pattern=r"^\d+[hdwy]$", description="Prometheus retention, e.g. 15d"
    )
    storage_gi: int = Field(default=50, ge=1, le=10000, description="Prometheus volume size")
    grafana: bool = Field(default=True, description="install Grafana with the dashboards")
    hourly_token_budget: int = Field(
        default=2_000_000,
        ge=1,
        description="tokens per hour across the platform above which a critical alert fires",
    )
    tracing: bool = Field(default=True, description="OpenTelemetry collector + Jaeger")
    trace_sampling_percent: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description=(
            "percent of traces kept when tracing is on: the mesh's Telemetry sampling and the "
            "runtime's for traces it starts (a task's spans follow its submit's decision)"
        ),
    )
    alerting: AlertingConfig = Field(
        default_factory=AlertingConfig, description="Alertmanager receivers"
    )
    logs: LogsConfig = Field(
        default_factory=LogsConfig, description="logs that leave the node (CloudWatch Logs)"
    )
    namespace_quota: NamespaceQuotaConfig = Field(
        default_factory=lambda: NamespaceQuotaConfig(cpu="16", memory="64Gi", pods=150),
        description="quota of the monitoring namespace",
    )

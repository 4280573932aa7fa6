"""Alertmanager's routing tree, built from the configured receivers.

Secret values (webhook URL, SMTP password, routing key) are passed in and placed only at their
leaves, so a plan shows the whole routing tree and redacts just those values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config import PlatformConfig
from infra.platform.names import MANAGER, Namespace
from runtime import endpoints, ports
from runtime.telemetry.alerts import EMERGENCY_ALERT

__all__ = ["MANAGER_WEBHOOK_SECRET", "WEBHOOK_TOKEN_FILE", "LocalDelivery", "alertmanager_config"]

# A Kubernetes Secret Alertmanager mounts (prometheus-operator: /etc/alertmanager/secrets/<name>).
MANAGER_WEBHOOK_SECRET = "alertmanager-manager-webhook"  # noqa: S105 - a Secret's name
WEBHOOK_TOKEN_FILE = f"/etc/alertmanager/secrets/{MANAGER_WEBHOOK_SECRET}/token"
_GROUP_BY = ["alertname", "agent_type", "scope", "window"]


@dataclass(frozen=True)
class LocalDelivery:
    """Where the routes deliver on one machine (`agentops dev`): the manager's local URL and
    token file, only the manager's receiver (no paging from a laptop), and timings short
    enough that a firing or resolved alert arrives within seconds."""

    manager_url: str
    webhook_token_file: str
    group_interval: str = "1s"
    repeat_interval: str = "1m"


def alertmanager_config(
    cfg: PlatformConfig, secrets: Mapping[str, Any], local: LocalDelivery | None = None
) -> dict[str, Any]:
    """The `alertmanager.config` value; `secrets` maps secret config keys to their values."""
    alerting = cfg.monitoring.alerting
    receivers: list[dict[str, Any]] = [{"name": "null"}]
    routes: list[dict[str, Any]] = []
    manager = f"http://{MANAGER}.{Namespace.PLATFORM.value}.svc:{ports.MANAGER_HTTP}"
    token_file = WEBHOOK_TOKEN_FILE
    if local is not None:
        manager, token_file = local.manager_url, local.webhook_token_file
    receivers.append(
        {
            "name": "agent-manager",
            "webhook_configs": [
                {
                    "url": manager + endpoints.ALERT_WEBHOOK,
                    "send_resolved": True,
                    "http_config": {
                        "authorization": {"type": "Bearer", "credentials_file": token_file}
                    },
                }
            ],
        }
    )
    # The manager closes the loop: emergency mode while the critical success-rate alert fires.
    routes.append(
        {
            "receiver": "agent-manager",
            "matchers": [f'alertname="{EMERGENCY_ALERT}"'],
            "group_by": ["alertname"],
            "group_wait": "0s",
            "continue": True,
        }
    )
    if local is not None:
        return {
            "route": {
                "receiver": "null",
                "group_by": _GROUP_BY,
                "group_wait": "0s",
                "group_interval": local.group_interval,
                "repeat_interval": local.repeat_interval,
                "routes": [{**r, "group_interval": local.group_interval} for r in routes],
            },
            "receivers": receivers,
        }
    if alerting.pagerduty is not None and alerting.pagerduty.enabled:
        receivers.append(
            {
                "name": "pagerduty-critical",
                "pagerduty_configs": [
                    {"routing_key": secrets["pagerdutyRoutingKey"], "severity": "critical"}
                ],
            }
        )
        routes.append(
            {
                "receiver": "pagerduty-critical",
                "matchers": ['severity="critical"'],
                "continue": True,
            }
        )
    if alerting.slack is not None:
        receivers.append(
            {
                "name": "slack-warnings",
                "slack_configs": [
                    {
                        "api_url": secrets["slackWebhookUrl"],
                        "channel": alerting.slack.channel,
                        "send_resolved": True,
                        "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                        "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n"
                        "{{ .Annotations.description }}\nAction: {{ .Annotations.action }}\n"
                        "{{ end }}",
                    }
                ],
            }
        )
        routes.append(
            {"receiver": "slack-warnings", "matchers": ['severity="warning"'], "continue": True}
        )
    default = "null"
    if alerting.email is not None:
        email = alerting.email
        receivers.append(
            {
                "name": "email",
                "email_configs": [
                    {
                        "to": ", ".join(email.to),
                        "from": email.sender,
                        "smarthost": email.smarthost,
                        "auth_username": email.sender,
                        "auth_password": secrets["smtpPassword"],
                        "require_tls": True,
                        "send_resolved": True,
                    }
                ],
            }
        )
        # E-mail gets everything the more specific receivers also get.
        default = "email"
    return {
        "route": {
            "receiver": default,
            "group_by": _GROUP_BY,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "inhibit_rules": [
            {
                # A critical alert silences the warning about the same thing.
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["agent_type", "scope", "window"],
            }
        ],
        "receivers": receivers,
    }

"""Alertmanager's routing tree, built from the configured receivers.

Secret values (webhook URL, SMTP password, routing key) are passed in and placed only at their
leaves, so a plan shows the whole routing tree and redacts just those values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts import endpoints, ports
from contracts.config import PlatformConfig
from contracts.telemetry.alerts import EMERGENCY_ALERT, RuleGroup, build_catalogue
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.names import MANAGER, Namespace

__all__ = [
    "MANAGER_WEBHOOK_SECRET",
    "WEBHOOK_TOKEN_FILE",
    "LocalDelivery",
    "alertmanager_config",
    "inhibit_rules",
]

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
    receivers: list[dict[str, Any]] = []
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
        # Alerts other than the emergency stay on the laptop (Alertmanager's UI), unsent.
        return {
            "route": {
                "receiver": "null",
                "group_by": _GROUP_BY,
                "group_wait": "0s",
                "group_interval": local.group_interval,
                "repeat_interval": local.repeat_interval,
                "routes": [{**r, "group_interval": local.group_interval} for r in routes],
            },
            "receivers": [{"name": "null"}, *receivers],
        }
    people = _people_receivers(cfg, secrets)
    receivers += [receiver for receiver, _ in people]
    routes += [route for _, route in people]
    return {
        "route": {
            # Only an alert no route matches lands here; a catalogue alert always matches one.
            "receiver": people[0][0]["name"],
            "group_by": _GROUP_BY,
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "inhibit_rules": inhibit_rules(build_catalogue(alert_thresholds(cfg))),
        "receivers": receivers,
    }


def _people_receivers(
    cfg: PlatformConfig, secrets: Mapping[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(receiver, route) per configured channel to people, most urgent first.

    PagerDuty pages on critical alerts; Slack and e-mail get every alert, critical or not, so
    a stack without PagerDuty still tells someone about a critical one. Every route continues,
    so one alert reaches each channel that takes it.
    """
    alerting = cfg.monitoring.alerting
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if alerting.pagerduty is not None and alerting.pagerduty.enabled:
        found.append(
            (
                {
                    "name": "pagerduty-critical",
                    "pagerduty_configs": [
                        {"routing_key": secrets["pagerdutyRoutingKey"], "severity": "critical"}
                    ],
                },
                {"matchers": ['severity="critical"']},
            )
        )
    if alerting.slack is not None:
        found.append(
            (
                {
                    "name": "slack",
                    "slack_configs": [
                        {
                            "api_url": secrets["slackWebhookUrl"],
                            "channel": alerting.slack.channel,
                            "send_resolved": True,
                            "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                            "text": "{{ range .Alerts }}[{{ .Labels.severity }}] "
                            "{{ .Annotations.summary }}\n{{ .Annotations.description }}\n"
                            "Action: {{ .Annotations.action }}\n{{ end }}",
                        }
                    ],
                },
                {"matchers": ['severity=~"warning|critical"']},
            )
        )
    if alerting.email is not None:
        email = alerting.email
        found.append(
            (
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
                },
                {"matchers": ['severity=~"warning|critical"']},
            )
        )
    if not found:
        # The config refuses this (monitoring.alerting); kept for callers that build their own.
        raise ValueError("monitoring.alerting: no receiver reaches people (slack or email)")
    return [
        (receiver, {"receiver": receiver["name"], **route, "continue": True})
        for receiver, route in found
    ]


def inhibit_rules(groups: Iterable[RuleGroup]) -> list[dict[str, Any]]:
    """One inhibit rule per catalogue alert that supersedes others (the catalogue says which,
    and on which labels): a firing critical success-rate alert silences the warning of the same
    agent type, a higher budget threshold the lower ones of the same scope and window. Never a
    blanket severity rule, which would let one problem's critical hide another's warning."""
    rules = (rule for group in groups for rule in group.rules)
    return [
        {
            "source_matchers": [f'alertname="{rule.name}"'],
            "target_matchers": [f'alertname=~"{"|".join(rule.supersedes)}"'],
            "equal": list(rule.supersedes_on),
        }
        for rule in rules
        if rule.supersedes
    ]

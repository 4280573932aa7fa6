"""Logs that leave the node: the Fluent Bit config, the log groups' names and the IAM policies.

Pure data from the config. Fluent Bit tails every container's log on the node, merges the JSON
of a runtime line into the record (the kubernetes filter's Merge_Log), re-tags a record whose
`audit` field names an audit event (contracts/telemetry/logs.py) as `audit.*`, and ships
`audit.*` to the audit log group and the rest (`kube.*`) to the application log group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from contracts.telemetry.logs import AUDIT_FIELD, AuditEvent

__all__ = [
    "APPLICATION",
    "AUDIT",
    "FLUENT_BIT",
    "LOG_WRITES",
    "audit_rule",
    "fluent_bit_config",
    "log_group_names",
    "log_groups_key_policy",
    "shipper_policy",
]

FLUENT_BIT: Final = "fluent-bit"  # release, service account (the chart's fullname) and app label
APPLICATION: Final = "application"
AUDIT: Final = "audit"
_APP_TAG: Final = "kube"
_AUDIT_TAG: Final = "audit"
# What Fluent Bit's cloudwatch_logs output calls, with auto_create_group off: nothing else.
LOG_WRITES: Final = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")


def log_group_names(cluster_name: str) -> dict[str, str]:
    """The two log groups, keyed by what they hold."""
    return {kind: f"/agentops/{cluster_name}/{kind}" for kind in (APPLICATION, AUDIT)}


def audit_rule() -> tuple[str, str]:
    """The record field and the regex an audit event's value matches (every AuditEvent)."""
    kinds = "|".join(sorted(re.escape(e.value) for e in AuditEvent))
    return AUDIT_FIELD, f"^({kinds})$"


def _section(kind: str, entries: Mapping[str, str]) -> str:
    width = max(len(k) for k in entries) + 1
    lines = [f"[{kind}]"] + [f"    {k.ljust(width)}{v}" for k, v in entries.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class FluentBitConfig:
    """The chart's `config.inputs`, `config.filters` and `config.outputs` (classic format)."""

    inputs: str
    filters: str
    outputs: str

    def as_values(self) -> dict[str, str]:
        return {"inputs": self.inputs, "filters": self.filters, "outputs": self.outputs}


def fluent_bit_config(region: str, groups: Mapping[str, str]) -> FluentBitConfig:
    field, regex = audit_rule()
    inputs = _section(
        "INPUT",
        {
            "Name": "tail",
            "Path": "/var/log/containers/*.log",
            "Exclude_Path": f"/var/log/containers/{FLUENT_BIT}-*.log",
            "multiline.parser": "cri, docker",
            "Tag": f"{_APP_TAG}.*",
            "Mem_Buf_Limit": "50MB",
            "Skip_Long_Lines": "On",
        },
    )
    filters = _section(
        "FILTER",
        {
            "Name": "kubernetes",
            "Match": f"{_APP_TAG}.*",
            # The runtime's JSON line becomes the record's fields: `audit`, `task_id`, `trace_id`.
            "Merge_Log": "On",
            "Keep_Log": "Off",
            "K8S-Logging.Exclude": "On",
        },
    ) + _section(
        "FILTER",
        {
            "Name": "rewrite_tag",
            "Match": f"{_APP_TAG}.*",
            # An audit event leaves the application stream (keep: false) for the audit one.
            "Rule": f"${field} {regex} {_AUDIT_TAG}.$TAG false",
            "Emitter_Name": "audit_events",
        },
    )
    outputs = "".join(
        _section(
            "OUTPUT",
            {
                "Name": "cloudwatch_logs",
                "Match": f"{tag}.*",
                "region": region,
                "log_group_name": groups[kind],
                "log_stream_prefix": f"{kind}-",
                "auto_create_group": "Off",
            },
        )
        for kind, tag in ((AUDIT, _AUDIT_TAG), (APPLICATION, _APP_TAG))
    )
    return FluentBitConfig(inputs, filters, outputs)


def shipper_policy(group_arns: Mapping[str, str]) -> dict[str, Any]:
    """Fluent Bit's IAM policy: write streams of exactly the two log groups, nothing else."""
    resources = []
    for kind in sorted(group_arns):
        arn = group_arns[kind].removesuffix(":*")
        resources += [arn, f"{arn}:log-stream:*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteOwnLogGroups",
                "Effect": "Allow",
                "Action": list(LOG_WRITES),
                "Resource": resources,
            }
        ],
    }


def log_groups_key_policy(account_id: str, region: str) -> dict[str, Any]:
    """The log groups' KMS key: the account administers it; CloudWatch Logs uses it only for
    log groups of this account and region (the encryption context names the group)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsEncrypts",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:aws:logs:{region}:{account_id}:log-group:*"
                        )
                    }
                },
            },
        ],
    }

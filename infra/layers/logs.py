"""Logs that leave the node: CloudWatch log groups and Fluent Bit shipping to them (AWS stacks).

Two log groups, one for the runtime's and every other container's lines, one for audit events
(secret access, emergency mode, budget alerts, downgrades), each with the config's retention
and encrypted with a key of their own. Fluent Bit runs as a DaemonSet in kube-system, like the
scaling layer's add-ons, and writes through an IRSA role that may write log streams of exactly
those two groups. The routing is infra/platform/logship.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from contracts import versions
from contracts.config import PlatformConfig
from infra.layers.irsa import OidcIdentity, policy_role
from infra.layers.scaling import ADDON_NAMESPACE
from infra.layers.shared import pinned_chart
from infra.layers.tagging import Tagging
from infra.platform.logship import (
    FLUENT_BIT,
    fluent_bit_config,
    log_group_names,
    log_groups_key_policy,
    shipper_policy,
)
from infra.platform.workloads import LOGS_EPHEMERAL_STORAGE

__all__ = ["LogShipping", "LogShippingArgs"]

_KEY_DELETION_DAYS = 30


@dataclass(frozen=True)
class LogShippingArgs:
    config: PlatformConfig
    provider: k8s.Provider
    depends_on: list[pulumi.Resource]
    region: str
    oidc: OidcIdentity
    tagging: Tagging


class LogShipping(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: LogShippingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:layers:LogShipping", name, None, opts)
        cfg = args.config
        assert cfg.cluster is not None  # the config rules keep logs off the local stack
        cluster = cfg.cluster.name
        names = log_group_names(cluster)
        key = self._key(name, cluster, args)
        groups = {
            kind: aws.cloudwatch.LogGroup(
                f"{name}-{kind}",
                name=group,
                retention_in_days=cfg.monitoring.logs.retention_days,
                kms_key_id=key.arn,
                tags=args.tagging(group),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for kind, group in names.items()
        }
        kinds = sorted(groups)
        policy = pulumi.Output.all(*(groups[k].arn for k in kinds)).apply(
            lambda arns: json.dumps(
                shipper_policy(dict(zip(kinds, arns, strict=True))), sort_keys=True
            )
        )
        role = policy_role(
            f"{name}-fluent-bit-irsa",
            args.oidc,
            (ADDON_NAMESPACE, FLUENT_BIT),
            policy,
            args.tagging(f"{cluster}-fluent-bit"),
            self,
        )
        k8s.helm.v3.Release(
            f"{name}-fluent-bit",
            name=FLUENT_BIT,
            namespace=ADDON_NAMESPACE,
            values=_values(cfg, args.region, names, role.role_arn),
            **pinned_chart(FLUENT_BIT),
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[*args.depends_on, *groups.values()],
            ),
        )
        self.register_outputs({k: g.name for k, g in groups.items()})

    def _key(self, name: str, cluster: str, args: LogShippingArgs) -> aws.kms.Key:
        account = aws.get_caller_identity_output().account_id
        return aws.kms.Key(
            f"{name}-key",
            description=f"{cluster} CloudWatch log groups",
            enable_key_rotation=True,
            deletion_window_in_days=_KEY_DELETION_DAYS,
            policy=account.apply(
                lambda a: json.dumps(log_groups_key_policy(a, args.region), sort_keys=True)
            ),
            tags=args.tagging(f"{cluster}-logs"),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _values(
    cfg: PlatformConfig, region: str, groups: dict[str, str], role_arn: pulumi.Output[str]
) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "image": {"tag": versions.FLUENT_BIT_IMAGE},
        "serviceAccount": {
            "create": True,
            "name": FLUENT_BIT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        "resources": {
            "requests": {
                "cpu": "50m",
                "memory": "64Mi",
                "ephemeral-storage": LOGS_EPHEMERAL_STORAGE,
            },
            "limits": {"memory": "256Mi", "ephemeral-storage": LOGS_EPHEMERAL_STORAGE},
        },
        # On every node, whatever its taints: every node's containers log.
        "tolerations": [{"operator": "Exists"}],
        "priorityClassName": "system-node-critical",
        "config": fluent_bit_config(region, groups).as_values(),
    }

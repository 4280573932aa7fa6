"""The CrossGuard policy pack: one module per concern, each exporting its policies.

`policies/__main__.py` serves them to `pulumi preview --policy-pack policies`; the offline
plan and the tests call the same policy objects directly. Per-environment enforcement and
thresholds live in `policies/config/<stack>.json` (`--policy-pack-config`).
"""

from pulumi_policy import Policy

from policies import (
    aws,
    cost,
    kubernetes_availability,
    kubernetes_network,
    kubernetes_workloads,
    secrets,
    upgrades,
)

__all__ = ["ALL_POLICIES", "BY_CONCERN"]

BY_CONCERN: dict[str, list[Policy]] = {  # explicit: each module's list is of one subclass
    "kubernetes workloads": [*kubernetes_workloads.POLICIES, *kubernetes_availability.POLICIES],
    "namespaces and network": [*kubernetes_network.POLICIES],
    "aws": [*aws.POLICIES],
    "vault and secrets": [*secrets.POLICIES],
    "cost and hygiene": [*cost.POLICIES],
    "upgrades": [*upgrades.POLICIES],
}
ALL_POLICIES: list[Policy] = [p for group in BY_CONCERN.values() for p in group]

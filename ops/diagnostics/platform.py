"""What a stack says should be running: the expectations every probe checks against.

Derived from the stack's validated config with the same functions the Pulumi program renders
its resources with (workloads, network policies, Vault identities, alert thresholds), so the
doctor checks exactly what `pulumi up` deploys. Pure: the caller reads the stack file
(`infra.plan.stackfile.load_stack_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from contracts.config import PlatformConfig
from contracts.telemetry.alerts import build_catalogue
from infra.platform.alert_thresholds import alert_thresholds
from infra.platform.names import enabled_namespaces
from infra.platform.network_policies import network_policies
from infra.platform.vault_access import REDIS_SECRET_PATH, secret_prefix, vault_identities
from infra.platform.workloads import runtime_workloads

__all__ = [
    "DEFAULT_DENY",
    "ExpectedDeployment",
    "PlatformExpectations",
    "expectations",
]

# The NetworkPolicy every platform namespace starts from (infra/platform/network_policies.py).
DEFAULT_DENY = "default-deny"


@dataclass(frozen=True)
class ExpectedDeployment:
    namespace: str
    name: str
    # The Service (and ServiceMonitor job) the Deployment's pods serve behind.
    service: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PlatformExpectations:
    environment: str
    namespaces: tuple[str, ...]
    deployments: tuple[ExpectedDeployment, ...]
    # namespace -> names of the NetworkPolicies the plan puts there
    network_policies: dict[str, tuple[str, ...]]
    # Prometheus job names of the runtime: prometheus-operator names a ServiceMonitor's jobs
    # after the Service, and each runtime Service is named after its workload's identity.
    scrape_jobs: tuple[str, ...]
    kv_mount: str
    secret_prefixes: tuple[str, ...]
    secret_max_age_days: int
    daily_budget_usd: Decimal
    monthly_budget_usd: Decimal
    # Budget share from which the cost engine downgrades models: the doctor warns from there.
    downgrade_at: float
    queue_length_floor: int
    # alert name -> the catalogue's action: the advice for a firing alert.
    alert_actions: dict[str, str]


def expectations(cfg: PlatformConfig) -> PlatformExpectations:
    thresholds = alert_thresholds(cfg)
    workloads = runtime_workloads(cfg)
    policies: dict[str, list[str]] = {ns.value: [] for ns in enabled_namespaces(cfg)}
    for spec in network_policies(cfg):
        policies.setdefault(spec.namespace.value, []).append(spec.name)
    prefixes = [secret_prefix(i.name, i.namespace) for i in vault_identities(cfg)]
    return PlatformExpectations(
        environment=cfg.environment.value,
        namespaces=tuple(ns.value for ns in enabled_namespaces(cfg)),
        deployments=tuple(
            ExpectedDeployment(w.namespace.value, w.name, w.identity) for w in workloads
        ),
        network_policies={ns: tuple(names) for ns, names in policies.items()},
        scrape_jobs=tuple(dict.fromkeys(w.identity for w in workloads)),
        kv_mount=cfg.vault.kv_mount,
        secret_prefixes=(*prefixes, REDIS_SECRET_PATH),
        secret_max_age_days=cfg.vault.secret_max_age_days,
        daily_budget_usd=Decimal(cfg.cost.budget.daily_usd),
        monthly_budget_usd=Decimal(cfg.cost.budget.monthly_usd),
        downgrade_at=cfg.cost.downgrade_at,
        queue_length_floor=thresholds.queue_length_floor,
        alert_actions={
            rule.name: rule.action for group in build_catalogue(thresholds) for rule in group.rules
        },
    )

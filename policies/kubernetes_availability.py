"""Availability across the stack: disruption budgets and autoscaling for what must stay up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
)

from policies.common import stack_policy
from policies.kubernetes_network import selects

__all__ = ["POLICIES"]

_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
_HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
POOL_LABEL = "agentops.io/agent-type"


def _meta(r: PolicyResource) -> Mapping[str, Any]:
    meta = r.props.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _pod_labels(r: PolicyResource) -> Mapping[str, Any]:
    template = (r.props.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def _same_ns(a: PolicyResource, b: PolicyResource) -> bool:
    return _meta(a).get("namespace") == _meta(b).get("namespace")


def _hpa_for(d: PolicyResource, hpas: list[PolicyResource]) -> PolicyResource | None:
    for h in hpas:
        ref = (h.props.get("spec") or {}).get("scaleTargetRef") or {}
        if (
            _same_ns(h, d)
            and ref.get("kind") == "Deployment"
            and ref.get("name") == _meta(d).get("name")
        ):
            return h
    return None


def _has_pdb(d: PolicyResource, pdbs: list[PolicyResource]) -> bool:
    labels = _pod_labels(d)
    return any(
        _same_ns(p, d) and selects((p.props.get("spec") or {}).get("selector"), labels)
        for p in pdbs
    )


def _split(args: StackValidationArgs) -> tuple[list[PolicyResource], ...]:
    by_type: dict[str, list[PolicyResource]] = {_DEPLOYMENT: [], _PDB: [], _HPA: []}
    for r in args.resources:
        if r.resource_type in by_type:
            by_type[r.resource_type].append(r)
    return by_type[_DEPLOYMENT], by_type[_PDB], by_type[_HPA]


def _pdbs(args: StackValidationArgs, report: ReportViolation) -> None:
    deployments, pdbs, hpas = _split(args)
    for d in deployments:
        hpa = _hpa_for(d, hpas)
        replicas = (d.props.get("spec") or {}).get("replicas", 1)
        if hpa is not None:
            replicas = max(replicas or 1, (hpa.props.get("spec") or {}).get("maxReplicas", 1))
        if isinstance(replicas, int) and replicas > 1 and not _has_pdb(d, pdbs):
            report(
                f"{_meta(d).get('name')} runs up to {replicas} replicas without a "
                "PodDisruptionBudget",
                d.urn,
            )


def _pools(args: StackValidationArgs, report: ReportViolation) -> None:
    deployments, pdbs, hpas = _split(args)
    for d in deployments:
        if POOL_LABEL not in (_meta(d).get("labels") or {}):
            continue
        name = _meta(d).get("name")
        if _hpa_for(d, hpas) is None:
            report(f"agent pool {name} has no HorizontalPodAutoscaler", d.urn)
        if not _has_pdb(d, pdbs):
            report(f"agent pool {name} has no PodDisruptionBudget", d.urn)


POLICIES = [
    stack_policy(
        "k8s-pdb-for-multi-replica",
        "Every Deployment that runs (or may scale to) more than one replica has a "
        "PodDisruptionBudget, so node drains and upgrades keep it serving.",
        "Add a PodDisruptionBudget (maxUnavailable: 1) selecting its pods.",
        _pdbs,
    ),
    stack_policy(
        "agent-pools-have-hpa-and-pdb",
        "Every agent pool scales with an HPA and is protected by a PDB.",
        "Declare the pool under agents.pools; the agents layer adds both.",
        _pools,
    ),
]

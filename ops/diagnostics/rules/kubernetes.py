"""Kubernetes: the API answers, the stack's Deployments are available, NetworkPolicies exist."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ops.diagnostics.check import Check, Status
from ops.diagnostics.platform import DEFAULT_DENY, ExpectedDeployment
from ops.diagnostics.rules.common import RUNBOOK, unreachable

__all__ = ["DeploymentState", "api_check", "deployment_check", "network_policy_check"]


@dataclass(frozen=True)
class DeploymentState:
    """What the Deployment controller reports (`.spec.replicas` and `.status`)."""

    desired: int
    available: int
    ready: int
    updated: int
    # False while the controller has not yet seen the latest spec (a rollout just started).
    observed_latest: bool


def api_check(version: str | None, error: str | None) -> Check:
    if error is not None or version is None:
        return unreachable(
            "kubernetes.api",
            "the API server",
            error or "no version in the answer",
            "Check the kubeconfig/context and the cluster endpoint's allow-list; "
            f"see {RUNBOOK} (Kubernetes API unreachable).",
        )
    return Check(
        name="kubernetes.api",
        status=Status.HEALTHY,
        value=version,
        threshold="the API server answers /version",
    )


def deployment_check(expected: ExpectedDeployment, state: DeploymentState | None) -> Check:
    """Available against desired replicas. No available pod is never healthy."""
    name = f"kubernetes.deployment/{expected.ref}"
    threshold = "available replicas = desired replicas (> 0)"
    if state is None:
        return Check(
            name=name,
            status=Status.CRITICAL,
            value=None,
            threshold=threshold,
            detail="the Deployment does not exist",
            advice=f"Deploy the stack again (`pulumi up`): {expected.ref} is missing.",
        )
    value = f"{state.available}/{state.desired}"
    rollout = "" if state.observed_latest else "; the controller has not seen the latest spec yet"
    detail = f"{state.ready} ready, {state.updated} up to date{rollout}"
    if state.desired == 0:
        return Check(
            name=name,
            status=Status.WARNING,
            value=value,
            threshold=threshold,
            detail=f"scaled to zero replicas: {expected.service} serves nothing",
            advice=f"Scale {expected.ref} up, or let its HorizontalPodAutoscaler do it.",
        )
    if state.available == 0:
        return Check(
            name=name,
            status=Status.CRITICAL,
            value=value,
            threshold=threshold,
            detail=f"no available pod; {detail}",
            advice=(
                f"`kubectl -n {expected.namespace} describe deployment {expected.name}` and its "
                "pods' events: unschedulable (capacity, quota), image pull, failing probes or "
                f"crash loops; roll back if a rollout caused it ({RUNBOOK}, blue/green rollback)."
            ),
        )
    if state.available < state.desired:
        return Check(
            name=name,
            status=Status.WARNING,
            value=value,
            threshold=threshold,
            detail=f"fewer available pods than desired; {detail}",
            advice=(
                f"Find why {expected.ref} lacks pods (`kubectl -n {expected.namespace} get "
                "pods`): pending on capacity, or a rollout in progress."
            ),
        )
    return Check(name=name, status=Status.HEALTHY, value=value, threshold=threshold, detail=detail)


def network_policy_check(namespace: str, expected: Iterable[str], present: Iterable[str]) -> Check:
    """Every NetworkPolicy the plan puts in the namespace; default-deny is the one that must."""
    wanted = sorted(set(expected))
    found = set(present)
    missing = [p for p in wanted if p not in found]
    name = f"kubernetes.networkpolicies/{namespace}"
    value = f"{len(wanted) - len(missing)}/{len(wanted)}"
    threshold = f"all {len(wanted)} of the plan, {DEFAULT_DENY} first of all"
    if DEFAULT_DENY in missing or not found:
        return Check(
            name=name,
            status=Status.CRITICAL,
            value=value,
            threshold=threshold,
            detail=f"no {DEFAULT_DENY} policy: every pod of {namespace} accepts any traffic"
            + (
                f"; also missing: {', '.join(p for p in missing if p != DEFAULT_DENY)}"
                if len(missing) > 1
                else ""
            ),
            advice=f"Apply the stack again (`pulumi up`) to restore {namespace}'s NetworkPolicies.",
        )
    if missing:
        return Check(
            name=name,
            status=Status.WARNING,
            value=value,
            threshold=threshold,
            detail=f"missing: {', '.join(missing)} (the traffic they allow is denied)",
            advice=f"Apply the stack again (`pulumi up`) to restore {namespace}'s NetworkPolicies.",
        )
    extra = sorted(found - set(wanted))
    detail = f"also present, not in the plan: {', '.join(extra)}" if extra else ""
    return Check(name=name, status=Status.HEALTHY, value=value, threshold=threshold, detail=detail)

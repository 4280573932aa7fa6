"""Namespaces, network and mesh: admission levels, exposure, default deny, zero trust."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from policies.common import (
    ENVIRONMENT_SCHEMA,
    Report,
    environment,
    pod_spec,
    resource_policy,
    stack_policy,
)

__all__ = ["POLICIES", "selects"]

_PSA_LEVELS = {"restricted", "baseline", "privileged"}
_NAMESPACE = "kubernetes:core/v1:Namespace"
_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
_PEER_AUTH = "kubernetes:security.istio.io/v1:PeerAuthentication"


def _meta(props: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = props.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """matchLabels semantics (expressions are not used by the platform and select nothing)."""
    if selector is None:
        return False
    if selector.get("matchExpressions"):
        return False
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _psa(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != _NAMESPACE:
        return
    level = (_meta(args.props).get("labels") or {}).get("pod-security.kubernetes.io/enforce")
    if level not in _PSA_LEVELS:
        report(f"namespace enforces no Pod Security level (label is {level!r})")


def _load_balancers(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "kubernetes:core/v1:Service":
        return
    if (args.props.get("spec") or {}).get("type") != "LoadBalancer":
        return
    allowed = set(args.get_config().get("allowedServices") or [])
    name = _meta(args.props).get("name")
    if name not in allowed:
        report(f"Service {name} is a LoadBalancer; only {sorted(allowed)} may be")


def _allow_all(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "kubernetes:security.istio.io/v1:AuthorizationPolicy":
        return
    spec = args.props.get("spec") or {}
    if spec.get("action", "ALLOW") != "ALLOW":
        return
    for i, rule in enumerate(spec.get("rules") or []):
        if not (rule.get("from") or rule.get("to") or rule.get("when")):
            report(f"rule {i} allows every caller to every path")


def _hpa_min(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "kubernetes:autoscaling/v2:HorizontalPodAutoscaler":
        return
    if environment(args) != "prod":
        return
    minimum = (args.props.get("spec") or {}).get("minReplicas", 1)
    if isinstance(minimum, int) and minimum < 2:
        report(f"minReplicas is {minimum}: one pod is one failure away from an outage")


def _of(resources: Iterable[PolicyResource], resource_type: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type == resource_type]


def _namespace_of(r: PolicyResource) -> str:
    return str(_meta(r.props).get("namespace") or "default")


def _default_deny(args: StackValidationArgs, report: ReportViolation) -> None:
    denied = set()
    for np in _of(args.resources, _NETWORK_POLICY):
        spec = np.props.get("spec") or {}
        if (
            spec.get("podSelector") == {}
            and set(spec.get("policyTypes") or []) == {"Ingress", "Egress"}
            and not spec.get("ingress")
            and not spec.get("egress")
        ):
            denied.add(_namespace_of(np))
    for ns in _of(args.resources, _NAMESPACE):
        name = _meta(ns.props).get("name")
        if name not in denied:
            report(f"namespace {name} has no default-deny NetworkPolicy", ns.urn)


def _covered(args: StackValidationArgs, report: ReportViolation) -> None:
    policies = _of(args.resources, _NETWORK_POLICY)
    for r in args.resources:
        spec = pod_spec(r.resource_type, r.props)
        if spec is None:
            continue
        labels = ((r.props.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
            "labels"
        ) or {}
        ns = _namespace_of(r)
        if not any(
            _namespace_of(p) == ns
            and selects((p.props.get("spec") or {}).get("podSelector"), labels)
            for p in policies
        ):
            report(f"{r.name}: no NetworkPolicy in {ns} selects its pods", r.urn)


def _strict_mtls(args: StackValidationArgs, report: ReportViolation) -> None:
    uses_istio = any(".istio.io/" in r.resource_type for r in args.resources)
    if not uses_istio:
        return
    root = str(args.get_config().get("rootNamespace", "istio-system"))
    modes = {
        (_namespace_of(p), (p.props.get("spec") or {}).get("selector") is None): (
            (p.props.get("spec") or {}).get("mtls") or {}
        ).get("mode")
        for p in _of(args.resources, _PEER_AUTH)
    }
    if modes.get((root, True)) != "STRICT":
        report(f"no mesh-wide PeerAuthentication with mtls STRICT in {root}", None)
    for p in _of(args.resources, _PEER_AUTH):
        spec = p.props.get("spec") or {}
        mode = (spec.get("mtls") or {}).get("mode")
        if mode in ("PERMISSIVE", "DISABLE"):
            report(f"PeerAuthentication {p.name} weakens mTLS to {mode}", p.urn)
        # Single ports of one selected workload may accept plaintext (the API server's webhook
        # calls), and only when the flow they carry is named.
        if spec.get("portLevelMtls") and not (
            (spec.get("selector") or {}).get("matchLabels")
            and (_meta(p.props).get("annotations") or {}).get("agentops.io/flow")
        ):
            report(
                f"PeerAuthentication {p.name} relaxes ports without a workload selector and "
                "the flow (agentops.io/flow annotation) that needs it",
                p.urn,
            )


POLICIES = [
    resource_policy(
        "k8s-namespace-pod-security",
        "Every namespace enforces a Pod Security Admission level.",
        "Label the namespace pod-security.kubernetes.io/enforce (restricted where possible).",
        _psa,
    ),
    resource_policy(
        "k8s-no-load-balancer-services",
        "Only the ingress gateway is exposed through a cloud load balancer; everything else is "
        "reached through the mesh.",
        "Use a ClusterIP Service and route through the Istio gateway.",
        _load_balancers,
        config={
            "allowedServices": {
                "type": "array",
                "items": {"type": "string"},
                "default": ["istio-ingressgateway"],
                "description": "Service names that may be of type LoadBalancer",
            }
        },
    ),
    resource_policy(
        "istio-no-allow-all",
        "No AuthorizationPolicy allows any caller to any path: every allow names its sources "
        "or operations.",
        "Give every ALLOW rule a `from` (principals) and a `to` (paths, methods).",
        _allow_all,
    ),
    resource_policy(
        "k8s-hpa-min-replicas-prod",
        "In prod every autoscaled workload keeps at least two replicas.",
        "Set minReplicas ≥ 2 (agents.pools[].minReplicas).",
        _hpa_min,
        config=ENVIRONMENT_SCHEMA,
    ),
    stack_policy(
        "k8s-namespace-default-deny",
        "Every namespace has a default-deny NetworkPolicy; traffic needs an allow.",
        "Add a NetworkPolicy with podSelector {} and both policy types.",
        _default_deny,
    ),
    stack_policy(
        "k8s-workloads-covered-by-network-policy",
        "Every workload's pods are selected by a NetworkPolicy in their namespace.",
        "Create the workload in a namespace of the platform (default deny).",
        _covered,
    ),
    stack_policy(
        "istio-strict-mtls",
        "Where the mesh runs, a mesh-wide PeerAuthentication enforces STRICT mTLS and "
        "none relaxes it, except single ports of a selected workload named by their flow.",
        "Keep the mesh layer's PeerAuthentication in istio-system at STRICT.",
        _strict_mtls,
        config={
            "rootNamespace": {
                "type": "string",
                "default": "istio-system",
                "description": "Istio's root namespace",
            }
        },
    ),
]

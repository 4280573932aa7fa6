"""The platform's NetworkPolicies, derived from the flow table: default deny everywhere, then
one allow per side of each flow, named after it.

A flow into a pod of a platform namespace becomes an ingress policy there (`in-<flow>`), a flow
out of one an egress policy (`out-<flow>`); a side in a namespace the platform does not own
(CoreDNS in kube-system) or in the node's network has none. Pure functions of the config, so
tests and the analyzers read the exact allow-list without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from contracts.config import PlatformConfig
from infra.platform.flows import Flow, Network, Peer, Workload, flows, networks
from infra.platform.names import Namespace, enabled_namespaces

__all__ = ["DEFAULT_DENY", "FLOW_ANNOTATION", "PolicySpec", "network_policies"]

NS_LABEL: Final = "kubernetes.io/metadata.name"
DEFAULT_DENY: Final = "default-deny"
# Each allow names the flow it carries (and why), so a reader of the cluster finds the table.
FLOW_ANNOTATION: Final = "agentops.io/flow"
WHY_ANNOTATION: Final = "agentops.io/why"


@dataclass(frozen=True)
class PolicySpec:
    name: str
    namespace: Namespace
    spec: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)


def _peer(peer: Peer, nodes: Network) -> dict[str, Any]:
    if isinstance(peer, Network):
        block: dict[str, Any] = {"cidr": peer.cidr}
        if peer.excepted:
            block["except"] = list(peer.excepted)
        return {"ipBlock": block}
    if peer.host_network:
        # Pods in the node's network carry the node's address, not a pod's.
        return _peer(nodes, nodes)
    return {
        "namespaceSelector": {"matchLabels": {NS_LABEL: peer.namespace}},
        "podSelector": _selector(peer),
    }


def _selector(w: Workload) -> dict[str, Any]:
    # Every pod of the namespace: `{}`, as the API server stores an empty selector.
    return {"matchLabels": w.label_map} if w.labels else {}


def _ports(flow: Flow) -> list[dict[str, Any]]:
    return [{"protocol": flow.protocol.value, "port": p} for p in flow.ports]


def _owned(w: Peer, owned: set[str]) -> Workload | None:
    if isinstance(w, Workload) and w.namespace in owned and not w.host_network:
        return w
    return None


def _side(flow: Flow, selected: Workload, direction: str, peer: dict[str, Any]) -> PolicySpec:
    key, peer_key, prefix = (
        ("ingress", "from", "in") if direction == "Ingress" else ("egress", "to", "out")
    )
    return PolicySpec(
        f"{prefix}-{flow.name}",
        Namespace(selected.namespace),
        {
            "podSelector": _selector(selected),
            "policyTypes": [direction],
            key: [{peer_key: [peer], "ports": _ports(flow)}],
        },
        {FLOW_ANNOTATION: flow.name, WHY_ANNOTATION: flow.why},
    )


def network_policies(cfg: PlatformConfig) -> list[PolicySpec]:
    everyone = enabled_namespaces(cfg)
    owned = {ns.value for ns in everyone}
    nodes = networks(cfg)["nodes"]
    specs = [
        PolicySpec(DEFAULT_DENY, ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        for ns in everyone
    ]
    table = flows(cfg)
    for flow in table:
        if (dst := _owned(flow.destination, owned)) is not None:
            specs.append(_side(flow, dst, "Ingress", _peer(flow.source, nodes)))
        if (src := _owned(flow.source, owned)) is not None:
            specs.append(_side(flow, src, "Egress", _peer(flow.destination, nodes)))
    return specs

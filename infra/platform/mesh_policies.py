"""The mesh's security config, derived from the flow table: strict mTLS, deny by default in the
root namespace, one ALLOW AuthorizationPolicy per flow the mesh sees, port-level exceptions for
the callers that cannot speak mTLS (the API server, sidecars' own spans), caller JWTs.

Caller authentication (one scheme, documented in docs/ and the README): a caller presents its
JWT in the `X-Caller-JWT` header, which Istio validates against `mesh.jwt` and strips; the
`Authorization: Bearer` header stays the manager's own platform token. The two never share a
header, so a request carries both and each check sees only its own credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from contracts.config import PlatformConfig
from infra.platform.flows import Flow, Network, Workload, flows, workloads
from infra.platform.names import MANAGER, Namespace
from infra.platform.network_policies import FLOW_ANNOTATION, WHY_ANNOTATION

__all__ = [
    "CALLER_JWT_HEADER",
    "ROOT_NAMESPACE",
    "MeshObject",
    "mesh_egress",
    "mesh_security",
]

ROOT_NAMESPACE: Final = Namespace.MESH.value
CALLER_JWT_HEADER: Final = "X-Caller-JWT"
SECURITY_GROUP: Final = "security.istio.io"
NETWORKING_GROUP: Final = "networking.istio.io"


@dataclass(frozen=True)
class MeshObject:
    kind: str
    name: str
    namespace: str
    spec: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)
    group: str = SECURITY_GROUP


def _selector(w: Workload) -> dict[str, Any]:
    return {"selector": {"matchLabels": w.label_map}} if w.labels else {}


def _source(flow: Flow, cfg: PlatformConfig) -> dict[str, Any] | None:
    """Who may call, as Istio sees it; None when the caller has no identity to check."""
    src = flow.source
    if isinstance(src, Network):
        source: dict[str, Any] = {"ipBlocks": [src.cidr]}
        if src.excepted:
            source["notIpBlocks"] = list(src.excepted)
        return source
    if flow.plaintext:
        return None
    source = {"principals": [src.principal]} if src.labels else {"namespaces": [src.namespace]}
    if flow.caller_jwt and cfg.mesh.jwt is not None:
        # Only JWTs of the configured issuer: Istio's request principal is `iss/sub`.
        source["requestPrincipals"] = [f"{cfg.mesh.jwt.issuer}/*"]
    return source


def _operations(flow: Flow) -> list[dict[str, Any]]:
    """One `to` entry per HTTP operation of the flow (any matching lets the request through)."""
    found = []
    for http in flow.http or (None,):
        operation: dict[str, Any] = {"ports": [str(p) for p in flow.mesh_ports]}
        if http is not None and http.methods:
            operation["methods"] = list(http.methods)
        if http is not None and http.paths:
            operation["paths"] = list(http.paths)
        found.append({"operation": operation})
    return found


def _allow(flow: Flow, cfg: PlatformConfig) -> MeshObject:
    assert isinstance(flow.destination, Workload)
    rule: dict[str, Any] = {"to": _operations(flow)}
    source = _source(flow, cfg)
    if source is not None:
        rule = {"from": [{"source": source}], **rule}
    return MeshObject(
        "AuthorizationPolicy",
        f"flow-{flow.name}",
        flow.destination.namespace,
        {**_selector(flow.destination), "action": "ALLOW", "rules": [rule]},
        {FLOW_ANNOTATION: flow.name, WHY_ANNOTATION: flow.why},
    )


def _plaintext_ports(table: list[Flow]) -> list[MeshObject]:
    """Port-level PERMISSIVE where a plaintext caller (the API server) reaches a sidecar."""
    ports: dict[str, tuple[Workload, set[int], list[str]]] = {}
    for flow in table:
        dst = flow.destination
        if not flow.mesh_ports or not flow.plaintext or not isinstance(dst, Workload):
            continue
        if not dst.labels or dst.edge:
            continue
        entry = ports.setdefault(dst.key, (dst, set(), []))
        entry[1].update(flow.mesh_ports)
        entry[2].append(flow.name)
    return [
        MeshObject(
            "PeerAuthentication",
            f"plaintext-{key}",
            dst.namespace,
            {
                **_selector(dst),
                "mtls": {"mode": "STRICT"},
                "portLevelMtls": {str(p): {"mode": "PERMISSIVE"} for p in sorted(numbers)},
            },
            {FLOW_ANNOTATION: ",".join(names)},
        )
        for key, (dst, numbers, names) in sorted(ports.items())
    ]


def mesh_security(cfg: PlatformConfig) -> list[MeshObject]:
    """PeerAuthentications, AuthorizationPolicies and the RequestAuthentication of the mesh."""
    if not cfg.mesh.enabled:
        return []
    table = flows(cfg)
    objects = [
        MeshObject(
            "PeerAuthentication", "mesh-mtls-strict", ROOT_NAMESPACE, {"mtls": {"mode": "STRICT"}}
        ),
        # An ALLOW policy with no rules in the root namespace: every workload of the mesh
        # refuses what no flow below allows (the gateway included).
        MeshObject("AuthorizationPolicy", "deny-all", ROOT_NAMESPACE, {}),
        *_plaintext_ports(table),
        *(_allow(f, cfg) for f in table if f.mesh_ports),
    ]
    jwt = cfg.mesh.jwt
    if jwt is not None:
        manager = workloads(cfg)[MANAGER]
        rule: dict[str, Any] = {
            "issuer": jwt.issuer,
            "jwksUri": str(jwt.jwks_uri),
            "fromHeaders": [{"name": CALLER_JWT_HEADER}],
            "forwardOriginalToken": False,
        }
        if jwt.audiences:
            rule["audiences"] = list(jwt.audiences)
        objects.append(
            MeshObject(
                "RequestAuthentication",
                "task-api-jwt",
                manager.namespace,
                {**_selector(manager), "jwtRules": [rule]},
            )
        )
    return objects


def _entry_name(host: str) -> str:
    return "egress-" + host.replace("*", "wildcard").replace(".", "-")


def _service_entry(flow: Flow, host: str, namespace: str) -> MeshObject:
    return MeshObject(
        "ServiceEntry",
        _entry_name(host),
        namespace,
        {
            "hosts": [host],
            # Visible to this namespace's sidecars only, and to the pods whose Sidecar names it.
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": [{"number": p, "name": f"tls-{p}", "protocol": "TLS"} for p in flow.ports],
        },
        {FLOW_ANNOTATION: flow.name, WHY_ANNOTATION: flow.why},
        NETWORKING_GROUP,
    )


def _address_entry(flow: Flow, network: Network, namespace: str) -> MeshObject:
    """A network reached by address (ElastiCache in the VPC): TCP to its range, no names. One
    per network and ports: the pools that reach it share it."""
    tag = f"{network.key}-{'-'.join(str(p) for p in flow.ports)}"
    return MeshObject(
        "ServiceEntry",
        f"egress-{tag}",
        namespace,
        {
            "hosts": [f"{tag}.external"],
            "addresses": [network.cidr],
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "resolution": "NONE",
            "ports": [{"number": p, "name": f"tcp-{p}", "protocol": "TCP"} for p in flow.ports],
        },
        {WHY_ANNOTATION: network.why},
        NETWORKING_GROUP,
    )


def mesh_egress(cfg: PlatformConfig) -> list[MeshObject]:
    """Egress by name where NetworkPolicies can only say addresses.

    A workload whose every flow to the internet names its hosts (an llm pool: its provider)
    gets a Sidecar with REGISTRY_ONLY outbound: its proxy forwards only to the cluster's
    Services its flows reach and to ServiceEntries for exactly those hosts (TLS on their port,
    matched on SNI) and for the address ranges of its other external flows. Anything else, the
    internet included, gets no route (502 / reset), even where the NetworkPolicy, which cannot
    name hosts, lets its 443 out. Vault is one of those Services (its servers are in the mesh).
    """
    if not cfg.mesh.enabled:
        return []
    table = flows(cfg)
    by_source: dict[str, list[Flow]] = {}
    for f in table:
        if isinstance(f.source, Workload) and f.source.injected and not f.from_sidecar:
            by_source.setdefault(f.source.key, []).append(f)
    entries: dict[tuple[str, str], MeshObject] = {}
    sidecars = []
    for own in by_source.values():
        src = own[0].source
        assert isinstance(src, Workload)
        external = [f for f in own if isinstance(f.destination, Network)]
        named = [f for f in external if f.hosts]
        if not named or any(f.destination.key == "internet" and not f.hosts for f in external):
            continue  # no names to hold it to: NetworkPolicies alone decide
        hosts: set[str] = set()
        for f in external:
            assert isinstance(f.destination, Network)
            made = (
                [_service_entry(f, h, src.namespace) for h in f.hosts]
                if f.hosts
                else [_address_entry(f, f.destination, src.namespace)]
            )
            for entry in made:
                known = entries.get((entry.namespace, entry.name))
                if known is not None and FLOW_ANNOTATION in entry.annotations:
                    # One entry per host: the flows of every pool that calls it.
                    flows_of = f"{known.annotations[FLOW_ANNOTATION]},{f.name}"
                    entry = replace(
                        entry, annotations={**entry.annotations, FLOW_ANNOTATION: flows_of}
                    )
                entries[(entry.namespace, entry.name)] = entry
                hosts.add(f"./{entry.spec['hosts'][0]}")
        # The cluster's Services it reaches, its namespace's shared flows (DNS) included.
        shared = [
            f
            for f in table
            if isinstance(f.source, Workload)
            and f.source.namespace == src.namespace
            and not f.source.labels
        ]
        hosts |= {
            f"{f.destination.namespace}/*"
            for f in [*own, *shared]
            if isinstance(f.destination, Workload) and f.destination.namespace != src.namespace
        }
        sidecars.append(
            MeshObject(
                "Sidecar",
                f"egress-{src.key}",
                src.namespace,
                {
                    **_workload_selector(src),
                    "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                    "egress": [{"hosts": sorted(hosts)}],
                },
                {FLOW_ANNOTATION: ",".join(f.name for f in external)},
                NETWORKING_GROUP,
            )
        )
    return [*(entries[k] for k in sorted(entries)), *sidecars]


def _workload_selector(w: Workload) -> dict[str, Any]:
    return {"workloadSelector": {"labels": w.label_map}} if w.labels else {}

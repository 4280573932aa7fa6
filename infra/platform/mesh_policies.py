"""The mesh's security config, derived from the flow table: strict mTLS, deny by default in the
root namespace, one ALLOW AuthorizationPolicy per flow the mesh sees, port-level exceptions for
the callers that cannot speak mTLS (the API server, sidecars' own spans), caller JWTs.

Caller authentication (one scheme, documented in docs/ and the README): a caller presents its
JWT in the `X-Caller-JWT` header, which Istio validates against `mesh.jwt` and strips; the
`Authorization: Bearer` header stays the manager's own platform token. The two never share a
header, so a request carries both and each check sees only its own credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from contracts.config import PlatformConfig
from infra.platform.flows import Flow, Network, Workload, flows, workloads
from infra.platform.names import MANAGER, Namespace
from infra.platform.network_policies import FLOW_ANNOTATION, WHY_ANNOTATION

__all__ = [
    "CALLER_JWT_HEADER",
    "ROOT_NAMESPACE",
    "MeshObject",
    "mesh_security",
]

ROOT_NAMESPACE: Final = Namespace.MESH.value
CALLER_JWT_HEADER: Final = "X-Caller-JWT"
SECURITY_GROUP: Final = "security.istio.io"


@dataclass(frozen=True)
class MeshObject:
    kind: str
    name: str
    namespace: str
    spec: dict[str, Any]
    annotations: dict[str, str] = field(default_factory=dict)


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


def _operation(flow: Flow) -> dict[str, Any]:
    operation: dict[str, Any] = {"ports": [str(p) for p in flow.mesh_ports]}
    if flow.methods:
        operation["methods"] = list(flow.methods)
    if flow.paths:
        operation["paths"] = list(flow.paths)
    return operation


def _allow(flow: Flow, cfg: PlatformConfig) -> MeshObject:
    assert isinstance(flow.destination, Workload)
    rule: dict[str, Any] = {"to": [{"operation": _operation(flow)}]}
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

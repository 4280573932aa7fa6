"""Istio's authorization decision, evaluated over rendered objects with its documented semantics.

https://istio.io/latest/docs/reference/config/security/authorization-policy/ and
https://istio.io/latest/docs/reference/config/security/request_authentication/:

- RequestAuthentication: a request carrying a token that no rule of the workload accepts (wrong
  issuer, bad signature) is refused (401); a request without a token passes with no request
  principal.
- The policies of a workload are those of the root namespace whose selector matches its labels
  (in any namespace) and those of its own namespace whose selector matches (no selector: all).
- CUSTOM first, then DENY (any matching rule refuses), then ALLOW: with no ALLOW policy the
  request passes; with at least one, it passes only if a rule matches. A policy without rules
  (`spec: {}`) is an ALLOW policy that matches nothing.
- A rule matches when any of its `from` sources and any of its `to` operations match (missing:
  any); inside a source or operation every field must match; `not*` fields must not.
- `principals` and `namespaces` come from the peer's mTLS certificate: plaintext has none.
  HTTP-only fields (methods, paths, requestPrincipals) never match a TCP connection.
- Values match exactly, as a prefix (`abc*`), a suffix (`*abc`) or anything (`*`).
- PeerAuthentication (https://istio.io/latest/docs/reference/config/security/peer_authentication/):
  the most specific policy wins — a workload's (selector) over its namespace's over the root
  namespace's; its `portLevelMtls` entry for the port over its `mtls`. STRICT refuses
  plaintext; PERMISSIVE and DISABLE accept it.

Independent of the generator: it reads the plan's objects, not infra/platform/mesh_policies.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Decision", "MeshConfig", "Request", "decide", "mtls_mode"]


class Decision(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"  # 403 from an AuthorizationPolicy
    UNAUTHENTICATED = "UNAUTHENTICATED"  # 401 from a RequestAuthentication


@dataclass(frozen=True)
class Request:
    namespace: str  # of the destination workload
    labels: Mapping[str, str]  # of the destination workload's pods
    port: int
    source_ip: str
    principal: str | None = None  # the peer's SPIFFE identity; None over plaintext
    method: str | None = None  # None: a TCP connection, not HTTP
    path: str | None = None
    headers: Mapping[str, str] | None = None
    # The JWT presented: (issuer, subject); valid when an applicable rule names its issuer.
    token: tuple[str, str] | None = None
    token_header: str = "authorization"
    # A gateway's listeners take callers' own TLS: PeerAuthentication governs sidecars only.
    gateway: bool = False


@dataclass(frozen=True)
class MeshConfig:
    root_namespace: str
    authorization: Sequence[Mapping[str, Any]]  # AuthorizationPolicy objects (full manifests)
    authentication: Sequence[Mapping[str, Any]]  # RequestAuthentication objects
    peer_authentication: Sequence[Mapping[str, Any]] = ()  # PeerAuthentication objects


def _match(value: str | None, patterns: Iterable[str]) -> bool:
    if value is None:
        return False
    for p in patterns:
        if p == "*" or p == value:
            return True
        if p.endswith("*") and value.startswith(p[:-1]):
            return True
        if p.startswith("*") and value.endswith(p[1:]):
            return True
    return False


def _in_blocks(ip: str, blocks: Iterable[str]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(b, strict=False) for b in blocks)


def _namespace_of(principal: str | None) -> str | None:
    if principal is None:
        return None
    parts = principal.split("/")
    return parts[parts.index("ns") + 1] if "ns" in parts else None


def _field(
    spec: Mapping[str, Any], name: str, value: str | None, matcher: Any = _match
) -> bool | None:
    """True/False for a present field (and its `not` form), None when neither is set."""
    positive, negative = spec.get(name), spec.get("not" + name[0].upper() + name[1:])
    if positive is None and negative is None:
        return None
    ok = True
    if positive is not None:
        ok = value is not None and matcher(value, positive)
    if negative is not None and value is not None and matcher(value, negative):
        ok = False
    return ok


def _source_matches(source: Mapping[str, Any], req: Request, request_principal: str | None) -> bool:
    http_only = ("requestPrincipals", "notRequestPrincipals")
    if req.method is None and any(k in source for k in http_only):
        return False
    checks = [
        _field(source, "principals", req.principal),
        _field(source, "namespaces", _namespace_of(req.principal)),
        _field(source, "ipBlocks", req.source_ip, _in_blocks),
        _field(source, "remoteIpBlocks", req.source_ip, _in_blocks),
        _field(source, "requestPrincipals", request_principal),
    ]
    return all(c is not False for c in checks)


def _operation_matches(operation: Mapping[str, Any], req: Request) -> bool:
    http_only = ("methods", "paths", "hosts", "notMethods", "notPaths", "notHosts")
    if req.method is None and any(k in operation for k in http_only):
        return False
    checks = [
        _field(operation, "ports", str(req.port)),
        _field(operation, "methods", req.method),
        _field(operation, "paths", req.path),
    ]
    return all(c is not False for c in checks)


def _rule_matches(rule: Mapping[str, Any], req: Request, request_principal: str | None) -> bool:
    if rule.get("when"):
        raise NotImplementedError("`when` conditions are not modelled")
    sources = rule.get("from")
    if sources and not any(
        _source_matches(s.get("source", {}), req, request_principal) for s in sources
    ):
        return False
    operations = rule.get("to")
    return not operations or any(
        _operation_matches(o.get("operation", {}), req) for o in operations
    )


def _applies(obj: Mapping[str, Any], req: Request, root: str) -> bool:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    namespace = meta.get("namespace")
    if namespace not in (root, req.namespace):
        return False
    selector = (spec.get("selector") or {}).get("matchLabels")
    if selector is None:
        # Without a selector: the whole namespace (the whole mesh in the root namespace).
        return True
    return all(req.labels.get(k) == v for k, v in selector.items())


def _request_principal(req: Request, config: MeshConfig) -> tuple[bool, str | None]:
    """(authenticated, request principal) after the workload's RequestAuthentications."""
    if req.token is None:
        return True, None
    rules = [
        rule
        for obj in config.authentication
        if _applies(obj, req, config.root_namespace)
        for rule in obj["spec"].get("jwtRules", [])
    ]
    issuer, subject = req.token
    for rule in rules:
        headers = [h["name"].lower() for h in rule.get("fromHeaders", [])] or ["authorization"]
        if req.token_header.lower() in headers and rule["issuer"] == issuer:
            return True, f"{issuer}/{subject}"
    located = any(
        req.token_header.lower()
        in ([h["name"].lower() for h in r.get("fromHeaders", [])] or ["authorization"])
        for r in rules
    )
    # A token where a rule looks for one, from an issuer no rule accepts: refused. A token in
    # a header no rule reads is not a JWT to Istio and passes through untouched.
    return (not located), None


def mtls_mode(req: Request, config: MeshConfig) -> str:
    """The mTLS mode the destination's sidecar applies to the request's port."""
    ranked: list[tuple[int, Mapping[str, Any]]] = []
    for obj in config.peer_authentication:
        spec, namespace = obj.get("spec") or {}, obj["metadata"].get("namespace")
        selector = (spec.get("selector") or {}).get("matchLabels")
        if selector is not None:
            if namespace == req.namespace and all(
                req.labels.get(k) == v for k, v in selector.items()
            ):
                ranked.append((0, spec))
        elif namespace == req.namespace:
            ranked.append((1, spec))
        elif namespace == config.root_namespace:
            ranked.append((2, spec))
    for _, spec in sorted(ranked, key=lambda r: r[0]):
        port = (spec.get("portLevelMtls") or {}).get(str(req.port))
        if port is not None and port.get("mode", "UNSET") != "UNSET":
            return str(port["mode"])
        mode = (spec.get("mtls") or {}).get("mode", "UNSET")
        if mode != "UNSET":
            return str(mode)
    return "PERMISSIVE"  # Istio's default without any PeerAuthentication


def decide(req: Request, config: MeshConfig) -> Decision:
    if not req.gateway and req.principal is None and mtls_mode(req, config) == "STRICT":
        return Decision.DENY  # plaintext refused at the connection, before any policy
    authenticated, request_principal = _request_principal(req, config)
    if not authenticated:
        return Decision.UNAUTHENTICATED
    applicable = [p for p in config.authorization if _applies(p, req, config.root_namespace)]
    by_action: dict[str, list[Mapping[str, Any]]] = {}
    for p in applicable:
        by_action.setdefault((p.get("spec") or {}).get("action", "ALLOW"), []).append(p)
    if by_action.get("CUSTOM"):
        raise NotImplementedError("CUSTOM (external authorization) is not modelled")
    for p in by_action.get("DENY", []):
        if any(_rule_matches(r, req, request_principal) for r in p["spec"].get("rules", [])):
            return Decision.DENY
    allows = by_action.get("ALLOW", [])
    if not allows:
        return Decision.ALLOW
    for p in allows:
        rules = (p.get("spec") or {}).get("rules") or []
        if any(_rule_matches(r, req, request_principal) for r in rules):
            return Decision.ALLOW
    return Decision.DENY

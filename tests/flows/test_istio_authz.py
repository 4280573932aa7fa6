"""The evaluator against the cases Istio's reference documents."""

from __future__ import annotations

from typing import Any

import pytest

from infra.plan.istio_authz import Decision, MeshConfig, Request, decide, mtls_mode

ROOT = "istio-system"
ALICE = "cluster.local/ns/a/sa/alice"


def _policy(namespace: str, spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _req(**kw: Any) -> Request:
    base: dict[str, Any] = {
        "namespace": "b",
        "labels": {"app": "web"},
        "port": 8080,
        "source_ip": "10.0.0.1",
        "principal": ALICE,
        "method": "GET",
        "path": "/api/v1/x",
    }
    base.update(kw)
    return Request(**base)


def _mesh(*policies: dict[str, Any], auth: tuple[dict[str, Any], ...] = ()) -> MeshConfig:
    return MeshConfig(ROOT, policies, auth)


def test_no_policy_allows_and_an_empty_root_policy_denies_everywhere() -> None:
    assert decide(_req(), _mesh()) is Decision.ALLOW
    assert decide(_req(), _mesh(_policy(ROOT, {}))) is Decision.DENY


def test_root_selector_applies_in_every_namespace_and_local_only_in_its_own() -> None:
    deny_web = {"selector": {"matchLabels": {"app": "web"}}, "action": "DENY", "rules": [{}]}
    assert decide(_req(), _mesh(_policy(ROOT, deny_web))) is Decision.DENY
    assert decide(_req(), _mesh(_policy("c", deny_web))) is Decision.ALLOW
    assert decide(_req(labels={"app": "db"}), _mesh(_policy(ROOT, deny_web))) is Decision.ALLOW


def test_deny_wins_over_allow() -> None:
    allow = {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [ALICE]}}]}]}
    deny = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/api/v1/*"]}}]}]}
    assert decide(_req(), _mesh(_policy("b", allow))) is Decision.ALLOW
    assert decide(_req(), _mesh(_policy("b", allow), _policy("b", deny, "d"))) is Decision.DENY


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [("/api/*", "/api/v1", True), ("*/x", "/api/v1/x", True), ("/api", "/api/v1", False)],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    allow = {"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": [pattern]}}]}]}
    expected = Decision.ALLOW if matches else Decision.DENY
    assert decide(_req(path=path), _mesh(_policy("b", allow))) is expected


def test_principals_need_mtls_and_http_fields_never_match_tcp() -> None:
    allow = {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [ALICE]}}]}]}
    assert decide(_req(principal=None), _mesh(_policy("b", allow))) is Decision.DENY
    by_path = {"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["*"]}}]}]}
    assert decide(_req(method=None, path=None), _mesh(_policy("b", by_path))) is Decision.DENY


def test_request_principals_and_issuers() -> None:
    auth = _policy(
        "b", {"jwtRules": [{"issuer": "https://idp/", "fromHeaders": [{"name": "x-jwt"}]}]}
    )
    allow = {
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"requestPrincipals": ["https://idp//*"]}}]}],
    }
    mesh = _mesh(_policy("b", allow), auth=(auth,))
    good = _req(token=("https://idp/", "bob"), token_header="x-jwt")
    assert decide(good, mesh) is Decision.ALLOW
    assert decide(_req(), mesh) is Decision.DENY  # no token: no request principal
    other = _req(token=("https://other/", "bob"), token_header="x-jwt")
    assert decide(other, mesh) is Decision.UNAUTHENTICATED
    # A token in a header no rule reads is no JWT to Istio: passes, with no identity.
    assert decide(_req(token=("https://idp/", "bob")), mesh) is Decision.DENY


def test_peer_authentication_most_specific_wins() -> None:
    strict = _policy(ROOT, {"mtls": {"mode": "STRICT"}})
    port = _policy(
        "b",
        {
            "selector": {"matchLabels": {"app": "web"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {"6443": {"mode": "PERMISSIVE"}},
        },
        "w",
    )
    mesh = MeshConfig(ROOT, (), (), (strict, port))
    assert mtls_mode(_req(port=6443), mesh) == "PERMISSIVE"
    assert mtls_mode(_req(port=8080), mesh) == "STRICT"
    assert mtls_mode(_req(labels={"app": "db"}, port=6443), mesh) == "STRICT"
    assert decide(_req(principal=None, port=8080), mesh) is Decision.DENY
    assert decide(_req(principal=None, port=6443), mesh) is Decision.ALLOW

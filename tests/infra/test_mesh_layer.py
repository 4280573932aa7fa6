"""The mesh layer: strict mTLS, deny by default, identity allows, caller JWTs, blue/green."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import endpoints
from contracts.config import load_from_mapping
from contracts.config.errors import ConfigError
from infra.layers.mesh import GATEWAY
from infra.layers.monitoring import ALERTMANAGER_SERVICE_ACCOUNT, PROMETHEUS_SERVICE_ACCOUNT
from infra.plan.document import Plan
from infra.platform.flows import Workload, flows, workloads
from infra.platform.mesh_policies import CALLER_JWT_HEADER
from infra.platform.names import Namespace
from infra.platform.tracing import (
    COLLECTOR_SERVICE,
    MESH_TRACING_PROVIDER,
    TELEMETRY_NAME,
    mesh_telemetry,
)
from tests.stacks import helm_release, stack_values

AWS = ("staging", "prod")


def _crs(plan: Plan, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == kind
    }


def _principals(policy: dict[str, Any]) -> set[str]:
    return {
        p
        for rule in policy.get("rules", [])
        for source in rule.get("from", [])
        for p in source["source"].get("principals", [])
    }


@pytest.mark.parametrize("stack", AWS)
def test_strict_mtls_and_deny_by_default(plans: dict[str, Plan], stack: str) -> None:
    mesh = Namespace.MESH.value
    peer = _crs(plans[stack], "PeerAuthentication")
    assert peer[(mesh, "mesh-mtls-strict")] == {"mtls": {"mode": "STRICT"}}
    # The only relaxations: single ports of selected workloads that a plaintext caller (the API
    # server's webhooks and aggregated API, sidecars' own spans) must reach, each named by its flow.
    table = {f.name: f for f in flows(load_from_mapping(stack_values(stack)))}
    for (_, name), spec in peer.items():
        if name == "mesh-mtls-strict":
            continue
        assert spec["mtls"] == {"mode": "STRICT"} and spec["selector"]["matchLabels"]
        relaxed = {int(p) for p in spec["portLevelMtls"]}
        carried = {
            p
            for f in table.values()
            if f.plaintext
            for p in f.mesh_ports
            if isinstance(f.destination, Workload)
            and f.destination.label_map == spec["selector"]["matchLabels"]
        }
        assert relaxed == carried, name
    authz = _crs(plans[stack], "AuthorizationPolicy")
    assert authz[(mesh, "deny-all")] == {}
    for key, spec in authz.items():
        if key == (mesh, "deny-all"):
            continue
        assert spec["action"] == "ALLOW"
        assert key[1].removeprefix("flow-") in table, f"{key} carries no flow of the table"
        for rule in spec["rules"]:
            assert rule["to"][0]["operation"]["ports"], f"{key} allows every port"


@pytest.mark.parametrize("stack", AWS)
def test_allows_name_existing_service_accounts(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    accounts = {
        f"cluster.local/ns/{r.inputs['metadata']['namespace']}/sa/{r.inputs['metadata']['name']}"
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == "ServiceAccount"
    }
    # Created by the charts (gateway, Prometheus, Alertmanager, ...), not by our manifests.
    charted = {
        w.principal
        for w in workloads(load_from_mapping(stack_values(stack))).values()
        if w.principal is not None
    }
    assert f"cluster.local/ns/{Namespace.MESH.value}/sa/{GATEWAY}" in charted
    named = set().union(*(_principals(s) for s in _crs(plan, "AuthorizationPolicy").values()))
    assert named <= accounts | charted
    assert {
        f"cluster.local/ns/{Namespace.MONITORING.value}/sa/{PROMETHEUS_SERVICE_ACCOUNT}",
        f"cluster.local/ns/{Namespace.MONITORING.value}/sa/{ALERTMANAGER_SERVICE_ACCOUNT}",
    } <= named


@pytest.mark.parametrize("stack", AWS)
def test_task_api_requires_gateway_and_caller_jwt(plans: dict[str, Plan], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    assert cfg.mesh.jwt is not None
    platform = Namespace.PLATFORM.value
    (rule,) = _crs(plans[stack], "RequestAuthentication")[(platform, "task-api-jwt")]["jwtRules"]
    assert rule["issuer"] == cfg.mesh.jwt.issuer
    assert rule["jwksUri"] == str(cfg.mesh.jwt.jwks_uri)
    # The caller's JWT has its own header: Authorization stays the manager's platform token.
    assert rule["fromHeaders"] == [{"name": CALLER_JWT_HEADER}]
    policy = _crs(plans[stack], "AuthorizationPolicy")[(platform, "flow-gateway-to-manager")]
    (task_rule,) = policy["rules"]
    (source,) = task_rule["from"]
    assert source["source"] == {
        "principals": [f"cluster.local/ns/{Namespace.MESH.value}/sa/{GATEWAY}"],
        "requestPrincipals": [f"{cfg.mesh.jwt.issuer}/*"],
    }
    assert endpoints.TASKS_API in task_rule["to"][0]["operation"]["paths"]


@pytest.mark.parametrize("stack", AWS)
def test_every_runtime_service_has_mutual_tls(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    rules = _crs(plan, "DestinationRule")
    hosts = {spec["host"]: spec for spec in rules.values()}
    for r in plan.resources:
        if r.is_kubernetes_object and r.inputs["kind"] == "Service":
            meta = r.inputs["metadata"]
            host = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
            if r.inputs["spec"].get("type") == "ExternalName":
                # RDS behind a DNS name has no sidecar: ISTIO_MUTUAL towards it would break
                # every connection; the database's own TLS (sslmode=require) carries it.
                assert host not in hosts
                continue
            assert hosts[host]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"


@pytest.mark.parametrize("stack", AWS)
def test_blue_green_weights_come_from_config(plans: dict[str, Plan], stack: str) -> None:
    split = load_from_mapping(stack_values(stack)).mesh.blue_green
    vs = _crs(plans[stack], "VirtualService")[(Namespace.PLATFORM.value, "agent-manager-routes")]
    (http,) = vs["http"]
    weights = {r["destination"]["subset"]: r["weight"] for r in http["route"]}
    assert weights == {"blue": split.blue_weight, "green": split.green_weight}
    gateway = _crs(plans[stack], "Gateway")[(Namespace.MESH.value, "agentops-gateway")]
    assert vs["gateways"] == [f"{Namespace.MESH.value}/agentops-gateway"]
    assert {s["port"]["number"] for s in gateway["servers"]} == {80, 443}


def test_local_stack_has_no_mesh(plans: dict[str, Plan]) -> None:
    assert not _crs(plans["local"], "PeerAuthentication")
    assert not [r for r in plans["local"].resources if r.name.startswith("mesh-")]


@pytest.mark.parametrize("stack", AWS)
def test_workers_accept_only_prometheus(plans: dict[str, Plan], stack: str) -> None:
    # Tasks reach workers through their Redis inbox streams; no one calls a worker but the
    # scraper, so no policy in the agents namespace names another caller.
    agents = {
        name: spec
        for (ns, name), spec in _crs(plans[stack], "AuthorizationPolicy").items()
        if ns == Namespace.AGENTS.value
    }
    assert agents
    prometheus = f"cluster.local/ns/{Namespace.MONITORING.value}/sa/{PROMETHEUS_SERVICE_ACCOUNT}"
    for spec in agents.values():
        assert _principals(spec) == {prometheus}
        (rule,) = spec["rules"]
        operation = rule["to"][0]["operation"]
        assert (operation["methods"], operation["paths"]) == (["GET"], [endpoints.METRICS])


@pytest.mark.parametrize("stack", AWS)
def test_mesh_tracing_samples_at_the_configured_rate_into_the_collector(
    plans: dict[str, Plan], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    mesh = Namespace.MESH.value
    telemetry = _crs(plans[stack], "Telemetry")
    assert set(telemetry) == {(mesh, TELEMETRY_NAME)}, "one mesh-wide Telemetry, in the root"
    (tracing,) = telemetry[(mesh, TELEMETRY_NAME)]["tracing"]
    assert tracing["randomSamplingPercentage"] == cfg.monitoring.trace_sampling_percent
    # Its provider is the collector istiod knows by that name.
    istiod = helm_release(plans[stack], "istiod")
    providers = {
        p["name"]: p["opentelemetry"]
        for p in istiod.inputs["values"]["meshConfig"]["extensionProviders"]
    }
    assert [p["name"] for p in tracing["providers"]] == [MESH_TRACING_PROVIDER]
    assert providers[MESH_TRACING_PROVIDER]["service"].startswith(f"{COLLECTOR_SERVICE}.")


def test_mesh_tracing_rate_is_per_stack_and_off_without_the_pipeline() -> None:
    values = stack_values("staging")
    staging = load_from_mapping(values)
    assert mesh_telemetry(staging) is not None
    values["monitoring"]["tracing"] = False
    assert mesh_telemetry(load_from_mapping(values)) is None
    values["monitoring"] |= {"tracing": True, "traceSamplingPercent": 101}
    with pytest.raises(ConfigError, match=r"monitoring\.traceSamplingPercent = 101"):
        load_from_mapping(values)

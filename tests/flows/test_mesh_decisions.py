"""The mesh's decision for every flow of the table, and for flows that must be refused, evaluated
over the plans' rendered Istio objects with Istio's documented semantics
(infra/plan/istio_authz.py).

The first cases are the defects of issue 19: the gateway refused everything (root deny-all, no
allow), staging's Redis in an injected namespace had no allow, the caller JWT and the platform
token fought over one header, and the API server's webhook and aggregated-API calls were
plaintext against STRICT mTLS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contracts import endpoints, ports
from contracts.config import PlatformConfig, load_from_mapping
from infra.plan.connectivity import flow_decisions, mesh_config
from infra.plan.document import Plan
from infra.plan.istio_authz import Decision, MeshConfig, Request, decide
from infra.platform.flows import Workload, flows, workloads
from infra.platform.mesh_policies import CALLER_JWT_HEADER
from infra.platform.names import COST_ENGINE, MANAGER, pool_workload
from tests.stacks import helm_release, stack_values

MESHED = ("staging", "prod")


def _mesh(plan_dir: Path) -> MeshConfig:
    return mesh_config(plan_dir / "manifests")


@pytest.mark.parametrize("stack", MESHED)
def test_every_flow_the_mesh_sees_is_allowed(plan_dirs: dict[str, Path], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    decided = flow_decisions(cfg, _mesh(plan_dirs[stack]))
    assert {d.flow for d in decided} == {f.name for f in flows(cfg) if f.mesh_ports}
    assert [d.row() for d in decided if d.decision is not Decision.ALLOW] == []


def _w(cfg: PlatformConfig, key: str) -> Workload:
    return workloads(cfg)[key]


def _call(
    cfg: PlatformConfig,
    src: str | None,
    dst: str,
    port: int,
    method: str | None = "GET",
    path: str | None = "/",
    *,
    token: tuple[str, str] | None = None,
    header: str = CALLER_JWT_HEADER,
    ip: str = "10.0.0.10",
) -> Request:
    target = _w(cfg, dst)
    return Request(
        target.namespace,
        target.label_map,
        port,
        ip,
        principal=_w(cfg, src).principal if src else None,
        method=method,
        path=path,
        token=token,
        token_header=header,
        gateway=target.edge,
    )


@pytest.mark.parametrize("stack", MESHED)
def test_defect_gateway_takes_callers(plan_dirs: dict[str, Path], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    mesh = _mesh(plan_dirs[stack])
    outside = "203.0.113.7"
    assert decide(_call(cfg, None, "ingress-gateway", 443, ip=outside), mesh) is Decision.ALLOW
    assert decide(_call(cfg, None, "ingress-gateway", 80, ip=outside), mesh) is Decision.ALLOW
    # Envoy's admin and stats ports are not listeners callers may use.
    assert decide(_call(cfg, None, "ingress-gateway", 15000, ip=outside), mesh) is Decision.DENY


def test_defect_staging_redis_reached_by_the_runtime(plan_dirs: dict[str, Path]) -> None:
    cfg = load_from_mapping(stack_values("staging"))
    mesh = _mesh(plan_dirs["staging"])
    clients = [MANAGER, COST_ENGINE, *(pool_workload(p.name) for p in cfg.agents.pools)]
    for client in clients:
        for port in (ports.REDIS, 26379):
            req = _call(cfg, client, "redis-node", port, None, None)
            assert decide(req, mesh) is Decision.ALLOW, (client, port)
    for stranger in ("grafana", "alertmanager", "prometheus"):
        req = _call(cfg, stranger, "redis-node", ports.REDIS, None, None)
        assert decide(req, mesh) is Decision.DENY, stranger


@pytest.mark.parametrize("stack", MESHED)
def test_defect_caller_jwt_and_platform_token_use_separate_headers(
    plan_dirs: dict[str, Path], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    assert cfg.mesh.jwt is not None
    mesh = _mesh(plan_dirs[stack])
    issuer = cfg.mesh.jwt.issuer
    task = endpoints.TASKS_API

    def submit(**kwargs: Any) -> Decision:
        return decide(_call(cfg, "ingress-gateway", MANAGER, 8080, "POST", task, **kwargs), mesh)

    # Accepted: a valid caller JWT in X-Caller-JWT; Authorization (the manager's platform
    # token) is a header the mesh neither reads nor strips.
    assert submit(token=(issuer, "alice")) is Decision.ALLOW
    # Refused: no JWT; a JWT of another issuer; a JWT only in Authorization (not where the
    # mesh looks for it, so no caller identity).
    assert submit() is Decision.DENY
    assert submit(token=("https://evil.example.com/", "alice")) is Decision.UNAUTHENTICATED
    assert submit(token=(issuer, "alice"), header="Authorization") is Decision.DENY
    (rule,) = mesh.authentication[0]["spec"]["jwtRules"]
    assert [h["name"].lower() for h in rule["fromHeaders"]] != ["authorization"]


@pytest.mark.parametrize("stack", MESHED)
def test_defect_api_server_reaches_webhooks_and_external_metrics(
    plan_dirs: dict[str, Path], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    mesh = _mesh(plan_dirs[stack])
    assert cfg.network is not None
    control_plane = str(cfg.network.vpc_cidr.network_address + 5)
    for target, port in (("prometheus-adapter", 6443), ("prometheus-operator", 10250)):
        # Plaintext (no peer certificate) from the control plane's ENIs: accepted on that port.
        assert decide(_call(cfg, None, target, port, ip=control_plane), mesh) is Decision.ALLOW
        # From outside the VPC, or on another port of the workload: refused.
        assert decide(_call(cfg, None, target, port, ip="203.0.113.7"), mesh) is Decision.DENY
        assert decide(_call(cfg, None, target, 9999, ip=control_plane), mesh) is Decision.DENY


@pytest.mark.parametrize("stack", MESHED)
def test_must_be_refused(plan_dirs: dict[str, Path], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    assert cfg.mesh.jwt is not None
    mesh = _mesh(plan_dirs[stack])
    pool = pool_workload(cfg.agents.pools[0].name)
    jwt = (cfg.mesh.jwt.issuer, "alice")
    refused = {
        # wrong identity: a worker or Grafana on the task API, the manager on a worker
        "worker submits tasks": _call(cfg, pool, MANAGER, 8080, "POST", endpoints.TASKS_API),
        "grafana on the task API": _call(cfg, "grafana", MANAGER, 8080, "GET", endpoints.TASKS_API),
        "manager calls a worker": _call(cfg, MANAGER, pool, ports.WORKER_HTTP, "POST", "/tasks"),
        # agent → manager admin paths: emergency mode, the API docs
        "worker posts alerts": _call(cfg, pool, MANAGER, 8080, "POST", endpoints.ALERT_WEBHOOK),
        "worker reads the docs": _call(cfg, pool, MANAGER, 8080, "GET", "/openapi.json"),
        # wrong path / method through the gateway, even with a valid JWT
        "gateway to the agent API": _call(
            cfg, "ingress-gateway", MANAGER, 8080, "POST", endpoints.AGENTS_API, token=jwt
        ),
        "gateway to the webhook": _call(
            cfg, "ingress-gateway", MANAGER, 8080, "POST", endpoints.ALERT_WEBHOOK, token=jwt
        ),
        "gateway deletes a task": _call(
            cfg, "ingress-gateway", MANAGER, 8080, "DELETE", f"{endpoints.TASKS_API}/1", token=jwt
        ),
        # Prometheus only reads /metrics
        "prometheus posts tasks": _call(
            cfg, "prometheus", MANAGER, 8080, "POST", endpoints.TASKS_API
        ),
        # Alertmanager only posts its webhook
        "alertmanager reads tasks": _call(
            cfg, "alertmanager", MANAGER, 8080, "GET", endpoints.TASKS_API
        ),
        # plaintext from inside the VPC straight at the manager
        "plaintext to the manager": _call(cfg, None, MANAGER, 8080, "GET", endpoints.TASKS_API),
        # the cost engine takes no calls from the gateway
        "gateway to the cost engine": _call(
            cfg, "ingress-gateway", COST_ENGINE, 8081, "GET", endpoints.COST_API + "/usage"
        ),
    }
    allowed = {name: decide(req, mesh) for name, req in refused.items()}
    assert {n: d for n, d in allowed.items() if d is Decision.ALLOW} == {}


# Vault's unauthenticated endpoints: they answer anyone who reaches the API, whatever the token.
VAULT_SYS_CALLS = (
    ("PUT", "/v1/sys/unseal"),
    ("POST", "/v1/sys/unseal"),
    ("GET", "/v1/sys/seal-status"),
    ("GET", "/v1/sys/health"),
    ("GET", "/v1/sys/init"),
    ("PUT", "/v1/sys/init"),
    ("PUT", "/v1/sys/generate-root/attempt"),
    ("PUT", "/v1/sys/generate-root/update"),
    ("PUT", "/v1/sys/rekey/init"),
    ("PUT", "/v1/sys/rekey/update"),
    ("POST", "/v1/sys/step-down"),
    ("PUT", "/v1/sys/seal"),
    ("GET", "/v1/sys/leader"),
    ("GET", "/v1/sys/metrics"),
    ("GET", "/v1/sys/storage/raft/configuration"),
    ("GET", "/v1/sys/internal/ui/mounts"),
)


@pytest.mark.parametrize("stack", MESHED)
def test_vault_servers_are_in_the_mesh(plans: dict[str, Plan], stack: str) -> None:
    # The servers' pods carry Istio's injection label and keep the cluster port outside the
    # sidecar; the listener is plaintext behind it (the sidecar sees every path). The
    # injector (the API server's webhook) stays out.
    cfg = load_from_mapping(stack_values(stack))
    found = workloads(cfg)
    assert found["vault"].injected
    assert found["vault"].bypass_ports == (8201,)
    assert not found["vault-agent-injector"].injected
    values = helm_release(plans[stack], "vault").inputs["values"]
    server = values["server"]
    assert server["extraLabels"] == {"sidecar.istio.io/inject": "true"}
    assert server["annotations"] == {
        "sidecar.istio.io/nativeSidecar": "true",
        "traffic.sidecar.istio.io/excludeInboundPorts": "8201",
        "traffic.sidecar.istio.io/excludeOutboundPorts": "8201",
    }
    assert values["global"]["tlsDisable"] is True
    hcl = server["ha"]["raft"]["config"]
    assert "tls_disable = true" in hcl and "https://" not in hcl


@pytest.mark.parametrize("stack", MESHED)
def test_agents_reach_no_vault_sys_path(plan_dirs: dict[str, Path], stack: str) -> None:
    # Issue 19: nothing in agentops-agents reaches Vault's unseal/sys paths. Every pool logs in
    # and reads its own secrets; every sys/ call of every runtime identity is refused by the
    # Vault servers' sidecars — and so is a pool on another pool's secrets, and plaintext.
    cfg = load_from_mapping(stack_values(stack))
    # Without a sidecar on the servers no policy decides anything into Vault: every path,
    # sys/unseal included, answers whoever the NetworkPolicy lets reach port 8200 (the agents).
    assert workloads(cfg)["vault"].injected, "Vault outside the mesh: agents reach sys/unseal"
    mesh = _mesh(plan_dirs[stack])
    kv = cfg.vault.kv_mount
    pools = [pool_workload(p.name) for p in cfg.agents.pools]
    assert len(pools) >= 2
    for pool, other in zip(pools, [*pools[1:], pools[0]], strict=True):
        allowed = {
            "login POST": _call(cfg, pool, "vault", 8200, "POST", "/v1/auth/kubernetes/login"),
            "login PUT": _call(cfg, pool, "vault", 8200, "PUT", "/v1/auth/kubernetes/login"),
            "own secret": _call(
                cfg, pool, "vault", 8200, "GET", f"/v1/{kv}/data/pools/{pool}/provider"
            ),
            "lookup-self": _call(cfg, pool, "vault", 8200, "GET", "/v1/auth/token/lookup-self"),
            "renew-self": _call(cfg, pool, "vault", 8200, "PUT", "/v1/auth/token/renew-self"),
        }
        assert {n: decide(r, mesh) for n, r in allowed.items()} == dict.fromkeys(
            allowed, Decision.ALLOW
        )
        refused = {
            f"{method} {path}": _call(cfg, pool, "vault", 8200, method, path)
            for method, path in VAULT_SYS_CALLS
        }
        refused["other pool's secret"] = _call(
            cfg, pool, "vault", 8200, "GET", f"/v1/{kv}/data/pools/{other}/provider"
        )
        refused["login with GET"] = _call(
            cfg, pool, "vault", 8200, "GET", "/v1/auth/kubernetes/login"
        )
        refused["plaintext unseal"] = _call(cfg, None, "vault", 8200, "PUT", "/v1/sys/unseal")
        assert {n: decide(r, mesh) for n, r in refused.items()} == dict.fromkeys(
            refused, Decision.DENY
        )


@pytest.mark.parametrize("stack", MESHED)
def test_only_vault_peers_and_prometheus_reach_vault_sys_paths(
    plan_dirs: dict[str, Path], stack: str
) -> None:
    cfg = load_from_mapping(stack_values(stack))
    mesh = _mesh(plan_dirs[stack])
    for service in (MANAGER, COST_ENGINE):
        for method, path in VAULT_SYS_CALLS:
            call = _call(cfg, service, "vault", 8200, method, path)
            assert decide(call, mesh) is Decision.DENY, (service, method, path)
    # Prometheus reads the telemetry and nothing else; the servers' raft join goes peer to peer.
    assert decide(_call(cfg, "prometheus", "vault", 8200, "GET", "/v1/sys/metrics"), mesh) is (
        Decision.ALLOW
    )
    assert decide(_call(cfg, "prometheus", "vault", 8200, "PUT", "/v1/sys/unseal"), mesh) is (
        Decision.DENY
    )
    join = _call(cfg, "vault", "vault", 8200, "POST", "/v1/sys/storage/raft/bootstrap/challenge")
    assert decide(join, mesh) is Decision.ALLOW
    # Only these identities have a flow to Vault at all.
    vault = workloads(cfg)["vault"]
    callers = {
        f.source.key
        for f in flows(cfg)
        if f.destination == vault and isinstance(f.source, Workload)
    }
    assert callers == {
        MANAGER,
        COST_ENGINE,
        "vault",
        "prometheus",
        *(pool_workload(p.name) for p in cfg.agents.pools),
    }

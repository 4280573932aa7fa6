"""The Kubernetes half of every plan: hardened workloads, namespaces, network, schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from contracts.config import load_from_mapping
from infra.plan.document import Plan, PlanResource
from infra.plan.output import manifest_body
from infra.platform.names import APP_LABEL, POD_SECURITY, Namespace, PodSecurity, pool_workload
from infra.platform.workloads import EPHEMERAL_STORAGE, TMP_SIZE, TRACK_LABEL
from tests.stacks import STACKS, stack_values


def objects(plan: Plan, kind: str) -> list[PlanResource]:
    return [r for r in plan.resources if r.is_kubernetes_object and r.inputs["kind"] == kind]


def keyed(plan: Plan, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]): r.inputs
        for r in objects(plan, kind)
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_manifest_validates_against_kubernetes_schemas(
    plans: dict[str, Plan], stack: str
) -> None:
    version = load_from_mapping(stack_values(stack)).kubernetes_version + ".0"
    checked = 0
    custom: set[str] = set()
    for r in plans[stack].resources:
        if not r.is_kubernetes_object:
            continue
        group = r.inputs["apiVersion"].rpartition("/")[0]
        if group and "." in group and not group.endswith(".k8s.io"):
            custom.add(group)  # CRD-backed: no schema in Kubernetes itself
            continue
        kubernetes_validate.validate(manifest_body(r), version, strict=True)
        checked += 1
    assert checked > 40
    assert custom <= {
        "monitoring.coreos.com",
        "networking.istio.io",
        "security.istio.io",
        "telemetry.istio.io",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_is_hardened(plans: dict[str, Plan], stack: str) -> None:
    deployments = objects(plans[stack], "Deployment")
    cfg = load_from_mapping(stack_values(stack))
    green = cfg.mesh.enabled and cfg.mesh.blue_green.green_tag is not None
    assert len(deployments) == 2 + len(cfg.agents.pools) + int(green)
    for d in deployments:
        pod = d.inputs["spec"]["template"]["spec"]
        where = d.inputs["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert all("hostPath" not in v for v in pod.get("volumes", [])), where
        assert pod["serviceAccountName"] == d.inputs["metadata"]["labels"][APP_LABEL], where
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            for part in ("requests", "limits"):
                # A GPU pool adds nvidia.com/gpu (tests/infra/plan/test_scaling.py).
                assert set(c["resources"][part]) == {"cpu", "memory", "ephemeral-storage"}, where
            assert c["resources"]["requests"]["ephemeral-storage"] == EPHEMERAL_STORAGE, where
            assert c["resources"]["limits"]["ephemeral-storage"] == EPHEMERAL_STORAGE, where
        # What the container writes to disk is bounded: /tmp by its sizeLimit, within the limit.
        (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
        assert tmp["emptyDir"] == {"sizeLimit": TMP_SIZE}, where
        vault_agent = d.inputs["spec"]["template"]["metadata"]["annotations"]
        for part in ("requests", "limits"):
            assert vault_agent[f"vault.hashicorp.com/agent-{part}-ephemeral"], where
            assert c["livenessProbe"]["httpGet"]["path"] == "/health", where
            assert c["readinessProbe"]["httpGet"]["path"] == "/ready", where
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{where}: untagged {image}"
            assert not image.endswith(":latest"), where
            if stack == "prod":
                assert "@sha256:" in image, where
            if stack != "local":
                assert ".dkr.ecr." in image, where


@pytest.mark.parametrize("stack", STACKS)
def test_each_workload_has_service_account_service_pdb(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    services, pdbs, accounts = (
        keyed(plan, "Service"),
        keyed(plan, "PodDisruptionBudget"),
        keyed(plan, "ServiceAccount"),
    )
    for d in objects(plan, "Deployment"):
        meta = d.inputs["metadata"]
        key = (meta["namespace"], meta["name"])
        # Blue/green tracks share one Service and ServiceAccount, named after the app.
        shared = (meta["namespace"], meta["labels"][APP_LABEL])
        labels = d.inputs["spec"]["template"]["metadata"]["labels"]
        assert shared in accounts
        assert accounts[shared]["automountServiceAccountToken"] is False
        service = services[shared]["spec"]
        assert all(labels.get(k) == v for k, v in service["selector"].items())
        pdb = pdbs[key]["spec"]
        assert pdb["maxUnavailable"] == 1, "a drain must be able to proceed"
        assert pdb["selector"]["matchLabels"] == d.inputs["spec"]["selector"]["matchLabels"]
        assert d.inputs["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_blue_and_green_select_disjoint_pods(plans: dict[str, Plan]) -> None:
    deployments = keyed(plans["staging"], "Deployment")
    blue = deployments[(Namespace.PLATFORM.value, "agent-manager")]["spec"]
    green = deployments[(Namespace.PLATFORM.value, "agent-manager-green")]["spec"]
    assert blue["selector"]["matchLabels"][TRACK_LABEL] == "blue"
    assert green["selector"]["matchLabels"][TRACK_LABEL] == "green"
    image = green["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("/agentops/agent-manager:0.1.1")
    assert (Namespace.PLATFORM.value, "agent-manager-green") not in keyed(
        plans["staging"], "Service"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_pools_scale_on_cpu_memory_and_queue(plans: dict[str, Plan], stack: str) -> None:
    cfg = load_from_mapping(stack_values(stack))
    hpas = keyed(plans[stack], "HorizontalPodAutoscaler")
    deployments = keyed(plans[stack], "Deployment")
    assert len(hpas) == len(cfg.agents.pools)
    for pool in cfg.agents.pools:
        key = (Namespace.AGENTS.value, pool_workload(pool.name))
        spec = hpas[key]["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (pool.min_replicas, pool.max_replicas)
        assert "replicas" not in deployments[key]["spec"], "the HPA owns the replica count"
        by_type = {m["type"]: m for m in spec["metrics"] if m["type"] != "Resource"}
        resources = {m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"}
        assert resources == {"cpu", "memory"}
        external = by_type["External"]["external"]
        assert external["metric"]["name"] == "agentops_queue_length"
        assert external["metric"]["selector"]["matchLabels"] == {"agent_type": pool.name}
        assert external["target"]["averageValue"] == str(pool.target_queue_length)
    manager = deployments[(Namespace.PLATFORM.value, "agent-manager")]
    assert manager["spec"]["replicas"] == cfg.agents.manager.replicas


@pytest.mark.parametrize("stack", STACKS)
def test_namespaces_have_psa_quota_limits_default_deny(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    namespaces = {r.inputs["metadata"]["name"]: r.inputs for r in objects(plan, "Namespace")}
    quotas = {ns for ns, _ in keyed(plan, "ResourceQuota")}
    limits = {ns for ns, _ in keyed(plan, "LimitRange")}
    policies = keyed(plan, "NetworkPolicy")
    for name, ns in namespaces.items():
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == POD_SECURITY[Namespace(name)].value
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert name in quotas and name in limits
        deny = policies[(name, "default-deny")]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for d in objects(plan, "Deployment"):
        ns = d.inputs["metadata"]["namespace"]
        assert namespaces[ns]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
            PodSecurity.RESTRICTED.value
        )


def _allows(policy: dict[str, Any], direction: str, port: int) -> bool:
    rules = policy["spec"].get(direction, [])
    return any(p.get("port") == port for rule in rules for p in rule.get("ports", []))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_explicit_allows_exist(plans: dict[str, Plan], stack: str) -> None:
    p = {k: {"spec": v["spec"]} for k, v in keyed(plans[stack], "NetworkPolicy").items()}
    platform, agents = Namespace.PLATFORM.value, Namespace.AGENTS.value
    assert _allows(p[(platform, "in-gateway-to-manager")], "ingress", 8080)
    (source,) = p[(platform, "in-gateway-to-manager")]["spec"]["ingress"][0]["from"]
    assert source["podSelector"]["matchLabels"]["istio"] == "ingressgateway", "gateway → manager"
    # Tasks reach workers through their Redis inbox streams: nothing calls a worker but
    # Prometheus, so there is no manager → agents path.
    assert not [k for k in p if k[0] == platform and "manager-to-agent" in k[1]]
    worker_ingress = [
        rule
        for (ns, _), policy in p.items()
        if ns == agents
        for rule in policy["spec"].get("ingress", [])
    ]
    assert all(
        peer.get("namespaceSelector", {}).get("matchLabels")
        == {"kubernetes.io/metadata.name": "monitoring"}
        for rule in worker_ingress
        for peer in rule["from"]
    ), "only Prometheus reaches the agents namespace"
    pool = "agent-code-generator"
    redis = "elasticache" if stack == "prod" else "redis"
    assert _allows(p[(agents, f"out-{pool}-to-{redis}")], "egress", 6379)
    https = p[(agents, f"out-{pool}-to-model-provider")]["spec"]["egress"][0]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert https["to"][0]["ipBlock"]["except"] == ["169.254.169.254/32"]
    for ns in (platform, agents):
        assert _allows(p[(ns, f"out-dns-udp-{ns}")], "egress", 53)
    assert _allows(p[(agents, f"in-prometheus-scrapes-{pool}")], "ingress", 8082)


def test_elasticache_redis_is_reached_inside_the_vpc(plans: dict[str, Plan]) -> None:
    policy = keyed(plans["prod"], "NetworkPolicy")[
        (Namespace.AGENTS.value, "out-agent-code-generator-to-elasticache")
    ]
    assert policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.30.0.0/16"}}]


@pytest.mark.parametrize("stack", STACKS)
def test_no_two_objects_share_an_identity(plans: dict[str, Plan], stack: str) -> None:
    seen: dict[tuple[str, str, str, str], str] = {}
    for r in plans[stack].resources:
        if not r.is_kubernetes_object:
            continue
        meta = r.inputs["metadata"]
        key = (r.inputs["apiVersion"], r.inputs["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in seen, f"{r.name} and {seen[key]} are both {key}"
        seen[key] = r.name


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_service_account_has_its_own_irsa_role(plans: dict[str, Plan], stack: str) -> None:
    import json

    plan = plans[stack]
    roles = {r.name: r for r in plan.resources if r.type == "aws:iam/role:Role"}
    for sa in objects(plan, "ServiceAccount"):
        meta = sa.inputs["metadata"]
        arn = meta["annotations"]["eks.amazonaws.com/role-arn"]
        role_name = f"agents-{meta['name']}-irsa-role"
        assert arn.startswith(f"arn:aws:iam::123456789012:role/{role_name}-")
        trust = json.loads(roles[role_name].inputs["assumeRolePolicy"])
        condition = trust["Statement"][0]["Condition"]["StringEquals"]
        subject = f"system:serviceaccount:{meta['namespace']}:{meta['name']}"
        assert subject in condition.values()


def test_local_service_accounts_have_no_irsa(plans: dict[str, Plan]) -> None:
    for sa in objects(plans["local"], "ServiceAccount"):
        assert "annotations" not in sa.inputs["metadata"]

"""Real agents in the cluster, per stack, in the plans the real plan command writes: an llm pool's
worker env, the injector annotations that render its provider key, the Vault policy and role
that let it alone read that key, and its egress: the provider's host on 443 and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.config import PlatformConfig, load_from_mapping
from contracts.config.agents import DEFAULT_HANDLER, LLM_HANDLER
from infra.plan.document import Plan
from infra.platform.flows import IMDS
from infra.platform.names import Namespace, pool_workload
from infra.platform.runtime_secrets import PROVIDER_KEY_FILE, SECRETS_DIR
from tests.stacks import STACKS, stack_values

AGENTS = Namespace.AGENTS.value
INJECT = "vault.hashicorp.com"


def _objects(plan: Plan, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r.inputs["metadata"].get("namespace", ""), r.inputs["metadata"]["name"]): r.inputs
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == kind
    }


def _cfg(stack: str) -> PlatformConfig:
    return load_from_mapping(stack_values(stack))


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("stack", STACKS)
def test_each_pool_runs_its_handler_with_its_provider(plans: dict[str, Plan], stack: str) -> None:
    cfg = _cfg(stack)
    deployments = _objects(plans[stack], "Deployment")
    llm_pools = 0
    for pool in cfg.agents.pools:
        d = deployments[(AGENTS, pool_workload(pool.name))]
        env = _env(d)
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert env["AGENTOPS_HANDLER"] == pool.handler
        if pool.provider is None:
            assert pool.handler == DEFAULT_HANDLER
            assert not [k for k in env if k.startswith("AGENTOPS_LLM_")]
            assert f"{INJECT}/agent-inject-secret-{PROVIDER_KEY_FILE}" not in annotations
            continue
        llm_pools += 1
        assert pool.handler == LLM_HANDLER
        assert {k: v for k, v in env.items() if k.startswith("AGENTOPS_LLM_")} == {
            "AGENTOPS_LLM_BASE_URL": str(pool.provider.base_url),
            "AGENTOPS_LLM_MODEL": pool.model,
            "AGENTOPS_LLM_API_KEY_FILE": f"{SECRETS_DIR}/{PROVIDER_KEY_FILE}",
        }
        # The injector renders exactly the key's field, 0400, from the pool's KV entry.
        mount, key = cfg.vault.kv_mount, pool.provider.key
        assert annotations[f"{INJECT}/role"] == pool_workload(pool.name)
        assert annotations[f"{INJECT}/agent-inject-secret-{PROVIDER_KEY_FILE}"] == (
            f"{mount}/data/{key.path}"
        )
        assert annotations[f"{INJECT}/agent-inject-template-{PROVIDER_KEY_FILE}"] == (
            f'{{{{ with secret "{mount}/data/{key.path}" }}}}'
            f"{{{{ .Data.data.{key.field} }}}}{{{{ end }}}}"
        )
        assert annotations[f"{INJECT}/agent-inject-perms-{PROVIDER_KEY_FILE}"] == "0400"
        # No key value anywhere in the Deployment.
        assert "sk-" not in json.dumps(d)
    assert llm_pools == {"staging": 1, "prod": 2, "local": 0}[stack]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_only_the_pool_reads_its_key_in_vault(plans: dict[str, Plan], stack: str) -> None:
    cfg = _cfg(stack)
    plan = plans[stack]
    policies = {
        r.inputs["name"]: r.inputs["policy"]
        for r in plan.resources
        if r.type == "vault:index/policy:Policy"
    }
    roles = {
        r.inputs["roleName"]: r.inputs
        for r in plan.resources
        if r.type == "vault:kubernetes/authBackendRole:AuthBackendRole"
    }
    for pool in cfg.agents.pools:
        if pool.provider is None:
            continue
        name = pool_workload(pool.name)
        data = f"{cfg.vault.kv_mount}/data/{pool.provider.key.path}"
        readers = {
            policy
            for policy, hcl in policies.items()
            if any(
                line.startswith("path ")
                and (
                    line.split('"')[1] == data
                    or (
                        line.split('"')[1].endswith("/*")
                        and data.startswith(line.split('"')[1][:-1])
                    )
                )
                for line in hcl.splitlines()
            )
        }
        assert readers == {name}, (pool.name, readers)
        role = roles[name]
        assert role["boundServiceAccountNames"] == [name]
        assert role["boundServiceAccountNamespaces"] == [AGENTS]
        assert role["tokenPolicies"] == [name]


@pytest.mark.parametrize("stack", STACKS)
def test_a_pool_reaches_only_its_providers_host_on_443(plans: dict[str, Plan], stack: str) -> None:
    cfg = _cfg(stack)
    plan = plans[stack]
    network = _objects(plan, "NetworkPolicy")
    entries = _objects(plan, "ServiceEntry")
    sidecars = _objects(plan, "Sidecar")
    for pool in cfg.agents.pools:
        name = pool_workload(pool.name)
        internet = {
            key
            for key, policy in network.items()
            if key[0] == AGENTS
            and policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
            == name
            and any(
                peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
                for rule in policy["spec"].get("egress", [])
                for peer in rule["to"]
            )
        }
        if pool.provider is None:
            # A demo pool without AWS rights reaches nothing outside the cluster.
            assert not internet, (pool.name, internet)
            assert (AGENTS, f"egress-{name}") not in sidecars
            continue
        assert internet == {(AGENTS, f"out-{name}-to-model-provider")}
        (rule,) = network[(AGENTS, f"out-{name}-to-model-provider")]["spec"]["egress"]
        assert rule["ports"] == [{"port": 443, "protocol": "TCP"}]
        assert rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [IMDS]}}]
        # The mesh holds it to the host: a ServiceEntry for it, REGISTRY_ONLY for the pool.
        host = pool.provider.host
        entry = entries[(AGENTS, "egress-" + host.replace(".", "-"))]["spec"]
        assert entry["hosts"] == [host]
        assert entry["ports"] == [{"number": 443, "name": "tls-443", "protocol": "TLS"}]
        assert entry["exportTo"] == ["."]
        assert (entry["location"], entry["resolution"]) == ("MESH_EXTERNAL", "DNS")
        sidecar = sidecars[(AGENTS, f"egress-{name}")]["spec"]
        assert sidecar["workloadSelector"]["labels"]["app.kubernetes.io/name"] == name
        assert sidecar["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
        (egress,) = sidecar["egress"]
        external = {h for h in egress["hosts"] if h.startswith("./")}
        # The platform database (RDS, in the VPC, by address) where the pool may use it.
        database = {"./vpc-5432.external"} if pool.name in cfg.database_pools() else set()
        if database:
            db = entries[(AGENTS, "egress-vpc-5432")]["spec"]
            assert db["addresses"] == [str(cfg.network.vpc_cidr)]  # type: ignore[union-attr]
            assert db["ports"] == [{"number": 5432, "name": "tcp-5432", "protocol": "TCP"}]
        if stack == "prod":
            # ElastiCache (in the VPC, by address) is the pool's one other way out.
            assert external == {f"./{host}", "./vpc-6379.external", *database}
            redis = entries[(AGENTS, "egress-vpc-6379")]["spec"]
            assert redis["addresses"] == [str(cfg.network.vpc_cidr)]  # type: ignore[union-attr]
            assert redis["ports"] == [{"number": 6379, "name": "tcp-6379", "protocol": "TCP"}]
        else:
            assert external == {f"./{host}", *database}
        # Inside the cluster: the namespaces of the Services its flows reach.
        assert {h for h in egress["hosts"] if not h.startswith("./")} >= {
            "kube-system/*",
            f"{Namespace.PLATFORM.value}/*",
        }


def test_the_flow_table_names_the_providers_host(plan_dirs: dict[str, Any]) -> None:
    rows = json.loads((plan_dirs["prod"] / "flows.json").read_text())
    provider = {r["name"]: r for r in rows if r["name"].endswith("-to-model-provider")}
    assert set(provider) == {
        "agent-code-generator-to-model-provider",
        "agent-security-scanner-to-model-provider",
    }
    for row in provider.values():
        assert (row["hosts"], row["ports"], row["to"]["network"]) == (
            ["api.openai.com"],
            [443],
            "internet",
        )
    assert not [r for r in rows if r["name"].endswith("-to-model-providers")]

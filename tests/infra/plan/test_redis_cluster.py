"""ElastiCache in cluster mode, planned by the real runner: the replication group has shards and
replicas per shard from config, TLS and auth; the runtime is handed the configuration endpoint
and waits for a replica; prod's policy pack refuses cluster mode without replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.plan.document import Plan, PlanResource
from infra.plan.policy_check import check_plan, load_pack_config
from policies import ALL_POLICIES
from tests.stacks import run_plan, write_stack

GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _cluster_mode(replicas: int) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config["agentops:redis"]["elasticache"].update(
            clusterMode=True, numNodeGroups=3, replicasPerNodeGroup=replicas
        )

    return mutate


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """prod with cluster mode: 3 shards, 1 replica each."""
    root = tmp_path_factory.mktemp("redis-cluster")
    stack_dir = write_stack(root / "stack", "prod", _cluster_mode(1))
    proc = run_plan("prod", root / "plan", stack_dir)
    assert proc.returncode == 0, proc.stderr
    return Plan.load(root / "plan")


def _group(plan: Plan) -> PlanResource:
    (group,) = [r for r in plan.resources if r.type == GROUP]
    return group


def _env(plan: Plan, name: str) -> dict[str, Any]:
    (deployment,) = [
        r for r in plan.resources if r.type == DEPLOYMENT and r.inputs["metadata"]["name"] == name
    ]
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_cluster_mode_plans_shards_replicas_tls_and_auth(plan: Plan) -> None:
    group = _group(plan).inputs
    assert group["clusterMode"] == "enabled"
    assert group["numNodeGroups"] == 3
    assert group["replicasPerNodeGroup"] == 1
    assert group["parameterGroupName"] == "default.redis7.cluster.on"
    assert "numCacheClusters" not in group
    assert group["transitEncryptionEnabled"] is True
    assert group["atRestEncryptionEnabled"] is True
    assert group["authToken"], "auth as without cluster mode"
    assert group["automaticFailoverEnabled"] is True
    config = load_pack_config("prod")
    assert not [v for v in check_plan(plan, ALL_POLICIES, config) if "Redis" in v.message]


def test_the_runtime_gets_the_configuration_endpoint_and_waits_for_a_replica(plan: Plan) -> None:
    for service in ("agent-manager", "cost-engine"):
        env = _env(plan, service)
        assert str(env["AGENTOPS_REDIS_URL"]).startswith("rediss+cluster://clustercfg."), env
        assert env["AGENTOPS_REDIS_MIN_REPLICAS"] == "1"


def test_prod_refuses_cluster_mode_without_replicas(tmp_path: Path) -> None:
    stack_dir = write_stack(tmp_path / "stack", "prod", _cluster_mode(0))
    proc = run_plan("prod", tmp_path / "plan", stack_dir)
    assert proc.returncode != 0
    assert "[mandatory] elasticache-cluster-replicas-prod on state-redis" in proc.stderr
    assert "replicasPerNodeGroup 0" in proc.stderr
    assert "fix: Set redis.elasticache.replicasPerNodeGroup ≥ 1." in proc.stderr

"""Scaling has data and room: metrics-server, the cluster autoscaler and GPU pools, planned by
the real runner under the mock engine from configs that ask for them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from contracts import versions
from infra.plan.document import Plan, PlanResource
from infra.platform.scheduling import GPU_RESOURCE, NODE_ROLE_LABEL
from tests.stacks import STACKS, run_plan, stack_values, write_stack

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GPU_POOL = "gpu-inference"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def _releases(plan: Plan) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in plan.resources if r.type == RELEASE}


def _gpu_pool(config: dict[str, Any]) -> None:
    pools = config["agentops:agents"]["pools"]
    pool = copy.deepcopy(pools[0])
    pool.update({"name": GPU_POOL, "gpus": 1, "weight": 1})
    if "provider" in pool:  # a pool reads only its own key
        pool["provider"]["key"]["path"] = f"pools/agent-{GPU_POOL}/openai"
    pools.append(pool)


def _gpu_stack(stack: str) -> Any:
    """`stack`'s config with a GPU pool, and (staging has none) the prod GPU node group."""

    def mutate(config: dict[str, Any]) -> None:
        groups = config["agentops:cluster"]["nodeGroups"]
        if not any(g["role"] == "gpu" for g in groups):
            groups.append(
                next(g for g in stack_values("prod")["cluster"]["nodeGroups"] if g["role"] == "gpu")
            )
        _gpu_pool(config)

    return mutate


@pytest.fixture(scope="module")
def gpu_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    root = tmp_path_factory.mktemp("gpu")
    plans = {}
    for stack in ("staging", "prod"):
        stack_dir = write_stack(root / f"{stack}-stack", stack, _gpu_stack(stack))
        proc = run_plan(stack, root / stack, stack_dir)
        assert proc.returncode == 0, proc.stderr
        plans[stack] = Plan.load(root / stack)
    return plans


def _gpu_group(plan: Plan) -> PlanResource:
    (group,) = [
        r
        for r in plan.resources
        if r.type == NODE_GROUP and r.inputs["labels"][NODE_ROLE_LABEL] == "gpu"
    ]
    return group


def _autoscaler_policy(plan: Plan) -> dict[str, dict[str, Any]]:
    (policy,) = [
        r
        for r in plan.resources
        if r.type == "aws:iam/rolePolicy:RolePolicy" and "cluster-autoscaler" in r.name
    ]
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_gpu_pool_plan_shows_plugin_toleration_request_and_autoscaler_rights(
    gpu_plans: dict[str, Plan], stack: str
) -> None:
    plan = gpu_plans[stack]
    group = _gpu_group(plan)
    # The node group's taint is the one the pool and the device plugin tolerate.
    assert {"key": GPU_RESOURCE, "value": "true", "effect": "NO_SCHEDULE"} in group.inputs["taints"]

    plugin = _releases(plan)["nvidia-device-plugin"]
    assert plugin["version"] == versions.CHARTS["nvidia-device-plugin"].version
    values = plugin["values"]
    assert values["nodeSelector"] == {NODE_ROLE_LABEL: "gpu"}
    assert values["tolerations"] == [GPU_TOLERATION]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": NODE_ROLE_LABEL, "operator": "In", "values": ["gpu"]}]}
    ]

    (deployment,) = [
        r
        for r in plan.resources
        if r.is_kubernetes_object
        and r.inputs["kind"] == "Deployment"
        and r.inputs["metadata"]["name"] == f"agent-{GPU_POOL}"
    ]
    pod = deployment.inputs["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE] == "1"
    assert pod["tolerations"] == [GPU_TOLERATION]
    assert pod["nodeSelector"] == {NODE_ROLE_LABEL: "gpu"}

    # The autoscaler may scale exactly this cluster's node groups, the GPU group among them.
    cluster = stack_values(stack)["cluster"]["name"]
    tags = {
        "k8s.io/cluster-autoscaler/enabled": "true",
        f"k8s.io/cluster-autoscaler/{cluster}": "owned",
    }
    assert tags.items() <= group.inputs["tags"].items()
    statements = _autoscaler_policy(plan)
    scale = statements["ScaleOwnNodeGroups"]
    groups = [r for r in plan.resources if r.type == NODE_GROUP]
    assert sorted(scale["Resource"]) == sorted(
        "arn:aws:autoscaling:eu-west-1:*:autoScalingGroup:*:autoScalingGroupName/"
        f"eks-{g.inputs['nodeGroupNamePrefix']}*"
        for g in groups
    )
    assert f"autoScalingGroupName/eks-{cluster}-gpu-*" in "\n".join(scale["Resource"])
    assert scale["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    }
    assert sorted(scale["Action"]) == [
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    read = statements["ReadOwnNodeGroups"]
    assert read["Action"] == ["eks:DescribeNodegroup"]
    # One ARN per node group (the mock cloud names an ARN after its resource).
    assert sorted(a.rsplit("/", 1)[1].rsplit("-", 1)[0] for a in read["Resource"]) == sorted(
        g.name for g in groups
    )
    assert all(a.startswith("arn:aws:eks:") for a in read["Resource"])
    # Every other statement only reads.
    for sid, statement in statements.items():
        if sid != "ScaleOwnNodeGroups":
            assert all(":Describe" in a or ":Get" in a for a in statement["Action"]), sid
    # Bounds: the GPU group scales within its config's minSize..maxSize.
    gpu_config = next(
        g for g in stack_values("prod")["cluster"]["nodeGroups"] if g["role"] == "gpu"
    )
    assert group.inputs["scalingConfig"]["minSize"] == gpu_config["minSize"]
    assert group.inputs["scalingConfig"]["maxSize"] == gpu_config["maxSize"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_metrics_server_and_aws_stacks_an_autoscaler(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    releases = _releases(plan)
    metrics = releases["metrics-server"]
    assert metrics["version"] == versions.CHARTS["metrics-server"].version
    assert metrics["namespace"] == "kube-system"
    for part in ("requests", "limits"):
        assert "ephemeral-storage" in metrics["values"]["resources"][part]
    if stack == "local":
        assert "cluster-autoscaler" not in releases
        return
    cfg = stack_values(stack)["cluster"]
    autoscaler = releases["cluster-autoscaler"]
    pinned = versions.for_minor(cfg["kubernetesVersion"])
    assert autoscaler["version"] == pinned.cluster_autoscaler_chart
    assert autoscaler["values"]["image"]["tag"] == pinned.cluster_autoscaler_image
    assert autoscaler["values"]["autoDiscovery"]["clusterName"] == cfg["name"]
    # Its service account assumes the role whose policy is scoped above, and only that one.
    (role,) = [
        r
        for r in plan.resources
        if r.type == "aws:iam/role:Role" and "cluster-autoscaler" in r.name
    ]
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in trust["StringEquals"].values()
    account = autoscaler["values"]["rbac"]["serviceAccount"]
    assert account["name"] == "cluster-autoscaler"
    assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    # Every node group is discoverable and bounded by its config.
    groups = {r.inputs["nodeGroupNamePrefix"]: r for r in plan.resources if r.type == NODE_GROUP}
    for group in cfg["nodeGroups"]:
        inputs = groups[f"{cfg['name']}-{group['name']}-"].inputs
        assert inputs["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert inputs["tags"][f"k8s.io/cluster-autoscaler/{cfg['name']}"] == "owned"
        assert inputs["scalingConfig"]["minSize"] == group["minSize"]
        assert inputs["scalingConfig"]["maxSize"] == group["maxSize"]
    has_gpu = any(g["role"] == "gpu" for g in cfg["nodeGroups"])
    assert ("nvidia-device-plugin" in releases) is has_gpu


@pytest.mark.parametrize("stack", STACKS)
def test_gpus_on_a_stack_without_gpu_nodes_are_refused_naming_the_key(
    tmp_path: Path, stack: str
) -> None:
    def without_gpu_nodes(config: dict[str, Any]) -> None:
        if "agentops:cluster" in config:
            groups = config["agentops:cluster"]["nodeGroups"]
            groups[:] = [g for g in groups if g["role"] != "gpu"]
        _gpu_pool(config)

    proc = run_plan(stack, tmp_path / "out", write_stack(tmp_path / "s", stack, without_gpu_nodes))
    assert proc.returncode == 2, proc.stderr
    index = len(stack_values(stack)["agents"]["pools"])
    assert f"agentops:agents.pools[{index}].gpus" in proc.stderr
    assert "needs a node group with role gpu in cluster.nodeGroups" in proc.stderr


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_adapter_rule_serves_the_metric_every_hpa_reads(plans: dict[str, Plan], stack: str) -> None:
    """The HPA's external metric and the adapter's rule come from one definition
    (`contracts.telemetry.metrics.QUEUE_LENGTH`): each HPA reads a metric the adapter serves, by
    a label the adapter's query keeps."""
    plan = plans[stack]
    (rule,) = _releases(plan)["prometheus-adapter"]["values"]["rules"]["external"]
    hpas = [
        r
        for r in plan.resources
        if r.is_kubernetes_object and r.inputs["kind"] == "HorizontalPodAutoscaler"
    ]
    assert hpas
    for hpa in hpas:
        (external,) = [
            m["external"] for m in hpa.inputs["spec"]["metrics"] if m["type"] == "External"
        ]
        assert external["metric"]["name"] == rule["name"]["as"]
        assert rule["seriesQuery"].startswith(external["metric"]["name"] + "{")
        for label in external["metric"]["selector"]["matchLabels"]:
            assert f"by ({label})" in rule["metricsQuery"]


def _container_resources(values: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every `resources` block of container shape (requests/limits, not a claim's storage)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(values, dict):
        for key, value in values.items():
            here = f"{path}.{key}"
            if (
                key == "resources"
                and isinstance(value, dict)
                and "storage" not in value.get("requests", {})
                and set(value) & {"requests", "limits"}
            ):
                found.append((here, value))
            else:
                found += _container_resources(value, here)
    elif isinstance(values, list):
        for i, value in enumerate(values):
            found += _container_resources(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_chart_containers_we_size_bound_their_ephemeral_storage(
    plans: dict[str, Plan], stack: str
) -> None:
    sized = {}
    for name, release in _releases(plans[stack]).items():
        for where, resources in _container_resources(release.get("values", {})):
            sized[f"{name}{where}"] = resources
    # metrics-server everywhere; the autoscaler on AWS; in-cluster Redis and Vault's charts.
    assert any(k.startswith("metrics-server.") for k in sized)
    assert any(k.startswith("vault.server.") for k in sized)
    for where, resources in sized.items():
        for part in ("requests", "limits"):
            assert "ephemeral-storage" in resources.get(part, {}), f"{stack}: {where}.{part}"
    agent = _releases(plans[stack])["vault"]["values"]["injector"]["agentDefaults"]
    assert agent["ephemeralRequest"] and agent["ephemeralLimit"]

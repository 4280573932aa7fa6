"""A pool that asks for a GPU, applied for real: the API server stores its Deployment with the
`nvidia.com/gpu` request and limit, the GPU taint's toleration and the GPU node selector, and
admits its pods under the agents namespace's `restricted` level and quota."""

from __future__ import annotations

from pathlib import Path

import kubernetes.client

from infra.plan.document import Plan
from infra.platform.scheduling import GPU_RESOURCE, NODE_ROLE_LABEL
from tests.infra.plan.test_scaling import GPU_POOL, GPU_TOLERATION, _gpu_stack
from tests.kube.apply import dynamic_client, helm_releases, load_manifests
from tests.kube.test_plans_apply import StackApply, _apply_all, _settle
from tests.kubeapi import control_plane
from tests.stacks import run_plan, write_stack


def test_gpu_pool_is_stored_and_its_pods_admitted(tmp_path: Path) -> None:
    proc = run_plan(
        "prod", tmp_path / "plan", write_stack(tmp_path / "s", "prod", _gpu_stack("prod"))
    )
    assert proc.returncode == 0, proc.stderr
    with control_plane(tmp_path / "kube") as plane, plane.api_client() as api:
        client = dynamic_client(api, tmp_path / "kube")
        result = StackApply(
            "prod", plane, Plan.load(tmp_path / "plan"), load_manifests(tmp_path / "plan")
        )
        _apply_all(client, result, helm_releases(result.plan))
        _settle(client, result)
        assert result.errors == {}
        assert result.failed_create == []
        stored = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(
            f"agent-{GPU_POOL}", "agentops-agents"
        )
        pod = stored.spec.template.spec
        (container,) = pod.containers
        assert container.resources.requests[GPU_RESOURCE] == "1"
        assert container.resources.limits[GPU_RESOURCE] == "1"
        assert container.resources.limits["ephemeral-storage"] == "128Mi"
        assert [t.to_dict() for t in pod.tolerations] == [
            {**GPU_TOLERATION, "toleration_seconds": None}
        ]
        assert pod.node_selector == {NODE_ROLE_LABEL: "gpu"}
        pods = [p for ref, p in result.pods.items() if ref.endswith(f"agent-{GPU_POOL}")]
        assert pods and set(pods[0].phases) == {"Pending"}
        assert pods[0].level == "restricted"

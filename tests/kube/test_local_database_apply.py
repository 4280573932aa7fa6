"""The local stack with its database, applied for real: the API server stores the PostgreSQL
StatefulSet, Service, ServiceAccount, admin Secret and the database NetworkPolicies with strict
field validation; the StatefulSet controller creates the pod's volume claim and the pod, which
the platform namespace admits under `restricted` (no FailedCreate)."""

from __future__ import annotations

from pathlib import Path

import kubernetes.client

from infra.plan.document import Plan
from tests.kube.apply import dynamic_client, helm_releases, load_manifests
from tests.kube.test_plans_apply import StackApply, _apply_all, _failed_creates, _settle
from tests.kubeapi import control_plane
from tests.stacks import local_database, run_plan, write_stack
from tests.waiting import eventually

PLATFORM = "agentops-platform"


def test_the_local_database_is_stored_and_its_pod_admitted(tmp_path: Path) -> None:
    stack = write_stack(tmp_path / "s", "local", local_database)
    proc = run_plan("local", tmp_path / "plan", stack)
    assert proc.returncode == 0, proc.stderr
    with control_plane(tmp_path / "kube") as plane, plane.api_client() as api:
        client = dynamic_client(api, tmp_path / "kube")
        result = StackApply(
            "local", plane, Plan.load(tmp_path / "plan"), load_manifests(tmp_path / "plan")
        )
        _apply_all(client, result, helm_releases(result.plan))
        _settle(client, result)
        assert result.errors == {}
        ours = {
            ref
            for ref in result.applied
            if ref.endswith("/database") or ref.endswith("/database-admin") or "to-database" in ref
        }
        kinds = {ref.split(" ")[0] for ref in ours}
        assert {"StatefulSet", "Service", "ServiceAccount", "Secret", "NetworkPolicy"} <= kinds, (
            ours
        )
        core = kubernetes.client.CoreV1Api(api)
        pod = eventually(
            "the database pod",
            lambda: next(
                (
                    p
                    for p in core.list_namespaced_pod(PLATFORM).items
                    if p.metadata.name == "database-0"
                ),
                None,
            ),
        )
        claims = [
            c.metadata.name for c in core.list_namespaced_persistent_volume_claim(PLATFORM).items
        ]
        assert "data-database-0" in claims
        assert pod.status.phase == "Pending"
        assert pod.spec.service_account_name == "database"
        assert _failed_creates(core, {PLATFORM}) == []
        labels = core.read_namespace(PLATFORM).metadata.labels
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

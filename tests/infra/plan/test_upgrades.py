"""Kubernetes upgrades as a one-line change: ordered, create-before-delete, guarded."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import StackValidationArgs

from contracts import versions
from infra.plan.diff import diff_plans, render_markdown
from infra.plan.document import Plan, PlanResource
from infra.plan.policy_input import policy_resources
from infra.plan.upgrade import assess_upgrade
from policies.upgrades import kubernetes_version_skew
from tests.stacks import REPO, run_plan, write_stack


def _at_minor(minor: str) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config["agentops:cluster"]["kubernetesVersion"] = minor

    return mutate


@pytest.fixture(scope="module")
def staging_at(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Plans of the staging stack at several minors (its file says 1.33)."""
    root = tmp_path_factory.mktemp("minors")
    dirs = {}
    for minor in ("1.33", "1.34", "1.35"):
        stack_dir = write_stack(root / f"stack-{minor}", "staging", _at_minor(minor))
        proc = run_plan("staging", root / minor, stack_dir)
        assert proc.returncode == 0, proc.stderr
        dirs[minor] = root / minor
    return dirs


def _by_name(plan: Plan, typ: str) -> dict[str, PlanResource]:
    return {r.name: r for r in plan.resources if r.type == typ}


def test_next_minor_moves_exactly_the_versions(staging_at: dict[str, Path]) -> None:
    base, head = Plan.load(staging_at["1.33"]), Plan.load(staging_at["1.34"])
    d = diff_plans(base, head)
    assert not d.added
    assert not d.removed
    moved = {c.name: {f.path: (f.old, f.new) for f in c.fields} for c in d.changed}
    expected: dict[str, dict[str, tuple[str, str]]] = {
        "cluster-eks": {"inputs.version": ("1.33", "1.34")},
        "cluster-system": {"inputs.version": ("1.33", "1.34")},
        "cluster-agents": {"inputs.version": ("1.33", "1.34")},
    }
    old, new = versions.for_minor("1.33").addons, versions.for_minor("1.34").addons
    for addon in versions.ADDON_NAMES:
        expected[f"cluster-{addon}"] = {"inputs.addonVersion": (old[addon], new[addon])}
    # Istio's charts support a window of minors, so the table moves them with the cluster.
    istio = (versions.for_minor("1.33").istio, versions.for_minor("1.34").istio)
    for release in ("istio-base", "istio-cni", "istiod", "istio-ingressgateway"):
        expected[f"mesh-{release}"] = {"inputs.version": istio}
    # The cluster autoscaler is built for one minor: its chart and image move with the cluster.
    before, after = versions.for_minor("1.33"), versions.for_minor("1.34")
    expected["scaling-cluster-autoscaler"] = {
        "inputs.version": (before.cluster_autoscaler_chart, after.cluster_autoscaler_chart),
        "inputs.values.image.tag": (
            before.cluster_autoscaler_image,
            after.cluster_autoscaler_image,
        ),
    }
    assert moved == expected
    assert all(c.replacement is None for c in d.changed), "an upgrade replaces nothing"


def test_graph_orders_control_plane_addons_node_groups(staging_at: dict[str, Path]) -> None:
    plan = Plan.load(staging_at["1.34"])
    (cluster,) = _by_name(plan, "aws:eks/cluster:Cluster").values()
    addons = {r.inputs["addonName"]: r for r in _by_name(plan, "aws:eks/addon:Addon").values()}
    groups = _by_name(plan, "aws:eks/nodeGroup:NodeGroup").values()
    for addon in addons.values():
        assert cluster.urn in addon.dependencies
    for group in groups:
        # Node groups wait for pod networking; CoreDNS and EBS CSI need nodes to become
        # ACTIVE, so they are created alongside the node groups rather than before them.
        assert addons["vpc-cni"].urn in group.dependencies
        assert addons["kube-proxy"].urn in group.dependencies
        assert addons["coredns"].urn not in group.dependencies
        assert cluster.urn in group.dependencies
    upgrade = assess_upgrade(diff_plans(Plan.load(staging_at["1.33"]), plan))
    assert upgrade is not None
    assert upgrade.error is None
    waves = {s.change.name: s.wave for s in upgrade.steps}
    assert waves["cluster-eks"] == 1
    assert {waves[f"cluster-{a}"] for a in versions.ADDON_NAMES} == {2}
    assert waves["cluster-system"] == waves["cluster-agents"] == 3
    # Charts move last: the Kubernetes provider waits for the node groups to roll.
    assert waves["mesh-istio-base"] == 4
    assert waves["mesh-istio-cni"] == 5
    assert waves["mesh-istiod"] == 6
    assert waves["mesh-istio-ingressgateway"] == 7


def _agentops_diff(base: Path, head: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "diff", str(base), str(head)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_diff_marks_the_upgrade_first(staging_at: dict[str, Path]) -> None:
    proc = _agentops_diff(staging_at["1.33"], staging_at["1.34"])
    assert proc.returncode == 0, proc.stderr
    head, _, _ = proc.stdout.partition("**0 to add")
    assert "#### Kubernetes upgrade 1.33 → 1.34" in head
    assert "| 1 | `Cluster` `cluster-eks` | `version` | `1.33` | `1.34` |" in head
    assert "| 3 | `NodeGroup` `cluster-agents` | `version` | `1.33` | `1.34` |" in head


def test_two_minor_jump_is_refused(staging_at: dict[str, Path]) -> None:
    proc = _agentops_diff(staging_at["1.33"], staging_at["1.35"])
    assert proc.returncode == 3
    assert "Kubernetes 1.33 → 1.35 skips minors" in proc.stderr
    assert "(1.33 → 1.34 → 1.35)" in proc.stderr
    assert "> **Refused:**" in proc.stdout


def test_downgrade_is_refused(staging_at: dict[str, Path]) -> None:
    proc = _agentops_diff(staging_at["1.34"], staging_at["1.33"])
    assert proc.returncode == 3
    assert "Kubernetes 1.34 → 1.33 is a downgrade" in proc.stderr


def test_minor_missing_from_table_fails_the_plan(tmp_path: Path) -> None:
    stack_dir = write_stack(tmp_path / "s", "staging", _at_minor("1.36"))
    proc = run_plan("staging", tmp_path / "out", stack_dir)
    assert proc.returncode == 2
    assert "agentops:cluster.kubernetesVersion = '1.36'" in proc.stderr
    assert "supported minors: 1.32, 1.33, 1.34, 1.35" in proc.stderr


def test_node_group_replacement_is_create_before_delete(tmp_path: Path) -> None:
    def new_instances(config: dict[str, Any]) -> None:
        config["agentops:cluster"]["nodeGroups"][1]["instanceTypes"] = ["m7i.xlarge"]

    assert run_plan("staging", tmp_path / "base").returncode == 0
    stack_dir = write_stack(tmp_path / "s", "staging", new_instances)
    assert run_plan("staging", tmp_path / "head", stack_dir).returncode == 0
    d = diff_plans(Plan.load(tmp_path / "base"), Plan.load(tmp_path / "head"))
    (change,) = d.changed
    assert change.name == "cluster-agents"
    assert change.replaced_by == ["instanceTypes[0]", "instanceTypes[1]"]
    assert change.replacement == "create-before-delete"
    group = Plan.load(tmp_path / "head").by_urn()[change.urn]
    assert "deleteBeforeReplace" not in group.options
    assert "nodeGroupName" not in group.inputs  # a fixed name could not coexist with its successor
    assert "— **replace (create-before-delete)**" in render_markdown(d)


def _violations(plan: Plan) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    kubernetes_version_skew.validate(
        StackValidationArgs(policy_resources(plan)),
        lambda message, urn=None: found.append((message, urn)),
    )
    return found


def _edit(plan: Plan, typ: str, name: str, **inputs: Any) -> Plan:
    edited = copy.deepcopy(plan)
    for r in edited.resources:
        if r.type == typ and r.name == name:
            r.inputs.update(inputs)
    return edited


def test_skew_policy_passes_the_plans(staging_at: dict[str, Path]) -> None:
    for directory in staging_at.values():
        assert _violations(Plan.load(directory)) == []


def test_skew_policy_rejects_node_group_ahead_of_control_plane(
    staging_at: dict[str, Path],
) -> None:
    plan = _edit(
        Plan.load(staging_at["1.33"]),
        "aws:eks/nodeGroup:NodeGroup",
        "cluster-agents",
        version="1.34",
    )
    (violation,) = _violations(plan)
    assert "newer than its control plane 1.33" in violation[0]
    assert violation[1] is not None
    assert violation[1].endswith("::cluster-agents")


def test_skew_policy_rejects_node_group_too_far_behind(staging_at: dict[str, Path]) -> None:
    plan = _edit(
        Plan.load(staging_at["1.35"]),
        "aws:eks/nodeGroup:NodeGroup",
        "cluster-system",
        version="1.31",
    )
    (violation,) = _violations(plan)
    assert "more than 3 minors behind the control plane 1.35" in violation[0]


def test_skew_policy_rejects_addon_not_from_table(staging_at: dict[str, Path]) -> None:
    stale = versions.for_minor("1.33").addons["kube-proxy"]
    plan = _edit(
        Plan.load(staging_at["1.34"]),
        "aws:eks/addon:Addon",
        "cluster-kube-proxy",
        addonVersion=stale,
    )
    (violation,) = _violations(plan)
    assert f"add-on kube-proxy is pinned to {stale} but Kubernetes 1.34 needs" in violation[0]


def test_plan_policy_check_reports_skew_with_fix(staging_at: dict[str, Path]) -> None:
    from infra.plan.policy_check import check_plan, format_violations, load_pack_config
    from policies import ALL_POLICIES

    clean = Plan.load(staging_at["1.34"])
    assert check_plan(clean, ALL_POLICIES, load_pack_config("staging")) == []
    skewed = _edit(clean, "aws:eks/nodeGroup:NodeGroup", "cluster-system", version="1.35")
    (violation,) = check_plan(skewed, ALL_POLICIES, load_pack_config("staging"))
    assert violation.blocking
    text = format_violations([violation])
    assert text.startswith("[mandatory] kubernetes-version-skew on cluster-system: node group")
    assert "    fix: Change only cluster.kubernetesVersion" in text

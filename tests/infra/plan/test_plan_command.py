"""The offline plan and diff as users run them: files, determinism, errors, Markdown."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.plan.diff import diff_plans, render_markdown
from infra.plan.document import Plan
from tests.stacks import REPO, run_plan, write_stack


def _tree_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_planning_twice_is_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        proc = run_plan("staging", out)
        assert proc.returncode == 0, proc.stderr
    files = _tree_files(first)
    assert files == _tree_files(second)
    match, mismatch, errors = filecmp.cmpfiles(
        first, second, [str(f) for f in files], shallow=False
    )
    assert not mismatch and not errors and len(match) == len(files)


def test_plan_json_records_graph_and_redacts_secrets(tmp_path: Path) -> None:
    proc = run_plan("prod", tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "plan.json").read_text()
    assert "offline-plan-stand-in" not in text
    assert "certificate-authority-data" not in text, "kubeconfig must stay secret"
    plan = Plan.load(tmp_path)
    by_urn = plan.by_urn()
    for r in plan.resources:
        assert r.parent is None or r.parent in by_urn, r.urn
        for dep in r.dependencies:
            assert dep in by_urn or dep.split("::")[2].startswith("pulumi:providers:"), dep


def test_invalid_config_fails_the_plan_naming_the_key(tmp_path: Path) -> None:
    def public_prod(config: dict[str, Any]) -> None:
        config["agentops:cluster"]["endpoint"] = {
            "publicAccess": True,
            "publicAccessCidrs": ["0.0.0.0/0"],
        }

    stack_dir = write_stack(tmp_path / "stacks", "prod", public_prod)
    proc = run_plan("prod", tmp_path / "out", stack_dir)
    assert proc.returncode == 2
    assert "agentops:cluster.endpoint.publicAccessCidrs[0] = '0.0.0.0/0'" in proc.stderr
    assert not (tmp_path / "out" / "plan.json").exists()


def test_unknown_stack_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_plan("qa", tmp_path)
    assert proc.returncode == 2
    assert "no stack file Pulumi.qa.yaml; stacks here: local, prod, staging" in proc.stderr


def _plan_pair(tmp_path: Path, mutate: Any, stack: str = "staging") -> tuple[Plan, Plan]:
    base, head = tmp_path / "base", tmp_path / "head"
    assert run_plan(stack, base).returncode == 0
    stack_dir = write_stack(tmp_path / "stacks", stack, mutate)
    proc = run_plan(stack, head, stack_dir)
    assert proc.returncode == 0, proc.stderr
    return Plan.load(base), Plan.load(head)


def test_diff_shows_exactly_the_changed_fields(tmp_path: Path) -> None:
    def bigger_agents(config: dict[str, Any]) -> None:
        config["agentops:cluster"]["nodeGroups"][1]["maxSize"] = 9
        config["agentops:tags"]["owner"] = "agents-team"

    base, head = _plan_pair(tmp_path, bigger_agents)
    d = diff_plans(base, head)
    assert not d.added and not d.removed
    changed = {c.name: {f.path: (f.old, f.new) for f in c.fields} for c in d.changed}
    assert changed.pop("cluster-agents")["inputs.scalingConfig.maxSize"] == (6, 9)
    # The owner tag moves on every tagged resource, and only that field moves.
    assert changed
    for fields in changed.values():
        assert fields == {"inputs.tags.owner": ("platform-team", "agents-team")}
    markdown = render_markdown(d)
    assert "**0 to add, " in markdown and " to remove**" in markdown
    assert "| `inputs.scalingConfig.maxSize` | `6` | `9` |" in markdown


def test_diff_lists_added_and_removed(tmp_path: Path) -> None:
    def gpu_pool(config: dict[str, Any]) -> None:
        groups = config["agentops:cluster"]["nodeGroups"]
        groups.append(
            {
                "name": "gpu",
                "role": "gpu",
                "amiType": "AL2023_x86_64_NVIDIA",
                "instanceTypes": ["g5.xlarge"],
                "minSize": 0,
                "maxSize": 2,
                "desiredSize": 0,
            }
        )

    base, head = _plan_pair(tmp_path, gpu_pool)
    d = diff_plans(base, head)
    # A GPU node group brings the device plugin onto its nodes, and the autoscaler's rights
    # widen to exactly that group.
    assert {r.name for r in d.added} == {"cluster-gpu", "scaling-nvidia-device-plugin"}
    assert {r.type for r in d.added} == {
        "aws:eks/nodeGroup:NodeGroup",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "kubernetes:helm.sh/v3:Release",
    }
    assert not d.removed
    assert {c.name for c in d.changed} == {"scaling-cluster-autoscaler-irsa-inline"}
    back = diff_plans(head, base)
    assert {r.name for r in back.removed} == {"cluster-gpu", "scaling-nvidia-device-plugin"}
    assert "| - | `aws:eks/nodeGroup:NodeGroup` | `cluster-gpu` |" in render_markdown(back)


def test_diff_of_identical_plans_says_no_changes(tmp_path: Path) -> None:
    assert run_plan("local", tmp_path).returncode == 0
    plan = Plan.load(tmp_path)
    assert "No changes" in render_markdown(diff_plans(plan, plan))


def test_cli_plans_default_stacks_and_diffs(tmp_path: Path) -> None:
    agentops = [sys.executable, "-m", "ops.cli"]
    proc = subprocess.run(
        [*agentops, "plan", "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert "agentops/staging:" in proc.stdout and "agentops/prod:" in proc.stdout
    assert "Cluster cluster" in proc.stdout and "Network network" in proc.stdout
    proc = subprocess.run(
        [
            *agentops,
            "diff",
            str(tmp_path / "staging"),
            str(tmp_path / "prod"),
            "--output",
            str(tmp_path / "comment.md"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("### Plan diff: `staging → prod`")
    assert (tmp_path / "comment.md").read_text() == proc.stdout
    proc = subprocess.run(
        [*agentops, "diff", str(tmp_path / "missing"), str(tmp_path / "prod")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "run `agentops plan` first" in proc.stderr


def test_pool_replicas_and_image_tag_change_exactly_their_fields(tmp_path: Path) -> None:
    def scale_and_bump(config: dict[str, Any]) -> None:
        pool = config["agentops:agents"]["pools"][0]
        pool["maxReplicas"] = 8
        pool["image"]["tag"] = "0.2.0"

    base, head = _plan_pair(tmp_path, scale_and_bump)
    d = diff_plans(base, head)
    assert not d.added
    assert not d.removed
    changed = {c.name: {f.path: (f.old, f.new) for f in c.fields} for c in d.changed}
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentops/agent-worker"
    assert changed == {
        "agents-agent-code-generator": {
            "inputs.spec.template.spec.containers[0].image": (
                f"{registry}:0.1.0",
                f"{registry}:0.2.0",
            )
        },
        "agents-agent-code-generator-hpa": {"inputs.spec.maxReplicas": (4, 8)},
        # The quota follows the pools' peak (maxReplicas × resources, +25 % headroom):
        # code-generator 4 → 8 replicas of 500m/1 CPU, 512Mi/1Gi; security-scanner 2 of
        # 250m/500m, 256Mi/512Mi; each replica plus its Vault agent (25m/100m, 32Mi/64Mi).
        "namespaces-agentops-agents-quota": {
            "inputs.spec.hard.limits.cpu": ("7000m", "12500m"),
            "inputs.spec.hard.limits.memory": ("6880Mi", "12320Mi"),
            "inputs.spec.hard.pods": ("8", "13"),
            "inputs.spec.hard.requests.cpu": ("3312m", "5937m"),
            "inputs.spec.hard.requests.memory": ("3440Mi", "6160Mi"),
        },
    }

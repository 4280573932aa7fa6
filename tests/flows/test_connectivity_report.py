"""The plan's connectivity report: flows.json and the analyzers' verdicts (connectivity.json)
beside plan.json, and `agentops diff` shows the added and removed flows before anything else."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.config import load_from_mapping
from infra.plan.connectivity import VERDICT_FILE, write_report
from infra.platform.flows import flow_table
from tests.stacks import REPO, run_plan, stack_values, write_stack


def _rows(plan_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((plan_dir / "flows.json").read_text()))


def test_plan_writes_the_flow_table(plan_dirs: dict[str, Path]) -> None:
    for stack, directory in plan_dirs.items():
        assert _rows(directory) == flow_table(load_from_mapping(stack_values(stack))), stack


def test_adding_a_pool_adds_exactly_its_flows(plan_dirs: dict[str, Path], tmp_path: Path) -> None:
    def add_pool(config: dict[str, Any]) -> None:
        pools = config["agentops:agents"]["pools"]
        # A demo pool (work handler, no AWS rights): outside the cluster only its own bucket
        # (staging has storage; tests/flows/test_storage_egress.py). An llm pool adds its
        # provider's flow besides (tests/infra/plan/test_agent_providers.py).
        extra = copy.deepcopy(pools[-1])
        assert extra.get("handler", "work") == "work" and not extra.get("awsPolicyArns")
        extra["name"] = "translator"
        pools.append(extra)

    stack_dir = write_stack(tmp_path / "stack", "staging", add_pool)
    proc = run_plan("staging", tmp_path / "head", stack_dir)
    assert proc.returncode == 0, proc.stderr
    base, head = _rows(plan_dirs["staging"]), _rows(tmp_path / "head")
    added = {r["name"] for r in head} - {r["name"] for r in base}
    assert {r["name"] for r in base} <= {r["name"] for r in head}
    assert added == {
        "agent-translator-to-manager",
        "agent-translator-to-cost-engine",
        "agent-translator-to-redis",
        "agent-translator-to-vault",
        "prometheus-scrapes-agent-translator",
        "agent-translator-spans-to-otel",
        "agent-translator-to-storage",
    }
    # Every other flow is unchanged, row for row.
    assert [r for r in head if r["name"] not in added] == base

    agentops = Path(sys.executable).parent / "agentops"
    shown = subprocess.run(
        [str(agentops), "diff", str(plan_dirs["staging"]), str(tmp_path / "head")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert shown.returncode == 0, shown.stderr
    body = shown.stdout
    flows_at = body.index("#### Flows")
    assert flows_at < body.index("#### Added"), "flows come before the resources"
    section = body[flows_at : body.index("#### Added")]
    assert sorted(
        line.split("`")[1] for line in section.splitlines() if line.startswith("| + |")
    ) == (sorted(added))
    assert "| - |" not in section


def _copy_plan(source: Path, target: Path, *, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*drop, VERDICT_FILE))
    return target


def test_plan_writes_the_analyzers_verdicts_and_sees_a_broken_policy(
    plan_dirs: dict[str, Path], tmp_path: Path
) -> None:
    cfg = load_from_mapping(stack_values("staging"))
    intact = write_report(cfg, _copy_plan(plan_dirs["staging"], tmp_path / "intact"), build=True)
    assert json.loads((tmp_path / "intact" / VERDICT_FILE).read_text()) == intact
    assert intact["holds"] and intact["complete"]
    assert intact["netpol"]["flowsAllowed"] == intact["flows"] == len(flow_table(cfg))
    assert intact["netpol"]["pairsDenied"] > 0
    assert intact["authz"]["requests"] == intact["authz"]["allowed"] > 0
    assert intact["istioctl"]["findings"] == []

    # Alertmanager → manager loses its NetworkPolicy egress and its mesh ALLOW: both analyzers
    # refuse the flow in the verdict file.
    broken_dir = _copy_plan(
        plan_dirs["staging"],
        tmp_path / "broken",
        drop=(
            "networkpolicy-out-alertmanager-to-manager.yaml",
            "authorizationpolicy-flow-alertmanager-to-manager.yaml",
        ),
    )
    write_report(cfg, broken_dir, build=True)
    broken = json.loads((broken_dir / VERDICT_FILE).read_text())
    assert not broken["holds"]
    assert broken["netpol"]["flowsRefused"] == ["alertmanager-to-manager"]
    assert {r["flow"] for r in broken["authz"]["refused"]} == {"alertmanager-to-manager"}
    assert broken["authz"]["refused"][0]["decision"] == "DENY"


def test_the_plan_command_says_when_an_analyzer_is_missing(tmp_path: Path) -> None:
    agentops = Path(sys.executable).parent / "agentops"
    env = {**os.environ, "AGENTOPS_ISTIOCTL_BIN": str(tmp_path / "no-istioctl")}
    shown = subprocess.run(
        [str(agentops), "plan", "staging", "--out", str(tmp_path), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    verdict = json.loads((tmp_path / "staging" / VERDICT_FILE).read_text())
    assert verdict["istioctl"]["status"] == "not run"
    assert "no-istioctl is not an executable file" in verdict["istioctl"]["reason"]
    assert not verdict["complete"]
    assert "staging istioctl analyze NOT RUN: istioctl is not available" in " ".join(
        shown.stdout.split()
    )
    # The others still ran.
    assert verdict["netpol"]["status"] == verdict["authz"]["status"] == "ran"

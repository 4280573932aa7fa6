"""The plan's connectivity report: flows.json beside plan.json, and `agentops diff` shows the
added and removed flows before anything else."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.config import load_from_mapping
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
        extra = copy.deepcopy(pools[-1])
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
        "agent-translator-to-model-providers",
        "agent-translator-to-redis",
        "agent-translator-to-vault",
        "prometheus-scrapes-agent-translator",
        "agent-translator-spans-to-otel",
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

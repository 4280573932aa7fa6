"""Shared fixtures: the stack files as data, and plans produced by the real plan command."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.plan.document import Plan, PlanResource
from tests.kubeapi import kube  # noqa: F401  (the real control plane, for every test folder)

pytest_plugins = ["tests.redis_backends"]

REPO = Path(__file__).resolve().parents[1]
STACKS = ("staging", "prod", "local")


def stack_values(stack: str) -> dict[str, Any]:
    """The `agentops:*` values of a stack file, keyed without the namespace."""
    body = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in body["config"].items() if k.startswith("agentops:")}


def helm_release(plan: Plan, name: str) -> PlanResource:
    """The plan's Helm release named `name` (exactly one)."""
    (found,) = [
        r
        for r in plan.resources
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == name
    ]
    return found


def write_stack(directory: Path, stack: str, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """Copy a stack file into `directory`, change its parsed config with `mutate`."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Pulumi.yaml", directory / "Pulumi.yaml")
    body = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    config = copy.deepcopy(body["config"])
    mutate(config)
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return directory


def run_plan(
    stack: str, out: Path, stack_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "infra.plan.runner", stack, str(out)]
    if stack_dir is not None:
        argv.append(str(stack_dir))
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)


@pytest.fixture(scope="session")
def plan_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every stack planned once per test session by the real runner: its plan directory
    (`plan.json` and the rendered `manifests/`)."""
    root = tmp_path_factory.mktemp("plans")
    result = {}
    for stack in STACKS:
        proc = run_plan(stack, root / stack)
        assert proc.returncode == 0, proc.stderr
        result[stack] = root / stack
    return result


@pytest.fixture(scope="session")
def plans(plan_dirs: dict[str, Path]) -> dict[str, Plan]:
    """Every stack planned once per test session by the real runner."""
    return {stack: Plan.load(directory) for stack, directory in plan_dirs.items()}

"""The stack files as data, and the real plan command: helpers every test folder imports."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from infra.plan.document import Plan, PlanResource

__all__ = ["REPO", "STACKS", "helm_release", "run_plan", "stack_values", "write_stack"]

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


# The local stack with its optional database: two pools (the second a copy of the first), both
# allowed, Vault configured through the API as `pulumi up` would after its initialisation.
LOCAL_DATABASE_POOLS = ("code-generator", "reviewer")


def local_database(config: dict[str, Any]) -> None:
    pools = config["agentops:agents"]["pools"]
    pools.append({**copy.deepcopy(pools[0]), "name": LOCAL_DATABASE_POOLS[1]})
    config["agentops:vault"].update(configure=True, address="http://127.0.0.1:8200")
    config["agentops:database"] = {"enabled": True, "pools": list(LOCAL_DATABASE_POOLS)}

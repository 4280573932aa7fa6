"""Runs the real Pulumi program of one stack under the mock engine and writes the plan.

Pulumi's runtime keeps global state, so one process plans one stack:
`python -m infra.plan.runner STACK OUT_DIR`. `agentops plan` starts one per stack.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pulumi
from pulumi.runtime import settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from contracts.config import NAMESPACE, ConfigError
from infra.plan.document import Plan
from infra.plan.mock_cloud import MockCloud
from infra.plan.output import FLOWS_FILE, write_plan
from infra.plan.policy_check import check_plan, format_violations, load_pack_config
from infra.plan.recorder import RecordingMonitor
from infra.plan.stackfile import read_stack_file
from infra.platform.flows import flow_table
from infra.stack_config import load as load_config
from policies import ALL_POLICIES

__all__ = ["EXIT_CONFIG", "EXIT_POLICY", "plan_stack"]

EXIT_CONFIG = 2
EXIT_POLICY = 4
OFFLINE_SECRET = "offline-plan-stand-in"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _configure(root: Path, stack: str) -> tuple[str, str]:
    stack_file = read_stack_file(root, stack)
    config = dict(stack_file.config)
    pulumi.runtime.set_all_config(config, [])
    # Secrets live encrypted in the stack file or only in the operator's backend; the plan
    # cannot decrypt them, so each one the config requires gets a stand-in (always redacted).
    secret_keys = []
    for spec in load_config().required_secrets():
        full = f"{NAMESPACE}:{spec.key}"
        config.setdefault(full, OFFLINE_SECRET)
        secret_keys.append(full)
    pulumi.runtime.set_all_config(config, secret_keys)
    region = stack_file.value("aws:region") or "us-east-1"
    return stack_file.project, region


def plan_stack(stack: str, stack_dir: Path = REPO_ROOT) -> Plan:
    """Plan `stack` from `<stack_dir>/Pulumi.<stack>.yaml`; ConfigError when it is invalid."""
    project, region = _configure(stack_dir, stack)
    monitor = RecordingMonitor(MockCloud(region=region, stack=stack))
    pulumi.runtime.set_mocks(
        monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor
    )
    # set_mocks registers a root stack of its own; the program's stack replaces it, as
    # under the real engine, so `pulumi.export` lands in the recorded stack outputs.
    settings.ROOT.set(None)
    main = REPO_ROOT / "infra" / "__main__.py"

    def program() -> None:
        runpy.run_path(str(main), run_name="__main__")

    _sync_await(run_in_stack(program))
    resources = sorted(monitor.recorded.values(), key=lambda r: r.urn)
    return Plan(project=project, stack=stack, resources=resources, outputs=monitor.stack_outputs)


def main(argv: list[str]) -> int:
    stack, out = argv[0], Path(argv[1])
    stack_dir = Path(argv[2]) if len(argv) > 2 else REPO_ROOT
    try:
        plan = plan_stack(stack, stack_dir)
    except ConfigError as err:
        print(f"{stack}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as err:
        print(f"{stack}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    write_plan(plan, out)
    # The connectivity report: every flow the stack's policies let through, and why.
    (out / FLOWS_FILE).write_text(
        json.dumps(flow_table(load_config()), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    violations = check_plan(plan, ALL_POLICIES, load_pack_config(stack))
    if violations:
        print(f"{stack}: policy violations\n{format_violations(violations)}", file=sys.stderr)
    return EXIT_POLICY if any(v.blocking for v in violations) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Runs the policy pack over a plan: the same policy objects `pulumi preview` loads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.plan.document import Plan
from infra.plan.policy_input import policy_resources

__all__ = ["Violation", "check_plan", "format_violations", "load_pack_config", "resolve_policy"]


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: EnforcementLevel
    message: str
    urn: str | None
    remediation: str | None

    @property
    def blocking(self) -> bool:
        return self.enforcement is EnforcementLevel.MANDATORY


PACK_CONFIG_DIR = Path(__file__).resolve().parents[2] / "policies" / "config"


def load_pack_config(stack: str) -> dict[str, Any]:
    """`policies/config/<stack>.json`, the file `--policy-pack-config` is given; {} if none."""
    path = PACK_CONFIG_DIR / f"{stack}.json"
    if not path.is_file():
        return {}
    body = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(body, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return body


def resolve_policy(
    policy: Policy, pack: Mapping[str, Any]
) -> tuple[EnforcementLevel, dict[str, Any]]:
    """The level and config of one policy: the engine's precedence (policy > all > default)."""
    schema = policy.config_schema
    config = (
        {k: v["default"] for k, v in schema.properties.items() if "default" in v}
        if schema is not None
        else {}
    )
    level = policy.enforcement_level or EnforcementLevel.ADVISORY
    if isinstance(pack.get("all"), str):
        level = EnforcementLevel(pack["all"])
    own = pack.get(policy.name)
    if isinstance(own, str):
        level = EnforcementLevel(own)
    elif isinstance(own, Mapping):
        if "enforcementLevel" in own:
            level = EnforcementLevel(own["enforcementLevel"])
        config.update({k: v for k, v in own.items() if k != "enforcementLevel"})
    return level, config


def _reporter(found: list[Violation], policy: Policy, level: EnforcementLevel) -> ReportViolation:
    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(policy.name, level, message, urn, policy.remediation_steps))

    return report


def check_plan(
    plan: Plan, policies: Sequence[Policy], pack_config: Mapping[str, Any] | None = None
) -> list[Violation]:
    resources = policy_resources(plan)
    found: list[Violation] = []
    for policy in policies:
        level, config = resolve_policy(policy, pack_config or {})
        if level is EnforcementLevel.DISABLED:
            continue
        report = _reporter(found, policy, level)
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources, config), report)
        elif isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.resource_type, r.props, r.urn, r.name, r.opts, None, config
                )
                # A resource policy reports without a URN: the resource it judged is meant.
                policy.validate(args, _reporter_for(report, r.urn))
    return found


def _reporter_for(report: ReportViolation, urn: str) -> ReportViolation:
    def bound(message: str, _urn: str | None = None) -> None:
        report(message, urn)

    return bound


def format_violations(violations: Sequence[Violation]) -> str:
    lines = []
    for v in violations:
        where = v.urn.rsplit("::", 1)[-1] if v.urn else "(stack)"
        lines.append(f"[{v.enforcement.value}] {v.policy} on {where}: {v.message}")
        if v.remediation:
            lines.append(f"    fix: {v.remediation}")
    return "\n".join(lines)

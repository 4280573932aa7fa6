"""Runs the policy pack over a plan: the same policy objects `pulumi preview` loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

__all__ = ["Violation", "check_plan", "format_violations"]


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


def _defaults(policy: Policy) -> dict[str, Any]:
    schema = policy.config_schema
    if schema is None:
        return {}
    return {k: v["default"] for k, v in schema.properties.items() if "default" in v}


def _reporter(found: list[Violation], policy: Policy, level: EnforcementLevel) -> ReportViolation:
    def report(message: str, urn: str | None = None) -> None:
        found.append(Violation(policy.name, level, message, urn, policy.remediation_steps))

    return report


def check_plan(plan: Plan, policies: Sequence[Policy]) -> list[Violation]:
    resources = policy_resources(plan)
    found: list[Violation] = []
    for policy in policies:
        level = policy.enforcement_level or EnforcementLevel.ADVISORY
        if level is EnforcementLevel.DISABLED:
            continue
        config = _defaults(policy)
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

"""Turns a plan's resources into the objects a CrossGuard policy validates."""

from __future__ import annotations

from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions

from infra.plan.document import Plan

__all__ = ["policy_resources"]


def policy_resources(plan: Plan) -> list[PolicyResource]:
    """Every custom resource, with props = its inputs, linked to parents and dependencies."""
    made: dict[str, PolicyResource] = {}
    for r in plan.resources:
        made[r.urn] = PolicyResource(
            resource_type=r.type,
            props=r.inputs,
            urn=r.urn,
            name=r.name,
            opts=PolicyResourceOptions(
                protect=bool(r.options.get("protect")),
                ignore_changes=list(r.options.get("ignoreChanges", [])),
                delete_before_replace=bool(r.options.get("deleteBeforeReplace")),
                aliases=[],
                custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                additional_secret_outputs=list(r.options.get("additionalSecretOutputs", [])),
                parent=r.parent,
            ),
            provider=None,
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for r in plan.resources:
        node = made[r.urn]
        node.parent = made.get(r.parent) if r.parent else None
        node.dependencies = [made[d] for d in r.dependencies if d in made]
    return [made[r.urn] for r in plan.resources if r.custom]

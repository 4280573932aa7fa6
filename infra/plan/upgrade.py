"""Kubernetes upgrade guard rails for `agentops diff`.

A version change between two plans is an upgrade: it is listed in the order Pulumi will carry
it out (waves of the dependency graph: control plane, then add-ons, then node groups), and it
is refused when it jumps more than one minor or goes backwards, which EKS rejects half-way.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.versions import minor_key
from infra.plan.diff import FieldChange, PlanDiff, ResourceChange
from infra.plan.document import Plan

__all__ = ["Upgrade", "UpgradeStep", "assess_upgrade", "kubernetes_minor", "render_upgrade"]

_VERSION_FIELDS = ("inputs.version", "inputs.addonVersion", "inputs.releaseVersion")


@dataclass(frozen=True)
class UpgradeStep:
    wave: int
    change: ResourceChange
    fields: list[FieldChange]


@dataclass(frozen=True)
class Upgrade:
    old_minor: str
    new_minor: str
    steps: list[UpgradeStep]
    error: str | None


def kubernetes_minor(plan: Plan) -> str | None:
    """The control plane's minor: the EKS cluster's version, else the stack's output."""
    for r in plan.resources:
        if r.type == "aws:eks/cluster:Cluster" and isinstance(r.inputs.get("version"), str):
            return str(r.inputs["version"])
    version = plan.outputs.get("kubernetesVersion")
    return version if isinstance(version, str) else None


def _waves(d: PlanDiff, urns: set[str]) -> dict[str, int]:
    """Depth of each changed resource among the changed ones: what Pulumi does in parallel.

    Edges run through unchanged resources too (a Helm release waits on the node groups via the
    Kubernetes provider), so the order follows the whole graph of the head plan.
    """
    edges = {
        r.urn: set(r.dependencies) | ({r.provider} if r.provider else set())
        for r in d.head.resources
    }
    reach: dict[str, frozenset[str]] = {}

    def changed_ancestors(urn: str, path: frozenset[str]) -> frozenset[str]:
        if urn not in reach:
            if urn in path:
                raise ValueError(f"dependency cycle through {urn}")
            found: set[str] = set()
            for dep in edges.get(urn, ()):
                if dep in urns:
                    found.add(dep)
                found |= changed_ancestors(dep, path | {urn})
            reach[urn] = frozenset(found)
        return reach[urn]

    wave: dict[str, int] = {}

    def depth(urn: str) -> int:
        if urn not in wave:
            wave[urn] = 1 + max((depth(u) for u in changed_ancestors(urn, frozenset())), default=0)
        return wave[urn]

    for urn in sorted(urns):
        depth(urn)
    return wave


def _refusal(old: str, new: str) -> str | None:
    (old_major, old_minor), (new_major, new_minor) = minor_key(old), minor_key(new)
    if (new_major, new_minor) < (old_major, old_minor):
        return (
            f"Kubernetes {old} → {new} is a downgrade: EKS cannot downgrade a control plane. "
            f"Revert the version change; to go back, restore a cluster from backup instead."
        )
    if new_major != old_major or new_minor - old_minor > 1:
        steps = " → ".join(f"{old_major}.{m}" for m in range(old_minor, new_minor + 1))
        return (
            f"Kubernetes {old} → {new} skips minors: EKS upgrades one minor at a time. "
            f"Merge one pull request per step ({steps})."
        )
    return None


def assess_upgrade(d: PlanDiff) -> Upgrade | None:
    old, new = kubernetes_minor(d.base), kubernetes_minor(d.head)
    if old is None or new is None or old == new:
        return None
    moving = {c.urn: [f for f in c.fields if f.path in _VERSION_FIELDS] for c in d.changed}
    moving = {urn: fields for urn, fields in moving.items() if fields}
    waves = _waves(d, set(moving))
    by_urn = {c.urn: c for c in d.changed}
    steps = [
        UpgradeStep(waves[urn], by_urn[urn], moving[urn])
        for urn in sorted(moving, key=lambda u: (waves[u], by_urn[u].type, by_urn[u].name))
    ]
    return Upgrade(old, new, steps, _refusal(old, new))


def render_upgrade(upgrade: Upgrade) -> str:
    lines = [f"#### Kubernetes upgrade {upgrade.old_minor} → {upgrade.new_minor}", ""]
    if upgrade.error:
        lines += [f"> **Refused:** {upgrade.error}", ""]
    lines += [
        "`pulumi up` moves these in order; each wave waits for the one before it.",
        "",
        "| wave | resource | field | before | after |",
        "|---|---|---|---|---|",
    ]
    for step in upgrade.steps:
        for f in step.fields:
            lines.append(
                f"| {step.wave} | `{step.change.type.rsplit(':', 1)[-1]}` `{step.change.name}` "
                f"| `{f.path.removeprefix('inputs.')}` | `{f.old}` | `{f.new}` |"
            )
    return "\n".join(lines) + "\n"

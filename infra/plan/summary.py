"""The readable summary of a plan: resources per layer and type, as a tree."""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.tree import Tree

from infra.plan.document import Plan, PlanResource

__all__ = ["layer_of", "summary_tree"]

STACK_LEVEL = "(stack)"


def layer_of(resource: PlanResource, by_urn: dict[str, PlanResource]) -> str:
    """The top-level component a resource belongs to, e.g. `Cluster cluster`."""
    top = resource
    while top.parent is not None and top.parent in by_urn:
        top = by_urn[top.parent]
    if top is resource and resource.custom:
        return STACK_LEVEL
    return f"{top.type.rsplit(':', 1)[-1]} {top.name}"


def summary_tree(plan: Plan) -> Tree:
    by_urn = plan.by_urn()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for r in plan.resources:
        if r.custom:
            counts[layer_of(r, by_urn)][r.type] += 1
    total = sum(sum(c.values()) for c in counts.values())
    tree = Tree(f"[bold]{plan.project}/{plan.stack}[/bold]: {total} resources")
    for layer in sorted(counts):
        branch = tree.add(f"[cyan]{layer}[/cyan] ({sum(counts[layer].values())})")
        for typ, n in sorted(counts[layer].items()):
            branch.add(f"{typ} × {n}")
    return tree

"""Compares two plans field by field and renders the result as pull-request Markdown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from infra.plan.document import Plan, PlanResource
from infra.plan.replacements import replacing_fields

__all__ = ["FieldChange", "PlanDiff", "ResourceChange", "diff_plans", "flatten", "render_markdown"]

_MAX_VALUE = 80


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs → {"spec.replicas": 3, "tags.owner": "x", "args[0]": "a"}."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(flatten(v, key))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def _resource_fields(r: PlanResource) -> dict[str, Any]:
    fields = {f"inputs.{k}": v for k, v in flatten(r.inputs).items()}
    fields["parent"] = r.parent
    fields["provider"] = r.provider
    fields.update({f"options.{k}": v for k, v in flatten(r.options).items()})
    return fields


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    fields: list[FieldChange]
    # Fields forcing a replacement, and how Pulumi will order it.
    replaced_by: list[str] = field(default_factory=list)
    delete_before_replace: bool = False

    @property
    def replacement(self) -> str | None:
        if not self.replaced_by:
            return None
        return "delete-before-create" if self.delete_before_replace else "create-before-delete"


@dataclass
class PlanDiff:
    base: Plan
    head: Plan
    added: list[PlanResource] = field(default_factory=list)
    removed: list[PlanResource] = field(default_factory=list)
    changed: list[ResourceChange] = field(default_factory=list)
    outputs: list[FieldChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    missing = object()
    changes = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path, missing), new.get(path, missing)
        if a != b:
            changes.append(
                FieldChange(path, None if a is missing else a, None if b is missing else b)
            )
    return changes


def diff_plans(base: Plan, head: Plan) -> PlanDiff:
    a, b = base.by_urn(), head.by_urn()
    result = PlanDiff(base=base, head=head)
    result.added = [b[u] for u in sorted(set(b) - set(a))]
    result.removed = [a[u] for u in sorted(set(a) - set(b))]
    for urn in sorted(set(a) & set(b)):
        changes = _field_changes(_resource_fields(a[urn]), _resource_fields(b[urn]))
        if changes:
            inputs = [
                c.path.removeprefix("inputs.") for c in changes if c.path.startswith("inputs.")
            ]
            result.changed.append(
                ResourceChange(
                    urn,
                    b[urn].type,
                    b[urn].name,
                    changes,
                    replaced_by=replacing_fields(b[urn].type, inputs),
                    delete_before_replace=bool(b[urn].options.get("deleteBeforeReplace")),
                )
            )
    result.outputs = _field_changes(flatten(base.outputs), flatten(head.outputs))
    return result


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


@dataclass(frozen=True)
class FlowChanges:
    """Flows of the table a plan adds or removes: new paths into and out of the cluster."""

    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed)


def _flow_key(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "why"}, sort_keys=True)


def diff_flows(base: list[dict[str, Any]], head: list[dict[str, Any]]) -> FlowChanges:
    a = {_flow_key(r): r for r in base}
    b = {_flow_key(r): r for r in head}
    return FlowChanges(
        added=[b[k] for k in sorted(set(b) - set(a))],
        removed=[a[k] for k in sorted(set(a) - set(b))],
    )


def _peer(p: dict[str, Any]) -> str:
    if "network" in p:
        return f"{p['network']} ({p['cidr']})"
    return f"{p['namespace']}/{p['workload']}"


def render_flows(changes: FlowChanges) -> str:
    lines = [
        "#### Flows",
        "",
        "| | flow | from | to | ports | paths |",
        "|---|---|---|---|---|---|",
    ]
    for sign, rows in (("+", changes.added), ("-", changes.removed)):
        lines += [
            f"| {sign} | `{r['name']}` | `{_peer(r['from'])}` | `{_peer(r['to'])}` "
            f"| {r['protocol']} {','.join(map(str, r['ports']))} | {' '.join(r['paths'])} |"
            for r in rows
        ]
    return "\n".join(lines) + "\n"


def render_markdown(d: PlanDiff, flows: FlowChanges | None = None) -> str:
    title = d.head.stack if d.base.stack == d.head.stack else f"{d.base.stack} → {d.head.stack}"
    lines = [f"### Plan diff: `{title}`", ""]
    if flows is not None and not flows.empty:
        # New paths into the cluster come before anything else.
        lines += [render_flows(flows)]
    if d.empty:
        lines.append("No changes: both plans register the same resources with the same inputs.")
        return "\n".join(lines) + "\n"
    lines.append(
        f"**{len(d.added)} to add, {len(d.changed)} to change, {len(d.removed)} to remove**"
    )
    for heading, items, sign in (("Added", d.added, "+"), ("Removed", d.removed, "-")):
        if items:
            lines += ["", f"#### {heading}", "", "| | type | name |", "|---|---|---|"]
            lines += [f"| {sign} | `{r.type}` | `{r.name}` |" for r in items]
    if d.changed:
        lines += ["", "#### Changed", ""]
        for change in d.changed:
            how = f" — **replace ({change.replacement})**" if change.replacement else ""
            lines.append(
                f"<details open><summary><code>{change.type}</code> <b>{change.name}</b>"
                f" — {len(change.fields)} field(s){how}</summary>"
            )
            lines += ["", "| field | before | after |", "|---|---|---|"]
            lines += [f"| `{f.path}` | {_show(f.old)} | {_show(f.new)} |" for f in change.fields]
            lines += ["", "</details>"]
    if d.outputs:
        lines += ["", "#### Stack outputs", "", "| output | before | after |", "|---|---|---|"]
        lines += [f"| `{f.path}` | {_show(f.old)} | {_show(f.new)} |" for f in d.outputs]
    return "\n".join(lines) + "\n"

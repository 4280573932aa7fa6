"""Writes a plan to disk: `plan.json` and one YAML file per Kubernetes object."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.plan.document import Plan, PlanResource

__all__ = ["manifest_path", "write_plan"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def manifest_path(resource: PlanResource) -> Path:
    meta: dict[str, Any] = resource.inputs.get("metadata") or {}
    namespace = meta.get("namespace") or "_cluster"
    name = meta.get("name") or resource.name
    kind = str(resource.inputs["kind"]).lower()
    return Path(_UNSAFE.sub("-", namespace)) / f"{kind}-{_UNSAFE.sub('-', name)}.yaml"


def write_plan(plan: Plan, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifests = out / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)
    (out / "plan.json").write_text(plan.to_json(), encoding="utf-8")
    for resource in plan.resources:
        if not resource.is_kubernetes_object:
            continue
        path = manifests / manifest_path(resource)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(resource.inputs, sort_keys=True, default_flow_style=False),
            encoding="utf-8",
        )

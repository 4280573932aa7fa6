"""Writes a plan to disk: `plan.json` and one YAML file per Kubernetes object."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.plan.document import REDACTED, Plan, PlanResource

__all__ = ["REDACTED_ANNOTATION", "manifest_body", "manifest_path", "write_plan"]

REDACTED_ANNOTATION = "agentops.io/redacted-fields"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# Keys the API server requires to exist in a Secret of these types, whatever their values
# (core/v1 Secret validation); a redacted secret map keeps them, emptied.
_REQUIRED_SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


# The stack's flow table (infra/platform/flows.py), written next to plan.json.
FLOWS_FILE = "flows.json"


def manifest_path(resource: PlanResource) -> Path:
    meta: dict[str, Any] = resource.inputs.get("metadata") or {}
    namespace = meta.get("namespace") or "_cluster"
    name = meta.get("name") or resource.name
    kind = str(resource.inputs["kind"]).lower()
    return Path(_UNSAFE.sub("-", namespace)) / f"{kind}-{_UNSAFE.sub('-', name)}.yaml"


def manifest_body(resource: PlanResource) -> dict[str, Any]:
    """The object as it would be applied, secret fields emptied and named in an annotation.

    A secret map (a Secret's `stringData`) is redacted whole; writing it as an empty map keeps
    the manifest valid for schemas, scanners and the API server while showing what is missing.
    A Secret type whose keys the API server requires (`kubernetes.io/tls`) keeps those keys,
    with empty values.
    """
    body = dict(resource.inputs)
    redacted = sorted(k for k, v in body.items() if v == REDACTED)
    if not redacted:
        return body
    required = (
        _REQUIRED_SECRET_KEYS.get(str(body.get("type")), ()) if body.get("kind") == "Secret" else ()
    )
    for key in redacted:
        body[key] = dict.fromkeys(required, "") if key in ("data", "stringData") else {}
    meta = dict(body.get("metadata") or {})
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        REDACTED_ANNOTATION: ",".join(redacted),
    }
    body["metadata"] = meta
    return body


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
            yaml.safe_dump(manifest_body(resource), sort_keys=True, default_flow_style=False),
            encoding="utf-8",
        )

"""The plan document: what `plan.json` holds, and how it is read back for a diff."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PLAN_FORMAT", "REDACTED", "UNKNOWN_VALUE", "Plan", "PlanResource"]

PLAN_FORMAT = 1
REDACTED = "[secret]"
UNKNOWN_VALUE = "(known after apply)"


@dataclass
class PlanResource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None
    dependencies: list[str]
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def is_kubernetes_object(self) -> bool:
        return (
            self.custom
            and self.type.startswith("kubernetes:")
            and "kind" in self.inputs
            and "apiVersion" in self.inputs
        )


@dataclass
class Plan:
    project: str
    stack: str
    resources: list[PlanResource]
    outputs: dict[str, Any]
    format: int = PLAN_FORMAT

    def by_urn(self) -> dict[str, PlanResource]:
        return {r.urn: r for r in self.resources}

    def to_json(self) -> str:
        body = {
            "format": self.format,
            "project": self.project,
            "stack": self.stack,
            "outputs": self.outputs,
            "resources": [asdict(r) for r in self.resources],
        }
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, path: Path) -> Plan:
        source = path / "plan.json" if path.is_dir() else path
        try:
            body = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"no plan at {source}: run `agentops plan` first") from None
        if body.get("format") != PLAN_FORMAT:
            raise ValueError(
                f"{source} has plan format {body.get('format')!r}; this tool reads {PLAN_FORMAT}"
            )
        return cls(
            project=body["project"],
            stack=body["stack"],
            outputs=body["outputs"],
            resources=[PlanResource(**r) for r in body["resources"]],
        )

"""Renders the runtime settings tables (docs/runtime-settings.md) from the settings models.

The same models the services read and the Pulumi program builds the Deployments' environment
from (infra/platform/workloads.py), so the documentation cannot drift from either.
`python -m contracts.settings.reference` prints the section, `... --write` rewrites the page's
generated section in place; a test checks the page holds exactly this.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from contracts.config.reference import replace_section, type_name
from contracts.settings.cost import CostEngineSettings
from contracts.settings.environment import env_names
from contracts.settings.llm import LLMSettings
from contracts.settings.manager import ManagerSettings
from contracts.settings.vault import VaultSettings
from contracts.settings.worker import WorkerSettings

__all__ = ["PAGE", "PAGE_END", "PAGE_START", "SERVICES", "render_settings", "update_page"]

# The docs page the tables are generated into, relative to the repository root.
PAGE: Final = Path("docs/runtime-settings.md")
PAGE_START: Final = "<!-- runtime-settings:start -->\n"
PAGE_END: Final = "<!-- runtime-settings:end -->"

# (heading, the model it documents), in the order the page shows them.
SERVICES: Final[tuple[tuple[str, type[BaseSettings]], ...]] = (
    ("Agent manager — `agentops serve manager`", ManagerSettings),
    ("Agent worker — `agentops serve worker`", WorkerSettings),
    ("Cost engine — `agentops serve cost-engine`", CostEngineSettings),
    ("Vault client — every service (`runtime/secrets`)", VaultSettings),
    ("LLM handler — workers of an llm pool (`handler: llm`)", LLMSettings),
)
# Factories that only build an empty container; any other factory computes its value at start
# (the pod name, the host name), which a table cannot show.
_EMPTY_FACTORIES: Final = (list, dict, set, tuple)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    factory = field.default_factory
    if factory is not None:
        if factory not in _EMPTY_FACTORIES:
            return "computed at start"
        value: object = factory()
    else:
        value = field.default
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, BaseModel):
        return "(object)"
    text = str(value).replace("|", "\\|")
    return f"`{text}`"


def _table(model: type[BaseSettings]) -> list[str]:
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        variables = " / ".join(f"`{v}`" for v in env_names(model, name))
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| {variables} | {type_name(field.annotation)} | {_default(field)} | {description} |"
        )
    return rows


def render_settings() -> str:
    lines: list[str] = []
    for heading, model in SERVICES:
        lines += [f"#### {heading}", "", *_table(model), ""]
    return "\n".join(lines)


def update_page(path: Path = PAGE) -> None:
    replace_section(path, PAGE_START, PAGE_END, render_settings())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_page()
    else:
        print(render_settings(), end="")

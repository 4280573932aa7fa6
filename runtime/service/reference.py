"""Renders the runtime settings tables (docs/runtime-settings.md) from the settings models,
and the Redis key-layout table (docs/architecture.md) from each service's `keys.LAYOUT`.

The same models the services read and the Pulumi program builds the Deployments' environment
from (infra/platform/workloads.py), so the documentation cannot drift from either.
`python -m runtime.service.reference` prints the section, `... --write` rewrites the page's
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

from infra.config.reference import replace_section, type_name
from runtime.cost import keys as cost_keys
from runtime.cost.settings import CostEngineSettings
from runtime.manager import keys as manager_keys
from runtime.manager.settings import ManagerSettings
from runtime.secrets.settings import VaultSettings
from runtime.service.environment import env_names
from runtime.worker.settings import WorkerSettings

__all__ = [
    "KEYS_END",
    "KEYS_PAGE",
    "KEYS_START",
    "PAGE",
    "PAGE_END",
    "PAGE_START",
    "SERVICES",
    "render_key_layout",
    "render_settings",
    "update_page",
]

# The docs page the tables are generated into, relative to the repository root.
PAGE: Final = Path("docs/runtime-settings.md")
PAGE_START: Final = "<!-- runtime-settings:start -->\n"
PAGE_END: Final = "<!-- runtime-settings:end -->"
KEYS_PAGE: Final = Path("docs/architecture.md")
KEYS_START: Final = "<!-- redis-keys:start -->\n"
KEYS_END: Final = "<!-- redis-keys:end -->"

# (heading, the model it documents), in the order the page shows them.
SERVICES: Final[tuple[tuple[str, type[BaseSettings]], ...]] = (
    ("Agent manager — `agentops serve manager`", ManagerSettings),
    ("Agent worker — `agentops serve worker`", WorkerSettings),
    ("Cost engine — `agentops serve cost-engine`", CostEngineSettings),
    ("Vault client — every service (`runtime/secrets`)", VaultSettings),
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


def render_key_layout() -> str:
    """One table per service: its group (hash tag), then each key, what it holds and which
    scripts touch it together with other keys of the group."""
    lines: list[str] = []
    for service, module in (("manager and workers", manager_keys), ("cost engine", cost_keys)):
        lines += [
            f"#### {service}: group `{module.GROUP}`, prefix `{module.PREFIX}`",
            "",
            "| key | type | holds | scripts touching it with others |",
            "|---|---|---|---|",
        ]
        for row in module.LAYOUT:
            scripts = ", ".join(row.scripts) or "—"
            lines.append(f"| `{row.pattern}` | {row.kind} | {row.holds} | {scripts} |")
        lines.append("")
    return "\n".join(lines)


def update_page(path: Path = PAGE, keys_path: Path = KEYS_PAGE) -> None:
    replace_section(path, PAGE_START, PAGE_END, render_settings())
    replace_section(keys_path, KEYS_START, KEYS_END, render_key_layout())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_page()
    else:
        print(render_settings(), end="")

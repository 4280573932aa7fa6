"""Renders the configuration reference page from the models, so the docs cannot drift.

`python -m contracts.config.reference` prints it, `... --write` rewrites the generated section of
docs/configuration.md in place; a test checks the page holds exactly this.
"""

from __future__ import annotations

import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from contracts.config.errors import NAMESPACE
from contracts.config.platform import PlatformConfig

__all__ = [
    "PAGE",
    "PAGE_END",
    "PAGE_START",
    "render_reference",
    "replace_section",
    "type_name",
    "update_page",
]

# The docs page the reference is generated into, relative to the repository root.
PAGE = Path("docs/configuration.md")
PAGE_START = "<!-- config-reference:start -->\n"
PAGE_END = "<!-- config-reference:end -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        if issubclass(annotation, BaseModel):
            return "object"
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return f"map[{type_name(args[0])} → {type_name(args[1])}]"
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined or value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "(defaults below)"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel):
        return ", ".join(sorted(value))
    text = str(value).replace("|", "\\|")
    return f"`{text}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}" if prefix else f"{NAMESPACE}:{field.alias or name}"
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `{key}` | {type_name(field.annotation)} | {_default(field)} | {description} |"
        )
        for sub in _models_in(field.annotation):
            origin = typing.get_origin(field.annotation)
            suffix = "[]" if origin is list else ".<name>" if origin is dict else ""
            rows += _rows(sub, key + suffix)
    return rows


def render_reference() -> str:
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(header + _rows(PlatformConfig, "")) + "\n"


def replace_section(path: Path, start_marker: str, end_marker: str, body: str) -> None:
    """Rewrite what lies between two marker lines of a generated docs section."""
    text = path.read_text(encoding="utf-8")
    start = text.index(start_marker) + len(start_marker)
    end = text.index(end_marker)
    path.write_text(text[:start] + body + text[end:], encoding="utf-8")


def update_page(path: Path = PAGE) -> None:
    replace_section(path, PAGE_START, PAGE_END, render_reference())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        update_page()
    else:
        print(render_reference(), end="")

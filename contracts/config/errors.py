"""How a bad configuration is reported: one message naming each key, value and rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from contracts.config.base import RuleViolation

__all__ = ["NAMESPACE", "ConfigError", "format_validation_error"]

NAMESPACE = "agentops"


class ConfigError(Exception):
    """The stack configuration is invalid; raised before any resource is registered.

    A plain exception, so the services that validate config never load Pulumi; the Pulumi
    program raises `infra.stack_config.StackConfigError`, which is also a `pulumi.RunError`.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid stack configuration:\n{lines}")


def _key_path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not path:
            path = f"{NAMESPACE}:{part}"
        else:
            path += f".{part}"
    return path or f"{NAMESPACE}:<root>"


def _join(loc: Sequence[str | int], relative: str) -> list[str | int]:
    # RuleViolation names its key relative to the model that raised it: "pools[1].name".
    parts: list[str | int] = list(loc)
    for token in relative.replace("]", "").split("."):
        name, _, index = token.partition("[")
        if name:
            parts.append(name)
        if index:
            parts.append(int(index))
    return parts


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def format_validation_error(err: ValidationError) -> ConfigError:
    problems: list[str] = []
    for e in err.errors(include_url=False):
        loc = list(e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolation):
            key = _key_path(_join(loc, cause.field))
            problems.append(f"{key} = {_show(cause.value)}: {cause.allowed}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            problems.append(f"{_key_path(loc)} is required but not set")
        elif e["type"] == "extra_forbidden":
            problems.append(f"{_key_path(loc)} is not a known key ({_show(e['input'])})")
        else:
            problems.append(f"{_key_path(loc)} = {_show(e['input'])}: {msg}")
    return ConfigError(problems)

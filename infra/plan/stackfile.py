"""Reads `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to a program."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.config import PlatformConfig, load_from_mapping
from contracts.config.errors import NAMESPACE

__all__ = ["StackFile", "load_stack_config", "read_stack_file"]


@dataclass(frozen=True)
class StackFile:
    project: str
    stack: str
    path: Path
    # Values as the engine passes them: strings, objects as JSON text.
    config: dict[str, str]
    # Keys holding `secure:` ciphertext the offline plan cannot decrypt.
    encrypted_keys: frozenset[str]

    def value(self, key: str) -> str | None:
        return self.config.get(key)


def _as_engine_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def read_stack_file(root: Path, stack: str) -> StackFile:
    project_file = root / "Pulumi.yaml"
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    project = yaml.safe_load(project_file.read_text(encoding="utf-8"))["name"]
    body = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw: dict[str, Any] = body.get("config") or {}
    config: dict[str, str] = {}
    encrypted: set[str] = set()
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            encrypted.add(full)
            continue
        config[full] = _as_engine_value(value)
    return StackFile(project, stack, path, config, frozenset(encrypted))


def load_stack_config(root: Path, stack: str) -> PlatformConfig:
    """The validated `agentops:*` config of a stack file, read without the Pulumi engine (for
    the CLI's runtime commands); ConfigError names the key at fault."""
    values: dict[str, Any] = {}
    for key, value in read_stack_file(root, stack).config.items():
        if not key.startswith(f"{NAMESPACE}:"):
            continue
        try:
            values[key.split(":", 1)[1]] = json.loads(value)
        except json.JSONDecodeError:
            values[key.split(":", 1)[1]] = value  # plain scalars are stored unquoted
    return load_from_mapping(values)

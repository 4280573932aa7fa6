"""Vault and secrets: an HA, auto-unsealed Vault, and no secret in plain text anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import ResourceValidationArgs

from policies.common import (
    ENVIRONMENT_SCHEMA,
    Report,
    environment,
    is_secret_value,
    resource_policy,
)

__all__ = ["POLICIES"]

# Keys whose value is the secret itself (after camelCase → snake_case).
_SECRET_KEY = re.compile(
    r"(^|_)(password|passwd|token|auth_token|api_key|access_key|secret_key|private_key|"
    r"routing_key|client_secret|secret)$"
)
# Values that are secrets whatever key holds them.
_SECRET_SHAPES = (
    re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"hooks\.slack\.com/services/T[0-9A-Z]+/B[0-9A-Z]+/[0-9A-Za-z]+"),
)
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
# Keys that name or toggle a secret rather than hold one (existingSecret, skipChildToken).
_NOT_A_VALUE = re.compile(r"^(existing|skip|use|enable|disable|require|auto_mount|automount)_")


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        key = path.rsplit(".", 1)[-1].split("[", 1)[0]
        yield path, _SNAKE.sub("_", key).lower(), value


def _plain_secrets(args: ResourceValidationArgs, report: Report) -> None:
    for path, key, value in _walk(dict(args.props)):
        if not isinstance(value, str) or not value or is_secret_value(value):
            continue
        if _SECRET_KEY.search(key) and not _NOT_A_VALUE.search(key):
            report(f"{path} holds a secret-looking value in plain text")
        elif any(shape.search(value) for shape in _SECRET_SHAPES):
            report(f"{path} contains what looks like a credential")


def _vault(args: ResourceValidationArgs, report: Report) -> None:
    if args.resource_type != "kubernetes:helm.sh/v3:Release" or args.props.get("chart") != "vault":
        return
    server = (args.props.get("values") or {}).get("server") or {}
    if (server.get("dev") or {}).get("enabled") is True:
        report("Vault runs in dev mode (in-memory, unsealed, root token)")
    ha = server.get("ha") or {}
    raft = ha.get("raft") or {}
    if ha.get("enabled") is not True or raft.get("enabled") is not True:
        report("Vault is not in HA mode with integrated raft storage")
    if environment(args) == "prod":
        if int(ha.get("replicas") or 0) < 3:
            report(f"prod Vault has {ha.get('replicas')} raft peers; it needs at least 3")
        config = raft.get("config")
        if isinstance(config, str) and 'seal "awskms"' not in config:
            report("prod Vault does not auto-unseal with AWS KMS")


POLICIES = [
    resource_policy(
        "vault-ha-raft-auto-unseal",
        "Vault runs HA on integrated raft, never in dev mode; in prod with ≥ 3 peers and AWS "
        "KMS auto-unseal.",
        "Set vault.replicas ≥ 3 and vault.unseal: awskms in the prod stack.",
        _vault,
        config=ENVIRONMENT_SCHEMA,
    ),
    resource_policy(
        "no-plaintext-secrets",
        "No resource input holds a password, token, key or credential in plain text; secrets are "
        "Pulumi secrets or live in Vault.",
        "Generate it with pulumi-random or read it with config.require_secret.",
        _plain_secrets,
    ),
]

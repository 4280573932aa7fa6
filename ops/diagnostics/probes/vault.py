"""Vault probe: `sys/health`, then the age of every secret under the platform's prefixes.

Secret ages come from KV v2 metadata through the runtime's secrets client (its errors, audit
trail and login), never from the values: the doctor reads no secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from contracts.settings.service import read_secret_file
from ops.diagnostics.check import Check, Status
from ops.diagnostics.platform import PlatformExpectations
from ops.diagnostics.probes.errors import describe
from ops.diagnostics.rules import RUNBOOK, unreachable
from ops.diagnostics.rules.vault import SecretAge, seal_check, secret_age_check
from ops.diagnostics.settings import DoctorSettings
from runtime.secrets import SecretNotFound, SecretsClient, SecretsError, VaultSettings
from runtime.secrets.clock import utc_now

__all__ = ["VaultAccess", "vault_checks"]


@dataclass(frozen=True)
class VaultAccess:
    """Where Vault is and how the doctor logs in: a token file (operator), or a
    Kubernetes-auth role with a service-account token file (the doctor as a pod)."""

    address: str
    token_file: Path | None = None
    role: str | None = None
    jwt_file: Path | None = None
    ca_file: Path | None = None

    @property
    def can_log_in(self) -> bool:
        return self.token_file is not None or self.role is not None


def _health(access: VaultAccess, timeout: float) -> dict[str, Any]:
    # Ask for 200 whatever the state, so a sealed or standby Vault still returns its body.
    params = {
        "standbyok": "true",
        "perfstandbyok": "true",
        "sealedcode": "200",
        "uninitcode": "200",
    }
    verify: str | bool = str(access.ca_file) if access.ca_file is not None else True
    response = httpx.get(
        f"{access.address.rstrip('/')}/v1/sys/health", params=params, timeout=timeout, verify=verify
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _client(access: VaultAccess, expect: PlatformExpectations, timeout: float) -> SecretsClient:
    token: SecretStr | None = None
    if access.token_file is not None:
        token = SecretStr(read_secret_file(access.token_file, "vault token"))
    values: dict[str, Any] = {
        "address": access.address,
        "token": token,
        "role": access.role,
        "kv_mount": expect.kv_mount,
        "ca_file": access.ca_file,
        "timeout_s": max(1, round(timeout)),
    }
    if access.jwt_file is not None:
        values["token_file"] = access.jwt_file
    return SecretsClient.from_settings(VaultSettings(**values))


def _leaves(client: SecretsClient, path: str) -> list[str]:
    """Secret paths at or under `path` (a prefix is a folder; REDIS_SECRET_PATH a leaf)."""
    try:
        names = client.list(path)
    except SecretNotFound:
        try:
            client.metadata(path)
        except SecretNotFound:
            return []
        return [path]
    found: list[str] = []
    for name in names:
        child = f"{path}/{name.rstrip('/')}"
        found += _leaves(client, child) if name.endswith("/") else [child]
    return found


def _ages(client: SecretsClient, prefixes: tuple[str, ...]) -> list[SecretAge]:
    ages = []
    for prefix in prefixes:
        for path in _leaves(client, prefix):
            meta = client.metadata(path)
            current = meta.versions.get(meta.current_version)
            written = current.created_time if current is not None else meta.updated_time
            ages.append(SecretAge(path=meta.path, written=written))
    return ages


def vault_checks(
    access: VaultAccess,
    expect: PlatformExpectations,
    settings: DoctorSettings,
    now: Callable[[], datetime] = utc_now,
) -> list[Check]:
    try:
        health = _health(access, settings.timeout_s)
    except (httpx.HTTPError, ValueError) as err:
        return [
            unreachable(
                "vault.seal",
                "Vault's sys/health",
                describe(err),
                f"Check the Vault pods (vault namespace) and the address; see {RUNBOOK} "
                "(Vault unseal).",
            )
        ]
    checks = [seal_check(health)]
    if checks[0].status is not Status.HEALTHY:
        return checks  # nothing can be read from a sealed or uninitialised Vault
    threshold = f"age < {expect.secret_max_age_days} d"
    if not access.can_log_in:
        checks.append(
            Check(
                name="vault.secret_age",
                status=Status.WARNING,
                value=None,
                threshold=threshold,
                detail="not checked: no Vault credentials given",
                advice="Give --vault-token-file (a token with the doctor policy) or --vault-role.",
            )
        )
        return checks
    try:
        ages = _ages(_client(access, expect, settings.timeout_s), expect.secret_prefixes)
    except (SecretsError, ValueError) as err:
        checks.append(
            Check(
                name="vault.secret_age",
                status=Status.CRITICAL,
                value=None,
                threshold=threshold,
                detail=str(err),
                advice="The doctor's Vault identity needs list and read on the KV metadata of "
                f"the platform's prefixes; see {RUNBOOK} (secret rotation).",
            )
        )
        return checks
    checks.append(
        secret_age_check(
            ages, expect.secret_max_age_days, settings.secret_rotation_notice_days, now()
        )
    )
    return checks

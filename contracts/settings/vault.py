"""Where Vault is and how this pod logs in to it: `AGENTOPS_VAULT_*` environment variables.

A pod logs in with the projected service-account token the Deployments mount for the
audience "vault" (infra/layers/agents.py) under the Kubernetes-auth role named after its
service account (infra/platform/vault_access.py). A static token is only for tools run by
an operator outside the cluster; it is a `SecretStr`, never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["VaultSettings"]

_MOUNT = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class VaultSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTOPS_VAULT_",
        extra="ignore",
        frozen=True,
        validate_default=True,
        populate_by_name=True,
    )

    address: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://vault.vault.svc:8200"), description="Vault API address"
    )
    role: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Kubernetes-auth role (the service account's name)",
    )
    token_file: Path = Field(
        default=Path("/var/run/secrets/vault/token"),
        description="projected service-account token with audience 'vault'",
    )
    token: SecretStr | None = Field(
        default=None, description="static Vault token for operator tools (skips Kubernetes login)"
    )
    auth_mount: str = Field(default="kubernetes", pattern=_MOUNT, description="auth method path")
    kv_mount: str = Field(default="agents", pattern=_MOUNT, description="KV v2 mount")
    transit_mount: str = Field(default="transit", pattern=_MOUNT, description="transit mount")
    ca_file: Path | None = Field(
        default=None, description="CA bundle that signs Vault's certificate (None: system CAs)"
    )
    renew_margin_s: int = Field(
        default=300, ge=1, le=86_400, description="renew or log in again this long before expiry"
    )
    timeout_s: int = Field(default=10, ge=1, le=300, description="per-request timeout")
    pod_name: str | None = Field(
        default=None,
        # The kubelet sets HOSTNAME to the pod's name; POD_NAME wins when the downward API sets it.
        validation_alias=AliasChoices("AGENTOPS_VAULT_POD_NAME", "POD_NAME", "HOSTNAME"),
        description="pod named in audit records",
    )

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> Self:
        if self.role is None and self.token is None:
            raise ValueError(
                "set AGENTOPS_VAULT_ROLE (Kubernetes login) "
                "or AGENTOPS_VAULT_TOKEN (operator tools)"
            )
        return self

    @property
    def url(self) -> str:
        return str(self.address).rstrip("/")

    def verify(self) -> str | bool:
        """`requests`' verify argument: the CA file when set, else the system trust store."""
        return str(self.ca_file) if self.ca_file is not None else True

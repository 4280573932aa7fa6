"""Vault: HA raft storage, auto-unseal and the KV mount the agents read."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import AnyHttpUrl, Field, model_validator

from contracts.config.base import ConfigModel, RuleViolation
from contracts.config.quota import NamespaceQuotaConfig

__all__ = ["UnsealMode", "VaultConfig"]


class UnsealMode(StrEnum):
    AWS_KMS = "awskms"
    SHAMIR = "shamir"


class VaultConfig(ConfigModel):
    enabled: bool = Field(default=True, description="install Vault")
    replicas: int = Field(default=3, ge=1, le=7, description="raft peers (odd number)")
    unseal: UnsealMode = Field(default=UnsealMode.AWS_KMS, description="awskms | shamir")
    storage_gi: int = Field(default=10, ge=1, le=1000, description="raft volume size per peer")
    kv_mount: str = Field(
        default="agents", pattern="^[a-z][a-z0-9-]{0,30}$", description="KV v2 mount of agents"
    )
    secret_max_age_days: int = Field(
        default=90, ge=1, le=365, description="rotation policy: oldest allowed secret version"
    )
    configure: bool = Field(
        default=False,
        description=(
            "configure auth, mounts, policies and roles through the Vault API (pulumi-vault); "
            "turn on once Vault is initialised, with agentops:vaultToken set"
        ),
    )
    address: AnyHttpUrl | None = Field(
        default=None, description="Vault API address reachable from where `pulumi up` runs"
    )
    ca_cert_file: str | None = Field(
        default=None, description="CA bundle file on the deploying machine that signs `address`"
    )
    namespace_quota: NamespaceQuotaConfig = Field(
        default_factory=lambda: NamespaceQuotaConfig(cpu="8", memory="16Gi", pods=20),
        description="quota of the vault namespace",
    )

    @model_validator(mode="after")
    def _odd_quorum(self) -> Self:
        if self.replicas % 2 == 0:
            raise RuleViolation("replicas", self.replicas, "raft needs an odd number of peers")
        if self.configure and self.address is None:
            raise RuleViolation("address", None, "configure needs the Vault API address")
        return self

    @property
    def ha(self) -> bool:
        return self.replicas >= 3
